"""Analytic shape of the idealised lumbar vertebral body (no gmsh, no DOLFINx): its tag names,
the inside test, the checks of its parameters, features and needles, and the per-level
dimensions. The gmsh builder (sim.geometry.vertebral_body, whose docstring describes the body,
its frame, features and groups) builds from them; the scenario schema validates with them.
SI units (m).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from sim.shapes.primitives import (
    NeedleTip,
    distance_to_ellipse,
    finite_point,
    parse_needle,
    require,
    require_cavities_apart,
)

__all__ = [
    "BUILDER_PARAMETERS",
    "FIRST_NEEDLE_TAG",
    "LUMBAR_LEVELS_FILE",
    "OPTIONAL_SURFACE_GROUPS",
    "OPTIONAL_VOLUME_GROUPS",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "Body",
    "Features",
    "body_dims",
    "boundary_names",
    "check_needles_clear_of_vein",
    "core_dims",
    "lumbar_level_dimensions",
    "parse_features",
    "parse_needles",
    "region_names",
    "validate_patches",
    "vertebral_body_contains",
]

#: physical tag of each volume group (dim 3)
VOLUME_GROUPS: dict[str, int] = {"anterior": 1, "posterior": 2}
#: physical tag of each fixed surface group (dim 2)
SURFACE_GROUPS: dict[str, int] = {
    "endplate_upper": 11,
    "endplate_lower": 12,
    "basivertebral_foramen": 13,
    "posterior_wall": 14,
    "segmental_vein_left": 15,
    "segmental_vein_right": 16,
    "lateral_wall": 17,
}
#: physical tag of each volume group that exists only with its optional feature
OPTIONAL_VOLUME_GROUPS: dict[str, int] = {
    "cortex": 3,
    "cleft": 4,
    "lesion": 5,
    "basivertebral_vein": 6,
}
#: physical tag of each surface group that exists only with its optional feature
OPTIONAL_SURFACE_GROUPS: dict[str, int] = {"posterior_defect": 18, "endplate_defect": 19}
#: physical tag of the first needle's cavity surface; the next needles count up from it
FIRST_NEEDLE_TAG = 101
#: per-level body dimensions (m) with their sources, read by :func:`lumbar_level_dimensions`
LUMBAR_LEVELS_FILE = Path(__file__).resolve().parents[1] / "data" / "anatomy" / "lumbar_levels.yaml"


@dataclass(frozen=True)
class Body:
    """Derived dimensions of the body (m)."""

    a: float  # ellipse semi-axis along x
    b: float  # ellipse semi-axis along y
    half_height: float
    x_wall: float  # x of the flat posterior wall
    x_split: float  # x of the anterior/posterior split plane

    @property
    def wall_half_width(self) -> float:
        """Half the lateral width of the flat posterior wall (m)."""
        return self.b * math.sqrt(1.0 - (self.x_wall / self.a) ** 2)

    def lateral_y(self, x: float) -> float:
        """|y| of the curved lateral wall at abscissa ``x`` (m)."""
        return self.b * math.sqrt(max(0.0, 1.0 - (x / self.a) ** 2))


@dataclass(frozen=True)
class Cleft:
    """A fracture cleft: a flat disk-shaped slab (all lengths in m, normal a unit vector)."""

    centre: np.ndarray
    normal: np.ndarray
    thickness: float
    radius: float

    def x_half_extent(self) -> float:
        """Half the extent of the slab along x (m)."""
        nx = abs(float(self.normal[0]))
        return self.radius * math.sqrt(max(0.0, 1.0 - nx * nx)) + 0.5 * self.thickness * nx

    def size(self) -> float:
        """Element size inside the slab (m): half its thickness."""
        return 0.5 * self.thickness


@dataclass(frozen=True)
class Lesion:
    """A lytic lesion: an axis-aligned ellipsoid (centre and semi-axes in m)."""

    centre: np.ndarray
    radii: np.ndarray

    def size(self, h_max: float) -> float:
        """Element size inside the lesion (m): a quarter of its smallest semi-axis."""
        return min(h_max, 0.25 * float(self.radii.min()))


@dataclass(frozen=True)
class VeinChannel:
    """A straight channel of ``radius`` (m) from ``start`` (m, on the posterior wall) along +x
    for ``length`` (m)."""

    start: np.ndarray
    length: float
    radius: float

    def size(self) -> float:
        """Element size inside the channel (m): half its radius."""
        return 0.5 * self.radius


@dataclass(frozen=True)
class Features:
    """The optional features of one body, validated (lengths in m)."""

    cortex: float | None = None
    posterior_defect: tuple[float, float, float] | None = None
    endplate_defect: tuple[str, float, float, float] | None = None
    cleft: Cleft | None = None
    lesion: Lesion | None = None
    basivertebral_vein: VeinChannel | None = None


def body_dims(
    depth: float, width: float, height: float, posterior_flat: float, target_fraction: float
) -> Body:
    """Derived dimensions from the public parameters (validated here)."""
    for name, value in (("depth", depth), ("width", width), ("height", height)):
        require(value > 0.0, name, value, "> 0 m")
    require(0.0 < posterior_flat < 1.0, "posterior_flat", posterior_flat, "in (0, 1)")
    require(0.0 < target_fraction < 1.0, "target_fraction", target_fraction, "in (0, 1)")
    a = depth / (1.0 + posterior_flat)
    return Body(
        a=a,
        b=width / 2.0,
        half_height=height / 2.0,
        x_wall=-posterior_flat * a,
        x_split=a - target_fraction * depth,
    )


# --- analytic inside test -------------------------------------------------------------------


def _clearance(point: np.ndarray, body: Body) -> float:
    """Signed distance (m) from ``point`` to the body surface: > 0 inside, < 0 outside.

    Inside, the body is the intersection of three convex sets (elliptic cylinder, half-space,
    slab), so the distance to its boundary is the smallest distance to their boundaries.
    Outside, the value is only a lower bound of minus the distance, which is all we need.
    """
    x, y, z = (float(c) for c in point)
    d_ellipse = distance_to_ellipse(x, y, body.a, body.b)
    inside_ellipse = (x / body.a) ** 2 + (y / body.b) ** 2 <= 1.0
    return min(
        d_ellipse if inside_ellipse else -d_ellipse,
        x - body.x_wall,
        body.half_height - abs(z),
    )


def vertebral_body_contains(
    point: Sequence[float] | np.ndarray,
    *,
    depth: float = 35e-3,
    width: float = 45e-3,
    height: float = 28e-3,
    posterior_flat: float = 0.8,
    margin: float = 0.0,
    cortical_shell: float | None = None,
) -> bool:
    """True if ``point`` (m) lies inside the body at least ``margin`` (m) from its boundary.

    Analytic (no gmsh); the dimensions (m) mean the same as in ``add_vertebral_body``.
    A point on the boundary is inside for ``margin = 0``. With ``cortical_shell`` (m), the
    point must lie that far inside the trabecular core instead (where needle tips may be).
    """
    body = body_dims(depth, width, height, posterior_flat, target_fraction=0.5)
    if cortical_shell is not None:
        require(cortical_shell > 0.0, "cortical_shell", cortical_shell, "> 0 m")
        body = core_dims(body, cortical_shell)
    return _clearance(finite_point(point, "point", "3 finite numbers"), body) >= margin


# --- input validation -----------------------------------------------------------------------


def validate_patches(
    body: Body,
    foramen_radius: float,
    foramen_height: float,
    vein_radius: float,
    vein_x: float,
    h_outlet: float,
) -> None:
    """Check that the outlet patches fit on their faces, h_outlet away from the face edges."""
    require(
        0.0 < foramen_radius <= body.wall_half_width - h_outlet,
        "foramen_radius",
        foramen_radius,
        f"in (0, {body.wall_half_width - h_outlet:.6g}] m (posterior wall half-width minus "
        "h_outlet)",
    )
    z_max = body.half_height - foramen_radius - h_outlet
    require(
        abs(foramen_height) <= z_max,
        "foramen_height",
        foramen_height,
        f"in [-{z_max:.6g}, {z_max:.6g}] m (patch inside the posterior wall)",
    )
    require(
        0.0 < vein_radius <= body.half_height - h_outlet,
        "vein_radius",
        vein_radius,
        f"in (0, {body.half_height - h_outlet:.6g}] m (half the height minus h_outlet)",
    )
    x_lo, x_hi = body.x_wall + vein_radius + h_outlet, body.a - vein_radius - h_outlet
    require(
        x_lo <= vein_x <= x_hi,
        "vein_x",
        vein_x,
        f"in [{x_lo:.6g}, {x_hi:.6g}] m (patch on the curved lateral wall)",
    )
    require(
        h_outlet <= min(foramen_radius, vein_radius),
        "h_outlet",
        h_outlet,
        f"<= the smallest patch radius {min(foramen_radius, vein_radius):.6g} m",
    )


def parse_needles(
    needles: Sequence[tuple],
    body: Body,
    h_tip: float,
    core: Body | None = None,
) -> list[NeedleTip]:
    """Validate the needles and return them as `NeedleTip` records.

    With a cortical shell, ``core`` is the trabecular core inside it: the cavities must lie in
    the core, h_tip clear of the shell.
    """
    require(len(needles) > 0, "needles", needles, "at least one (name, tip, radius)")
    reserved = (
        set(VOLUME_GROUPS) | set(SURFACE_GROUPS)
        | set(OPTIONAL_VOLUME_GROUPS) | set(OPTIONAL_SURFACE_GROUPS)
    )  # fmt: skip
    parsed: list[NeedleTip] = []
    for item in needles:
        name, centre, radius, entry = parse_needle(item, reserved, parsed)
        inner = body if core is None else core
        where = "the body" if core is None else "the trabecular core (inside the cortical shell)"
        clearance = _clearance(centre, inner)
        require(
            clearance - radius >= h_tip,
            f"tip of needle {name!r}",
            tuple(centre.tolist()),
            f"inside {where} with the cavity (radius {radius} m) at least h_tip = {h_tip} m "
            f"from its boundary (cavity clearance is {clearance - radius:.6g} m)",
        )
        _check_split_clearance(name, centre, radius, body, h_tip)
        require_cavities_apart(name, centre, radius, parsed, h_tip)
        point = None if entry is None else _check_entry(name, entry, centre, body)
        parsed.append(NeedleTip(name, centre, radius, point))
    return parsed


def _check_entry(name: str, entry: object, tip: np.ndarray, body: Body) -> np.ndarray:
    """The entry point of a needle, checked to give a transpedicular path to the tip.

    The body is convex, so the straight path from an entry point outside it to the tip inside
    it crosses the boundary once; that crossing must be in the posterior half (x < 0).
    """
    point = finite_point(entry, f"entry point of needle {name!r}")
    require(
        _clearance(point, body) < 0.0,
        f"entry point of needle {name!r}",
        tuple(point.tolist()),
        "outside the vertebral body (the needle enters the body from outside)",
    )
    outside, inside = 0.0, 1.0  # path parameter: entry + s (tip - entry)
    for _ in range(60):
        s = 0.5 * (outside + inside)
        if _clearance(point + s * (tip - point), body) >= 0.0:
            inside = s
        else:
            outside = s
    crossing = point + inside * (tip - point)
    require(
        crossing[0] < 0.0,
        f"path of needle {name!r}",
        f"{tuple(point.tolist())} -> {tuple(tip.tolist())}",
        "a transpedicular path entering the body through its posterior half (x < 0); it "
        f"enters at {tuple(round(float(c), 6) for c in crossing)} m",
    )
    return point


def _check_split_clearance(
    name: str, centre: np.ndarray, radius: float, body: Body, h_tip: float
) -> None:
    """Reject a cavity that (nearly) touches the split plane: it would give sliver elements."""
    gap = abs(abs(centre[0] - body.x_split) - radius)
    require(
        gap >= 0.5 * h_tip,
        f"tip of needle {name!r}",
        tuple(centre.tolist()),
        f"a cavity either crossing the anterior/posterior split plane x = {body.x_split:.6g} m "
        f"or clear of it, by at least h_tip/2 = {0.5 * h_tip} m (it is {gap:.6g} m from "
        "tangency); move the tip or change target_fraction",
    )


def core_dims(body: Body, thickness: float) -> Body:
    """The trabecular core inside a cortical shell of ``thickness`` (m) on the lateral and
    posterior walls: the ellipse with both semi-axes reduced by the thickness (its distance to
    the outer ellipse is within 0.4 % of the thickness for lumbar proportions) and the wall
    moved inwards by the thickness; the endplates are unchanged."""
    return Body(
        a=body.a - thickness,
        b=body.b - thickness,
        half_height=body.half_height,
        x_wall=body.x_wall + thickness,
        x_split=body.x_split,
    )


def _check_keys(value: object, name: str, keys: Sequence[str]) -> Mapping[str, Any]:
    """``value`` as a mapping with exactly ``keys``, or ValueError naming what is wrong."""
    require(isinstance(value, Mapping), name, value, f"a mapping with keys {list(keys)}")
    assert isinstance(value, Mapping)
    unknown = sorted(set(value) - set(keys))
    missing = [k for k in keys if k not in value]
    require(not unknown and not missing, name, dict(value),
             f"exactly the keys {list(keys)} (unknown {unknown}, missing {missing})")  # fmt: skip
    return value


def parse_features(
    body: Body,
    *,
    cortical_shell: float | None,
    posterior_defect: Sequence[float] | None,
    endplate_defect: Sequence[Any] | None,
    cleft: Mapping[str, Any] | None,
    lesion: Mapping[str, Any] | None,
    basivertebral_vein: Mapping[str, Any] | None,
    foramen_radius: float,
    foramen_height: float,
    h_outlet: float,
    h_max: float,
) -> Features:
    """Validate the optional features (ValueError naming the feature, value and range)."""
    shell = 0.0  # thickness of the cortical shell (m), 0 without one
    if cortical_shell is not None:
        shell = float(cortical_shell)
        limit = 0.1 * min(body.a - body.x_wall, 2.0 * body.b)
        require(0.0 < shell <= limit, "cortical_shell", cortical_shell,
                 f"in (0, {limit:.6g}] m (a tenth of the depth or width)")  # fmt: skip
    return Features(
        cortex=None if cortical_shell is None else shell,
        posterior_defect=_parse_posterior_defect(
            posterior_defect, body, foramen_radius, foramen_height, h_outlet
        ),
        endplate_defect=_parse_endplate_defect(endplate_defect, body, shell, h_outlet),
        cleft=_parse_cleft(cleft, body),
        lesion=_parse_lesion(lesion, body, h_max),
        basivertebral_vein=_parse_vein_channel(
            basivertebral_vein, body, foramen_radius, foramen_height
        ),
    )


def _parse_posterior_defect(
    value: Sequence[float] | None,
    body: Body,
    foramen_radius: float,
    foramen_height: float,
    h_outlet: float,
) -> tuple[float, float, float] | None:
    """(y, z, radius) of a hole in the posterior wall, clear of the wall's edges and of the
    basivertebral foramen by h_outlet."""
    if value is None:
        return None
    require(
        isinstance(value, Sequence) and len(value) == 3,
        "posterior_defect", value, "(y, z, radius) in m",
    )  # fmt: skip
    y, z, r = (float(v) for v in value)
    require(h_outlet <= r, "posterior_defect", tuple(value),
             f"a radius >= h_outlet = {h_outlet} m")  # fmt: skip
    y_max = body.wall_half_width - r - h_outlet
    z_max = body.half_height - r - h_outlet
    require(
        abs(y) <= y_max and abs(z) <= z_max,
        "posterior_defect",
        tuple(value),
        f"a disk on the posterior wall h_outlet = {h_outlet} m inside its edges: |y| <= "
        f"{y_max:.6g} m and |z| <= {z_max:.6g} m for this radius",
    )
    gap = math.hypot(y, z - foramen_height) - r - foramen_radius
    require(
        gap >= h_outlet,
        "posterior_defect",
        tuple(value),
        f"clear of the basivertebral foramen (centre (0, {foramen_height:.6g}) m, radius "
        f"{foramen_radius} m) by at least h_outlet = {h_outlet} m (the gap is {gap:.6g} m)",
    )
    return y, z, r


def _parse_endplate_defect(
    value: Sequence[Any] | None, body: Body, shell: float, h_outlet: float
) -> tuple[str, float, float, float] | None:
    """("upper"|"lower", x, y, radius) of a patch on an endplate, over the trabecular core."""
    if value is None:
        return None
    require(
        isinstance(value, Sequence) and len(value) == 4 and value[0] in ("upper", "lower"),
        "endplate_defect", value, '("upper" | "lower", x, y, radius) with x, y, radius in m',
    )  # fmt: skip
    side = str(value[0])
    x, y, r = (float(v) for v in value[1:])
    require(h_outlet <= r, "endplate_defect", tuple(value),
             f"a radius >= h_outlet = {h_outlet} m")  # fmt: skip
    inside = (x / body.a) ** 2 + (y / body.b) ** 2 <= 1.0
    edge = min(distance_to_ellipse(x, y, body.a, body.b) if inside else -1.0, x - body.x_wall)
    need = r + h_outlet + shell
    require(
        edge >= need,
        "endplate_defect",
        tuple(value),
        f"a disk on the endplate at least h_outlet = {h_outlet} m inside its edge"
        + (f" and inside the cortical shell ({shell} m)" if shell else "")
        + f": its centre must be {need:.6g} m from the edge (it is {edge:.6g} m)",
    )
    return side, x, y, r


def _parse_cleft(value: Mapping[str, Any] | None, body: Body) -> Cleft | None:
    """A fracture cleft: centre inside the body, unit normal, thickness and radius > 0."""
    if value is None:
        return None
    v = _check_keys(value, "cleft", ("centre", "normal", "thickness", "radius"))
    centre = finite_point(v["centre"], "cleft centre", "3 finite numbers")
    normal = finite_point(v["normal"], "cleft normal", "3 finite numbers")
    length = float(np.linalg.norm(normal))
    require(abs(length - 1.0) <= 1e-2, "cleft normal", v["normal"],
             "a unit vector (length within 1 % of 1)")  # fmt: skip
    thickness, radius = float(v["thickness"]), float(v["radius"])
    require(thickness > 0.0, "cleft thickness", v["thickness"], "> 0 m")
    require(radius >= thickness, "cleft radius", v["radius"],
             f">= the thickness {thickness} m")  # fmt: skip
    require(_clearance(centre, body) > 0.0, "cleft centre", tuple(centre.tolist()),
             "inside the vertebral body")  # fmt: skip
    cleft = Cleft(centre, normal / length, thickness, radius)
    _check_region_split("cleft", float(centre[0]), cleft.x_half_extent(), body, cleft.size())
    return cleft


def _parse_lesion(value: Mapping[str, Any] | None, body: Body, h_max: float) -> Lesion | None:
    """A lytic lesion: centre inside the body, three semi-axes > 0."""
    if value is None:
        return None
    v = _check_keys(value, "lesion", ("centre", "radii"))
    centre = finite_point(v["centre"], "lesion centre", "3 finite numbers")
    radii = finite_point(v["radii"], "lesion radii", "3 finite numbers")
    require(bool(np.all(radii > 0.0)), "lesion radii", v["radii"], "three lengths > 0 m")
    require(_clearance(centre, body) > 0.0, "lesion centre", tuple(centre.tolist()),
             "inside the vertebral body")  # fmt: skip
    lesion = Lesion(centre, radii)
    _check_region_split("lesion", float(centre[0]), float(radii[0]), body, lesion.size(h_max))
    return lesion


def _parse_vein_channel(
    value: Mapping[str, Any] | None, body: Body, foramen_radius: float, foramen_height: float
) -> VeinChannel | None:
    """The basivertebral vein's channel: radius in (0, foramen_radius], length > 0 ending
    inside the body (at least its radius short of the anterior apex), clear of the endplates
    by its radius, and not ending within half its element size of the split plane."""
    if value is None:
        return None
    v = _check_keys(value, "basivertebral_vein", ("radius", "length"))
    radius, length = float(v["radius"]), float(v["length"])
    require(0.0 < radius <= foramen_radius, "basivertebral_vein radius", v["radius"],
             f"in (0, foramen_radius = {foramen_radius:.6g}] m")  # fmt: skip
    reach = body.a - body.x_wall - radius
    require(0.0 < length <= reach, "basivertebral_vein length", v["length"],
             f"in (0, {reach:.6g}] m (the depth of the body less the radius)")  # fmt: skip
    require(abs(foramen_height) + radius < body.half_height, "basivertebral_vein radius",
             v["radius"], "a channel clear of the endplates at the foramen's height")  # fmt: skip
    channel = VeinChannel(np.array([body.x_wall, 0.0, foramen_height]), length, radius)
    end = body.x_wall + length
    require(
        abs(end - body.x_split) >= 0.5 * channel.size(),
        "basivertebral_vein length",
        v["length"],
        f"a channel ending at least {0.5 * channel.size():.6g} m from the anterior/posterior "
        f"split plane x = {body.x_split:.6g} m (it ends at x = {end:.6g} m)",
    )
    return channel


def check_needles_clear_of_vein(
    needles: list[NeedleTip], channel: VeinChannel, h_tip: float
) -> None:
    """Each needle cavity lies at least h_tip outside the vein's channel (a needle tip in the
    vein is an intravascular injection, not a vertebroplasty)."""
    x0 = float(channel.start[0])
    for n in needles:
        along = min(max(float(n.centre[0]), x0), x0 + channel.length)
        axis = np.array([along, channel.start[1], channel.start[2]])
        gap = float(np.linalg.norm(n.centre - axis)) - channel.radius - n.radius
        require(gap >= h_tip, f"tip of needle {n.name!r}", tuple(n.centre.tolist()),
                 f"a cavity at least h_tip = {h_tip:.6g} m clear of the basivertebral vein's "
                 f"channel (the gap is {gap:.6g} m)")  # fmt: skip


def _check_region_split(name: str, x: float, half: float, body: Body, size: float) -> None:
    """Reject a cleft or lesion whose x-extent nearly touches the split plane (slivers)."""
    gap = abs(abs(x - body.x_split) - half)
    require(
        gap >= 0.5 * size,
        f"{name} centre",
        x,
        f"a {name} either crossing the anterior/posterior split plane x = {body.x_split:.6g} m "
        f"or clear of it, by at least half its element size {0.5 * size:.6g} m (its x-extent "
        f"is {gap:.6g} m from tangency)",
    )


# --- names before meshing, level presets -----------------------------------------------------

_FEATURES = (
    "cortical_shell",
    "posterior_defect",
    "endplate_defect",
    "cleft",
    "lesion",
    "basivertebral_vein",
)


#: the keyword parameters of sim.geometry.vertebral_body.add_vertebral_body
BUILDER_PARAMETERS = frozenset(
    {
        "depth",
        "width",
        "height",
        "posterior_flat",
        "foramen_radius",
        "foramen_height",
        "vein_radius",
        "vein_x",
        "target_fraction",
        "needles",
        "h_tip",
        "h_max",
        "growth",
        "h_outlet",
        *_FEATURES,
    }
)


def _feature_arguments(features: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments, checked to be parameters of the builder."""
    known = BUILDER_PARAMETERS
    unknown = sorted(set(features) - known)
    if unknown:
        raise TypeError(f"unknown vertebral-body parameter(s) {unknown}; known: {sorted(known)}")
    return features


