"""Idealised sacrum (S1-S3) for sacroplasty runs, built with gmsh (OpenCASCADE).

What it represents
------------------
The upper three sacral segments with their lateral masses, the S1 and S2 neural foramina,
the sacral canal, the auricular (sacroiliac) surfaces and the L5-S1 disc on the S1 endplate:
the bone a sacroplasty needle enters and the routes by which cement leaves it. It is made of
a few ruled lofts with analytic cross-sections, so that an inside test
(:func:`sacrum_contains`) exists without gmsh:

- **bodies** S1, S2, S3: a stack of lofts between elliptic sections (semi-axes ``a``
  antero-posterior, ``b`` lateral) at the endplate, the S1/S2 and S2/S3 junctions and the
  S3 caudal end;
- **posterior arch**: a loft of ellipses around the canal behind the bodies (laminae and
  median crest), from the alar top to the S3 end; it overlaps the back of the bodies and
  stands 3.5 mm proud of the dorsal face of the alae;
- **wing** (the lateral masses): a loft across the whole width, from the alar top (0.2 x the
  S1 height below the endplate) to the S3 end, with pentagonal sections: a straight ventral
  edge, flat lateral edges (the auricular surfaces, over ``auricular_height`` from the alar
  top) and a dorsal edge that rises anteriorly from the midline to the lateral edge, where
  the wing is 0.65 x as deep as at the midline;
- **holes**: the sacral canal (a loft of ellipses through the arch, open at both ends) and,
  per side, an S1 and an S2 foramen channel: a straight cone along the sacral
  antero-posterior axis through the lateral mass at the S1/S2 (resp. S2/S3) junction, of
  radius ``anterior_foramen_radii`` at the ventral face and ``posterior_foramen_radii`` at
  the dorsal face;
- **disc**: an elliptic cylinder of ``disc_height`` on the S1 endplate (the same ellipse).

All solids are fragmented together in one OCC operation (cutting the overlaps first made it
five times slower); each piece then goes to one region by precedence: holes are removed,
then lesions (tumours, then alar voids, in the order given) > fracture slabs > body > arch >
wing, and lesion or slab parts outside the bone are dropped. The faces of overlapping solids
therefore also remain inside a region as internal faces.

Frame and units
---------------
SI units (metres; ``tilt`` in degrees). Origin at the centre of the S1 upper endplate, +x
anterior, +y to the patient's left (right-handed), +z cranial, axes as in
``shared/data/anatomy``. The
sacrum is built in a *sacral frame* (u, y, w): the endplate is the plane w = 0 with the
bodies below it, u anterior, w cranial along the long axis. It is then rotated about the
y axis by ``tilt``: global x = u cos t + w sin t, z = -u sin t + w cos t, so the endplate
faces anteriorly-cranially at ``tilt`` from the horizontal (the sacral slope) and the sacrum
runs caudally and posteriorly from it. The sacral kyphosis is not modelled: the stack is
straight.

Physical groups (each gmsh entity is in exactly one group of its dimension)
---------------------------------------------------------------------------
Volumes (dim 3; tags :data:`VOLUME_GROUPS`, lesions from :data:`FIRST_LESION_TAG` on):

- ``body_s1``, ``body_s2``, ``body_s3``: the vertebral bodies;
- ``posterior_arch``: laminae and crest around the canal, S1-S3 (one region);
- ``ala_left``, ``ala_right``: each side's lateral mass outside bodies and arch, from the
  alar top to the S3 end: the S1 and S2 alae, which the S1 and S2 foramina pierce near their
  medial border, and below them the small lateral mass of S3;
- ``disc_l5s1``: the L5-S1 disc (cement that enters it counts as leaked);
- with their features: ``fracture_left``, ``fracture_right`` (alar fracture slabs) and one
  region per tumour and per alar void, named by the caller.

Surfaces (dim 2; tags :data:`SURFACE_GROUPS`, needles from :data:`FIRST_NEEDLE_TAG` on), each
a distinct leak route or wall:

- ``foramen_s{1,2}_{anterior,posterior}_{left,right}``: the wall of a foramen channel, split
  at mid-depth of the lateral mass: the anterior half leads to the anterior (pelvic) foramen,
  the posterior half to the posterior (dorsal) foramen;
- ``sacral_canal``: the wall of the canal (epidural leak);
- ``si_joint_left``, ``si_joint_right``: the auricular surfaces (sacroiliac joint leak);
- ``disc_top``: the cranial face of the disc (against L5); ``disc_rim``: its periphery. The
  endplate under the disc is an internal interface and in no group;
- ``anterior_surface``: the ventral (pelvic) cortex (presacral leak): outer faces whose
  outward normal has a sacral-anterior component > 0.5, and the anterolateral faces of the
  bodies in front of the ventral face of the alae;
- ``posterior_surface``: the dorsal cortex, sacral-posterior component > 0.5 (this includes
  the 6 mm of the S1 body's posterior wall above the arch, which faces the lumbar canal);
- ``caudal_section``: the plane where the model ends below S3 (the sacrum goes on to S4-S5:
  a wall or an outlet at the caller's choice);
- ``sacrum_surface``: every other outer face: the superior surfaces of the alae and the
  arch (outward normal > 0.7 cranial along the sacral axis), the lateral faces of the wing
  below the auricular surfaces;
- one group per needle, named after it: the surface of its tip cavity.

Default dimensions and sources
------------------------------
Sources give means (+- SD); "abstract" means only the abstract or a table could be read.
Numbers without a source are design choices and say so.

- ``tilt`` 40 deg: sacral slope, mean +- 2 SD 24-55 deg in 709 asymptomatic adults
  (Mac-Thiong JM, Roussouly P, Berthonnaud E, Guigui P 2011, Eur Spine J 20 Suppl 5:572-577,
  doi:10.1007/s00586-011-1923-2; abstract).
- ``endplate_width`` 47 mm, ``endplate_depth`` 30 mm: S1 body transverse width 47.0 +- 5.0
  mm, antero-posterior 28.3 +- 3.5 mm, 32 dry sacra ("Morphometric analysis and clinical
  significance of the os sacrum", J Med Palliat Care (JOMPAC); abstract, authors not on the
  page read); female S1 body width 40.3 +- 7.0 mm (Mahato NK 2018, Oman Med J 33(1):22-28,
  table 2).
- body at the junctions: the transverse ridges between the anterior foramina are 36.7 mm
  (S1/S2) and 29.8 mm (S2/S3) long (JOMPAC abstract); the body's half-width there is the
  anterior foramen's medial edge minus 1.8 mm of bone (design choice): 16.4 and 12.7 mm, and
  0.95 x 12.7 mm at the S3 end. Depth 0.9/0.8/0.7 x the endplate's (design choice).
- ``segment_heights`` 30, 24, 20 mm: S1-S3 take about 3/4 of the sacral length, 98.0 +- 9.2
  mm (Mahato 2018) or 103.3 +- 10.0 mm (JOMPAC); the split is a design choice.
- ``sacral_width`` 106 mm across the auricular surfaces at the alar top: maximum sacral
  width 108.4 +- 6.1 mm (JOMPAC); interauricular distance 108.7 +- 11.0 mm (Mahato 2018). It
  narrows to 0.96, 0.8 and 0.7 x that at the S1/S2 junction, the lower end of the auricular
  surface and the S3 end (design choice, after the outline of the reference specimen).
- ``auricular_height`` 56 mm: 56.2 +- 4.6 mm (Mahato 2018).
- foramina: anterior S1 12.97 x 12.23 mm, S2 12.85 x 13.13 mm; posterior S1 10.36 x 7.66
  mm, S2 7.05 x 7.30 mm (height x width; Saluja S, Agarwal S, Tuli A, Raheja S, Tigga SR,
  Paul S 2018, J Clin Diagn Res 12(6):AC01-AC06, 108 dry sacra; abstract), hence
  ``anterior_foramen_radii`` 6.3, 6.5 mm and ``posterior_foramen_radii`` 4.25 mm (S1 dorsal
  foramen width 8.5 +- 1.6 mm on CT of 632 patients: Kim YS, Park S, Lee C, Lee SK, Doo AR,
  Son JS 2023, Korean J Pain 36(1):98-105, doi:10.3344/kjp.22227) and 3.6 mm.
  ``foramen_offsets`` (channel axes from the midsagittal plane): S1 24.5 mm, between the
  dorsal S1 foramen centre at 23.5 +- 2.8 mm (Kim 2023) and the anterior one at the ridge
  half-length plus its radius, 24.7 mm; S2 21.0 mm, between the anterior S2 foramen at
  14.9 + 6.5 mm and the dorsal ones, 29.8 +- 2.7 mm apart ("Bony landmarks in the sacral
  region: the posterior superior iliac spine and the second dorsal sacral foramina", Surg
  Radiol Anat 2010, doi:10.1007/s00276-010-0735-0; abstract, authors not on the page read).
- canal ``canal_width`` 24 mm x ``canal_depth`` 12 mm at S1, narrowing to 0.6 x at S3, with
  2 mm of bone to the body, 7 mm of lamina behind and 5 mm of arch beside it: design
  choices (no measurement found).
- alae: the wing is 30 mm deep (antero-posterior) at the alar top at the midline, 20 mm at
  its lateral face, tapering to 20 and 13 mm at the S3 end (design choices; the reference
  specimen's ala is 19-29 mm deep at 42 mm from the midline). The S1 body stands 6 mm above
  the alar top (design choice; on lateral radiographs the anterior S1 body rises 11 mm above
  the ala: "Location of the sacral pedicle, foramina, and ala on the lateral aspect of the
  sacrum: a radiographic study", Orthopedics 1998; abstract).
- ``disc_height`` 10 mm: design choice (the reference specimen has 8.3 mm between the L5
  and S1 bodies on the S1 axis).
- needle paths (:func:`needle_path`): ``short_axis`` perpendicular to the dorsal alar surface
  into the ala at S1 or S2, the classic posterior approach ("a perpendicular approach, often
  with multiple needle placements at various levels in the sacral ala"), and ``long_axis``
  from the dorsal surface of the lower lateral mass, between the sacroiliac joint and the
  foramina, cranially along the ala (entry "at the midpoint between the inferior margin of
  the sacroiliac joint and the lateral margin of the S3 neural foramen", cannula "directed
  toward the mid portion of the S1 vertebral body on the lateral projection"): Smith DK,
  Gilula LA 2006, "A previously unreported and novel approach to sacroplasty", ASSR
  scientific paper (abstract).

Overall size (default shape): 86 x 106 x 81 mm (x, y, z), 158 cm^3 of bone and an 11 cm^3
disc. The reference specimen (``shared/data/anatomy/lumbar_L1-L5_S1_artisynth``, a whole
male sacrum S1-S5 from Remus R et al. 2021, PLoS ONE 16(4):e0250456; 110 x 125 x 159 mm,
245 cm^3) holds 201 cm^3 within 74 mm of its S1 endplate plane (our S1-S3 length); scaled by
width ((106/125)^3) that is 123 cm^3, so this idealised S1-S3 is about 25 % too bulky,
mostly in the alae and the arch.

Meshing
-------
:func:`add_sacrum` builds geometry, groups and a background size field but does not mesh.
The caller does, and should run the Netgen optimiser::

    gmsh.model.mesh.generate(3)
    gmsh.model.mesh.optimize("Netgen")

Element size: ``h_tip`` at the needle cavities, growing by ``growth`` per unit distance to
``h_max``; ``h_outlet`` within 3 ``h_outlet`` of each foramen channel (over its whole length)
and of the S1 endplate under the disc (MathEval distances, as in ``vertebral_body``); at
most thickness/2 inside each fracture slab. Measured with the defaults (h_tip 0.4 mm, h_max
4 mm, growth 0.3, h_outlet 1.5 mm) on a 2-core machine: no needle 92 000 tetrahedra, min
SICN 0.24 after Netgen (build 2 s, generate 2 s, Netgen 7 s); two 11 G short-axis S1 needles
100 000, 0.24; both default 1.5 mm fracture slabs 198 000, 0.27 (generate 5 s, Netgen 11 s);
eight random single-needle tips 94 000-96 000, min SICN 0.243-0.268; seven shape variants
(tilt 20 and 60 deg, smaller endplate, narrower sacrum, taller segments, thinner disc,
larger canal; h_max 5 mm) 0.14-0.22. With h_outlet 1 mm the default mesh has 178 000.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gmsh
import numpy as np
from mpi4py import MPI

from sim.geometry.gmsh_tools import (
    add_physical_groups,
    fixed,
    math_field,
    point_distance,
    threshold_field,
    use_smallest_size,
)
from sim.geometry.primitives import (
    NeedleTip,
    distance_to_ellipse,
    finite_point,
    needle_specs,
    parse_needle,
    require,
    require_cavities_apart,
    side_sign,
    validate_sizes,
)
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh

if TYPE_CHECKING:
    from sim.scenario.geometry import SacrumGeometry
    from sim.scenario.injection import Needle

__all__ = [
    "APPROACHES",
    "DEFAULTS",
    "FIRST_LESION_TAG",
    "FIRST_NEEDLE_TAG",
    "LEVELS",
    "SIDES",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "add_sacrum",
    "boundary_names",
    "checked_shape",
    "mesh_sacrum",
    "needle_path",
    "parse_fractures",
    "parse_lesions",
    "parse_needles",
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
_BASE_REGIONS = (
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

#: default shape parameters (lengths in m, tilt in degrees); sources in the module docstring
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

# --- fixed proportions (design choices, see the module docstring) ---------------------------
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
_CHANNEL_EXTENSION = 5e-3  # foramen cones reach this far beyond the alar faces
_MIN_GAP = 1e-3  # smallest bone bridge between holes and region interfaces we accept

_FRACTURE_THICKNESS = 1.5e-3
_OUTLET_SIZE_REACH = 3.0  # h_outlet up to this many h_outlet from an outlet
_SHORT_AXIS_MAX_ANGLE = 30.0  # degrees from the sacral antero-posterior axis
_LONG_AXIS_MAX_ANGLE = 35.0  # degrees from the sacral long axis
_ENTRY_DEPTH_TOLERANCE = 1e-3  # an entry point may lie at most this deep inside the bone


# --- analytic primitives (sacral frame: u anterior, y lateral, w cranial) -------------------


@dataclass(frozen=True)
class _Ellipse:
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

    def with_params(self, w: float, p: np.ndarray) -> _Ellipse:
        return _Ellipse(w, float(p[0]), float(p[1]), float(p[2]))

    def boundary_speed(self, other: _Ellipse) -> float:
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
class _Shape:
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
) -> _Shape:
    """Validate the shape parameters and derive the sections (see the module docstring)."""
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
        _Ellipse(w, 0.0, a0 * t, b)
        for w, t, b in zip(levels, _BODY_DEPTH_TAPER, half_widths, strict=True)
    )
    bodies = tuple(_Loft(f"body_s{k + 1}", body_secs[k : k + 2]) for k in range(3))

    canal_w = (_CANAL_OVERHANG, levels[1], levels[2], levels[3] - _CANAL_OVERHANG)
    cu0, cy0 = 0.5 * canal_depth, 0.5 * canal_width
    canal_secs = []
    for w, t in zip(canal_w, _CANAL_TAPER, strict=True):
        a_body = a0 * float(np.interp(-w, [-lv for lv in levels], _BODY_DEPTH_TAPER))
        canal_secs.append(_Ellipse(w, -(a_body + _CANAL_WALL + cu0 * t), cu0 * t, cy0 * t))
    canal = _Loft("sacral_canal", tuple(canal_secs))

    ala_top = levels[0] - _ALA_TOP * h1
    arch_w = (ala_top, levels[1], levels[2], levels[3])
    arch_secs = []
    for w in arch_w:
        c = canal.section(w)
        arch_secs.append(_Ellipse(w, c.uc, c.a + _LAMINA, c.b + _ARCH_SIDE))
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
    disc = _Loft("disc_l5s1", (_Ellipse(disc_height, 0.0, a0, b0), _Ellipse(0.0, 0.0, a0, b0)))
    shape = _Shape(
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


def _check_consistency(shape: _Shape, foramen_offsets: object) -> None:
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
class _Ellipsoid:
    """A lesion: axis-aligned (global x, y, z) ellipsoid."""

    name: str
    kind: str  # "tumour" or "void"
    centre: np.ndarray  # global
    radii: np.ndarray

    def sd(self, p_global: np.ndarray) -> float:
        """Signed distance to the ellipsoid surface, > 0 inside."""
        return _ellipsoid_sd(np.asarray(p_global, float) - self.centre, self.radii)


@dataclass(frozen=True)
class _Slab:
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


def parse_lesions(
    tumours: Sequence | None, voids: Sequence | None, shape: _Shape
) -> list[_Ellipsoid]:
    """Check the tumour and alar-void ellipsoids (names, sizes, inside the bone, clear of the
    foramina, canal and disc); ValueError naming the bad one."""
    lesions: list[_Ellipsoid] = []
    reserved = set(VOLUME_GROUPS) | set(SURFACE_GROUPS)
    for kind, entries, what in (("tumour", tumours, "tumours"), ("void", voids, "alar_voids")):
        for entry in entries or ():
            require(
                isinstance(entry, Sequence) and len(entry) == 3,
                what,
                entry,
                "(name, centre, radii) entries",
            )
            name, centre, radii = entry
            require(
                isinstance(name, str) and name != "" and name not in reserved,
                f"{what} name",
                name,
                f"a non-empty string other than {sorted(reserved)}",
            )
            require(name not in {les.name for les in lesions}, f"{what} name", name, "unique")
            c = finite_point(centre, f"centre of {kind} {name!r}")
            r = np.asarray(radii, dtype=float)
            require(
                r.shape == (3,) and bool(np.all(r > 0.0)),
                f"radii of {kind} {name!r}",
                radii,
                "3 lengths > 0 m (along x, y, z)",
            )
            require(
                shape.bone_sd(shape.to_local(c)) > 0.0,
                f"centre of {kind} {name!r}",
                tuple(c.tolist()),
                f"inside the bone (it is {shape.locate(shape.to_local(c))})",
            )
            lesions.append(_Ellipsoid(name, kind, c, r))
    return lesions


def parse_fractures(entries: Sequence | None, shape: _Shape) -> list[_Slab]:
    """Check the vertical alar fracture lines (side, offset between the foramina and the
    sacroiliac joint, thickness, length); ValueError naming the bad one."""
    slabs = []
    for entry in entries or ():
        require(
            isinstance(entry, Sequence) and 2 <= len(entry) <= 4,
            "fracture_lines",
            entry,
            "(side, offset[, thickness[, length]]) entries",
        )
        side, offset = entry[0], float(entry[1])
        thickness = float(entry[2]) if len(entry) > 2 else _FRACTURE_THICKNESS
        length = float(entry[3]) if len(entry) > 3 else -shape.levels[2]
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
        slabs.append(_Slab(side, sign * offset, thickness, w_low, shape.levels[0] + 5e-3))
    return slabs


def parse_needles(
    needles: Sequence, shape: _Shape, lesions: list[_Ellipsoid], slabs: list[_Slab], h_tip: float
) -> list[NeedleTip]:
    """Validate the needles (tips, cavities, entry paths) and return them."""
    reserved = set(VOLUME_GROUPS) | set(SURFACE_GROUPS) | {les.name for les in lesions}
    parsed: list[NeedleTip] = []
    for item in needles:
        name, centre, radius, entry = parse_needle(item, reserved, parsed)
        local = shape.to_local(centre)
        clearance = shape.bone_sd(local)
        if clearance - radius < h_tip:
            where = shape.locate(local)
            detail = (
                f"it is {where}"
                if where != "inside the bone"
                else f"its cavity comes within {clearance - radius:.6g} m of the bone boundary"
            )
            raise ValueError(
                f"tip of needle {name!r} = {tuple(centre.tolist())!r} is out of range: must lie "
                f"in bone (bodies, arch or alae; not in a foramen, the canal or the disc) with "
                f"its cavity (radius {radius} m) at least h_tip = {h_tip} m from the boundary; "
                f"{detail}"
            )
        _check_interfaces(name, centre, radius, shape, lesions, slabs, h_tip)
        require_cavities_apart(name, centre, radius, parsed, h_tip)
        start = None
        if entry is not None:
            start = finite_point(entry, f"entry of needle {name!r}")
            _check_path(name, start, centre, shape)
        parsed.append(NeedleTip(name, centre, radius, start))
    return parsed


def _check_interfaces(
    name: str,
    centre: np.ndarray,
    radius: float,
    shape: _Shape,
    lesions: list[_Ellipsoid],
    slabs: list[_Slab],
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
        )


def _approach(entry: np.ndarray, tip: np.ndarray, shape: _Shape) -> str | None:
    """'short_axis', 'long_axis' or None from the direction entry -> tip (global)."""
    d = shape.to_local(tip) - shape.to_local(entry)
    d = d / np.linalg.norm(d)
    if math.degrees(math.acos(float(np.clip(d[0], -1.0, 1.0)))) <= _SHORT_AXIS_MAX_ANGLE:
        return "short_axis"
    if math.degrees(math.acos(float(np.clip(d[2], -1.0, 1.0)))) <= _LONG_AXIS_MAX_ANGLE:
        return "long_axis"
    return None


def _check_path(name: str, entry: np.ndarray, tip: np.ndarray, shape: _Shape) -> None:
    """The entry must be a short- or long-axis approach entering through the dorsal face."""
    what = f"entry of needle {name!r}"
    value = tuple(entry.tolist())
    length = float(np.linalg.norm(tip - entry))
    require(length >= 2e-3, what, value, "at least 2 mm from the tip")
    kind = _approach(entry, tip, shape)
    require(
        kind is not None,
        what,
        value,
        f"a short_axis approach (within {_SHORT_AXIS_MAX_ANGLE} deg of the sacral "
        f"antero-posterior axis, from behind) or a long_axis approach (within "
        f"{_LONG_AXIS_MAX_ANGLE} deg of the sacral long axis, from caudal)",
    )
    depth = shape.bone_sd(shape.to_local(entry))
    require(
        depth <= _ENTRY_DEPTH_TOLERANCE,
        what,
        value,
        f"on or outside the bone surface (it lies {depth:.6g} m deep)",
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
    )
    skip = math.ceil(1e-3 / (length / n))  # the first mm: surface approximations
    for p, ok in zip(points[first + skip :], inside[first + skip :], strict=True):
        if not ok:
            raise ValueError(
                f"{what} = {value!r} is out of range: the {kind} path from it to the tip must "
                f"stay in bone once it has entered, but it passes {shape.locate(p)}"
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
    needles: Sequence = (),
    fracture_lines: Sequence | None = None,
    tumours: Sequence | None = None,
    alar_voids: Sequence | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Names of needles, fracture regions and lesion regions (no validation)."""
    fractures = sorted({f"fracture_{e[0]}" for e in fracture_lines or ()})
    lesions = [e[0] for e in (tumours or ())] + [e[0] for e in (alar_voids or ())]
    return [n[0] for n in needles], fractures, lesions


