"""The optional features of the idealised vertebral body (no gmsh, no DOLFINx): the typed
objects the gmsh builder (sim.geometry.vertebral_body) takes for them, and their checks
against the body. The scenario schema makes these objects from its `geometry` sections.
SI units (m).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim.shapes.primitives import (
    NeedleTip,
    distance_to_ellipse,
    finite_point,
    require,
    validate_sizes,
)
from sim.shapes.vertebral_body import (
    FEATURE_NAMES,
    Body,
    body_clearance,
    body_dims,
    checked_needles,
    core_dims,
    validate_patches,
)

__all__ = [
    "BasivertebralVein",
    "Cleft",
    "EndplateDefect",
    "Features",
    "Lesion",
    "PosteriorDefect",
    "VeinChannel",
    "check_needles_clear_of_vein",
    "checked_features",
]


@dataclass(frozen=True)
class PosteriorDefect:
    """A disk of ``radius`` (m) on the posterior wall centred at (y, z) (m): a breach into
    the spinal canal."""

    y: float
    z: float
    radius: float


@dataclass(frozen=True)
class EndplateDefect:
    """A disk of ``radius`` (m) on the ``side`` endplate centred at (x, y) (m): a breach into
    the disc."""

    side: Literal["upper", "lower"]
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class Cleft:
    """A fracture cleft: a flat disk-shaped slab (all lengths in m; the normal a unit vector
    once checked)."""

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
class BasivertebralVein:
    """The basivertebral vein's channel as asked for: ``radius`` (m), running ``length`` (m)
    from the centre of the basivertebral foramen along +x."""

    radius: float
    length: float


@dataclass(frozen=True)
class VeinChannel:
    """The checked channel: ``radius`` (m) from ``start`` (m, on the posterior wall) along +x
    for ``length`` (m)."""

    start: np.ndarray
    length: float
    radius: float

    def size(self) -> float:
        """Element size inside the channel (m): half its radius."""
        return 0.5 * self.radius


@dataclass(frozen=True)
class Features:
    """The optional features of one body, checked (lengths in m)."""

    cortex: float | None = None
    posterior_defect: PosteriorDefect | None = None
    endplate_defect: EndplateDefect | None = None
    cleft: Cleft | None = None
    lesion: Lesion | None = None
    basivertebral_vein: VeinChannel | None = None


def checked_features(
    body: Body,
    *,
    cortical_shell: float | None,
    posterior_defect: PosteriorDefect | None,
    endplate_defect: EndplateDefect | None,
    cleft: Cleft | None,
    lesion: Lesion | None,
    basivertebral_vein: BasivertebralVein | None,
    foramen_radius: float,
    foramen_height: float,
    h_outlet: float,
    h_max: float,
) -> Features:
    """Check the optional features against the body (ValueError naming the feature, value and
    range); lengths in m."""
    shell = 0.0  # thickness of the cortical shell (m), 0 without one
    if cortical_shell is not None:
        shell = float(cortical_shell)
        limit = 0.1 * min(body.a - body.x_wall, 2.0 * body.b)
        require(0.0 < shell <= limit, "cortical_shell", cortical_shell,
                 f"in (0, {limit:.6g}] m (a tenth of the depth or width)")  # fmt: skip
    if posterior_defect is not None:
        _check_posterior_defect(posterior_defect, body, foramen_radius, foramen_height, h_outlet)
    if endplate_defect is not None:
        _check_endplate_defect(endplate_defect, body, shell, h_outlet)
    return Features(
        cortex=None if cortical_shell is None else shell,
        posterior_defect=posterior_defect,
        endplate_defect=endplate_defect,
        cleft=None if cleft is None else _checked_cleft(cleft, body),
        lesion=None if lesion is None else _checked_lesion(lesion, body, h_max),
        basivertebral_vein=(
            None
            if basivertebral_vein is None
            else _checked_vein(basivertebral_vein, body, foramen_radius, foramen_height)
        ),
    )


def _check_posterior_defect(
    defect: PosteriorDefect,
    body: Body,
    foramen_radius: float,
    foramen_height: float,
    h_outlet: float,
) -> None:
    """The hole lies on the posterior wall, clear of the wall's edges and of the
    basivertebral foramen by h_outlet (m)."""
    y, z, r = defect.y, defect.z, defect.radius
    require(h_outlet <= r, "posterior_defect", defect,
             f"a radius >= h_outlet = {h_outlet} m")  # fmt: skip
    y_max = body.wall_half_width - r - h_outlet
    z_max = body.half_height - r - h_outlet
    require(
        abs(y) <= y_max and abs(z) <= z_max,
        "posterior_defect",
        defect,
        f"a disk on the posterior wall h_outlet = {h_outlet} m inside its edges: |y| <= "
        f"{y_max:.6g} m and |z| <= {z_max:.6g} m for this radius",
    )
    gap = math.hypot(y, z - foramen_height) - r - foramen_radius
    require(
        gap >= h_outlet,
        "posterior_defect",
        defect,
        f"clear of the basivertebral foramen (centre (0, {foramen_height:.6g}) m, radius "
        f"{foramen_radius} m) by at least h_outlet = {h_outlet} m (the gap is {gap:.6g} m)",
    )


def _check_endplate_defect(
    defect: EndplateDefect, body: Body, shell: float, h_outlet: float
) -> None:
    """The patch lies on the upper or lower endplate over the trabecular core (inside a
    cortical shell of thickness `shell`, m), h_outlet (m) inside the endplate's edge."""
    require(defect.side in ("upper", "lower"), "endplate_defect side", defect.side,
             '"upper" or "lower"')  # fmt: skip
    x, y, r = defect.x, defect.y, defect.radius
    require(h_outlet <= r, "endplate_defect", defect,
             f"a radius >= h_outlet = {h_outlet} m")  # fmt: skip
    inside = (x / body.a) ** 2 + (y / body.b) ** 2 <= 1.0
    edge = min(distance_to_ellipse(x, y, body.a, body.b) if inside else -1.0, x - body.x_wall)
    need = r + h_outlet + shell
    require(
        edge >= need,
        "endplate_defect",
        defect,
        f"a disk on the endplate at least h_outlet = {h_outlet} m inside its edge"
        + (f" and inside the cortical shell ({shell} m)" if shell else "")
        + f": its centre must be {need:.6g} m from the edge (it is {edge:.6g} m)",
    )