def boundary_names(**features: Any) -> set[str]:
    """Names of the boundary (surface) groups ``add_vertebral_body`` gives with these
    keyword arguments, before any geometry exists.

    Only the optional features (and ``needles``, whose names are cavity groups) matter; any
    other parameter of ``add_vertebral_body`` is accepted and ignored, so the same
    keyword arguments can be passed to both. TypeError for an unknown keyword.
    """
    args = _feature_arguments(features)
    names = set(SURFACE_GROUPS)
    names |= {n for n in OPTIONAL_SURFACE_GROUPS if args.get(n) is not None}
    names |= {str(item[0]) for item in args.get("needles") or ()}
    return names


def region_names(**features: Any) -> set[str]:
    """Names of the region (volume) groups ``add_vertebral_body`` gives with these
    keyword arguments (see :func:`boundary_names`)."""
    args = _feature_arguments(features)
    names = set(VOLUME_GROUPS)
    if args.get("cortical_shell") is not None:
        names.add("cortex")
    names |= {n for n in ("cleft", "lesion", "basivertebral_vein") if args.get(n) is not None}
    return names


@cache
def _lumbar_levels() -> dict[str, dict[str, float]]:
    """The per-level dimensions (m) from :data:`LUMBAR_LEVELS_FILE`."""
    import yaml

    with LUMBAR_LEVELS_FILE.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    return {
        level: {key: float(entry[key]) for key in ("width", "depth", "height")}
        for level, entry in data["levels"].items()
    }


def lumbar_level_dimensions(level: str) -> dict[str, float]:
    """Vertebral-body ``width`` (lateral), ``depth`` (antero-posterior) and ``height`` (m) of
    the lumbar level ``level`` ("L1" to "L5"), for ``add_vertebral_body``.

    Values and their sources are in ``sim/data/anatomy/lumbar_levels.yaml`` (see SOURCES.md
    there). ValueError naming the known levels for an unknown one.
    """
    levels = _lumbar_levels()
    key = level.strip().upper() if isinstance(level, str) else level
    if key not in levels:
        raise ValueError(f"unknown lumbar level {level!r}: known levels are {sorted(levels)}")
    return dict(levels[key])