def boundary_names(**features: Any) -> set[str]:
    """Names of the surface groups :func:`add_sacrum` creates with these keyword arguments."""
    needles, _, _ = _feature_names(**{k: v for k, v in features.items() if k in _FEATURES})
    return set(SURFACE_GROUPS) | set(needles)


def region_names(**features: Any) -> set[str]:
    """Names of the volume groups :func:`add_sacrum` creates with these keyword arguments."""
    _, fractures, lesions = _feature_names(**{k: v for k, v in features.items() if k in _FEATURES})
    return set(_BASE_REGIONS) | set(fractures) | set(lesions)


_FEATURES = ("needles", "fracture_lines", "tumours", "alar_voids")


# --- gmsh geometry ---------------------------------------------------------------------------


def _ellipse_wire(sec: _Ellipse, seams_on_axes: bool = False) -> int:
    """Closed wire of four quarter arcs in the plane w.

    The arcs are centred on +u, +y, -u, -y (vertices on the diagonals), or with
    ``seams_on_axes`` have their vertices on the axes.
    """
    occ = gmsh.model.occ
    centre = occ.addPoint(sec.uc, 0.0, sec.w)
    start = 0.0 if seams_on_axes else -0.25 * math.pi
    angles = [start + 0.5 * math.pi * k for k in range(4)]
    pts = [occ.addPoint(sec.uc + math.cos(t), math.sin(t), sec.w) for t in angles]
    arcs = [occ.addCircleArc(pts[k], centre, pts[(k + 1) % 4]) for k in range(4)]
    occ.dilate([(1, a) for a in arcs], sec.uc, 0.0, sec.w, sec.a, sec.b, 1.0)
    occ.remove([(0, centre)])
    return occ.addWire(arcs)


