"""Analytic shape of the idealised sacrum S1-S3 (no gmsh, no DOLFINx): its tag names, default
dimensions, the inside test, the checks of its shape, features and needles, and the standard
needle paths. The gmsh builder (sim.geometry.sacrum, whose docstring describes the sacrum, its
frame and groups and gives the sources of the defaults) builds from them; the scenario schema
validates with them. SI units (m; tilt in degrees).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.shapes.primitives import (
    NeedleTip,
    ShapeError,
    checked_needle,
    distance_to_ellipse,
    finite_point,
    require,
    require_cavities_apart,
    side_sign,
)

__all__ = [
    "APPROACHES",
    "BASE_REGIONS",
    "DEFAULTS",
    "FIRST_LESION_TAG",
    "FIRST_NEEDLE_TAG",
    "LEVELS",
    "SIDES",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "Ellipse",
    "Ellipsoid",
    "FractureLine",
    "Shape",
    "Slab",
    "boundary_names",
    "checked_fractures",
    "checked_lesions",
    "checked_needles",
    "checked_shape",
    "needle_path",
    "region_names",
    "sacrum_contains",
]

#: physical tag of each fixed volume group (dim 3); fracture regions exist only with slabs
VOLUME_GROUPS: dict[str, int] = {
    "body_s1": 1,
    "body_s2": 2,
    "body_s3": 3,
    "posterior_arch": 4,
    "ala_left": 5,
    "ala_right": 6,
    "disc_l5s1": 7,
    "fracture_left": 8,
    "fracture_right": 9,
}
BASE_REGIONS = (
    "body_s1",
    "body_s2",
    "body_s3",
    "posterior_arch",
    "ala_left",
    "ala_right",
    "disc_l5s1",
)
#: physical tag of each fixed surface group (dim 2)
SURFACE_GROUPS: dict[str, int] = {
    "foramen_s1_anterior_left": 11,
    "foramen_s1_posterior_left": 12,
    "foramen_s1_anterior_right": 13,
    "foramen_s1_posterior_right": 14,
    "foramen_s2_anterior_left": 15,
    "foramen_s2_posterior_left": 16,
    "foramen_s2_anterior_right": 17,
    "foramen_s2_posterior_right": 18,
    "sacral_canal": 19,
    "si_joint_left": 20,
    "si_joint_right": 21,
    "disc_top": 22,
    "disc_rim": 23,
    "anterior_surface": 24,
    "posterior_surface": 25,
    "sacrum_surface": 26,
    "caudal_section": 27,
}
#: physical tag of the first lesion region (tumours, then alar voids, in the order given)
FIRST_LESION_TAG = 31
#: physical tag of the first needle's cavity surface; the next needles count up from it
FIRST_NEEDLE_TAG = 101

APPROACHES = ("short_axis", "long_axis")
SIDES = ("left", "right")
LEVELS = ("S1", "S2")

#: default shape parameters (lengths in m, tilt in degrees); sources in sim.geometry.sacrum
DEFAULTS: dict[str, Any] = {
    "tilt": 40.0,
    "endplate_width": 47e-3,
    "endplate_depth": 30e-3,
    "segment_heights": (30e-3, 24e-3, 20e-3),
    "sacral_width": 106e-3,
    "auricular_height": 56e-3,
    "disc_height": 10e-3,
    "foramen_offsets": (24.5e-3, 21.0e-3),
    "anterior_foramen_radii": (6.3e-3, 6.5e-3),
    "posterior_foramen_radii": (4.25e-3, 3.6e-3),
    "canal_width": 24e-3,
    "canal_depth": 12e-3,
}

# --- fixed proportions (design choices, see the docstring of sim.geometry.sacrum) ---------
_BODY_DEPTH_TAPER = (1.0, 0.9, 0.8, 0.7)  # body AP semi-axis / endplate semi-axis at w0..w3
_BODY_BRIDGE = 1.8e-3  # bone between body and anterior foramen at the junction
_BODY_BOTTOM_WIDTH = 0.95  # S3 caudal half-width / S2-S3 half-width
_CANAL_TAPER = (1.0, 0.85, 0.7, 0.6)  # canal semi-axes at its 4 sections / at S1
_CANAL_WALL = 2e-3  # bone between body and canal
_CANAL_OVERHANG = 3e-3  # the canal loft reaches this far beyond the arch top and S3 end
_LAMINA = 7e-3  # arch behind the canal
_ARCH_SIDE = 5e-3  # arch beside the canal
_CREST = 3.5e-3  # arch protrudes this far behind the dorsal face of the wing
_ALA_TOP = 0.2  # alar top below the endplate, as a fraction of the S1 height
_ALA_WIDTH_TAPER = (1.0, 0.96, 0.8, 0.7)  # wing half-width / sacral_width/2
_ALA_LATERAL_DEPTH = 0.65  # AP depth of the wing at its lateral face / at the midline
_ALA_FRONT = (-0.1, -0.1, -0.2, -0.2)  # wing front u / endplate AP semi-axis
_MIN_GAP = 1e-3  # smallest bone bridge between holes and region interfaces we accept

_FRACTURE_THICKNESS = 1.5e-3
_SHORT_AXIS_MAX_ANGLE = 30.0  # degrees from the sacral antero-posterior axis
_LONG_AXIS_MAX_ANGLE = 35.0  # degrees from the sacral long axis
_ENTRY_DEPTH_TOLERANCE = 1e-3  # an entry point may lie at most this deep inside the bone


# --- analytic primitives (sacral frame: u anterior, y lateral, w cranial) -------------------


@dataclass(frozen=True)
class Ellipse:
    """Section ((u - uc)/a)^2 + (y/b)^2 <= 1 of a loft in the plane w."""

    w: float
    uc: float
    a: float
    b: float

    def sd(self, u: float, y: float) -> float:
        """Signed in-plane distance to the ellipse: > 0 inside."""
        d = distance_to_ellipse(u - self.uc, y, self.a, self.b)
        return d if ((u - self.uc) / self.a) ** 2 + (y / self.b) ** 2 <= 1.0 else -d

    def params(self) -> np.ndarray:
        return np.array([self.uc, self.a, self.b])

    def with_params(self, w: float, p: np.ndarray) -> Ellipse:
        return Ellipse(w, float(p[0]), float(p[1]), float(p[2]))

    def bounds(self) -> tuple[float, float, float]:
        """(smallest u, largest u, largest |y|) of the section (m)."""
        return (self.uc - self.a, self.uc + self.a, self.b)

    def boundary_speed(self, other: Ellipse) -> float:
        """Upper bound of how far the boundary moves between this and ``other`` (m)."""
        return abs(other.uc - self.uc) + max(abs(other.a - self.a), abs(other.b - self.b))


@dataclass(frozen=True)
class _Pentagon:
    """Wing section: front u = ``front`` for |y| <= ``half``; the back rises from ``back_mid``
    at y = 0 to ``back_lat`` at |y| = ``half`` (the dorsal face slopes anteriorly laterally)."""

    w: float
    front: float
    back_mid: float
    back_lat: float
    half: float

    def vertices(self) -> np.ndarray:
        """Counterclockwise about +w: front -y, front +y, back +y, back midline, back -y."""
        f, h = self.front, self.half
        return np.array(
            [[f, -h], [f, h], [self.back_lat, h], [self.back_mid, 0.0], [self.back_lat, -h]]
        )

    def back(self, y: float) -> float:
        """u of the dorsal face at lateral position y."""
        return self.back_mid + (self.back_lat - self.back_mid) * min(abs(y), self.half) / self.half

    def sd(self, u: float, y: float) -> float:
        """Signed in-plane distance to the (convex) pentagon: > 0 inside (exact)."""
        v = self.vertices()
        p = np.array([u, y])
        e = np.roll(v, -1, axis=0) - v
        rel = p - v
        inside = bool(np.all(e[:, 0] * rel[:, 1] - e[:, 1] * rel[:, 0] >= 0.0))
        t = np.clip(np.einsum("ij,ij->i", rel, e) / np.einsum("ij,ij->i", e, e), 0.0, 1.0)
        d = float(np.min(np.linalg.norm(rel - t[:, None] * e, axis=1)))
        return d if inside else -d

    def params(self) -> np.ndarray:
        return np.array([self.front, self.back_mid, self.back_lat, self.half])

    def with_params(self, w: float, p: np.ndarray) -> _Pentagon:
        return _Pentagon(w, float(p[0]), float(p[1]), float(p[2]), float(p[3]))

    def bounds(self) -> tuple[float, float, float]:
        """(smallest u, largest u, largest |y|) of the section (m)."""
        u = (self.front, self.back_mid, self.back_lat)
        return (min(u), max(u), self.half)

    def boundary_speed(self, other: _Pentagon) -> float:
        return float(np.max(np.linalg.norm(other.vertices() - self.vertices(), axis=1)))


@dataclass(frozen=True)
class _Loft:
    """Ruled loft through sections at decreasing w (top first); sections interpolate."""

    name: str
    sections: tuple

    @property
    def top(self) -> float:
        return self.sections[0].w

    @property
    def bottom(self) -> float:
        return self.sections[-1].w

    def section(self, w: float):
        """The (interpolated) section at w, clamped to the loft's range."""
        secs = self.sections
        if w >= secs[0].w:
            return secs[0]
        for upper, lower in itertools.pairwise(secs):
            if w >= lower.w:
                t = (upper.w - w) / (upper.w - lower.w)
                return upper.with_params(w, (1 - t) * upper.params() + t * lower.params())
        return secs[-1]

    def _cos_slope(self, w: float) -> float:
        """cos of the largest slope of the lateral surface in the span containing w."""
        secs = self.sections
        for upper, lower in itertools.pairwise(secs):
            if w >= lower.w or lower is secs[-1]:
                tan = upper.boundary_speed(lower) / (upper.w - lower.w)
                return 1.0 / math.sqrt(1.0 + tan * tan)
        return 1.0  # pragma: no cover

    def sd(self, p: np.ndarray) -> float:
        """Signed distance to the loft's boundary, > 0 inside.

        Inside, a lower bound of the clearance (exact up to the slope of the lateral
        surface, a few degrees here); outside, minus a lower bound of the distance.
        """
        u, y, w = (float(c) for c in p)
        if w > self.top or w < self.bottom:
            # above or below: the lateral surface leans out by at most tan(alpha) per unit w
            cap = self.sections[0] if w > self.top else self.sections[-1]
            dw, lateral = max(w - self.top, self.bottom - w), -cap.sd(u, y)
            if lateral <= 0.0:
                return -dw
            cos = self._cos_slope(cap.w)
            sin = math.sqrt(1.0 - cos * cos)
            if lateral * sin >= dw * cos:
                return -(lateral * cos + dw * sin)
            return -math.hypot(dw, lateral)
        d2 = self.section(w).sd(u, y) * self._cos_slope(w)
        return min(d2, self.top - w, w - self.bottom) if d2 >= 0.0 else d2


