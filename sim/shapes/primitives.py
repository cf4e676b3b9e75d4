"""Small pieces shared by the geometry builders, without gmsh: argument checks, the needle
tips, and the distance to an ellipse."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.scenario.injection import Needle


def side_sign(side: str) -> float:
    """+1 for the patient's left, -1 for the right: the frames are right-handed with +x
    anterior and +z cranial, so +y points to the patient's left."""
    return 1.0 if side == "left" else -1.0


class ShapeError(ValueError):
    """A builder parameter out of range. `field` names the needle's field at fault ("name",
    "tip", "entry") when the parameter belongs to a needle, so that the scenario can report
    the error under injection.needles.<i>.<field>; None otherwise."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def require(ok: bool, name: str, value: object, allowed: str, field: str | None = None) -> None:
    """Raise ShapeError naming the parameter, its value and the allowed range unless ``ok``
    (`field`: the needle field at fault, see ShapeError)."""
    if not ok:
        raise ShapeError(f"{name} = {value!r} is out of range: must be {allowed}", field)


def finite_point(
    value: object, what: str, allowed: str = "3 finite numbers (m)", field: str | None = None
) -> np.ndarray:
    """`value` as a finite 3-vector, or ShapeError naming `what`, the value and `allowed`."""
    try:
        point = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        point = np.full(1, np.nan)
    ok = point.shape == (3,) and bool(np.all(np.isfinite(point)))
    require(ok, what, value, allowed, field)
    return point


@dataclass(frozen=True)
class NeedleTip:
    """A needle tip as the builders take it: its name (the group of its cavity), the cavity
    (or source) centre and radius (m), and the entry point (m) if given, whose path to the
    tip the anatomy builders check."""

    name: str
    centre: np.ndarray
    radius: float
    entry: np.ndarray | None = None


def needle_tips(needles: Sequence[Needle]) -> list[NeedleTip]:
    """The tips of scenario needles, each with a tip (m): the centre is the needle's tip, the
    radius its inner radius, the entry its entry point if given."""
    return [
        NeedleTip(
            n.name,
            np.asarray(n.tip),
            n.inner_radius,
            None if n.entry is None else np.asarray(n.entry),
        )
        for n in needles
    ]


def checked_needle(
    needle: NeedleTip, reserved: Collection[str], earlier: Sequence[NeedleTip]
) -> NeedleTip:
    """`needle` with its tip as 3 floats (m) and its radius a float (m), checked: the name
    non-empty, not `reserved` and not one of the `earlier` needles', the tip 3 finite numbers
    and the radius > 0 (ShapeError otherwise). The entry point is left as given: each
    anatomy checks its path."""
    name, radius = needle.name, float(needle.radius)
    require(
        isinstance(name, str) and name != "" and name not in reserved,
        "needle name",
        name,
        f"a non-empty string other than {sorted(reserved)}",
        field="name",
    )
    require(name not in {n.name for n in earlier}, "needle name", name, "unique", field="name")
    centre = finite_point(needle.centre, f"tip of needle {name!r}", field="tip")
    require(radius > 0.0, f"radius of needle {name!r}", radius, "> 0 m")
    return NeedleTip(name, centre, radius, needle.entry)


def require_cavities_apart(
    name: str, centre: np.ndarray, radius: float, others: Sequence[NeedleTip], h_tip: float
) -> None:
    """The needle-tip cavity of needle `name` (centre, radius in m) is at least h_tip from
    the cavities of the `others`."""
    for other in others:
        gap = float(np.linalg.norm(centre - other.centre)) - radius - other.radius
        require(
            gap >= h_tip,
            f"tip of needle {name!r}",
            tuple(centre.tolist()),
            f"at least h_tip = {h_tip} m from the cavity of needle {other.name!r} "
            f"(gap is {gap:.6g} m)",
            field="tip",
        )


def _ellipse_root(r0: float, z0: float, z1: float, g: float) -> float:
    """Bisection root of Eberly's ellipse-distance function (see `distance_to_ellipse`)."""
    n0 = r0 * z0
    s0, s1 = z1 - 1.0, (0.0 if g < 0.0 else math.hypot(n0, z1) - 1.0)
    for _ in range(200):
        s = 0.5 * (s0 + s1)
        if s in (s0, s1):
            break
        g = (n0 / (s + r0)) ** 2 + (z1 / (s + 1.0)) ** 2 - 1.0
        if g > 0.0:
            s0 = s
        elif g < 0.0:
            s1 = s
        else:
            break
    return s


def distance_to_ellipse(u: float, v: float, a: float, b: float) -> float:
    """Distance (m) from the point (u, v) to the ellipse (x/a)^2 + (y/b)^2 = 1.

    D. Eberly, "Distance from a point to an ellipse, an ellipsoid, or a hyperellipsoid"
    (Geometric Tools, 2013): robust bisection, exact to round-off, inside or outside.
    """
    e0, e1, y0, y1 = a, b, abs(u), abs(v)
    if e0 < e1:
        e0, e1, y0, y1 = e1, e0, y1, y0
    if y1 > 0.0:
        if y0 == 0.0:
            return abs(y1 - e1)
        z0, z1 = y0 / e0, y1 / e1
        g = z0 * z0 + z1 * z1 - 1.0
        if g == 0.0:
            return 0.0
        r0 = (e0 / e1) ** 2
        s = _ellipse_root(r0, z0, z1, g)
        return math.hypot(r0 * y0 / (s + r0) - y0, y1 / (s + 1.0) - y1)
    numer, denom = e0 * y0, e0 * e0 - e1 * e1
    if numer < denom:
        ratio = numer / denom
        return math.hypot(e0 * ratio - y0, e1 * math.sqrt(1.0 - ratio * ratio))
    return abs(y0 - e0)


def largest_source_size(inner_radius: float) -> float:
    """The largest element size (m) around a needle that injects as a source: half its inner
    radius (m), so that the inflow is spread over several control volumes."""
    return inner_radius / 2


def validate_sizes(h_tip: float, h_max: float, growth: float, h_outlet: float) -> None:
    """Check the mesh-size parameters (m, growth dimensionless)."""
    require(h_tip > 0.0, "h_tip", h_tip, "> 0 m")
    require(h_max >= h_tip, "h_max", h_max, f">= h_tip = {h_tip} m")
    require(growth > 0.0, "growth", growth, "> 0")
    require(0.0 < h_outlet <= h_max, "h_outlet", h_outlet, f"in (0, h_max = {h_max}] m")