def _polygon_wire(vertices: np.ndarray, w: float) -> int:
    """Closed wire of straight edges through the (u, y) vertices in the plane w."""
    occ = gmsh.model.occ
    pts = [occ.addPoint(float(u), float(y), w) for u, y in vertices]
    n = len(pts)
    return occ.addWire([occ.addLine(pts[k], pts[(k + 1) % n]) for k in range(n)])


def _loft_volume(wires: list[int]) -> int:
    out = gmsh.model.occ.addThruSections(wires, makeSolid=True, makeRuled=True)
    return next(tag for dim, tag in out if dim == 3)


def _add_lofts(shape: _Shape) -> dict[str, list[int]]:
    """All sacral-frame solids (not yet rotated): name -> volume tags."""
    occ = gmsh.model.occ
    body_wires = [_ellipse_wire(s) for s in shape.body_stack.sections]
    solids: dict[str, list[int]] = {
        f"body_s{k + 1}": [_loft_volume(body_wires[k : k + 2])] for k in range(3)
    }
    # the arch's vertices on its axes: on the diagonals they would lie near the dorsal face
    # of the wing (sliver faces)
    solids["arch"] = [_loft_volume([_ellipse_wire(s, True) for s in shape.arch.sections])]
    solids["wing"] = [_loft_volume([_polygon_wire(s.vertices(), s.w) for s in shape.wing.sections])]
    solids["sacral_canal"] = [_loft_volume([_ellipse_wire(s) for s in shape.canal.sections])]
    solids["disc"] = [_loft_volume([_ellipse_wire(s) for s in shape.disc.sections])]
    for c in shape.channels:
        for part, end in (
            ("anterior", c.front + _CHANNEL_EXTENSION),
            ("posterior", c.back - _CHANNEL_EXTENSION),
        ):
            solids[c.group(part)] = [
                occ.addCone(c.mid, c.y, c.w, end - c.mid, 0.0, 0.0, c.radius(c.mid), c.radius(end))
            ]
    return solids