def _checked_cleft(cleft: Cleft, body: Body) -> Cleft:
    """The cleft with a unit normal: centre inside the body, normal of length 1 within 1 %,
    thickness > 0 and radius >= thickness (m)."""
    centre = finite_point(cleft.centre, "cleft centre", "3 finite numbers")
    normal = finite_point(cleft.normal, "cleft normal", "3 finite numbers")
    length = float(np.linalg.norm(normal))
    require(abs(length - 1.0) <= 1e-2, "cleft normal", tuple(normal.tolist()),
             "a unit vector (length within 1 % of 1)")  # fmt: skip
    thickness, radius = float(cleft.thickness), float(cleft.radius)
    require(thickness > 0.0, "cleft thickness", cleft.thickness, "> 0 m")
    require(radius >= thickness, "cleft radius", cleft.radius,
             f">= the thickness {thickness} m")  # fmt: skip
    require(body_clearance(centre, body) > 0.0, "cleft centre", tuple(centre.tolist()),
             "inside the vertebral body")  # fmt: skip
    checked = Cleft(centre, normal / length, thickness, radius)
    _check_region_split("cleft", float(centre[0]), checked.x_half_extent(), body, checked.size())
    return checked


def _checked_lesion(lesion: Lesion, body: Body, h_max: float) -> Lesion:
    """The lesion as floats: centre inside the body, three semi-axes > 0 (m)."""
    centre = finite_point(lesion.centre, "lesion centre", "3 finite numbers")
    radii = finite_point(lesion.radii, "lesion radii", "3 finite numbers")
    require(bool(np.all(radii > 0.0)), "lesion radii", tuple(radii.tolist()),
             "three lengths > 0 m")  # fmt: skip
    require(body_clearance(centre, body) > 0.0, "lesion centre", tuple(centre.tolist()),
             "inside the vertebral body")  # fmt: skip
    checked = Lesion(centre, radii)
    _check_region_split("lesion", float(centre[0]), float(radii[0]), body, checked.size(h_max))
    return checked