@dataclass(frozen=True)
class _Channel:
    """A foramen channel: a cone along u through (y, w) between the alar faces."""

    level: int  # 1 or 2
    side: str  # "left" or "right"
    y: float
    w: float
    back: float  # u of the dorsal alar face at the channel
    front: float  # u of the ventral alar face
    r_back: float
    r_front: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.back + self.front)

    @property
    def slope(self) -> float:
        return (self.r_front - self.r_back) / (self.front - self.back)

    def radius(self, u: float) -> float:
        return self.r_back + self.slope * (u - self.back)

    def sd(self, p: np.ndarray) -> float:
        """Signed distance to the (infinite) cone surface, > 0 inside the hole."""
        u, y, w = (float(c) for c in p)
        rho = math.hypot(y - self.y, w - self.w)
        return (self.radius(u) - rho) / math.sqrt(1.0 + self.slope**2)

    def group(self, part: str) -> str:
        return f"foramen_s{self.level}_{part}_{self.side}"

    @property
    def label(self) -> str:
        return f"the S{self.level} {self.side} foramen"


@dataclass(frozen=True)
class Shape:
    """The derived geometry of the sacrum in the sacral frame (m)."""

    tilt: float  # radians
    levels: tuple[float, float, float, float]  # w of the endplate, S1/S2, S2/S3, S3 end
    ala_top: float
    si_bottom: float
    bodies: tuple[_Loft, _Loft, _Loft]
    body_stack: _Loft
    arch: _Loft
    wing: _Loft
    canal: _Loft
    channels: tuple[_Channel, ...]
    disc: _Loft

    @property
    def rotation(self) -> np.ndarray:
        """Matrix taking sacral-frame (u, y, w) to global (x, y, z) coordinates."""
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def to_local(self, p: np.ndarray) -> np.ndarray:
        return self.rotation.T @ np.asarray(p, dtype=float)

    def to_global(self, p: np.ndarray) -> np.ndarray:
        return self.rotation @ np.asarray(p, dtype=float)

    def bone_sd(self, p: np.ndarray) -> float:
        """Lower bound of the clearance of local point p in the bone (> 0 inside)."""
        solid = max(self.body_stack.sd(p), self.arch.sd(p), self.wing.sd(p))
        holes = [self.canal.sd(p)] + [c.sd(p) for c in self.channels]
        return min(solid, *(-h for h in holes))

    def locate(self, p: np.ndarray) -> str:
        """Where a local point that is not well inside the bone is (for messages)."""
        if self.disc.sd(p) > 0.0:
            return "in the L5-S1 disc"
        if self.canal.sd(p) > 0.0 and self.bottom <= p[2] <= self.levels[0]:
            return "in the sacral canal"
        for c in self.channels:
            if c.sd(p) > 0.0 and c.back <= p[0] <= c.front:
                return f"in {c.label}"
        if self.bone_sd(p) < 0.0:
            return "outside the bone"
        return "inside the bone"

    @property
    def bottom(self) -> float:
        return self.levels[3]

    def half_width(self, w: float) -> float:
        """Half-width of the wing (lateral faces) at w."""
        return self.wing.section(w).half

    def extents(self) -> tuple[float, float, float]:
        """Sides (m) of the box along u, y, w around the bone and the disc. The lofts
        interpolate their sections linearly, so the sections hold the extremes."""
        lofts = (self.body_stack, self.arch, self.wing, self.disc)
        b = np.array([(*s.bounds(), s.w) for loft in lofts for s in loft.sections])
        return (
            float(b[:, 1].max() - b[:, 0].min()),
            float(2.0 * b[:, 2].max()),
            float(b[:, 3].max() - b[:, 3].min()),
        )