def _add_slab(slab: _Slab, shape: _Shape) -> int:
    """The fracture slab as a box in the sacral frame (not yet rotated)."""
    reach = 2.0 * (shape.wing.sections[0].front - shape.wing.sections[0].back_mid) + 0.1
    return gmsh.model.occ.addBox(
        -reach,
        slab.y_mid - 0.5 * slab.thickness,
        slab.w_low,
        2.0 * reach,
        slab.thickness,
        slab.w_high - slab.w_low,
    )


def _add_ellipsoid(les: _Ellipsoid) -> int:
    occ = gmsh.model.occ
    tag = occ.addSphere(*les.centre, 1.0)
    occ.dilate([(3, tag)], *les.centre, *les.radii)
    return tag


# --- fragment, classification, groups --------------------------------------------------------


def _assign_regions(
    members: dict[int, list[tuple]], lesions: list[_Ellipsoid]
) -> tuple[dict[int, str], dict[int, str]]:
    """Region of each kept volume and the hole (or "") each deleted volume was part of."""
    order = {les.name: k for k, les in enumerate(lesions)}
    kept: dict[int, str] = {}
    deleted: dict[int, str] = {}
    for v, labels in members.items():
        kinds = {label[0] for label in labels}
        holes = [label[1] for label in labels if label[0] == "hole"]
        bone = [label for label in labels if label[0] in ("body", "arch", "wing")]
        if holes:
            deleted[v] = holes[0]
        elif "disc" in kinds:
            if bone:
                raise RuntimeError("sacrum: the disc overlaps the bone")
            kept[v] = "disc_l5s1"
        elif not bone:
            deleted[v] = ""
        elif "lesion" in kinds:
            kept[v] = min((lb[1] for lb in labels if lb[0] == "lesion"), key=order.__getitem__)
        elif "fracture" in kinds:
            kept[v] = next(lb[1] for lb in labels if lb[0] == "fracture")
        else:
            bone_kinds = {lb[0]: lb for lb in bone}
            if "body" in bone_kinds:
                kept[v] = bone_kinds["body"][1]
            elif "arch" in bone_kinds:
                kept[v] = "posterior_arch"
            else:
                kept[v] = "wing"  # side decided from its centre of mass
    return kept, deleted


