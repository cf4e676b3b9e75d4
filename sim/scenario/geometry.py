"""Scenario section `geometry`: which domain to mesh, its dimensions and its mesh sizes.

Generated geometries (gmsh) know their boundary and region names before any mesh exists, so
a scenario that names a tag they do not have fails at validation. Imported meshes are checked
against their tags once read, still before anything is solved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from sim.scenario.base import Section
from sim.scenario.selectors import SelectorSpec
from sim.units import Length, Point

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


class PosteriorDefect(Section):
    """A hole through the posterior wall at (y, z) (m): cement can reach the spinal canal."""

    y: Length = 0.0
    z: Length = 0.0
    radius: PositiveLength


class EndplateDefect(Section):
    """A hole in an endplate at (x, y) (m): cement can reach the disc."""

    side: Literal["upper", "lower"]
    x: Length = 0.0
    y: Length = 0.0
    radius: PositiveLength


class Cleft(Section):
    """A fracture cleft: a thin slab (region `cleft`) of `thickness` and in-plane `radius`."""

    centre: Point
    normal: tuple[float, float, float] = (0.0, 0.0, 1.0)
    thickness: PositiveLength
    radius: PositiveLength


class Lesion(Section):
    """A lytic lesion: an ellipsoid region `lesion` with semi-axes `radii` along x, y, z."""

    centre: Point
    radii: tuple[PositiveLength, PositiveLength, PositiveLength]


class VertebralBodyGeometry(Section):
    """Idealised lumbar vertebral body: elliptic cylinder with a flattened posterior wall.

    Frame: +x anterior, y lateral (left = -y), +z cranial, origin at the body centre.
    Boundaries: endplate_upper, endplate_lower, posterior_wall, basivertebral_foramen,
    lateral_wall, segmental_vein_left, segmental_vein_right, one cavity per needle, and
    posterior_defect / endplate_defect when asked for. Regions: anterior (the anterior
    `target_fraction` of the AP extent) and posterior, and cortex / cleft / lesion when asked
    for. `level` (L1-L5) takes width, depth and height from published morphometry
    (sim/data/anatomy/lumbar_levels.yaml) unless they are given; by default about 45 mm wide,
    35 mm deep, 28 mm high (Panjabi et al. 1992, Spine 17:299).
    """

    kind: Literal["vertebral_body"]
    level: Literal["L1", "L2", "L3", "L4", "L5"] | None = None
    depth: PositiveLength = 35e-3
    width: PositiveLength = 45e-3
    height: PositiveLength = 28e-3
    posterior_flat: Annotated[float, Field(gt=0, lt=1)] = 0.8
    foramen_radius: PositiveLength = 2.5e-3
    foramen_height: Length = 0.0
    vein_radius: PositiveLength = 1.5e-3
    vein_x: Length = 0.0
    target_fraction: Annotated[float, Field(gt=0, lt=1)] = 2.0 / 3.0
    cortical_shell: PositiveLength | None = None
    posterior_defect: PosteriorDefect | None = None
    endplate_defect: EndplateDefect | None = None
    cleft: Cleft | None = None
    lesion: Lesion | None = None
    mesh: VertebralSizing = VertebralSizing()

    @model_validator(mode="before")
    @classmethod
    def _level(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("level") is not None:
            from sim.geometry.vertebral_body import lumbar_level_dimensions

            try:
                dims = lumbar_level_dimensions(str(data["level"]))
            except ValueError:
                return data  # the Literal check reports the unknown level
            data = {**dims, **data}
        return data

    def features(self) -> dict[str, Any]:
        """The optional features as keyword arguments of the gmsh builder."""
        out: dict[str, Any] = {"cortical_shell": self.cortical_shell}
        if self.posterior_defect is not None:
            d = self.posterior_defect
            out["posterior_defect"] = (d.y, d.z, d.radius)
        if self.endplate_defect is not None:
            e = self.endplate_defect
            out["endplate_defect"] = (e.side, e.x, e.y, e.radius)
        if self.cleft is not None:
            out["cleft"] = self.cleft.model_dump()
        if self.lesion is not None:
            out["lesion"] = self.lesion.model_dump()
        return out

    def boundary_names(self) -> set[str]:
        from sim.geometry.vertebral_body import boundary_names

        return boundary_names(**self.features())

    def region_names(self) -> set[str]:
        from sim.geometry.vertebral_body import region_names

        return region_names(**self.features())

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        from sim.geometry.vertebral_body import vertebral_body_contains

        return vertebral_body_contains(
            np.asarray(point),
            depth=self.depth,
            width=self.width,
            height=self.height,
            posterior_flat=self.posterior_flat,
            margin=margin,
            cortical_shell=self.cortical_shell,
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


SURFACE_SUFFIXES = (".stl", ".obj", ".ply", ".vtk", ".vtu", ".msh", ".xdmf")


class SurfaceSizing(Section):
    """Element sizes of an imported surface's volume mesh (m)."""

    size_tip: PositiveLength = 0.5e-3
    size_max: PositiveLength = 2.5e-3
    growth: Annotated[float, Field(gt=0, le=2)] = 0.3


class SurfaceFileGeometry(Section):
    """A closed bone surface (STL, OBJ, PLY, VTK/VTU, MSH, XDMF), remeshed and filled with
    tetrahedra by gmsh, refined around the needle tips.

    length_unit: of the file's coordinates (a size implausible for a bone in that unit is an
    error); boundaries / regions: named by geometric selectors (sim.scenario.selectors); the
    rest of the surface is ``surface``, the rest of the volume ``bone``. Needles inject as a
    source around their tips (no cavity is meshed).
    """

    kind: Literal["surface_file"]
    path: Path
    length_unit: str
    mesh: SurfaceSizing = SurfaceSizing()
    boundaries: dict[str, SelectorSpec] = {}
    regions: dict[str, SelectorSpec] = {}

    @field_validator("length_unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        from sim.units import LENGTH, to_si

        to_si(f"1 {v}", LENGTH)
        return v

    @field_validator("path")
    @classmethod
    def _readable(cls, v: Path) -> Path:
        if v.suffix.lower() not in SURFACE_SUFFIXES:
            raise ValueError(
                f"{str(v)!r}: surfaces are read from {', '.join(SURFACE_SUFFIXES)} files"
            )
        if not v.is_file():
            raise ValueError(f"surface file {str(v)!r} does not exist")
        return v

    def boundary_names(self) -> set[str]:
        return set(self.boundaries) | {"surface"}

    def region_names(self) -> set[str]:
        return set(self.regions) | {"bone"}

    def contains(self, point: tuple[float, float, float], margin: float) -> bool | None:
        return None  # checked against the surface when the mesh is built


Geometry = Annotated[
    BallGeometry | ColumnGeometry | VertebralBodyGeometry | MeshFileGeometry | SurfaceFileGeometry,
    Field(discriminator="kind"),
]