def _pair(name: str, value: object) -> tuple[float, float]:
    """Two positive lengths (S1, S2)."""
    ok = isinstance(value, Sequence) and len(value) == 2
    require(ok, name, value, "two lengths (S1, S2) in m")
    a, b = (float(v) for v in value)  # type: ignore[union-attr]
    require(a > 0.0 and b > 0.0, name, value, "two lengths > 0 m")
    return a, b


def checked_shape(
    *,
    tilt: float = DEFAULTS["tilt"],
    endplate_width: float = DEFAULTS["endplate_width"],
    endplate_depth: float = DEFAULTS["endplate_depth"],
    segment_heights: Sequence[float] = DEFAULTS["segment_heights"],
    sacral_width: float = DEFAULTS["sacral_width"],
    auricular_height: float = DEFAULTS["auricular_height"],
    disc_height: float = DEFAULTS["disc_height"],
    foramen_offsets: Sequence[float] = DEFAULTS["foramen_offsets"],
    anterior_foramen_radii: Sequence[float] = DEFAULTS["anterior_foramen_radii"],
    posterior_foramen_radii: Sequence[float] = DEFAULTS["posterior_foramen_radii"],
    canal_width: float = DEFAULTS["canal_width"],
    canal_depth: float = DEFAULTS["canal_depth"],
) -> Shape:
    """Validate the shape parameters and derive the sections (see the docstring of
    sim.geometry.sacrum)."""
    require(0.0 <= tilt <= 80.0, "tilt", tilt, "in [0, 80] degrees")
    for name, value in (
        ("endplate_width", endplate_width),
        ("endplate_depth", endplate_depth),
        ("sacral_width", sacral_width),
        ("auricular_height", auricular_height),
        ("disc_height", disc_height),
        ("canal_width", canal_width),
        ("canal_depth", canal_depth),
    ):
        require(value > 0.0, name, value, "> 0 m")
    ok = isinstance(segment_heights, Sequence) and len(segment_heights) == 3
    require(ok, "segment_heights", segment_heights, "three lengths (S1, S2, S3) in m")
    h1, h2, h3 = (float(h) for h in segment_heights)
    require(min(h1, h2, h3) > 0.0, "segment_heights", segment_heights, "three lengths > 0 m")
    y_f = _pair("foramen_offsets", foramen_offsets)
    r_a = _pair("anterior_foramen_radii", anterior_foramen_radii)
    r_p = _pair("posterior_foramen_radii", posterior_foramen_radii)

    levels = (0.0, -h1, -(h1 + h2), -(h1 + h2 + h3))
    a0, b0 = 0.5 * endplate_depth, 0.5 * endplate_width
    b_junction = [y_f[k] - r_a[k] - _BODY_BRIDGE for k in range(2)]
    for k in range(2):
        require(
            b_junction[k] > 0.25 * b0,
            "foramen_offsets",
            foramen_offsets,
            f"larger: the S{k + 1} foramen's medial edge minus {_BODY_BRIDGE} m of bone must "
            "leave a body at least a quarter of the endplate width wide",
        )
    half_widths = (b0, b_junction[0], b_junction[1], _BODY_BOTTOM_WIDTH * b_junction[1])
    body_secs = tuple(
        Ellipse(w, 0.0, a0 * t, b)
        for w, t, b in zip(levels, _BODY_DEPTH_TAPER, half_widths, strict=True)
    )
    bodies = tuple(_Loft(f"body_s{k + 1}", body_secs[k : k + 2]) for k in range(3))

    canal_w = (_CANAL_OVERHANG, levels[1], levels[2], levels[3] - _CANAL_OVERHANG)
    cu0, cy0 = 0.5 * canal_depth, 0.5 * canal_width
    canal_secs = []
    for w, t in zip(canal_w, _CANAL_TAPER, strict=True):
        a_body = a0 * float(np.interp(-w, [-lv for lv in levels], _BODY_DEPTH_TAPER))
        canal_secs.append(Ellipse(w, -(a_body + _CANAL_WALL + cu0 * t), cu0 * t, cy0 * t))
    canal = _Loft("sacral_canal", tuple(canal_secs))

    ala_top = levels[0] - _ALA_TOP * h1
    arch_w = (ala_top, levels[1], levels[2], levels[3])
    arch_secs = []
    for w in arch_w:
        c = canal.section(w)
        arch_secs.append(Ellipse(w, c.uc, c.a + _LAMINA, c.b + _ARCH_SIDE))
    arch = _Loft("posterior_arch", tuple(arch_secs))

    si_bottom = ala_top - auricular_height
    require(
        levels[1] - 2e-3 > si_bottom > levels[3] + 4e-3,
        "auricular_height",
        auricular_height,
        f"such that the auricular surface ends between the S1/S2 junction and 4 mm above the "
        f"S3 end: in ({levels[1] - 2e-3 - ala_top:.6g}, {levels[3] + 4e-3 - ala_top:.6g}) m "
        "below the alar top is needed",
    )
    wing_w = (ala_top, levels[1], si_bottom, levels[3])
    stack = _Loft("bodies", body_secs)
    wing_secs = []
    for w, tw, tf in zip(wing_w, _ALA_WIDTH_TAPER, _ALA_FRONT, strict=True):
        back = arch.section(w).uc - arch.section(w).a + _CREST
        front = tf * a0
        back_lat = front - _ALA_LATERAL_DEPTH * (front - back)
        wing_secs.append(_Pentagon(w, front, back, back_lat, 0.5 * sacral_width * tw))
    wing = _Loft("wing", tuple(wing_secs))

    channels = []
    for k in range(2):
        w = levels[k + 1]
        sec = wing.section(w)
        for side in SIDES:
            back = sec.back(y_f[k])
            channels.append(
                _Channel(k + 1, side, side_sign(side) * y_f[k], w, back, sec.front, r_p[k], r_a[k])
            )
    disc = _Loft("disc_l5s1", (Ellipse(disc_height, 0.0, a0, b0), Ellipse(0.0, 0.0, a0, b0)))
    shape = Shape(
        tilt=math.radians(tilt),
        levels=levels,
        ala_top=ala_top,
        si_bottom=si_bottom,
        bodies=bodies,  # type: ignore[arg-type]
        body_stack=stack,
        arch=arch,
        wing=wing,
        canal=canal,
        channels=tuple(channels),
        disc=disc,
    )
    _check_consistency(shape, foramen_offsets)
    return shape