def _face_point(face: int) -> tuple[np.ndarray, np.ndarray]:
    """A point inside the (trimmed) face near its centre of mass, and its parameters."""
    com = np.asarray(gmsh.model.occ.getCenterOfMass(2, face))
    lo, hi = gmsh.model.getParametrizationBounds(2, face)
    s = np.linspace(0.02, 0.98, 15)
    uv = np.array(
        [[lo[0] + a * (hi[0] - lo[0]), lo[1] + b * (hi[1] - lo[1])] for a in s for b in s]
    )
    xyz = np.asarray(gmsh.model.getValue(2, face, uv.ravel())).reshape(-1, 3)
    order = np.argsort(np.linalg.norm(xyz - com, axis=1))
    for k in order:
        if gmsh.model.isInside(2, face, uv[k], parametric=True):
            return xyz[k], uv[k]
    point, param = gmsh.model.getClosestPoint(2, face, com)  # pragma: no cover
    return np.asarray(point), np.asarray(param)  # pragma: no cover


def _outward_normal(face: int, shape: _Shape) -> tuple[np.ndarray, np.ndarray]:
    """A point on the face and the outward (from the bone) unit normal there, sacral frame."""
    p, param = _face_point(face)
    n = np.asarray(gmsh.model.getNormal(face, param), dtype=float)
    eps = 1e-4
    n_local, p_local = shape.to_local(n), shape.to_local(p)
    if shape.bone_sd(p_local + eps * n_local) > shape.bone_sd(p_local - eps * n_local):
        n_local = -n_local
    return p_local, n_local / np.linalg.norm(n_local)