def _checked_vein(
    vein: BasivertebralVein, body: Body, foramen_radius: float, foramen_height: float
) -> VeinChannel:
    """The basivertebral vein's channel: radius in (0, foramen_radius], length > 0 ending
    inside the body (at least its radius short of the anterior apex), clear of the endplates
    by its radius, and not ending within half its element size of the split plane (m)."""
    radius, length = float(vein.radius), float(vein.length)
    require(0.0 < radius <= foramen_radius, "basivertebral_vein radius", vein.radius,
             f"in (0, foramen_radius = {foramen_radius:.6g}] m")  # fmt: skip
    reach = body.a - body.x_wall - radius
    require(0.0 < length <= reach, "basivertebral_vein length", vein.length,
             f"in (0, {reach:.6g}] m (the depth of the body less the radius)")  # fmt: skip
    require(abs(foramen_height) + radius < body.half_height, "basivertebral_vein radius",
             vein.radius, "a channel clear of the endplates at the foramen's height")  # fmt: skip
    channel = VeinChannel(np.array([body.x_wall, 0.0, foramen_height]), length, radius)
    end = body.x_wall + length
    require(
        abs(end - body.x_split) >= 0.5 * channel.size(),
        "basivertebral_vein length",
        vein.length,
        f"a channel ending at least {0.5 * channel.size():.6g} m from the anterior/posterior "
        f"split plane x = {body.x_split:.6g} m (it ends at x = {end:.6g} m)",
    )
    return channel


def check_needles_clear_of_vein(
    needles: list[NeedleTip], channel: VeinChannel, h_tip: float
) -> None:
    """Each needle cavity lies at least h_tip (m) outside the vein's channel (a needle tip in
    the vein is an intravascular injection, not a vertebroplasty)."""
    x0 = float(channel.start[0])
    for n in needles:
        along = min(max(float(n.centre[0]), x0), x0 + channel.length)
        axis = np.array([along, channel.start[1], channel.start[2]])
        gap = float(np.linalg.norm(n.centre - axis)) - channel.radius - n.radius
        require(gap >= h_tip, f"tip of needle {n.name!r}", tuple(n.centre.tolist()),
                 f"a cavity at least h_tip = {h_tip:.6g} m clear of the basivertebral vein's "
                 f"channel (the gap is {gap:.6g} m)")  # fmt: skip


def _check_region_split(name: str, x: float, half: float, body: Body, size: float) -> None:
    """Reject a cleft or lesion whose x-extent (centre `x`, half-extent `half`, m) nearly
    touches the split plane (slivers)."""
    gap = abs(abs(x - body.x_split) - half)
    require(
        gap >= 0.5 * size,
        f"{name} centre",
        x,
        f"a {name} either crossing the anterior/posterior split plane x = {body.x_split:.6g} m "
        f"or clear of it, by at least half its element size {0.5 * size:.6g} m (its x-extent "
        f"is {gap:.6g} m from tangency)",
    )


def checked_vertebral_body(
    *,
    depth: float,
    width: float,
    height: float,
    posterior_flat: float,
    foramen_radius: float,
    foramen_height: float,
    vein_radius: float,
    vein_x: float,
    target_fraction: float,
    needles: Sequence[NeedleTip],
    h_tip: float,
    h_max: float,
    growth: float,
    h_outlet: float,
    **features: Any,
) -> tuple[Body, Features, list[NeedleTip]]:
    """Every check of the vertebral body's builder (sim.geometry.vertebral_body), without
    gmsh: sizes, outlet patches, features, needles (ValueError naming the parameter, its
    value and the allowed range; unknown keyword arguments too); the body, the checked
    features and needles. Lengths in m."""
    unknown = sorted(set(features) - set(FEATURE_NAMES))
    if unknown:
        raise TypeError(f"unknown features of the vertebral body: {unknown}")
    body = body_dims(depth, width, height, posterior_flat, target_fraction)
    validate_sizes(h_tip, h_max, growth, h_outlet)
    validate_patches(body, foramen_radius, foramen_height, vein_radius, vein_x, h_outlet)
    checked = checked_features(
        body,
        foramen_radius=foramen_radius,
        foramen_height=foramen_height,
        h_outlet=h_outlet,
        h_max=h_max,
        **{name: features.get(name) for name in FEATURE_NAMES},
    )
    core = None if checked.cortex is None else core_dims(body, checked.cortex)
    parsed = checked_needles(needles, body, h_tip, core)
    if checked.basivertebral_vein is not None:
        check_needles_clear_of_vein(parsed, checked.basivertebral_vein, h_tip)
    return body, checked, parsed