def _check_consistency(shape: Shape, foramen_offsets: object) -> None:
    """Check the derived solids fit together (ValueError naming the parameter otherwise)."""
    # the wing's midline section must be covered by bodies, arch and canal, so that the
    # two alae are separate
    for w in np.linspace(shape.ala_top, shape.bottom, 25):
        sec = shape.wing.section(w)
        body, arch = shape.body_stack.section(w), shape.arch.section(w)
        ok = (
            sec.front <= body.uc + body.a - _MIN_GAP and sec.back_mid >= arch.uc - arch.a + _MIN_GAP
        )
        require(
            ok,
            "endplate_depth/canal_depth",
            (body.a, arch.a),
            "consistent: the alae must not reach past the bodies in front or past the arch behind",
        )
    for c in shape.channels:
        sec = shape.wing.section(c.w)
        r = max(c.r_front, c.r_back)
        require(
            abs(c.y) + r <= sec.half - 2.0 * _MIN_GAP
            and c.w + r <= shape.ala_top - 2.0 * _MIN_GAP
            and c.w - r >= shape.bottom + 2.0 * _MIN_GAP,
            "foramen_offsets",
            foramen_offsets,
            f"such that {c.label} lies inside the lateral mass (half-width {sec.half:.6g} m at "
            "its level) with 2 mm to spare",
        )
        # bone between the channel and the bodies / arch
        for t in np.linspace(0.0, 1.0, 9):
            u = c.back + t * (c.front - c.back)
            rad = c.radius(u)
            for phi in np.linspace(0.0, 2.0 * math.pi, 24, endpoint=False):
                p = np.array([u, c.y + rad * math.cos(phi), c.w + rad * math.sin(phi)])
                for loft in (*shape.bodies, shape.arch):
                    require(
                        loft.sd(p) <= -_MIN_GAP,
                        "foramen_offsets",
                        foramen_offsets,
                        f"such that {c.label} stays {_MIN_GAP} m clear of the {loft.name} "
                        "(move it laterally or make the foramina smaller)",
                    )
    require(
        shape.channels[0].w - max(shape.channels[0].r_front, shape.channels[0].r_back)
        >= shape.channels[2].w
        + max(shape.channels[2].r_front, shape.channels[2].r_back)
        + 2.0 * _MIN_GAP,
        "segment_heights",
        tuple(-lv for lv in shape.levels[1:]),
        "tall enough to keep 2 mm of bone between the S1 and S2 foramina",
    )