def _classify_outer(face: int, shape: _Shape) -> str:
    """Group of an outer bone face (not a hole wall, not the disc)."""
    p, n = _outward_normal(face, shape)
    scale = shape.wing.sections[0].half
    planar = gmsh.model.getType(2, face) == "Plane"
    if planar and abs(p[2] - shape.bottom) < 1e-6 * scale and n[2] < -0.99:
        return "caudal_section"
    si_half = min(s.half for s in shape.wing.sections[:3])
    if abs(n[1]) > 0.9 and abs(p[1]) > si_half - 1e-6 and p[2] > shape.si_bottom:
        return "si_joint_left" if side_sign("left") * p[1] > 0.0 else "si_joint_right"
    if n[2] > 0.7:
        return "sacrum_surface"  # superior faces: alar top, arch top
    in_front = p[0] > shape.wing.section(float(p[2])).front + 1e-6 and n[0] > -0.1
    if n[0] > 0.5 or in_front:
        return "anterior_surface"  # ventral cortex and the bodies in front of the alae
    if n[0] < -0.5:
        return "posterior_surface"
    return "sacrum_surface"


def _classify_surfaces(
    kept: dict[int, str], deleted: dict[int, str], shape: _Shape, needle_names: set[str]
) -> dict[str, list[int]]:
    """Surface groups from the faces bounding exactly one kept volume."""
    groups: dict[str, list[int]] = {name: [] for name in SURFACE_GROUPS}
    groups.update({name: [] for name in needle_names})
    for _, face in gmsh.model.getEntities(2):
        up, _ = gmsh.model.getAdjacencies(2, face)
        near = [int(v) for v in up if int(v) in kept]
        if len(near) != 1:
            continue
        holes = [deleted[int(v)] for v in up if deleted.get(int(v))]
        if kept[near[0]] == "disc_l5s1":
            p, _n = _outward_normal(face, shape)
            top = abs(p[2] - shape.disc.top) < 1e-6 and gmsh.model.getType(2, face) == "Plane"
            name = "disc_top" if top else "disc_rim"
        elif holes:
            name = holes[0]
        else:
            name = _classify_outer(face, shape)
        groups[name].append(face)
    return groups


