"""Idealised sacrum (S1-S3) for sacroplasty runs, built with gmsh (OpenCASCADE).

What it represents
------------------
The upper three sacral segments with their lateral masses, the S1 and S2 neural foramina,
the sacral canal, the auricular (sacroiliac) surfaces and the L5-S1 disc on the S1 endplate:
the bone a sacroplasty needle enters and the routes by which cement leaves it. It is made of
a few ruled lofts with analytic cross-sections, so that an inside test
(:func:`sim.shapes.sacrum.sacrum_contains`) exists without gmsh:

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
Volumes (dim 3; tags :data:`~sim.shapes.sacrum.VOLUME_GROUPS`, lesions from
:data:`~sim.shapes.sacrum.FIRST_LESION_TAG` on):

- ``body_s1``, ``body_s2``, ``body_s3``: the vertebral bodies;
- ``posterior_arch``: laminae and crest around the canal, S1-S3 (one region);
- ``ala_left``, ``ala_right``: each side's lateral mass outside bodies and arch, from the
  alar top to the S3 end: the S1 and S2 alae, which the S1 and S2 foramina pierce near their
  medial border, and below them the small lateral mass of S3;
- ``disc_l5s1``: the L5-S1 disc (cement that enters it counts as leaked);
- with their features: ``fracture_left``, ``fracture_right`` (alar fracture slabs) and one
  region per tumour and per alar void, named by the caller.

Surfaces (dim 2; tags :data:`~sim.shapes.sacrum.SURFACE_GROUPS`, needles from
:data:`~sim.shapes.sacrum.FIRST_NEEDLE_TAG` on), each a distinct leak route or wall:

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
- needle paths (:func:`sim.shapes.sacrum.needle_path`): ``short_axis`` perpendicular to the
  dorsal alar surface into the ala at S1 or S2, the classic posterior approach ("a
  perpendicular approach, often with multiple needle placements at various levels in the
  sacral ala"), and ``long_axis`` from the dorsal surface of the lower lateral mass, between
  the sacroiliac joint and the foramina, cranially along the ala (entry "at the midpoint
  between the inferior margin of the sacroiliac joint and the lateral margin of the S3 neural
  foramen", cannula "directed toward the mid portion of the S1 vertebral body on the lateral
  projection"): Smith DK, Gilula LA 2006, "A previously unreported and novel approach to
  sacroplasty", ASSR scientific paper (abstract).

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

import math
from collections.abc import Sequence
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
from sim.geometry.partition import InjectionSites
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh
from sim.shapes.primitives import NeedleTip, needle_tips, side_sign, validate_sizes
from sim.shapes.sacrum import (
    BASE_REGIONS,
    FIRST_LESION_TAG,
    FIRST_NEEDLE_TAG,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    Ellipse,
    Ellipsoid,
    FractureLine,
    Shape,
    Slab,
    checked_fractures,
    checked_lesions,
    checked_needles,
    checked_shape,
)

if TYPE_CHECKING:
    from sim.scenario.geometry import SacrumGeometry
    from sim.scenario.injection import Needle

__all__ = ["add_sacrum", "mesh_sacrum"]

_CHANNEL_EXTENSION = 5e-3  # foramen cones reach this far beyond the alar faces
_OUTLET_SIZE_REACH = 3.0  # h_outlet up to this many h_outlet from an outlet


# --- gmsh geometry ---------------------------------------------------------------------------


def _ellipse_wire(sec: Ellipse, seams_on_axes: bool = False) -> int:
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


def _add_lofts(shape: Shape) -> dict[str, list[int]]:
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


def _add_slab(slab: Slab, shape: Shape) -> int:
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


def _add_ellipsoid(les: Ellipsoid) -> int:
    occ = gmsh.model.occ
    tag = occ.addSphere(*les.centre, 1.0)
    occ.dilate([(3, tag)], *les.centre, *les.radii)
    return tag


# --- fragment, classification, groups --------------------------------------------------------


def _assign_regions(
    members: dict[int, list[tuple]], lesions: list[Ellipsoid]
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


def _outward_normal(face: int, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """A point on the face and the outward (from the bone) unit normal there, sacral frame."""
    p, param = _face_point(face)
    n = np.asarray(gmsh.model.getNormal(face, param), dtype=float)
    eps = 1e-4
    n_local, p_local = shape.to_local(n), shape.to_local(p)
    if shape.bone_sd(p_local + eps * n_local) > shape.bone_sd(p_local - eps * n_local):
        n_local = -n_local
    return p_local, n_local / np.linalg.norm(n_local)


def _classify_outer(face: int, shape: Shape) -> str:
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
    kept: dict[int, str], deleted: dict[int, str], shape: Shape, needle_names: set[str]
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
    lesions: list[Ellipsoid],
    slabs: list[Slab],
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
    expected = [*BASE_REGIONS, *(les.name for les in lesions), *(s.region for s in slabs)]
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


def _local_coords(shape: Shape) -> tuple[str, str]:
    """MathEval expressions of the sacral-frame u and w of (x, y, z)."""
    c, s = fixed(math.cos(shape.tilt)), fixed(math.sin(shape.tilt))
    return f"(x*{c}-z*{s})", f"(x*{s}+z*{c})"


def _add_size_field(
    shape: Shape,
    needles: list[NeedleTip],
    slabs: list[Slab],
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
    needles: Sequence[NeedleTip] = (),
    fracture_lines: Sequence[FractureLine] = (),
    tumours: Sequence[Ellipsoid] = (),
    alar_voids: Sequence[Ellipsoid] = (),
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

    Shape parameters (``params``; lengths in m, defaults and sources in
    :data:`sim.shapes.sacrum.DEFAULTS` and the module docstring): ``tilt`` (degrees from
    horizontal of the S1 endplate), ``endplate_width``, ``endplate_depth``,
    ``segment_heights`` (S1, S2, S3 along the long axis), ``sacral_width`` (between the
    auricular surfaces at the alar top),
    ``auricular_height``, ``disc_height``, ``foramen_offsets`` (S1, S2 channel axes from the
    midsagittal plane), ``anterior_foramen_radii`` and ``posterior_foramen_radii`` (S1, S2),
    ``canal_width`` and ``canal_depth`` (at S1).

    Features:

    needles:
        A :class:`~sim.shapes.primitives.NeedleTip` per needle (global m): a spherical
        cavity of its ``radius`` at its ``centre`` whose surface is the group named after
        the needle. The cavity must lie in bone (not in a foramen, the canal or the disc) at
        least ``h_tip`` from its boundary and from other cavities, and either cross each
        internal surface (of the bodies, arch and wing, whose faces also run inside other
        regions, of lesions and fracture slabs) or stay ``h_tip/2`` clear of it. With an
        ``entry`` (where the needle enters the bone, or a point outside on the same line)
        the path must be a ``short_axis`` approach (within 30 deg of the sacral
        antero-posterior axis) or a ``long_axis`` one (within 35 deg of the sacral long axis,
        from caudal), enter through the dorsal half of the sacrum and stay in bone from there
        to the tip.
    fracture_lines:
        A :class:`~sim.shapes.sacrum.FractureLine` (side, offset, thickness, length) per
        vertical alar fracture: a slab ``|y| in offset +- thickness/2`` (parallel to the
        auricular surfaces; thickness 1.5 mm by default) from above the ala down to
        ``length`` below the endplate plane along the long axis (default: the S2/S3
        junction), region ``fracture_<side>``. It must lie between the foramina and the
        auricular surface.
    tumours, alar_voids:
        An :class:`~sim.shapes.sacrum.Ellipsoid` (name, centre, radii) per lesion: semi-axes
        ``radii`` along global x, y, z (m), region ``name``; its centre must lie in bone.
        Only its part in bone counts.
    h_tip, h_max, growth, h_outlet:
        Element sizes (m): ``h_tip`` at the cavities, growing by ``growth`` with distance to
        ``h_max``; ``h_outlet`` up to 3 ``h_outlet`` from the foramen channels and the S1
        endplate; at most thickness/2 inside fracture slabs.

    Raises ValueError naming the parameter, its value and the allowed range for bad input.
    """
    shape = checked_shape(**params)
    validate_sizes(h_tip, h_max, growth, h_outlet)
    lesions = checked_lesions(tumours, alar_voids, shape)
    slabs = checked_fractures(fracture_lines, shape)
    parsed = checked_needles(needles, shape, lesions, slabs, h_tip)

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
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``sacrum`` kind: :func:`add_sacrum` meshed by gmsh on rank 0 and
    distributed; written to `msh_path` when given."""
    build = partial(add_sacrum, needles=needle_tips(needles), **geometry.builder_kwargs())
    return mesh_from_gmsh(build, comm, name, msh_path, sites)