# --- features: needles, lesions, fracture slabs ----------------------------------------------


@dataclass(frozen=True)
class Ellipsoid:
    """A lesion (tumour or alar void), the region ``name``: an axis-aligned ellipsoid with
    its centre (m, global frame) and semi-axes ``radii`` (m) along global x, y, z."""

    name: str
    centre: np.ndarray
    radii: np.ndarray

    def sd(self, p_global: np.ndarray) -> float:
        """Signed distance to the ellipsoid surface, > 0 inside."""
        return _ellipsoid_sd(np.asarray(p_global, float) - self.centre, self.radii)


@dataclass(frozen=True)
class FractureLine:
    """A vertical alar fracture as asked for: on the ``side`` ("left" or "right") ala, a slab
    of ``thickness`` (m) whose mid-plane is ``offset`` (m) from the midsagittal plane, down
    to ``length`` (m) below the endplate plane along the long axis (None: to the S2/S3
    junction)."""

    side: str
    offset: float
    thickness: float = _FRACTURE_THICKNESS
    length: float | None = None


@dataclass(frozen=True)
class Slab:
    """A fracture slab |y - y_mid| <= thickness/2 between w_low and the alar top."""

    side: str
    y_mid: float  # signed
    thickness: float
    w_low: float
    w_high: float

    @property
    def region(self) -> str:
        return f"fracture_{self.side}"

    def sd(self, p_local: np.ndarray) -> float:
        _, y, w = (float(c) for c in p_local)
        dy = 0.5 * self.thickness - abs(y - self.y_mid)
        dw = min(self.w_high - w, w - self.w_low)
        return -math.hypot(dy, dw) if dy < 0.0 and dw < 0.0 else min(dy, dw)