def _add_groups(
    kept: dict[int, str],
    surfaces: dict[str, list[int]],
    lesions: list[_Ellipsoid],
    slabs: list[_Slab],
    needles: list[NeedleTip],
) -> None:
    """Named physical groups; ValueError or RuntimeError if one would be empty."""
    regions: dict[str, list[int]] = {}
    for v, name in sorted(kept.items()):
        if name == "wing":
            y = gmsh.model.occ.getCenterOfMass(3, v)[1]
            if abs(y) < 1e-4:
                raise RuntimeError("sacrum: a piece of the alae crosses the midline")
            name = "ala_left" if side_sign("left") * y > 0.0 else "ala_right"
        regions.setdefault(name, []).append(v)
    tag_of = dict(VOLUME_GROUPS)
    tag_of.update({les.name: FIRST_LESION_TAG + k for k, les in enumerate(lesions)})
    expected = [*_BASE_REGIONS, *(les.name for les in lesions), *(s.region for s in slabs)]
    missing = [name for name in expected if name not in regions]
    if missing:
        raise ValueError(
            f"sacrum: regions {missing} came out empty (a lesion or fracture entirely in a "
            "hole, the disc or outside the bone?)"
        )
    add_physical_groups(3, regions, tag_of)
    empty = [name for name, tags in surfaces.items() if not tags]
    if empty:
        raise RuntimeError(f"sacrum: no surface found for groups {empty}")
    tag_of = dict(SURFACE_GROUPS)
    tag_of.update({n.name: FIRST_NEEDLE_TAG + k for k, n in enumerate(needles)})
    add_physical_groups(2, surfaces, tag_of)


# --- mesh size -------------------------------------------------------------------------------


def _segment_distance(a: np.ndarray, b: np.ndarray) -> str:
    """Distance from (x, y, z) to the segment a-b (global)."""
    length = float(np.linalg.norm(b - a))
    d = (b - a) / length
    rel = [f"(x-{fixed(a[0])})", f"(y-{fixed(a[1])})", f"(z-{fixed(a[2])})"]
    t = "+".join(f"{r}*{fixed(c)}" for r, c in zip(rel, d, strict=True))
    sq = "+".join(f"{r}^2" for r in rel)
    along = f"Max(Max(-({t}),0),({t})-{fixed(length)})"
    return f"Sqrt(Max({sq}-({t})^2,0)+({along})^2)"


def _local_coords(shape: _Shape) -> tuple[str, str]:
    """MathEval expressions of the sacral-frame u and w of (x, y, z)."""
    c, s = fixed(math.cos(shape.tilt)), fixed(math.sin(shape.tilt))
    return f"(x*{c}-z*{s})", f"(x*{s}+z*{c})"


def _add_size_field(
    shape: _Shape,
    needles: list[NeedleTip],
    slabs: list[_Slab],
    *,
    h_tip: float,
    h_max: float,
    growth: float,
    h_outlet: float,
) -> None:
    fields = [
        threshold_field(math_field(point_distance(n.centre)), h_tip, n.radius, h_max, growth)
        for n in needles
    ]
    reach = _OUTLET_SIZE_REACH * h_outlet
    for c in shape.channels:
        a = shape.to_global(np.array([c.back, c.y, c.w]))
        b = shape.to_global(np.array([c.front, c.y, c.w]))
        r = max(c.r_front, c.r_back)
        fields.append(
            threshold_field(math_field(_segment_distance(a, b)), h_outlet, r + reach, h_max, growth)
        )
    u, w = _local_coords(shape)
    e = shape.disc.sections[-1]
    radial = f"Max(Sqrt(({u}/{fixed(e.a)})^2+(y/{fixed(e.b)})^2)-1,0)*{fixed(min(e.a, e.b))}"
    endplate = f"Sqrt(({w})^2+({radial})^2)"
    fields.append(threshold_field(math_field(endplate), h_outlet, reach, h_max, growth))
    for s in slabs:
        h = min(0.5 * s.thickness, h_max)
        dy = f"Max(Abs(y-{fixed(s.y_mid)})-{fixed(0.5 * s.thickness)},0)"
        dw = f"(Max({w}-{fixed(s.w_high)},0)+Max({fixed(s.w_low)}-{w},0))"
        fields.append(threshold_field(math_field(f"Sqrt({dy}^2+{dw}^2)"), h, 0.0, h_max, growth))
    use_smallest_size(fields, h_max)


# --- public builder --------------------------------------------------------------------------


