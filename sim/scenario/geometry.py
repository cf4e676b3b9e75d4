"""Scenario section `geometry`: which domain to mesh, its dimensions and its mesh sizes.

Every kind is a `GeometryKind`: it tells the scenario its boundary and region names, its
cell sizes and whether the needles fit, and names the builder that meshes it. Generated
geometries (gmsh) know their boundary and region names before any mesh exists, so a scenario
that names a tag they do not have fails at validation. Imported meshes are checked against
their tags once read, still before anything is solved.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, StrictInt, ValidationError, field_validator, model_validator

from sim.ct.volume import CTVolume
from sim.scenario.base import Section
from sim.scenario.frames import FrameName, Transform, to_project
from sim.scenario.injection import Name
from sim.scenario.selectors import SelectorSpec
from sim.scenario.volume_source import VolumePlacement
from sim.shapes import sacrum as sacrum_shape
from sim.shapes import vertebral_body as body_shape
from sim.shapes import vertebral_features
from sim.shapes.label_map import MaskReport, bone_mask, label_surface, label_values, listed
from sim.shapes.orientation import frame_warnings
from sim.shapes.primitives import largest_source_size, needle_tips, validate_sizes
from sim.shapes.surface import (
    NO_VTK,
    Surface,
    SurfaceError,
    SurfaceReport,
    check,
    clean,
    import_surface,
    keep_largest_shell,
    known_names,
    plausible_unit,
    signed_clearance,
    surface_format,
)
from sim.units import Angle, Length, LengthUnit, Point, metres_per, point_to_si

if TYPE_CHECKING:
    from sim.scenario.injection import Needle

PositiveLength = Annotated[Length, Field(gt=0)]
Point3 = tuple[float, float, float]

#: the most cells a generated mesh may have (estimated before meshing)
MAX_CELLS = 2e7
#: the most uniform refinements of a built mesh (8 times the cells each)
MAX_REFINE = 3
#: the finest mesh size, as a fraction of the bone's smallest extent, and in metres
MIN_SIZE_FRACTION = 1e-3
MIN_MESH_SIZE = 1e-6
#: tetrahedra per cube of the mesh size (a regular tetrahedron of edge h has volume h³/(6√2))
CELLS_PER_SIZE_CUBED = 6.0 * math.sqrt(2.0)


def estimated_cells(
    volume: float, size_tip: float, size_max: float, growth: float, tips: int
) -> float:
    """About how many tetrahedra a mesh of `volume` (m³) gets: CELLS_PER_SIZE_CUBED times the
    integral of 1/h³, with h = size_max except in a ball around each of `tips` needle tips,
    where it grows from size_tip by `growth` per distance (balls taken whole: an upper bound
    for tips near the surface)."""
    a, h, g = size_tip, size_max, growth
    reach = (h - a) / g
    # integral over the ball of 1/(a + g r)³ - 1/h³ (closed form)
    ball = (
        4.0 * math.pi / g**3 * (math.log(h / a) - 1.5 + 2.0 * a / h - 0.5 * (a / h) ** 2)
        - 4.0 / 3.0 * math.pi * reach**3 / h**3
    )
    return CELLS_PER_SIZE_CUBED * (volume / h**3 + tips * ball)


class GeometryKind(Section):
    """What every geometry kind tells the rest of the scenario, and which builder meshes it.

    `builder` is the ``module:function`` that meshes the kind; sim.geometry.build imports it
    only when the mesh is built (the schema loads neither gmsh nor DOLFINx) and calls it as
    ``function(geometry, needles, name, comm, msh_path, sites)`` for a TaggedMesh, written to
    `msh_path` (gmsh format) when it is given and the kind is meshed by gmsh, its cells
    distributed around the injection `sites` (sim.geometry.partition) unless they are None.
    A new kind is a subclass here, a member of `Geometry`, and its builder function.
    """

    builder: ClassVar[str]
    if TYPE_CHECKING:
        kind: str

    refine: Annotated[StrictInt, Field(ge=0, le=MAX_REFINE)] = 0
    """uniform refinements of the mesh once built, in parallel (each splits every tetrahedron
    into 8 at its edge midpoints and halves the cell sizes): for meshes too large to generate
    on one process; new boundary vertices stay on the coarse mesh's facets"""

    def boundary_names(self) -> set[str] | None:
        """Names of the boundaries the mesh will have besides the needle inlets; None when
        they are known only once the mesh is read."""
        return None

    def region_names(self) -> set[str] | None:
        """Names of the regions the mesh will have; None when known only once it is read."""
        return None

    def cell_size_range(self) -> tuple[float, float] | None:
        """The finest and coarsest cell size (m) the geometry is meshed with: `size_tip` and
        `size_max` of its `mesh`, halved by each `refine`; None for a mesh file (known only
        once read)."""
        sizing = getattr(self, "mesh", None)
        if sizing is None:
            return None
        return sizing.size_tip / 2**self.refine, sizing.size_max / 2**self.refine

    def contains(self, point: Point3, margin: float) -> bool | None:
        """Whether `point` (m) lies in bone at least `margin` (m) from its surface; None where
        the schema cannot tell (then the builder checks it)."""
        return None

    def extents(self) -> tuple[float, float, float] | None:
        """The sides (m) of the bone's bounding box; None where unknown before meshing."""
        return None

    def volume(self) -> float | None:
        """The bone's volume (m³) where it is cheap to know; None otherwise."""
        return None

    def check_mesh(self, tips: int) -> None:
        """ValueError naming the field unless the mesh sizes fit the bone: each at most its
        smallest extent and at least MIN_SIZE_FRACTION of it (and MIN_MESH_SIZE), and about
        MAX_CELLS cells at most (`tips`: the needle tips the mesh is refined at). Kinds
        without a `mesh` of sizes, or whose extents are unknown, are not checked here."""
        sizing, box = getattr(self, "mesh", None), self.extents()
        if sizing is None or box is None:
            return
        smallest = min(box)
        floor = max(MIN_SIZE_FRACTION * smallest, MIN_MESH_SIZE)
        for name, size in sizing.model_dump().items():
            if not name.startswith("size_"):
                continue
            if not floor <= size <= smallest:
                raise ValueError(
                    f"geometry.mesh.{name}: {size:g} m is out of range for a bone whose "
                    f"smallest extent is {smallest:g} m: a mesh size must be between "
                    f"{floor:g} m and {smallest:g} m"
                )
        volume = self.volume()
        cells = estimated_cells(
            math.prod(box) if volume is None else volume,
            sizing.size_tip,
            sizing.size_max,
            sizing.growth,
            tips,
        )
        if cells > MAX_CELLS:
            raise ValueError(
                f"geometry.mesh: size_tip {sizing.size_tip:g} m, size_max {sizing.size_max:g} "
                f"m and growth {sizing.growth:g} would give about {cells:.2g} cells, more than "
                f"the {MAX_CELLS:.0e} a mesh may have; make the sizes larger"
            )

    def cavity_margin(self) -> float:
        """How far (m) beyond the needle's inner radius a tip must keep from the surface."""
        return 0.0

    def warnings(self) -> list[str]:
        """What is valid but doubtful about the geometry (printed by validate, logged by run)."""
        return []

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """ValueError naming the field unless the needles fit the geometry: by default every
        needle has a tip, inside the bone by its inner radius plus `cavity_margin` where
        `contains` can tell."""
        for i, needle in enumerate(needles):
            where = f"injection.needles.{i}"
            if needle.tip is None:
                raise ValueError(f"{where}.tip: required for geometry kind '{self.kind}'")
            margin = needle.inner_radius + self.cavity_margin()
            if self.contains(needle.tip, margin) is False:
                raise ValueError(
                    f"{where}.tip: {[round(c * 1e3, 3) for c in needle.tip]} mm is outside the "
                    f"bone (or closer than {margin * 1e3:.2f} mm to its surface, the inlet "
                    "cavity radius plus one element)"
                )

    def inlet_boundaries(self, needles: Sequence[Needle]) -> set[str]:
        """Boundaries the mesh must have for the needles: generated geometries mesh an inlet
        (cavity or face) per needle, named after it."""
        return {n.name for n in needles}


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