def _ellipsoid_sd(q: np.ndarray, radii: np.ndarray) -> float:
    """Signed distance from q (relative to the centre) to the ellipsoid surface, > 0 inside.

    The closest point is x_i = e_i^2 q_i / (t + e_i^2) with t the root of
    sum (e_i q_i / (t + e_i^2))^2 = 1 on t > -min e_i^2 (Eberly, "Distance from a point to an
    ellipse, an ellipsoid, or a hyperellipsoid"), found by bisection; zero coordinates are
    nudged by 1e-9 of the largest radius, which changes the distance by less than that.
    """
    e = np.asarray(radii, float)
    y = np.abs(np.asarray(q, float))
    y = np.where(y < 1e-9 * e.max(), 1e-9 * e.max(), y)
    inside = float(np.sum((y / e) ** 2)) <= 1.0
    lo, hi = -(float(np.min(e)) ** 2), float(np.linalg.norm(e * y))
    for _ in range(200):
        t = 0.5 * (lo + hi)
        if t in (lo, hi):
            break
        f = float(np.sum((e * y / (t + e * e)) ** 2)) - 1.0
        if f > 0.0:
            lo = t
        else:
            hi = t
    x = e * e * y / (t + e * e)
    d = float(np.linalg.norm(x - y))
    return d if inside else -d


def checked_lesions(
    tumours: Sequence[Ellipsoid], voids: Sequence[Ellipsoid], shape: Shape
) -> list[Ellipsoid]:
    """The tumour and alar-void ellipsoids (centres and radii as floats, m), checked: names,
    sizes, centres inside the bone (not in the foramina, canal or disc); ValueError naming
    the bad one."""
    lesions: list[Ellipsoid] = []
    reserved = set(VOLUME_GROUPS) | set(SURFACE_GROUPS)
    for kind, entries, what in (("tumour", tumours, "tumours"), ("void", voids, "alar_voids")):
        for lesion in entries:
            name = lesion.name
            require(
                isinstance(name, str) and name != "" and name not in reserved,
                f"{what} name",
                name,
                f"a non-empty string other than {sorted(reserved)}",
            )
            require(name not in {les.name for les in lesions}, f"{what} name", name, "unique")
            c = finite_point(lesion.centre, f"centre of {kind} {name!r}")
            r = np.asarray(lesion.radii, dtype=float)
            require(
                r.shape == (3,) and bool(np.all(r > 0.0)),
                f"radii of {kind} {name!r}",
                lesion.radii,
                "3 lengths > 0 m (along x, y, z)",
            )
            require(
                shape.bone_sd(shape.to_local(c)) > 0.0,
                f"centre of {kind} {name!r}",
                tuple(c.tolist()),
                f"inside the bone (it is {shape.locate(shape.to_local(c))})",
            )
            lesions.append(Ellipsoid(name, c, r))
    return lesions


def checked_fractures(lines: Sequence[FractureLine], shape: Shape) -> list[Slab]:
    """The slabs of the vertical alar fracture lines, checked: side, offset between the
    foramina and the sacroiliac joint, thickness, length (m); ValueError naming the bad
    one."""
    slabs = []
    for line in lines:
        side, offset, thickness = line.side, float(line.offset), float(line.thickness)
        length = -shape.levels[2] if line.length is None else float(line.length)
        require(side in SIDES, "fracture side", side, f"one of {SIDES}")
        require(thickness > 0.0, "fracture thickness", thickness, "> 0 m")
        require(
            0.0 < length <= -shape.bottom,
            "fracture length",
            length,
            f"in (0, {-shape.bottom:.6g}] m (below the endplate plane)",
        )
        sign = side_sign(side)
        w_low = -length
        reach = [
            abs(c.y) + max(c.r_front, c.r_back)
            for c in shape.channels
            if c.side == side and c.w + max(c.r_front, c.r_back) >= w_low
        ]
        inner = max(reach, default=0.0)
        lo = inner + 1.5 * _MIN_GAP + 0.5 * thickness
        ws = np.linspace(shape.ala_top, max(w_low, shape.bottom), 20)
        hi = min(shape.half_width(w) for w in ws) - 3e-3 - 0.5 * thickness
        require(
            lo <= offset <= hi,
            "fracture offset",
            offset,
            f"in [{lo:.6g}, {hi:.6g}] m: between the foramina and the sacroiliac joint",
        )
        slabs.append(Slab(side, sign * offset, thickness, w_low, shape.levels[0] + 5e-3))
    return slabs