def add_sacrum(
    *,
    needles: Sequence = (),
    fracture_lines: Sequence | None = None,
    tumours: Sequence | None = None,
    alar_voids: Sequence | None = None,
    h_tip: float = 0.4e-3,
    h_max: float = 4e-3,
    growth: float = 0.3,
    h_outlet: float = 1.5e-3,
    **params: Any,
) -> None:
    """Build the sacrum into the current gmsh model (gmsh initialised, model added).

    Adds the OpenCASCADE geometry (synchronised), the named physical groups listed in the
    module docstring and a background mesh-size field, and sets the gmsh options
    Mesh.MeshSizeFromPoints, MeshSizeFromCurvature, MeshSizeExtendFromBoundary to 0 and
    Mesh.MeshSizeMax to ``h_max``. Does not mesh; the caller runs
    ``gmsh.model.mesh.generate(3)`` then ``gmsh.model.mesh.optimize("Netgen")``.

    Shape parameters (``params``; lengths in m, defaults and sources in :data:`DEFAULTS` and
    the module docstring): ``tilt`` (degrees from horizontal of the S1 endplate),
    ``endplate_width``, ``endplate_depth``, ``segment_heights`` (S1, S2, S3 along the long
    axis), ``sacral_width`` (between the auricular surfaces at the alar top),
    ``auricular_height``, ``disc_height``, ``foramen_offsets`` (S1, S2 channel axes from the
    midsagittal plane), ``anterior_foramen_radii`` and ``posterior_foramen_radii`` (S1, S2),
    ``canal_width`` and ``canal_depth`` (at S1).

    Features:

    needles:
        ``(name, tip, radius[, entry])`` per needle (global m): a spherical cavity of
        ``radius`` at ``tip`` whose surface is the group ``name``. The cavity must lie in
        bone (not in a foramen, the canal or the disc) at least ``h_tip`` from its boundary
        and from other cavities, and either cross each internal surface (of the bodies, arch
        and wing, whose faces also run inside other regions, of lesions and fracture slabs)
        or stay ``h_tip/2`` clear of it. With ``entry`` (where the
        needle enters the bone, or a point outside on the same line) the path must be a
        ``short_axis`` approach (within 30 deg of the sacral antero-posterior axis) or a
        ``long_axis`` one (within 35 deg of the sacral long axis, from caudal), enter through
        the dorsal half of the sacrum and stay in bone from there to the tip.
    fracture_lines:
        ``(side, offset[, thickness[, length]])``: a vertical alar fracture, a slab
        ``|y| in offset +- thickness/2`` (parallel to the auricular surfaces; thickness 1.5 mm
        by default) from above the ala down to ``length`` below the endplate plane along the
        long axis (default: the S2/S3 junction), region ``fracture_<side>``. It must lie
        between the foramina and the auricular surface.
    tumours, alar_voids:
        ``(name, centre, radii)``: an ellipsoid with semi-axes ``radii`` along global x, y,
        z (m), region ``name``; its centre must lie in bone. Only its part in bone counts.
    h_tip, h_max, growth, h_outlet:
        Element sizes (m): ``h_tip`` at the cavities, growing by ``growth`` with distance to
        ``h_max``; ``h_outlet`` up to 3 ``h_outlet`` from the foramen channels and the S1
        endplate; at most thickness/2 inside fracture slabs.

    Raises ValueError naming the parameter, its value and the allowed range for bad input.
    """
    shape = checked_shape(**params)
    validate_sizes(h_tip, h_max, growth, h_outlet)
    lesions = parse_lesions(tumours, alar_voids, shape)
    slabs = parse_fractures(fracture_lines, shape)
    parsed = parse_needles(needles, shape, lesions, slabs, h_tip)

    occ = gmsh.model.occ
    solids = _add_lofts(shape)
    slab_tags = [(_add_slab(s, shape), s) for s in slabs]
    local = [(3, t) for tags in solids.values() for t in tags] + [(3, t) for t, _ in slab_tags]
    occ.rotate(local, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, shape.tilt)
    # one fragment of everything (cutting first to remove the internal faces of the overlaps
    # made the fragment five times slower); precedence is decided per piece afterwards
    inputs: list[tuple[tuple, tuple[int, int]]] = []
    inputs += [(("body", f"body_s{k + 1}"), (3, solids[f"body_s{k + 1}"][0])) for k in range(3)]
    inputs += [(("arch",), (3, solids["arch"][0])), (("wing",), (3, solids["wing"][0]))]
    holes = [
        "sacral_canal",
        *(c.group(p) for c in shape.channels for p in ("anterior", "posterior")),
    ]
    inputs += [(("hole", name), (3, solids[name][0])) for name in holes]
    inputs += [(("disc",), (3, solids["disc"][0]))]
    inputs += [(("hole", n.name), (3, occ.addSphere(*n.centre, n.radius))) for n in parsed]
    inputs += [(("lesion", les.name), (3, _add_ellipsoid(les))) for les in lesions]
    inputs += [(("fracture", s.region), (3, t)) for t, s in slab_tags]
    _, mapping = occ.fragment([dt for _, dt in inputs], [])
    occ.synchronize()
    members: dict[int, list[tuple]] = {}
    for (label, _), outputs in zip(inputs, mapping, strict=True):
        for dim, tag in outputs:
            if dim == 3:
                members.setdefault(tag, []).append(label)
    kept, deleted = _assign_regions(members, lesions)
    surfaces = _classify_surfaces(kept, deleted, shape, {n.name for n in parsed})
    occ.remove([(3, v) for v in sorted(deleted)], recursive=True)
    occ.synchronize()
    _add_groups(kept, surfaces, lesions, slabs, parsed)
    _add_size_field(
        shape, parsed, slabs, h_tip=h_tip, h_max=h_max, growth=growth, h_outlet=h_outlet
    )


def mesh_sacrum(
    geometry: SacrumGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
) -> TaggedMesh:
    """The builder of the ``sacrum`` kind: :func:`add_sacrum` meshed by gmsh on rank 0 and
    distributed; written to `msh_path` when given."""
    build = partial(add_sacrum, needles=needle_specs(needles), **geometry.builder_kwargs())
    return mesh_from_gmsh(build, comm, name, msh_path)