class BallGeometry(GeometryKind):
    """A ball of bone of radius `radius` with a spherical needle-tip cavity at its centre.

    Boundaries: the needle's name (cavity surface, the inlet) and ``outer`` (the sphere).
    The cavity radius is the needle's inner radius. Verification case A (DESIGN §5).
    """

    builder: ClassVar[str] = "sim.geometry.ball:mesh_ball"
    kind: Literal["ball"]
    radius: PositiveLength
    mesh: MeshSizing = MeshSizing()

    def boundary_names(self) -> set[str]:
        return {"outer"}

    def region_names(self) -> set[str]:
        return {"bone"}

    def contains(self, point: Point3, margin: float) -> bool | None:
        return bool(np.linalg.norm(point) + margin <= self.radius)

    def extents(self) -> tuple[float, float, float]:
        d = 2.0 * self.radius
        return (d, d, d)

    def volume(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius**3

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """The inlet is the cavity at the centre, small compared with the ball."""
        for i, needle in enumerate(needles):
            where = f"injection.needles.{i}"
            if needle.tip is not None and any(c != 0.0 for c in needle.tip):
                raise ValueError(
                    f"{where}.tip: the ball's inlet is at its centre; tip must be [0, 0, 0] "
                    f"or left out, got {list(needle.tip)} m"
                )
            if needle.inner_radius >= 0.5 * self.radius:
                raise ValueError(
                    f"{where}: inner radius {needle.inner_radius:g} m is not small "
                    f"compared with the ball radius {self.radius:g} m"
                )


class ColumnGeometry(GeometryKind):
    """A square column of bone along x, structured tetrahedral mesh (1-D-like tests).

    Boundaries: the needle's name on the face x = 0 (the inlet), ``outlet`` at x = length,
    ``sides`` for the four lateral faces (walls). Verification cases D and E (DESIGN §5).
    """

    builder: ClassVar[str] = "sim.geometry.column:mesh_column"
    kind: Literal["column"]
    length: PositiveLength
    width: PositiveLength
    cells_along: Annotated[int, Field(ge=2)]
    cells_across: Annotated[int, Field(ge=1)] = 1

    def boundary_names(self) -> set[str]:
        return {"outlet", "sides"}

    def region_names(self) -> set[str]:
        return {"bone"}

    def cell_size_range(self) -> tuple[float, float]:
        """The smaller and larger cell spacing (m)."""
        spacing = (self.length / self.cells_along, self.width / self.cells_across)
        return min(spacing), max(spacing)

    def extents(self) -> tuple[float, float, float]:
        return (self.length, self.width, self.width)

    def volume(self) -> float:
        return self.length * self.width**2

    def check_mesh(self, tips: int) -> None:
        """ValueError unless the structured mesh (six tetrahedra per box) has at most
        MAX_CELLS cells."""
        cells = 6 * self.cells_along * self.cells_across**2
        if cells > MAX_CELLS:
            raise ValueError(
                f"geometry.cells_along: {self.cells_along} (with cells_across "
                f"{self.cells_across}) gives 6 x {self.cells_along} x {self.cells_across}^2 = "
                f"{cells:.2g} cells, more than the {MAX_CELLS:.0e} a mesh may have"
            )

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """One needle, without a tip: the inlet is the face x = 0."""
        for i, needle in enumerate(needles):
            if needle.tip is not None:
                raise ValueError(
                    f"injection.needles.{i}.tip: a column is injected through its face x = 0; "
                    "remove 'tip'"
                )
        if len(needles) != 1:
            raise ValueError("injection.needles: a column has one inlet face, so one needle")


class OutletSizing(MeshSizing):
    """Mesh sizes of a generated anatomy (m); `size_outlet` resolves the small outlet patches."""

    size_outlet: PositiveLength = 0.8e-3

    @model_validator(mode="after")
    def _outlet_fits(self) -> OutletSizing:
        if self.size_outlet > self.size_max:
            raise ValueError(
                f"size_outlet ({self.size_outlet:g} m) must not be larger than size_max "
                f"({self.size_max:g} m)"
            )
        return self

    def builder_sizes(self) -> dict[str, float]:
        """The sizes as keyword arguments of the gmsh anatomy builders (h_tip, h_max, ...)."""
        return {
            "h_tip": self.size_tip,
            "h_max": self.size_max,
            "growth": self.growth,
            "h_outlet": self.size_outlet,
        }


class VertebralSizing(OutletSizing):
    """Mesh sizes of the vertebral body (m)."""


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


class BasivertebralVein(Section):
    """The intraosseous trunk of the basivertebral vein, resolved: a channel (region
    `basivertebral_vein`) of `radius` from the basivertebral foramen anteriorly for `length`.
    The trunk is a few mm across and runs from the posterior foramen towards the centre of
    the body, where the intraosseous venous network converges on it."""

    radius: PositiveLength
    length: PositiveLength


class VertebralBodyGeometry(GeometryKind):
    """Idealised lumbar vertebral body: elliptic cylinder with a flattened posterior wall.

    Frame: +x anterior, +y to the patient's left, +z cranial, origin at the body centre.
    Boundaries: endplate_upper, endplate_lower, posterior_wall, basivertebral_foramen,
    lateral_wall, segmental_vein_left, segmental_vein_right, one cavity per needle, and
    posterior_defect / endplate_defect when asked for. Regions: anterior (the anterior
    `target_fraction` of the AP extent) and posterior, and cortex / cleft / lesion /
    basivertebral_vein when asked for. `level` (L1-L5) takes width, depth and height from
    published morphometry (sim/data/anatomy/lumbar_levels.yaml) unless they are given; by
    default about 45 mm wide, 35 mm deep, 28 mm high (Panjabi et al. 1992, Spine 17:299).
    """

    builder: ClassVar[str] = "sim.geometry.vertebral_body:mesh_vertebral_body"
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
    basivertebral_vein: BasivertebralVein | None = None
    mesh: VertebralSizing = VertebralSizing()

    @model_validator(mode="before")
    @classmethod
    def _level(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("level") is not None:
            try:
                dims = body_shape.lumbar_level_dimensions(str(data["level"]))
            except ValueError:
                return data  # the Literal check reports the unknown level
            data = {**dims, **data}
        return data

    def features(self) -> dict[str, Any]:
        """The optional features as keyword arguments of the gmsh builder: the cortical shell
        thickness (m) and the typed features of sim.shapes.vertebral_features (m)."""
        out: dict[str, Any] = {"cortical_shell": self.cortical_shell}
        if self.posterior_defect is not None:
            d = self.posterior_defect
            out["posterior_defect"] = vertebral_features.PosteriorDefect(d.y, d.z, d.radius)
        if self.endplate_defect is not None:
            e = self.endplate_defect
            out["endplate_defect"] = vertebral_features.EndplateDefect(e.side, e.x, e.y, e.radius)
        if self.cleft is not None:
            c = self.cleft
            out["cleft"] = vertebral_features.Cleft(
                np.asarray(c.centre), np.asarray(c.normal), c.thickness, c.radius
            )
        if self.lesion is not None:
            lesion = self.lesion
            out["lesion"] = vertebral_features.Lesion(
                np.asarray(lesion.centre), np.asarray(lesion.radii)
            )
        if self.basivertebral_vein is not None:
            v = self.basivertebral_vein
            out["basivertebral_vein"] = vertebral_features.BasivertebralVein(v.radius, v.length)
        return out

    def builder_kwargs(self) -> dict[str, Any]:
        """Everything but the needles, as keyword arguments of the gmsh builder."""
        return {
            "depth": self.depth,
            "width": self.width,
            "height": self.height,
            "posterior_flat": self.posterior_flat,
            "foramen_radius": self.foramen_radius,
            "foramen_height": self.foramen_height,
            "vein_radius": self.vein_radius,
            "vein_x": self.vein_x,
            "target_fraction": self.target_fraction,
            **self.mesh.builder_sizes(),
            **self.features(),
        }

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """ValueError unless the builder's own checks pass (sizes, outlet patches, features,
        needles: sim.shapes.vertebral_features.checked_vertebral_body), found on validation
        instead of when gmsh builds the mesh."""
        super().check_needles(needles)  # every needle has a tip, in the bone
        try:
            vertebral_features.checked_vertebral_body(
                needles=needle_tips(needles), **self.builder_kwargs()
            )
        except ValueError as exc:
            raise ValueError(f"geometry: {exc}") from None

    def boundary_names(self) -> set[str]:
        return body_shape.boundary_names(**self.features())

    def region_names(self) -> set[str]:
        return body_shape.region_names(**self.features())

    def contains(self, point: Point3, margin: float) -> bool | None:
        return body_shape.vertebral_body_contains(
            np.asarray(point),
            depth=self.depth,
            width=self.width,
            height=self.height,
            posterior_flat=self.posterior_flat,
            margin=margin,
            cortical_shell=self.cortical_shell,
        )

    def cavity_margin(self) -> float:
        """One element at the tip: the builder keeps the cavity h_tip inside the body."""
        return self.mesh.size_tip

    def extents(self) -> tuple[float, float, float]:
        return (self.depth, self.width, self.height)

    def volume(self) -> float:
        """The elliptic cylinder cut by the flat posterior wall (features are regions of it)."""
        return body_shape.body_dims(
            self.depth, self.width, self.height, self.posterior_flat, self.target_fraction
        ).volume


def _sacrum_default(key: str) -> Any:
    """Default shape parameter of the sacrum builder (SI; the builder holds the sources)."""
    return sacrum_shape.DEFAULTS[key]


def _sacral(key: str) -> Any:
    return Field(default_factory=lambda: _sacrum_default(key))


class SacrumSizing(OutletSizing):
    """Mesh sizes of the sacrum (m): `size_outlet` within 3 `size_outlet` of the foramina and
    of the S1 endplate under the disc."""

    size_max: PositiveLength = 4e-3
    size_outlet: PositiveLength = 1.5e-3


class FractureLine(Section):
    """A vertical alar fracture (sacral insufficiency fracture): a slab of `thickness` at
    `offset` from the midsagittal plane, parallel to the auricular surface, from above the ala
    down to `length` below the endplate plane (default: the S2/S3 junction); region
    ``fracture_<side>``. It must lie between the foramina and the sacroiliac joint."""

    side: Literal["left", "right"]
    offset: PositiveLength
    thickness: PositiveLength = 1.5e-3
    length: PositiveLength | None = None


class NamedLesion(Lesion):
    """A lytic tumour or alar void: ellipsoid region `name` with semi-axes `radii` along x, y,
    z; its centre must lie in bone and only its part in bone counts."""

    name: Name

    def ellipsoid(self) -> sacrum_shape.Ellipsoid:
        """The lesion as the sacrum builder takes it (m)."""
        return sacrum_shape.Ellipsoid(self.name, np.asarray(self.centre), np.asarray(self.radii))


class NeedlePath(Section):
    """A needle on a standard sacroplasty path (sim.shapes.sacrum.needle_path): ``short_axis``
    (dorsal, perpendicular to the alar surface) or ``long_axis`` (from the dorsal surface of
    the lower lateral mass cranially along the ala), into the `side` ala at `level`."""

    approach: Literal["short_axis", "long_axis"]
    side: Literal["left", "right"]
    level: Literal["S1", "S2"]


@cache
def _sacrum_shape(params: tuple[tuple[str, Any], ...]) -> Any:
    """The checked shape of the sacrum builder (ValueError naming a bad parameter)."""
    return sacrum_shape.checked_shape(**dict(params))


class SacrumGeometry(GeometryKind):
    """Idealised sacrum S1-S3 with alae, posterior arch, sacral canal, S1/S2 foramina,
    auricular (sacroiliac) surfaces and the L5-S1 disc (sim.geometry.sacrum, which gives the
    sources of the default dimensions).

    Frame: origin at the centre of the S1 endplate, +x anterior, +y to the patient's left, +z
    cranial; the endplate is tilted by `tilt` (the sacral slope). Regions: body_s1, body_s2,
    body_s3, posterior_arch, ala_left, ala_right, disc_l5s1, fracture_<side> per fracture line
    and one per tumour and alar void. Boundaries: foramen_s{1,2}_{anterior,posterior}_{left,
    right}, sacral_canal, si_joint_left, si_joint_right, disc_top, disc_rim, anterior_surface,
    posterior_surface, sacrum_surface, caudal_section, and a cavity per needle. Needles get
    their tip (and entry) in `injection.needles` or, by name, from `needle_paths`.
    Everything but the meshing is checked when the scenario is validated.
    """

    builder: ClassVar[str] = "sim.geometry.sacrum:mesh_sacrum"
    kind: Literal["sacrum"]
    tilt: Angle = Field(default_factory=lambda: math.radians(_sacrum_default("tilt")))
    endplate_width: PositiveLength = _sacral("endplate_width")
    endplate_depth: PositiveLength = _sacral("endplate_depth")
    segment_heights: tuple[PositiveLength, PositiveLength, PositiveLength] = _sacral(
        "segment_heights"
    )
    sacral_width: PositiveLength = _sacral("sacral_width")
    auricular_height: PositiveLength = _sacral("auricular_height")
    disc_height: PositiveLength = _sacral("disc_height")
    foramen_offsets: tuple[PositiveLength, PositiveLength] = _sacral("foramen_offsets")
    anterior_foramen_radii: tuple[PositiveLength, PositiveLength] = _sacral(
        "anterior_foramen_radii"
    )
    posterior_foramen_radii: tuple[PositiveLength, PositiveLength] = _sacral(
        "posterior_foramen_radii"
    )
    canal_width: PositiveLength = _sacral("canal_width")
    canal_depth: PositiveLength = _sacral("canal_depth")
    fracture_lines: list[FractureLine] = []
    tumours: list[NamedLesion] = []
    alar_voids: list[NamedLesion] = []
    needle_paths: dict[Name, NeedlePath] = {}
    mesh: SacrumSizing = SacrumSizing()

    @field_validator("tilt")
    @classmethod
    def _tilt_range(cls, v: float) -> float:
        if not 0.0 <= v <= math.radians(80.0):
            raise ValueError(
                f"{v:.6g} rad = {math.degrees(v):.6g} deg is out of range: the sacral slope must "
                "be in [0, 80] deg (a plain number is in radians; write e.g. '40 deg')"
            )
        return v

    @model_validator(mode="after")
    def _fits(self) -> SacrumGeometry:
        self._parsed()
        return self

    def _parsed(
        self,
    ) -> tuple[sacrum_shape.Shape, list[sacrum_shape.Ellipsoid], list[sacrum_shape.Slab]]:
        """The builder's checked shape, lesions and fracture slabs (ValueError if bad)."""
        shape = _sacrum_shape(tuple(self.shape_params().items()))
        validate_sizes(**self.mesh.builder_sizes())
        features = self.features()
        lesions = sacrum_shape.checked_lesions(features["tumours"], features["alar_voids"], shape)
        slabs = []
        for k, line in enumerate(features["fracture_lines"]):  # one by one: name the bad one
            try:
                slabs += sacrum_shape.checked_fractures([line], shape)
            except ValueError as exc:
                raise ValueError(f"fracture_lines.{k}: {exc}") from None
        return shape, lesions, slabs

    def shape_params(self) -> dict[str, Any]:
        """The shape parameters as keyword arguments of the builder (m; tilt in degrees)."""
        return {
            "tilt": math.degrees(self.tilt),
            "endplate_width": self.endplate_width,
            "endplate_depth": self.endplate_depth,
            "segment_heights": self.segment_heights,
            "sacral_width": self.sacral_width,
            "auricular_height": self.auricular_height,
            "disc_height": self.disc_height,
            "foramen_offsets": self.foramen_offsets,
            "anterior_foramen_radii": self.anterior_foramen_radii,
            "posterior_foramen_radii": self.posterior_foramen_radii,
            "canal_width": self.canal_width,
            "canal_depth": self.canal_depth,
        }

    def features(self) -> dict[str, Any]:
        """Fracture lines, tumours and alar voids as keyword arguments of the builder: the
        typed features of sim.shapes.sacrum (m)."""
        return {
            "fracture_lines": [
                sacrum_shape.FractureLine(f.side, f.offset, f.thickness, f.length)
                for f in self.fracture_lines
            ],
            "tumours": [t.ellipsoid() for t in self.tumours],
            "alar_voids": [v.ellipsoid() for v in self.alar_voids],
        }

    def builder_kwargs(self) -> dict[str, Any]:
        """Everything but the needles, as keyword arguments of the builder."""
        return {**self.shape_params(), **self.features(), **self.mesh.builder_sizes()}

    def path_of(self, needle: str) -> tuple[np.ndarray, np.ndarray]:
        """(entry, tip) (m) of a needle placed by `needle_paths`."""
        p = self.needle_paths[needle]
        return sacrum_shape.needle_path(p.approach, p.side, p.level, **self.shape_params())

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """ValueError naming the field unless the needles fit (the builder's own checks:
        tips in bone, not in a foramen, the canal or the disc, cavities clear of each other
        and of internal surfaces, entry paths)."""
        super().check_needles(needles)  # every needle has a tip
        names = [n.name for n in needles]
        unknown = sorted(set(self.needle_paths) - set(names))
        if unknown:
            raise ValueError(
                f"geometry.needle_paths: {unknown} name no needle; the needles are {names}"
            )
        shape, lesions, slabs = self._parsed()
        tips = needle_tips(needles)
        for i in range(len(tips)):
            try:
                sacrum_shape.checked_needles(
                    tips[: i + 1], shape, lesions, slabs, self.mesh.size_tip
                )
            except ValueError as exc:
                field = getattr(exc, "field", None)  # a ShapeError names the needle's field
                where = f"injection.needles.{i}" + (f".{field}" if field else "")
                raise ValueError(f"{where}: {exc}") from None

    def boundary_names(self) -> set[str]:
        return sacrum_shape.boundary_names()

    def extents(self) -> tuple[float, float, float]:
        """The bounding box of bone and disc in the sacral frame (tilted with the endplate)."""
        return self._parsed()[0].extents()

    def region_names(self) -> set[str]:
        return sacrum_shape.region_names(**self.features())


def place_needles(data: Any) -> Any:
    """The raw scenario mapping with the tip and entry of every needle that the geometry
    places (sacrum `needle_paths`) filled in; a tip or entry also given must agree.

    Leaves the mapping alone when the geometry section itself is invalid (that error is
    reported when the section is validated).
    """
    if not isinstance(data, dict):
        return data
    geo, injection = data.get("geometry"), data.get("injection")
    if not (isinstance(geo, dict) and geo.get("kind") == "sacrum" and geo.get("needle_paths")):
        return data
    if not (isinstance(injection, dict) and isinstance(injection.get("needles"), list)):
        return data
    try:
        sacrum = SacrumGeometry.model_validate(geo)
    except (ValidationError, ValueError):
        return data
    needles = []
    for i, raw in enumerate(injection["needles"]):
        name = raw.get("name", "needle") if isinstance(raw, dict) else None
        if name not in sacrum.needle_paths:
            needles.append(raw)
            continue
        placed = dict(zip(("entry", "tip"), sacrum.path_of(name), strict=True))
        for key, value in placed.items():
            if raw.get(key) is None:
                continue
            try:
                given = np.asarray(point_to_si(raw[key]))
            except ValueError:
                continue  # reported when the needle is validated
            if np.linalg.norm(given - value) > 1e-9:
                path = sacrum.needle_paths[name]
                raise ValueError(
                    f"injection.needles.{i}.{key}: needle '{name}' is placed by "
                    f"geometry.needle_paths.{name} ({path.approach}, {path.side}, "
                    f"{path.level}: {key} {np.round(value * 1e3, 2).tolist()} mm), so its "
                    f"{key} must be left out (got {raw[key]!r})"
                )
        needles.append({**raw, **{k: v.tolist() for k, v in placed.items()}})
    return {**data, "injection": {**injection, "needles": needles}}


class MeshFileGeometry(GeometryKind):
    """A tetrahedral mesh read from a gmsh ``.msh`` file with named physical groups.

    `length_unit` is the unit of the file's coordinates (e.g. ``mm``); coordinates are scaled
    to metres on reading, then moved by `frame` and `transform` into the project frame
    (sim.scenario.frames). Boundary and region names are the physical group names.
    """

    builder: ClassVar[str] = "sim.geometry.tagged_mesh:read_mesh_file"
    kind: Literal["mesh_file"]
    path: Path
    length_unit: LengthUnit = Field(description="unit of the file's coordinates, e.g. 'mm'")
    frame: FrameName = "project"
    transform: Transform | None = None

    def to_project(self) -> np.ndarray:
        """The 4 x 4 affine map from the file (in m) into the project frame."""
        return to_project(self.frame, self.transform)

    @field_validator("path")
    @classmethod
    def _readable(cls, v: Path) -> Path:
        if v.suffix != ".msh":
            raise ValueError(f"{str(v)!r}: only gmsh .msh files are read (got {v.suffix!r})")
        if not v.is_file():
            raise ValueError(f"mesh file {str(v)!r} does not exist")
        return v

    def inlet_boundaries(self, needles: Sequence[Needle]) -> set[str]:
        """A needle without a tip injects through the boundary of its name."""
        return {n.name for n in needles if n.tip is None}


class SurfaceSizing(Section):
    """Element sizes of an imported surface's volume mesh (m)."""

    size_tip: PositiveLength = 0.5e-3
    size_max: PositiveLength = 2.5e-3
    growth: Annotated[float, Field(gt=0, le=2)] = 0.3


#: what opens a surface file: path, version (mtime, size), metres per file unit, the
#: flattened 4 x 4 affine map into the project frame, keep_largest_shell, fill_holes
_Opening = tuple[Path, tuple[int, int], float, tuple[float, ...], bool, float | None]


def _version(path: Path) -> tuple[int, int]:
    """(mtime in ns, size) of a file: a changed file is opened again."""
    stat = path.stat()
    return (stat.st_mtime_ns, stat.st_size)


@cache
def _opened_surface(
    path: Path,
    version: tuple[int, int],
    factor: float,
    affine: tuple[float, ...],
    largest_shell: bool,
    max_hole_size: float | None,
) -> tuple[Surface, SurfaceReport]:
    """import_surface, once per file, version (mtime, size), unit, placement (the 4 x 4
    affine map into the project frame, flattened) and repair choices."""
    return import_surface(
        path,
        factor,
        affine=np.reshape(affine, (4, 4)),
        largest_shell=largest_shell,
        max_hole_size=max_hole_size,
    )


@cache
def _frame_warnings(kind: type[BoundedBySurface], opening: tuple[Any, ...]) -> tuple[str, ...]:
    """frame_warnings of a geometry kind's surface, once per opening (the key of its
    surface, BoundedBySurface._opening)."""
    return tuple(frame_warnings(kind.open_surface(*opening)[0]))


class BoundedBySurface(GeometryKind):
    """A bone bounded by one closed surface, known when the scenario is validated, remeshed
    and filled with tetrahedra by gmsh (sim.geometry.surface_file): the surface file and
    the label map kinds.

    A subclass gives `open_surface` (cached: the cleaned, checked surface and its report
    from the hashable key `_opening()`) and calls `_check_surface` when it is validated.
    """

    open_surface: ClassVar[Callable[..., tuple[Surface, SurfaceReport]]]
    keep_largest_shell: bool = False
    mesh: SurfaceSizing = SurfaceSizing()
    boundaries: dict[str, SelectorSpec] = {}
    regions: Mapping[str, Any] = {}
    """the named regions (by selectors or labels: each kind says how)"""

    def _opening(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def surface(self) -> tuple[Surface, SurfaceReport]:
        """The surface in metres (project frame), cleaned and checked, and its report
        (SurfaceError if it cannot be made or is not one closed manifold shell). Made once
        per file version."""
        return type(self).open_surface(*self._opening())

    def check_needles(self, needles: Sequence[Needle]) -> None:
        """As for every geometry, and the tip size at most half each needle's inner radius:
        the needle injects as a source spread over the control volumes around its tip."""
        super().check_needles(needles)
        for needle in needles:
            largest = largest_source_size(needle.inner_radius)
            if self.mesh.size_tip > largest:
                raise ValueError(
                    f"geometry.mesh.size_tip: {self.mesh.size_tip * 1e3:g} mm must be at most "
                    f"half the inner radius of needle '{needle.name}' ({largest * 1e3:.4g} mm) "
                    "so that its inflow is spread over several control volumes"
                )

    def _check_surface(self, field: str, what: str) -> None:
        """ValueError naming the field unless the surface is one piece (`field` and `what`
        name the source of the surface), its size fits the length unit and the boundary
        selectors are well defined on it."""
        _, report = self.surface()
        if report.n_components != 1:
            raise ValueError(
                f"{field}: {what} holds {report.n_components} separate pieces; the bone must be "
                "one closed surface (keep_largest_shell: true keeps the piece enclosing the "
                "largest volume)"
            )
        message = plausible_unit(report)
        if message is not None:
            raise ValueError(f"length_unit: {message}")
        surface, _ = self.surface()
        for name, spec in self.boundaries.items():
            try:
                spec.check_on(surface)
            except ValueError as exc:
                raise ValueError(f"boundaries.{name}.{exc}") from None

    def warnings(self) -> list[str]:
        """A warning when the surface is probably not in the project frame: mirror-symmetric
        across another plane than the midsagittal one, or a spine shape that fits the shipped
        anatomy clearly better turned."""
        return list(_frame_warnings(type(self), self._opening()))

    def contains(self, point: Point3, margin: float) -> bool | None:
        return signed_clearance(self.surface()[0], np.asarray(point, dtype=float)) >= margin

    def extents(self) -> tuple[float, float, float]:
        report = self.surface()[1]
        x, y, z = (hi - lo for lo, hi in zip(report.bbox_min, report.bbox_max, strict=True))
        return (x, y, z)

    def volume(self) -> float:
        return abs(self.surface()[1].volume)

    def boundary_names(self) -> set[str]:
        return set(self.boundaries) | {"surface"}

    def region_names(self) -> set[str]:
        return set(self.regions) | {"bone"}

    def inlet_boundaries(self, needles: Sequence[Needle]) -> set[str]:
        """None: the needles (all with a tip) inject as sources, no cavity is meshed."""
        return set()


class SurfaceFileGeometry(BoundedBySurface):
    """A closed bone surface (STL, OBJ, PLY, VTK/VTU, MSH, XDMF), remeshed and filled with
    tetrahedra by gmsh, refined around the needle tips.

    length_unit: of the file's coordinates (a size implausible for a bone in that unit is an
    error); boundaries / regions: named by geometric selectors (sim.scenario.selectors); the
    rest of the surface is ``surface``, the rest of the volume ``bone``. Needles inject as a
    source around their tips (no cavity is meshed). keep_largest_shell: keep only the piece
    enclosing the largest volume (e.g. a sacrum exported with its coccyx) instead of refusing
    a file of several pieces. fill_holes: close holes at most this wide (m) with a
    triangulated patch (export or segmentation gaps; VTK); larger holes stay an error. frame and
    transform bring the file's coordinates into the project frame (sim.scenario.frames);
    everything else (selectors, needles, fluoroscopy, anisotropy axes) is in the project
    frame, and a surface whose plane of mirror symmetry is not normal to y gets a warning.

    The surface is opened when the scenario is validated: unreadable, open, non-manifold or
    several-piece surfaces, an implausible size for `length_unit` and needle tips outside the
    bone are errors of `cementsim validate`, before any mesh is built.
    """

    builder: ClassVar[str] = "sim.geometry.surface_file:mesh_surface_file"
    open_surface = staticmethod(_opened_surface)
    kind: Literal["surface_file"]
    path: Path
    length_unit: LengthUnit
    frame: FrameName = "project"
    transform: Transform | None = None
    fill_holes: PositiveLength | None = None
    regions: dict[str, SelectorSpec] = {}

    @field_validator("path")
    @classmethod
    def _readable(cls, v: Path) -> Path:
        if surface_format(v) is None:
            raise ValueError(f"{str(v)!r}: surfaces are read from {known_names()} files")
        if not v.is_file():
            raise ValueError(f"surface file {str(v)!r} does not exist")
        return v

    @field_validator("fill_holes")
    @classmethod
    def _repair_installed(cls, v: float | None) -> float | None:
        if v is not None and importlib.util.find_spec("vtkmodules") is None:
            raise ValueError(NO_VTK)
        return v

    @model_validator(mode="after")
    def _opened(self) -> SurfaceFileGeometry:
        try:
            self.surface()
        except SurfaceError as exc:
            hint = ""
            if "not closed" in str(exc) and self.fill_holes is None:
                hint = " (fill_holes: LENGTH closes holes at most that wide)"
            raise ValueError(f"path: {exc}{hint}") from None
        self._check_surface("path", repr(str(self.path)))
        return self

    def _opening(self) -> _Opening:
        return (
            self.path.resolve(),
            _version(self.path),
            metres_per(self.length_unit),
            tuple(to_project(self.frame, self.transform).ravel()),
            self.keep_largest_shell,
            self.fill_holes,
        )


#: what opens a label map: path, version (mtime, size), the placement (VolumePlacement as
#: JSON), the bone labels, the smoothing (voxels) and keep_largest_shell
_LabelOpening = tuple[Path, tuple[int, int], str, tuple[int, ...], float, bool]


@cache
def _label_volume(path: Path, version: tuple[int, int], placement: str) -> CTVolume:
    """The label map at `path` placed in the project frame, once per file version and
    placement (VolumePlacement as JSON)."""
    return VolumePlacement.model_validate_json(placement).read(path)


@cache
def _label_surface(
    path: Path,
    version: tuple[int, int],
    placement: str,
    bone: tuple[int, ...],
    smoothing: float,
    largest_shell: bool,
) -> tuple[Surface, SurfaceReport]:
    """The cleaned, checked surface of the bone labels of a label map and its report, once
    per opening (_LabelOpening)."""
    volume = _label_volume(path, version, placement)
    factor = VolumePlacement.model_validate_json(placement).metres_per_unit(path)
    surface, _ = label_surface(volume, bone, smoothing, factor)
    surface = clean(surface)
    if largest_shell:
        surface = keep_largest_shell(surface)
    return surface, check(surface)


class LabelMapGeometry(BoundedBySurface, VolumePlacement):
    """A bone segmentation: a voxel volume of integer labels (0 background), its bone the
    union of the `bone` labels, meshed like a surface file from the surface that marching
    cubes finds at level 1/2 of the bone mask (Gaussian `smoothing` in voxels, 0 for the
    voxel staircase); `regions` name the cells whose centroid lies in a voxel with those
    labels (each a subset of the bone labels; in the order given, a label in two regions
    goes to the first).

    The file is read as a CT volume is (VolumePlacement: length_unit, voxel_size, origin,
    axis_order, frame, transform), or is a DICOM-SEG whose segment numbers are the labels.
    When the scenario is validated: labels that are not in the file, an empty bone, a file
    that is not a label map, bone of several pieces (unless keep_largest_shell), an
    implausible size for the length unit and needle tips outside the bone are errors naming
    the field. Background enclosed by the bone is filled.
    """

    builder: ClassVar[str] = "sim.geometry.surface_file:mesh_label_map"
    open_surface = staticmethod(_label_surface)
    kind: Literal["label_map"]
    path: Path
    bone: Annotated[list[int], Field(min_length=1)]
    regions: dict[Name, Annotated[list[int], Field(min_length=1)]] = {}
    smoothing: Annotated[float, Field(ge=0, le=5)] = 1.0
    """standard deviation of the Gaussian smoothing of the bone mask, in voxels"""

    @model_validator(mode="after")
    def _opened(self) -> LabelMapGeometry:
        self.check_source(self.path, "path")
        try:
            volume = self.label_volume()
        except (OSError, ValueError) as exc:  # CTFileError is a ValueError
            raise ValueError(f"path: {exc}") from None
        problem = self.voxel_size_problem(volume, "geometry")
        if problem is not None:
            raise ValueError(f"length_unit: {problem}")
        name = repr(self.path.name)
        try:
            present = label_values(volume)
        except ValueError as exc:
            raise ValueError(f"path: {name} {exc}") from None
        if not np.isin(self.bone, present).any():
            raise ValueError(
                f"bone: none of the labels {self.bone} is in {name} (labels present: "
                f"{listed(present)}): the bone is empty"
            )
        wanted = [("bone", self.bone)]
        wanted += [(f"regions.{r}", labels) for r, labels in self.regions.items()]
        for field, labels in wanted:
            for label in labels:
                if label not in present:
                    raise ValueError(
                        f"{field}: label {label} is not in {name} (labels present: "
                        f"{listed(present)})"
                    )
                if field != "bone" and label not in self.bone:
                    raise ValueError(
                        f"{field}: label {label} is not a bone label (bone: {self.bone}); a "
                        "region is made of cells of the meshed bone"
                    )
        try:
            self.surface()
        except SurfaceError as exc:
            raise ValueError(f"bone: the surface of labels {self.bone} in {name}: {exc}") from None
        self._check_surface("bone", f"the bone (labels {self.bone}) of {name}")
        return self

    def _placement(self) -> str:
        fields = {k: getattr(self, k) for k in VolumePlacement.model_fields}
        return VolumePlacement(**fields).model_dump_json()

    def _opening(self) -> _LabelOpening:
        return (
            self.path.resolve(),
            _version(self.path),
            self._placement(),
            tuple(self.bone),
            self.smoothing,
            self.keep_largest_shell,
        )

    def label_volume(self) -> CTVolume:
        """The label map (m, project frame); read once per file version."""
        return _label_volume(self.path.resolve(), _version(self.path), self._placement())

    def mask_report(self) -> MaskReport:
        """Voxel counts of the bone mask: its voxels, the enclosed background filled."""
        return bone_mask(self.label_volume(), self.bone)[1]

    def warnings(self) -> list[str]:
        """The surface's warnings, and one when background enclosed by the bone was filled."""
        found = super().warnings()
        report = self.mask_report()
        if report.filled:
            found.append(
                f"geometry: {report.filled} voxels ({report.filled * report.voxel_volume * 1e9:.4g}"
                f" mm³) of background enclosed by the bone labels {self.bone} are meshed as bone"
            )
        return found


Geometry = Annotated[
    BallGeometry
    | ColumnGeometry
    | VertebralBodyGeometry
    | SacrumGeometry
    | MeshFileGeometry
    | SurfaceFileGeometry
    | LabelMapGeometry,
    Field(discriminator="kind"),
]