def checked_needles(
    needles: Sequence[NeedleTip],
    shape: Shape,
    lesions: list[Ellipsoid],
    slabs: list[Slab],
    h_tip: float,
) -> list[NeedleTip]:
    """The needles, checked (tips, cavities, entry paths), with their tips and entry points
    (if given) as 3 floats (m, global frame)."""
    reserved = set(VOLUME_GROUPS) | set(SURFACE_GROUPS) | {les.name for les in lesions}
    checked: list[NeedleTip] = []
    for needle in needles:
        tip = checked_needle(needle, reserved, checked)
        name, centre, radius = tip.name, tip.centre, tip.radius
        local = shape.to_local(centre)
        clearance = shape.bone_sd(local)
        if clearance - radius < h_tip:
            where = shape.locate(local)
            detail = (
                f"it is {where}"
                if where != "inside the bone"
                else f"its cavity comes within {clearance - radius:.6g} m of the bone boundary"
            )
            raise ShapeError(
                f"tip of needle {name!r} = {tuple(centre.tolist())!r} is out of range: must lie "
                f"in bone (bodies, arch or alae; not in a foramen, the canal or the disc) with "
                f"its cavity (radius {radius} m) at least h_tip = {h_tip} m from the boundary; "
                f"{detail}",
                field="tip",
            )
        _check_interfaces(name, centre, radius, shape, lesions, slabs, h_tip)
        require_cavities_apart(name, centre, radius, checked, h_tip)
        start = None
        if tip.entry is not None:
            start = finite_point(tip.entry, f"entry of needle {name!r}", field="entry")
            _check_path(name, start, centre, shape)
        checked.append(NeedleTip(name, centre, radius, start))
    return checked


def _check_interfaces(
    name: str,
    centre: np.ndarray,
    radius: float,
    shape: Shape,
    lesions: list[Ellipsoid],
    slabs: list[Slab],
    h_tip: float,
) -> None:
    """Reject a cavity that nearly touches an internal interface (sliver elements)."""
    local = shape.to_local(centre)
    # bodies, arch and wing overlap and are fragmented together: all their faces exist
    surfaces = [(loft.name, loft.sd(local)) for loft in (*shape.bodies, shape.arch, shape.wing)]
    surfaces += [(les.name, les.sd(centre)) for les in lesions]
    surfaces += [(s.region, s.sd(local)) for s in slabs]
    for what, d in surfaces:
        gap = abs(abs(d) - radius)
        require(
            gap >= 0.5 * h_tip,
            f"tip of needle {name!r}",
            tuple(centre.tolist()),
            f"a cavity either crossing the boundary of {what} or clear of it by at least "
            f"h_tip/2 = {0.5 * h_tip} m (it is {gap:.6g} m from tangency)",
            field="tip",
        )


def _approach(entry: np.ndarray, tip: np.ndarray, shape: Shape) -> str | None:
    """'short_axis', 'long_axis' or None from the direction entry -> tip (global)."""
    d = shape.to_local(tip) - shape.to_local(entry)
    d = d / np.linalg.norm(d)
    if math.degrees(math.acos(float(np.clip(d[0], -1.0, 1.0)))) <= _SHORT_AXIS_MAX_ANGLE:
        return "short_axis"
    if math.degrees(math.acos(float(np.clip(d[2], -1.0, 1.0)))) <= _LONG_AXIS_MAX_ANGLE:
        return "long_axis"
    return None


def _check_path(name: str, entry: np.ndarray, tip: np.ndarray, shape: Shape) -> None:
    """The entry must be a short- or long-axis approach entering through the dorsal face."""
    what = f"entry of needle {name!r}"
    value = tuple(entry.tolist())
    length = float(np.linalg.norm(tip - entry))
    require(length >= 2e-3, what, value, "at least 2 mm from the tip", "entry")
    kind = _approach(entry, tip, shape)
    require(
        kind is not None,
        what,
        value,
        f"a short_axis approach (within {_SHORT_AXIS_MAX_ANGLE} deg of the sacral "
        f"antero-posterior axis, from behind) or a long_axis approach (within "
        f"{_LONG_AXIS_MAX_ANGLE} deg of the sacral long axis, from caudal)",
        "entry",
    )
    depth = shape.bone_sd(shape.to_local(entry))
    require(
        depth <= _ENTRY_DEPTH_TOLERANCE,
        what,
        value,
        f"on or outside the bone surface (it lies {depth:.6g} m deep)",
        "entry",
    )
    n = max(20, math.ceil(length / 0.25e-3))
    points = [shape.to_local(entry + t * (tip - entry)) for t in np.linspace(0.0, 1.0, n + 1)]
    inside = [shape.bone_sd(p) >= 0.0 for p in points]
    first = inside.index(True)
    p = points[first]
    sec = shape.wing.section(float(p[2]))
    require(
        float(p[0]) <= 0.5 * (sec.front + sec.back(float(p[1]))),
        what,
        value,
        f"on the dorsal side: a {kind} needle must enter through the posterior surface",
        "entry",
    )
    skip = math.ceil(1e-3 / (length / n))  # the first mm: surface approximations
    for p, ok in zip(points[first + skip :], inside[first + skip :], strict=True):
        if not ok:
            raise ShapeError(
                f"{what} = {value!r} is out of range: the {kind} path from it to the tip must "
                f"stay in bone once it has entered, but it passes {shape.locate(p)}",
                field="entry",
            )


