"""Scenario section `geometry`: which domain to mesh, its dimensions and its mesh sizes.

Generated geometries (gmsh) know their boundary and region names before any mesh exists, so
a scenario that names a tag they do not have fails at validation. Imported meshes are checked
against their tags once read, still before anything is solved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from sim.scenario.base import Section
from sim.units import Length

PositiveLength = Annotated[Length, Field(gt=0)]


class MeshSizing(Section):
    """Element sizes of a generated mesh (m): fine at the needle tip, growing with distance."""

    size_tip: PositiveLength = 0.4e-3
    size_max: PositiveLength = 3e-3
    growth: Annotated[float, Field(gt=0, le=2)] = 0.3
    """dimensionless size gradient: size = size_tip + growth * distance from the tip"""

    @model_validator(mode="after")
    def _ordered(self) -> MeshSizing:
        if self.size_max < self.size_tip:
            raise ValueError(
                f"size_max ({self.size_max:g} m) must not be smaller than size_tip "
                f"({self.size_tip:g} m)"
            )
        return self


class BallGeometry(Section):
    """A ball of bone of radius `radius` with a spherical needle-tip cavity at its centre.

    Boundaries: the needle's name (cavity surface, the inlet) and ``outer`` (the sphere).
    The cavity radius is the needle's inner radius. Verification case A (DESIGN §5).
    """

    kind: Literal["ball"]
    radius: PositiveLength
    mesh: MeshSizing = MeshSizing()

    def boundary_names(self) -> set[str]:
        return {"outer"}

    def region_names(self) -> set[str]:
        return {"bone"}

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        return bool(np.linalg.norm(point) + margin <= self.radius)


class ColumnGeometry(Section):
    """A square column of bone along x, structured tetrahedral mesh (1-D-like tests).

    Boundaries: the needle's name on the face x = 0 (the inlet), ``outlet`` at x = length,
    ``sides`` for the four lateral faces (walls). Verification cases D and E (DESIGN §5).
    """

    kind: Literal["column"]
    length: PositiveLength
    width: PositiveLength
    cells_along: Annotated[int, Field(ge=2)]
    cells_across: Annotated[int, Field(ge=1)] = 1

    def boundary_names(self) -> set[str]:
        return {"outlet", "sides"}

    def region_names(self) -> set[str]:
        return {"bone"}

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        return None  # the inlet is the face x = 0: a needle tip is not used


class VertebralSizing(MeshSizing):
    """Mesh sizes of the vertebral body (m); `size_outlet` resolves the small outlet patches."""

    size_outlet: PositiveLength = 0.8e-3


class VertebralBodyGeometry(Section):
    """Idealised lumbar vertebral body: elliptic cylinder with a flattened posterior wall.

    Frame: +x anterior, y lateral (left = -y), +z cranial, origin at the body centre.
    Boundaries: endplate_upper, endplate_lower, posterior_wall, basivertebral_foramen,
    lateral_wall, segmental_vein_left, segmental_vein_right, and one cavity per needle.
    Regions: anterior (the anterior `target_fraction` of the AP extent) and posterior.
    Default dimensions: adult lumbar body about 45 mm wide, 35 mm deep, 28 mm high
    (Panjabi et al. 1992, Spine 17:299).
    """

    kind: Literal["vertebral_body"]
    depth: PositiveLength = 35e-3
    width: PositiveLength = 45e-3
    height: PositiveLength = 28e-3
    posterior_flat: Annotated[float, Field(gt=0, lt=1)] = 0.8
    foramen_radius: PositiveLength = 2.5e-3
    foramen_height: Length = 0.0
    vein_radius: PositiveLength = 1.5e-3
    vein_x: Length = 0.0
    target_fraction: Annotated[float, Field(gt=0, lt=1)] = 2.0 / 3.0
    mesh: VertebralSizing = VertebralSizing()

    def boundary_names(self) -> set[str]:
        return {
            "endplate_upper",
            "endplate_lower",
            "posterior_wall",
            "basivertebral_foramen",
            "lateral_wall",
            "segmental_vein_left",
            "segmental_vein_right",
        }

    def region_names(self) -> set[str]:
        return {"anterior", "posterior"}

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        from sim.geometry.vertebral_body import vertebral_body_contains

        return vertebral_body_contains(
            np.asarray(point),
            depth=self.depth,
            width=self.width,
            height=self.height,
            posterior_flat=self.posterior_flat,
            margin=margin,
        )


class MeshFileGeometry(Section):
    """A tetrahedral mesh read from a gmsh ``.msh`` file with named physical groups.

    `length_unit` is the unit of the file's coordinates (e.g. ``mm``); coordinates are scaled
    to metres on reading. Boundary and region names are the physical group names.
    """

    kind: Literal["mesh_file"]
    path: Path
    length_unit: str = Field(description="unit of the file's coordinates, e.g. 'mm' or 'm'")

    @field_validator("length_unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        from sim.units import LENGTH, to_si

        to_si(f"1 {v}", LENGTH)
        return v

    @field_validator("path")
    @classmethod
    def _readable(cls, v: Path) -> Path:
        if v.suffix != ".msh":
            raise ValueError(f"{str(v)!r}: only gmsh .msh files are read (got {v.suffix!r})")
        if not v.is_file():
            raise ValueError(f"mesh file {str(v)!r} does not exist")
        return v

    def boundary_names(self) -> set[str] | None:
        return None  # known once the file is read

    def region_names(self) -> set[str] | None:
        return None

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        return None


Geometry = Annotated[
    BallGeometry | ColumnGeometry | VertebralBodyGeometry | MeshFileGeometry,
    Field(discriminator="kind"),
]
