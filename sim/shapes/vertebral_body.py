"""Analytic shape of the idealised lumbar vertebral body (no gmsh, no DOLFINx): its tag names,
the inside test, the checks of its parameters and needles, and the per-level dimensions (its
optional features are in sim.shapes.vertebral_features). The gmsh builder
(sim.geometry.vertebral_body, whose docstring describes the body, its frame, features and
groups) builds from them; the scenario schema validates with them. SI units (m).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from sim.shapes.primitives import (
    NeedleTip,
    checked_needle,
    distance_to_ellipse,
    finite_point,
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
    "body_clearance",
    "body_dims",
    "boundary_names",
    "checked_needles",
    "core_dims",
    "lumbar_level_dimensions",
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

    @property
    def volume(self) -> float:
        """Volume of the body (m³): the elliptic cylinder where x >= x_wall."""
        t = self.x_wall / self.a
        segment = 0.5 * math.pi - math.asin(t) - t * math.sqrt(1.0 - t * t)
        return self.a * self.b * segment * 2.0 * self.half_height


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


def body_clearance(point: np.ndarray, body: Body) -> float:
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
    return body_clearance(finite_point(point, "point", "3 finite numbers"), body) >= margin


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


def checked_needles(
    needles: Sequence[NeedleTip],
    body: Body,
    h_tip: float,
    core: Body | None = None,
) -> list[NeedleTip]:
    """The needles, checked, with their tips and entry points (if given) as 3 floats (m).

    With a cortical shell, ``core`` is the trabecular core inside it: the cavities must lie in
    the core, h_tip clear of the shell.
    """
    require(len(needles) > 0, "needles", needles, "at least one needle")
    reserved = (
        set(VOLUME_GROUPS) | set(SURFACE_GROUPS)
        | set(OPTIONAL_VOLUME_GROUPS) | set(OPTIONAL_SURFACE_GROUPS)
    )  # fmt: skip
    checked: list[NeedleTip] = []
    for needle in needles:
        tip = checked_needle(needle, reserved, checked)
        name, centre, radius = tip.name, tip.centre, tip.radius
        inner = body if core is None else core
        where = "the body" if core is None else "the trabecular core (inside the cortical shell)"
        clearance = body_clearance(centre, inner)
        require(
            clearance - radius >= h_tip,
            f"tip of needle {name!r}",
            tuple(centre.tolist()),
            f"inside {where} with the cavity (radius {radius} m) at least h_tip = {h_tip} m "
            f"from its boundary (cavity clearance is {clearance - radius:.6g} m)",
        )
        _check_split_clearance(name, centre, radius, body, h_tip)
        require_cavities_apart(name, centre, radius, checked, h_tip)
        entry = None if tip.entry is None else _check_entry(name, tip.entry, centre, body)
        checked.append(NeedleTip(name, centre, radius, entry))
    return checked


def _check_entry(name: str, entry: object, tip: np.ndarray, body: Body) -> np.ndarray:
    """The entry point of a needle, checked to give a transpedicular path to the tip.

    The body is convex, so the straight path from an entry point outside it to the tip inside
    it crosses the boundary once; that crossing must be in the posterior half (x < 0).
    """
    point = finite_point(entry, f"entry point of needle {name!r}")
    require(
        body_clearance(point, body) < 0.0,
        f"entry point of needle {name!r}",
        tuple(point.tolist()),
        "outside the vertebral body (the needle enters the body from outside)",
    )
    outside, inside = 0.0, 1.0  # path parameter: entry + s (tip - entry)
    for _ in range(60):
        s = 0.5 * (outside + inside)
        if body_clearance(point + s * (tip - point), body) >= 0.0:
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


# --- names before meshing, level presets -----------------------------------------------------

#: the optional features of the vertebral body, keyword arguments of its builder
FEATURE_NAMES = (
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
        *FEATURE_NAMES,
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
    names |= {n.name for n in args.get("needles") or ()}
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