# --- public analytic helpers -----------------------------------------------------------------


def sacrum_contains(
    point: Sequence[float] | np.ndarray, margin: float = 0.0, **params: Any
) -> bool:
    """True if ``point`` (m, global frame) lies in bone at least ``margin`` (m) from its boundary.

    Bone is the bodies, the posterior arch and the alae; the foramina, the canal and the disc
    are not bone. Analytic (no gmsh); ``params`` are the shape parameters of
    :func:`add_sacrum` (defaults in :data:`DEFAULTS`). The clearance used is a lower bound of
    the true distance to the boundary (exact up to the few-degree slope of the lofted faces,
    and conservative where bodies, arch and alae meet), so a True answer is safe.
    """
    shape = checked_shape(**params)
    p = finite_point(point, "point")
    return shape.bone_sd(shape.to_local(p)) >= margin


def needle_path(
    approach: str, side: str, level: str, **params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """A sensible (entry, tip) pair (m, global frame) for a sacroplasty needle.

    ``approach``: ``"short_axis"`` (entry on the dorsal face of the ala, straight in
    perpendicular to that face: about 11 deg medial of the sacral antero-posterior axis with
    the defaults) or ``"long_axis"`` (entry on the dorsal face of the lower lateral mass below
    the auricular surface, cranially along the ala, 12-23 deg from the sacral long axis with
    the defaults). ``side``: ``"left"``
    or ``"right"``. ``level``: ``"S1"`` or ``"S2"``: the tip lies in the ala at mid-depth,
    between the alar top and the S1 foramen (S1) or between the S1 and S2 foramina (S2), in
    the sagittal plane midway between the foramina and the lateral face. The entry is on the
    bone surface. ``params`` are shape parameters (defaults in :data:`DEFAULTS`).
    """
    require(approach in APPROACHES, "approach", approach, f"one of {APPROACHES}")
    require(side in SIDES, "side", side, f"one of {SIDES}")
    require(level in LEVELS, "level", level, f"one of {LEVELS}")
    shape = checked_shape(**params)
    c1 = next(c for c in shape.channels if c.level == 1 and c.side == side)
    c2 = next(c for c in shape.channels if c.level == 2 and c.side == side)
    if level == "S1":
        w_tip = 0.5 * (shape.ala_top + c1.w + c1.r_front)
    else:
        w_tip = 0.5 * (c1.w - c1.r_front + c2.w + c2.r_front)
    w_entry = w_tip if approach == "short_axis" else 0.5 * (shape.si_bottom + shape.bottom)
    inner = max(abs(c.y) + max(c.r_front, c.r_back) for c in (c1, c2)) + 3e-3
    outer = min(shape.half_width(w) for w in (w_entry, w_tip)) - 4e-3
    y = side_sign(side) * 0.5 * (inner + outer)
    tip_sec = shape.wing.section(w_tip)
    tip = np.array([0.5 * (tip_sec.front + tip_sec.back(y)), y, w_tip])
    if approach == "short_axis":
        # from the tip back along the outward normal of the dorsal face (a plane here) to it
        k = (tip_sec.back_lat - tip_sec.back_mid) / tip_sec.half
        norm = math.hypot(1.0, k)
        normal = np.array([-1.0, math.copysign(k, y), 0.0]) / norm
        entry = tip + (tip[0] - tip_sec.back(y)) / norm * normal
    else:
        entry = np.array([shape.wing.section(w_entry).back(y), y, w_entry])
    return shape.to_global(entry), shape.to_global(tip)


def _feature_names(
    needles: Sequence[NeedleTip] = (),
    fracture_lines: Sequence[FractureLine] = (),
    tumours: Sequence[Ellipsoid] = (),
    alar_voids: Sequence[Ellipsoid] = (),
) -> tuple[list[str], list[str], list[str]]:
    """Names of needles, fracture regions and lesion regions (no validation)."""
    fractures = sorted({f"fracture_{line.side}" for line in fracture_lines})
    lesions = [les.name for les in (*tumours, *alar_voids)]
    return [n.name for n in needles], fractures, lesions


def boundary_names(**features: Any) -> set[str]:
    """Names of the surface groups :func:`add_sacrum` creates with these keyword arguments."""
    needles, _, _ = _feature_names(**{k: v for k, v in features.items() if k in _FEATURES})
    return set(SURFACE_GROUPS) | set(needles)


def region_names(**features: Any) -> set[str]:
    """Names of the volume groups :func:`add_sacrum` creates with these keyword arguments."""
    _, fractures, lesions = _feature_names(**{k: v for k, v in features.items() if k in _FEATURES})
    return set(BASE_REGIONS) | set(fractures) | set(lesions)


_FEATURES = ("needles", "fracture_lines", "tumours", "alar_voids")
