"""Idealised lumbar vertebral body for cement-injection runs, built with gmsh (OpenCASCADE).

What it represents
------------------
The trabecular core of a lumbar vertebral body: an elliptic cylinder whose posterior side is
flattened (the posterior wall that faces the spinal canal), with the two endplates at the top
and bottom. The needle tip is a spherical cavity of the needle's inner radius (the injection
inlet, DESIGN.md §2-3). Small circular patches on the cortex are the leak routes: the
basivertebral foramen in the middle of the posterior wall and one segmental (lateral) vein on
each side. The bone is split into an ``anterior`` region (the anterior ``target_fraction`` of
the antero-posterior extent, the usual target of the fill) and the ``posterior`` rest, next to
the canal.

Frame and units
---------------
SI units (metres) throughout. +x anterior, +y to the patient's left (right-handed), +z
cranial, axes as in ``shared/data/anatomy``. The origin is the centre of the ellipse at mid-height.

- Cross-section: the ellipse ``(x/a)^2 + (y/b)^2 <= 1`` with ``b = width/2`` and
  ``a = depth/(1 + posterior_flat)``, cut by the posterior wall ``x = -posterior_flat*a``
  (keeping larger x). ``depth`` is therefore the AP extent of the final body, from the
  posterior wall to the anterior apex ``x = a``, not the depth of the full ellipse.
- Height: ``-height/2 <= z <= height/2``.
- Split plane between the regions: ``x = a - target_fraction*depth``.

Default dimensions: a mid-lumbar body about 45 mm wide, 35 mm deep and 28 mm high (kept as
they were for backward compatibility). Per-level presets L1-L5
(:func:`sim.shapes.vertebral_body.lumbar_level_dimensions`) come from
``sim/data/anatomy/lumbar_levels.yaml``: width and posterior height from Panjabi MM et al.
1992, "Human lumbar vertebrae: quantitative three-dimensional anatomy", Spine 17:299-306,
Table 2 (read at second hand), depth an estimate; SOURCES.md there says how. The
basivertebral foramen is a few mm across and sits at about mid-height of the posterior wall;
lumbar segmental veins are 1-3 mm in diameter.

Optional features (keyword arguments of :func:`add_vertebral_body`, None by default; the
types are in sim.shapes.vertebral_features)
------------------------------------------------------------------------------------------
- ``cortical_shell``: the region ``cortex``, a shell of that thickness inside the lateral and
  posterior walls, from endplate to endplate (the endplates are their own cortex). Its inner
  boundary is the ellipse with both semi-axes reduced by the thickness, whose distance to
  the outer ellipse is the thickness within 0.4 %. The bone under the outlet patches
  (foramen, veins, posterior defect) is trabecular: the vessels and the breach open through
  the shell. Meshed with h <= thickness (a "Constant" field in the shell).
- ``posterior_defect``: the boundary group ``posterior_defect``, a disk on the posterior wall
  (a breach into the spinal canal), clear of the basivertebral foramen.
- ``endplate_defect``: the boundary group ``endplate_defect``, a disk on one endplate (a breach
  into the disc).
- ``cleft``: the region ``cleft``, a slab (disk of a radius and a thickness) with any normal,
  clipped to the body, meshed with h <= thickness/2.
- ``lesion``: the region ``lesion``, an axis-aligned ellipsoid clipped to the body, meshed
  with a quarter of its smallest semi-axis.
- ``basivertebral_vein``: the region ``basivertebral_vein``, the resolved intraosseous trunk
  of the basivertebral vein: a straight channel of a radius (at most the foramen's) from the
  basivertebral foramen anteriorly into the body, meshed with h <= half its radius. Give it
  the Poiseuille-equivalent permeability r^2/8 and a porosity near 1 under bone.regions and
  make it a `region` leak route: cement that enters the vein has left the bone.
Each bone cell is in exactly one region: lesion, else cleft, else basivertebral_vein, else
cortex, else anterior or posterior. A needle cavity may lie in a cleft or a lesion, not in
the cortex.
:func:`sim.shapes.vertebral_body.boundary_names` and
:func:`~sim.shapes.vertebral_body.region_names` give the group names for a set of features
before anything is built.

Physical groups (names; each gmsh entity is in exactly one group of its dimension)
------------------------------------------------------------------------------------
- volumes (dim 3): ``anterior``, ``posterior``; with their features ``cortex``, ``cleft``,
  ``lesion``;
- surfaces (dim 2): ``endplate_upper``, ``endplate_lower``, ``basivertebral_foramen``,
  ``posterior_wall``, ``segmental_vein_left``, ``segmental_vein_right``, ``lateral_wall``, and
  one group per needle named after the needle (the surface of its cavity); with their
  features ``posterior_defect``, ``endplate_defect`` (cut out of the posterior wall and the
  endplate).

The interfaces between regions are internal and in no surface group. The physical tags are
fixed: see :data:`VOLUME_GROUPS`, :data:`SURFACE_GROUPS`, :data:`OPTIONAL_VOLUME_GROUPS`,
:data:`OPTIONAL_SURFACE_GROUPS` and :data:`FIRST_NEEDLE_TAG` in sim.shapes.vertebral_body.

Meshing
-------
:func:`add_vertebral_body` builds geometry, groups and a background size field but does not
mesh. The caller does, and should run the Netgen optimiser::

    gmsh.model.mesh.generate(3)
    gmsh.model.mesh.optimize("Netgen")

The size field is a "Min" of "Threshold" fields on "MathEval" distances from the cavity
centres and the patch centres ("Distance" fields on OCC spheres gave garbage sizes). Measured
with the defaults (h_tip 0.4 mm, h_max 3 mm, growth 0.3, h_outlet 0.5 mm, one 11 G needle at
(2, -6, 0) mm): about 30 000 tetrahedra, 6 300 nodes, min SICN 0.34 after the Netgen
optimiser (0.30 without). Without it, a cavity that crosses the split plane, or lies near an
endplate, can leave min SICN near 0.01; with it, 25 random one- and two-needle placements
and 7 shape variants all gave min SICN >= 0.22. With the coarse test sizes (h_tip 0.6 mm,
h_max 4 mm) and all five features (1.5 mm shell, 1.5 mm cleft, 7x6x5 mm lesion, two
defects): 85 000 tetrahedra, min SICN 0.27, 6.5 s to build, mesh and optimise. The shell
dominates the cost: its volume is about perimeter x height x thickness and it is meshed at
h = thickness, so the cell count there grows like 1/thickness^2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import gmsh
import numpy as np
from mpi4py import MPI

from sim.geometry.gmsh_tools import (
    add_physical_groups,
    combined_field,
    fixed,
    math_field,
    point_distance,
    threshold_field,
    use_smallest_size,
)
from sim.geometry.partition import InjectionSites
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh
from sim.shapes.primitives import NeedleTip, needle_tips, side_sign
from sim.shapes.vertebral_body import (
    FIRST_NEEDLE_TAG,
    OPTIONAL_SURFACE_GROUPS,
    OPTIONAL_VOLUME_GROUPS,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    Body,
    core_dims,
)
from sim.shapes.vertebral_features import (
    BasivertebralVein,
    Cleft,
    EndplateDefect,
    Features,
    Lesion,
    PosteriorDefect,
    VeinChannel,
    checked_vertebral_body,
)

if TYPE_CHECKING:
    from sim.scenario.geometry import VertebralBodyGeometry
    from sim.scenario.injection import Needle

__all__ = ["add_vertebral_body", "mesh_vertebral_body"]

#: the size is h_outlet up to this many h_outlet beyond the edge of an outlet patch
_OUTLET_SIZE_REACH = 3.0


# --- geometry -------------------------------------------------------------------------------


def _add_body_volume(body: Body) -> tuple[int, int]:
    """Add the cut elliptic cylinder; returns its volume tag and its curved lateral face tag.

    The elliptic arc is a circular arc stretched along x, with the circle's start point (the
    seam of its periodic parametrisation) on the removed posterior side: an OCC ellipse must
    have its seam on the major axis, which here is lateral (where the vein patches sit), and
    gmsh cannot mesh a face with a hole across the seam ("Impossible to mesh periodic
    surface", or overlapping facets).
    """
    occ = gmsh.model.occ
    z0 = -body.half_height
    half_angle = math.acos(-body.x_wall / body.a)  # arc kept: angle >= this from -x
    arc = occ.addCircle(
        0.0, 0.0, z0, body.b,
        angle1=half_angle, angle2=2.0 * math.pi - half_angle,
        zAxis=[0.0, 0.0, 1.0], xAxis=[-1.0, 0.0, 0.0],
    )  # fmt: skip
    occ.dilate([(1, arc)], 0.0, 0.0, z0, body.a / body.b, 1.0, 1.0)
    occ.synchronize()
    (_, start), (_, end) = gmsh.model.getBoundary([(1, arc)], oriented=False)
    wall = occ.addLine(end, start)
    section = occ.addPlaneSurface([occ.addCurveLoop([arc, wall])])
    extruded = occ.extrude([(2, section)], 0.0, 0.0, 2.0 * body.half_height)
    # extrude returns [top, volume, side of curve 1 (arc), side of curve 2 (wall)]
    return extruded[1][1], extruded[2][1]


def _add_vein_patches(
    lateral: int, body: Body, vein_radius: float, vein_x: float
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Cut the two vein patches (left, right) out of copies of the lateral face."""
    occ = gmsh.model.occ
    reach = 2.0 * body.b  # from the mid-plane y = 0 to well outside the wall
    patches = []
    for side in ("left", "right"):
        y = side_sign(side) * reach
        cylinder = occ.addCylinder(vein_x, 0.0, 0.0, 0.0, y, 0.0, vein_radius)
        patch, _ = occ.intersect(occ.copy([(2, lateral)]), [(3, cylinder)])
        patches.append(patch)
    return patches[0], patches[1]


def _add_split_disk(body: Body) -> tuple[int, int]:
    """A planar disk at x = x_split larger than the body (cuts it into two regions)."""
    radius = 2.0 * (body.a + body.b + body.half_height)
    return 2, gmsh.model.occ.addDisk(
        body.x_split, 0.0, 0.0, radius, radius, zAxis=[1.0, 0.0, 0.0], xAxis=[0.0, 1.0, 0.0]
    )


def _add_foramen_disk(body: Body, radius: float, z: float) -> tuple[int, int]:
    """The foramen patch: a disk lying on the posterior wall."""
    return 2, gmsh.model.occ.addDisk(
        body.x_wall, 0.0, z, radius, radius, zAxis=[1.0, 0.0, 0.0], xAxis=[0.0, 1.0, 0.0]
    )


def _cut_cavities(volume: int, needles: list[NeedleTip]) -> list[tuple[int, int]]:
    """Remove the needle-tip spheres from the bone volume."""
    occ = gmsh.model.occ
    spheres = [(3, occ.addSphere(*n.centre, n.radius)) for n in needles]
    result, _ = occ.cut([(3, volume)], spheres)
    return result


def _fragment(
    bone: list[tuple[int, int]], tools: dict[str, list[tuple[int, int]]]
) -> dict[str, set[int]]:
    """Fragment the bone with the named tool faces (conformal result), then synchronise.

    Returns the tags of the pieces each named input became: ``"bone"`` -> volumes, tool name
    -> surfaces.
    """
    inputs = [("bone", dim_tag) for dim_tag in bone]
    inputs += [(name, dim_tag) for name, dim_tags in tools.items() for dim_tag in dim_tags]
    _, mapping = gmsh.model.occ.fragment([dim_tag for _, dim_tag in inputs], [])
    gmsh.model.occ.synchronize()
    pieces: dict[str, set[int]] = {"bone": set(), **{name: set() for name in tools}}
    for (name, (dim, _)), outputs in zip(inputs, mapping, strict=True):
        pieces[name].update(tag for d, tag in outputs if d == dim)
    return pieces


def _remove_free_surfaces(surfaces: set[int]) -> None:
    """Delete those of ``surfaces`` that bound no volume (tool parts outside the bone)."""
    free = [(2, s) for s in sorted(surfaces) if _adjacent_volumes(s) == 0]
    gmsh.model.occ.remove(free, recursive=True)
    gmsh.model.occ.synchronize()


def _boundary_surfaces(volumes: list[int]) -> set[int]:
    """Faces of ``volumes`` that bound exactly one volume (the internal interface excluded)."""
    faces = gmsh.model.getBoundary([(3, v) for v in volumes], combined=False, oriented=False)
    return {tag for _, tag in faces if _adjacent_volumes(tag) == 1}


def _add_core(body: Body, thickness: float) -> int:
    """The trabecular core inside the cortical shell (a smaller cut elliptic cylinder)."""
    volume, _ = _add_body_volume(core_dims(body, thickness))
    return volume


def _add_channels(
    core: int,
    body: Body,
    thickness: float,
    wall_disks: list[tuple[float, float, float]],
    vein_radius: float,
    vein_x: float,
) -> list[tuple[int, int]]:
    """Openings through the cortical shell under the outlet patches (volumes).

    Each is a cylinder normal to its wall from outside the body to the core, minus the core:
    ``wall_disks`` are (y, z, radius) of the posterior-wall patches; the two vein channels run
    along y at x = vein_x, z = 0. Their parts outside the body are removed after the fragment.
    """
    occ = gmsh.model.occ
    cylinders = [
        occ.addCylinder(body.x_wall - thickness, y, z, 3.0 * thickness, 0.0, 0.0, r)
        for y, z, r in wall_disks
    ]
    cylinders += [
        occ.addCylinder(vein_x, 0.0, 0.0, 0.0, side * 2.0 * body.b, 0.0, vein_radius)
        for side in (-1.0, 1.0)
    ]
    channels: list[tuple[int, int]] = []
    for cylinder in cylinders:
        tool = occ.copy([(3, core)])
        result, _ = occ.cut([(3, cylinder)], tool)
        channels += result
    return channels


def _add_cleft(cleft: Cleft) -> list[tuple[int, int]]:
    """The cleft slab: a cylinder of the cleft's radius and thickness along its normal."""
    base = cleft.centre - 0.5 * cleft.thickness * cleft.normal
    axis = cleft.thickness * cleft.normal
    return [(3, gmsh.model.occ.addCylinder(*base, *axis, cleft.radius))]


def _add_lesion(lesion: Lesion) -> list[tuple[int, int]]:
    """The lesion ellipsoid: a sphere stretched along x, y, z (a plain sphere if round).

    The sphere is turned so that the poles of its parametrisation lie on the x axis: there
    the split plane (x = const) can only meet them where it is tangent to the lesion, which
    is rejected. Left on the z axis, a split plane through the centre passed microns from a
    pole and left slivers (min SICN 0.006).
    """
    occ = gmsh.model.occ
    big = float(lesion.radii.max())
    ball = occ.addSphere(*lesion.centre, big)
    occ.rotate([(3, ball)], *lesion.centre, 0.0, 1.0, 0.0, 0.5 * math.pi)
    if not np.allclose(lesion.radii, big):
        occ.dilate([(3, ball)], *lesion.centre, *(lesion.radii / big))
    return [(3, ball)]


def _add_vein_channel(channel: VeinChannel) -> list[tuple[int, int]]:
    """The vein's channel: a cylinder along +x, started a little outside the posterior wall
    (the part outside the body is removed after the fragment)."""
    overshoot = channel.radius
    x, y, z = channel.start
    return [(3, gmsh.model.occ.addCylinder(
        x - overshoot, y, z, channel.length + overshoot, 0.0, 0.0, channel.radius
    ))]  # fmt: skip


def _add_feature_tools(
    features: Features, body: Body, foramen: tuple[float, float, float], veins: tuple
) -> tuple[dict[str, list[tuple[int, int]]], dict[str, list[tuple[int, int]]]]:
    """Volume tools (core, channel, cleft, lesion) and patch tools of the optional features."""
    occ = gmsh.model.occ
    volumes: dict[str, list[tuple[int, int]]] = {}
    patches: dict[str, list[tuple[int, int]]] = {}
    wall_defect = features.posterior_defect
    if wall_defect is not None:
        y, z, r = wall_defect.y, wall_defect.z, wall_defect.radius
        patches["posterior_defect"] = [(2, occ.addDisk(
            body.x_wall, y, z, r, r, zAxis=[1.0, 0.0, 0.0], xAxis=[0.0, 1.0, 0.0]
        ))]  # fmt: skip
    if features.endplate_defect is not None:
        plate = features.endplate_defect
        z = body.half_height if plate.side == "upper" else -body.half_height
        r = plate.radius
        patches["endplate_defect"] = [(2, occ.addDisk(plate.x, plate.y, z, r, r))]
    if features.cortex is not None:
        core = _add_core(body, features.cortex)
        disks = [foramen]
        if wall_defect is not None:
            disks.append((wall_defect.y, wall_defect.z, wall_defect.radius))
        volumes["channel"] = _add_channels(core, body, features.cortex, disks, *veins)
        volumes["core"] = [(3, core)]
    if features.cleft is not None:
        volumes["cleft"] = _add_cleft(features.cleft)
    if features.lesion is not None:
        volumes["lesion"] = _add_lesion(features.lesion)
    if features.basivertebral_vein is not None:
        volumes["basivertebral_vein"] = _add_vein_channel(features.basivertebral_vein)
    return volumes, patches


def _remove_outside_volumes(pieces: dict[str, set[int]], names: Sequence[str]) -> None:
    """Delete the pieces of the volume tools ``names`` that are not bone (outside the body or
    inside a needle cavity)."""
    outside = sorted(set().union(*(pieces[n] for n in names)) - pieces["bone"]) if names else []
    if outside:
        gmsh.model.occ.remove([(3, v) for v in outside], recursive=True)
        gmsh.model.occ.synchronize()
    existing = {tag for _, tag in gmsh.model.getEntities(2)}
    for name, tags in pieces.items():
        if name not in names and name != "bone":
            tags &= existing  # surface pieces removed with those volumes


def _assign_regions(
    volumes: list[int], pieces: dict[str, set[int]], features: Features, body: Body
) -> dict[str, list[int]]:
    """Region of each bone volume: lesion, else cleft, else basivertebral vein, else cortex
    (the shell outside the core and the outlet channels), else anterior/posterior by the side
    of the split plane."""
    regions: dict[str, list[int]] = {"anterior": [], "posterior": []}
    for name in ("cortex", "cleft", "lesion", "basivertebral_vein"):
        if getattr(features, name) is not None:
            regions[name] = []
    trabecular = pieces.get("core", set()) | pieces.get("channel", set())
    for v in volumes:
        if v in pieces.get("lesion", ()):
            regions["lesion"].append(v)
        elif v in pieces.get("cleft", ()):
            regions["cleft"].append(v)
        elif v in pieces.get("basivertebral_vein", ()):
            regions["basivertebral_vein"].append(v)
        elif features.cortex is not None and v not in trabecular:
            regions["cortex"].append(v)
        else:
            x = gmsh.model.occ.getCenterOfMass(3, v)[0]
            regions["anterior" if x > body.x_split else "posterior"].append(v)
    empty = [name for name, tags in regions.items() if not tags]
    if empty:
        hint = " (a cleft entirely inside the lesion?)" if "cleft" in empty else ""
        raise ValueError(f"vertebral body: region(s) {empty} would have no volume{hint}")
    return regions


# --- classification and groups --------------------------------------------------------------


def _adjacent_volumes(surface: int) -> int:
    """Number of volumes bounded by ``surface``."""
    upward, _ = gmsh.model.getAdjacencies(2, surface)
    return len(upward)


def _classify_plane(surface: int, body: Body, tol: float) -> str | None:
    """Group name of a planar boundary face (endplate or posterior wall), None if neither."""
    x, _, z = gmsh.model.occ.getCenterOfMass(2, surface)
    if abs(z - body.half_height) < tol:
        return "endplate_upper"
    if abs(z + body.half_height) < tol:
        return "endplate_lower"
    if abs(x - body.x_wall) < tol:
        return "posterior_wall"
    return None


def _needle_of_sphere(surface: int, needles: list[NeedleTip]) -> str:
    """Name of the needle whose cavity the spherical face lies on: the nearest cavity centre
    to the face's centre of mass, which lies inside that ball; RuntimeError if none does."""
    com = np.array(gmsh.model.occ.getCenterOfMass(2, surface))
    needle = min(needles, key=lambda n: float(np.linalg.norm(com - n.centre)))
    if float(np.linalg.norm(com - needle.centre)) > needle.radius * (1.0 + 1e-6):
        raise RuntimeError(f"vertebral body: spherical boundary surface {surface} is on no cavity")
    return needle.name


def _classify_surfaces(
    surfaces: set[int],
    patches: dict[str, set[int]],
    needles: list[NeedleTip],
    body: Body,
    optional: Sequence[str] = (),
) -> dict[str, list[int]]:
    """Sort the boundary faces into the named groups; RuntimeError if one is left over.

    ``optional`` names the optional surface groups present (in ``patches``).
    """
    tol = 1e-6 * (body.a + body.b + body.half_height)
    groups: dict[str, list[int]] = {name: [] for name in SURFACE_GROUPS}
    groups.update({name: [] for name in optional})
    groups.update({n.name: [] for n in needles})
    for s in sorted(surfaces):
        kind = gmsh.model.getType(2, s)
        patch = next((name for name, tags in patches.items() if s in tags), None)
        if patch is not None:
            name = patch
        elif kind == "Sphere":
            name = _needle_of_sphere(s, needles)
        elif kind == "Plane":
            name = _classify_plane(s, body, tol)
        else:
            name = "lateral_wall"
        if name is None:
            raise RuntimeError(f"vertebral body: cannot classify boundary surface {s} ({kind})")
        groups[name].append(s)
    empty = [name for name, tags in groups.items() if not tags]
    if empty:
        raise RuntimeError(f"vertebral body: no surface found for groups {empty}")
    return groups


def _add_groups(
    regions: dict[str, list[int]], surfaces: dict[str, list[int]], needles: list[NeedleTip]
) -> None:
    """Create the named physical groups (tags from the *_GROUPS tables and FIRST_NEEDLE_TAG)."""
    add_physical_groups(3, regions, {**VOLUME_GROUPS, **OPTIONAL_VOLUME_GROUPS})
    tag_of = {**SURFACE_GROUPS, **OPTIONAL_SURFACE_GROUPS}
    tag_of.update({n.name: FIRST_NEEDLE_TAG + i for i, n in enumerate(needles)})
    add_physical_groups(2, surfaces, tag_of)


# --- mesh size ------------------------------------------------------------------------------


def _region_size_fields(
    distance: int, volumes: list[int], size: float, reach: float, h_max: float, growth: float
) -> list[int]:
    """Size ``size`` inside ``volumes`` (and on their faces), graded by ``growth`` from where
    the (approximate) ``distance`` field exceeds ``reach``."""
    fields = gmsh.model.mesh.field
    constant = fields.add("Constant")
    fields.setNumber(constant, "VIn", size)
    fields.setNumbers(constant, "VolumesList", volumes)
    fields.setNumber(constant, "IncludeBoundary", 1)
    return [constant, threshold_field(distance, size, reach, h_max, growth)]


def _feature_size_fields(
    features: Features, regions: dict[str, list[int]], body: Body, h_max: float, growth: float
) -> list[int]:
    """Sizes of the optional regions: h <= the shell thickness in the cortex, h <= half the
    thickness in the cleft, a quarter of the smallest semi-axis in the lesion; graded outside
    by ``growth`` on approximate analytic distances."""
    fields: list[int] = []
    if features.cortex is not None:
        t = features.cortex
        ia, ib = 1.0 / body.a, 1.0 / body.b
        re = f"Sqrt((x*{fixed(ia)})^2+(y*{fixed(ib)})^2)"
        grad = f"Sqrt((x*{fixed(ia * ia)})^2+(y*{fixed(ib * ib)})^2+{fixed(1e-12)})"
        lateral = math_field(f"(1-{re})*{re}/{grad}")  # first order near the wall
        posterior = math_field(f"x-{fixed(body.x_wall)}")
        wall = combined_field("Min", [lateral, posterior])
        fields += _region_size_fields(wall, regions["cortex"], t, t, h_max, growth)
    if features.cleft is not None:
        c, n = features.cleft.centre, features.cleft.normal
        d = [f"({v}-{fixed(c[i])})" for i, v in enumerate("xyz")]
        axial = "+".join(f"{fixed(n[i])}*{d[i]}" for i in range(3))
        along = math_field(f"Abs({axial})-{fixed(0.5 * features.cleft.thickness)}")
        radial = math_field(
            f"Sqrt(Abs({d[0]}^2+{d[1]}^2+{d[2]}^2-({axial})^2))-{fixed(features.cleft.radius)}"
        )
        slab = combined_field("Max", [along, radial])
        size = features.cleft.size()
        fields += _region_size_fields(slab, regions["cleft"], size, 0.0, h_max, growth)
    if features.lesion is not None:
        c, r = features.lesion.centre, features.lesion.radii
        scaled = "+".join(f"(({v}-{fixed(c[i])})*{fixed(1.0 / r[i])})^2"
                          for i, v in enumerate("xyz"))  # fmt: skip
        ellipsoid = math_field(f"(Sqrt({scaled})-1)*{fixed(r.min())}")
        size = features.lesion.size(h_max)
        fields += _region_size_fields(ellipsoid, regions["lesion"], size, 0.0, h_max, growth)
    if features.basivertebral_vein is not None:
        channel = features.basivertebral_vein
        x0, _, z0 = channel.start
        radial = math_field(f"Sqrt(y^2+(z-{fixed(z0)})^2)-{fixed(channel.radius)}")
        ahead = math_field(f"x-{fixed(x0 + channel.length)}")
        tube = combined_field("Max", [radial, ahead])
        size = channel.size()
        fields += _region_size_fields(tube, regions["basivertebral_vein"], size, 0.0, h_max, growth)
    return fields


def _add_size_field(
    needles: list[NeedleTip],
    outlets: list[tuple[tuple[float, float, float], float]],
    *,
    h_tip: float,
    h_max: float,
    growth: float,
    h_outlet: float,
    extra: Sequence[int] = (),
) -> None:
    """Background size: min over needle and outlet gradings and the ``extra`` fields (all
    lengths in m)."""
    fields = [
        threshold_field(point_distance(n.centre), h_tip, n.radius, h_max, growth) for n in needles
    ]
    fields += [
        threshold_field(
            point_distance(c), h_outlet, r + _OUTLET_SIZE_REACH * h_outlet, h_max, growth
        )
        for c, r in outlets
    ]
    fields += list(extra)
    use_smallest_size(fields, h_max)


# --- public builder -------------------------------------------------------------------------


def add_vertebral_body(
    *,
    depth: float = 35e-3,
    width: float = 45e-3,
    height: float = 28e-3,
    posterior_flat: float = 0.8,
    foramen_radius: float = 2.5e-3,
    foramen_height: float = 0.0,
    vein_radius: float = 1.5e-3,
    vein_x: float = 0.0,
    target_fraction: float = 2.0 / 3.0,
    needles: Sequence[NeedleTip],
    h_tip: float = 0.4e-3,
    h_max: float = 3e-3,
    growth: float = 0.3,
    h_outlet: float = 0.5e-3,
    cortical_shell: float | None = None,
    posterior_defect: PosteriorDefect | None = None,
    endplate_defect: EndplateDefect | None = None,
    cleft: Cleft | None = None,
    lesion: Lesion | None = None,
    basivertebral_vein: BasivertebralVein | None = None,
) -> None:
    """Build the vertebral body into the current gmsh model (gmsh initialised, model added).

    Adds the OpenCASCADE geometry (synchronised), the named physical groups listed in the
    module docstring and a background mesh-size field, and sets the gmsh options
    Mesh.MeshSizeFromPoints, MeshSizeFromCurvature, MeshSizeExtendFromBoundary to 0 and
    Mesh.MeshSizeMax to ``h_max``. Does not call ``gmsh.model.mesh.generate``; the caller does
    (then ``gmsh.model.mesh.optimize("Netgen")``).

    Parameters (all lengths in metres)
    ----------------------------------
    depth, width, height:
        AP extent of the final body (posterior wall to anterior apex), lateral width
        (2 x the y semi-axis) and height (endplate to endplate).
    posterior_flat:
        The posterior wall is at ``x = -posterior_flat * a`` with ``a = depth/(1 +
        posterior_flat)`` the x semi-axis of the ellipse; in (0, 1).
    foramen_radius, foramen_height:
        Radius of the basivertebral-foramen disk on the posterior wall and its centre's z
        (it is centred at y = 0).
    vein_radius, vein_x:
        Radius and centre x of the segmental-vein patches (at z = 0, one on each side):
        the part of the lateral wall inside a cylinder along y of that radius, so its area is
        pi*vein_radius^2 divided by the cosine of the wall's obliquity to the y axis.
    target_fraction:
        The ``anterior`` region is the anterior ``target_fraction`` of the AP extent
        (x > a - target_fraction*depth); in (0, 1).
    needles:
        A :class:`~sim.shapes.primitives.NeedleTip` per needle: a spherical cavity of its
        ``radius`` (the needle's inner radius) centred at its ``centre`` is removed from the
        bone and its surface is the group named after the needle. The cavity must lie
        inside the body (inside the trabecular core with a cortical shell) at least ``h_tip``
        from its boundary and from the other cavities, and either cross the split plane or
        stay clear of it by ``h_tip/2``. The entry point (outside the body; the shaft is not
        meshed) only validates the path: the straight line from it to the tip must enter the
        body through the posterior half, x < 0 (a transpedicular path).
    h_tip, h_max, growth:
        Element size ``min(h_max, h_tip + growth*(distance to the nearest tip centre -
        radius))``.
    h_outlet:
        Element size on and up to ``3*h_outlet`` around each outlet patch (graded by
        ``growth`` beyond); at most the smallest patch radius. The patches must lie
        ``h_outlet`` inside their faces.

    Optional features (each None by default: then the geometry, groups and mesh are exactly
    those without the feature)
    ------------------------------------------------------------------------------------
    cortical_shell:
        Thickness of the region ``cortex`` just inside the lateral and posterior walls (not
        the endplates), from endplate to endplate, meshed with ``h <= cortical_shell``. The
        outlet patches (foramen, veins, posterior defect) open through it: the bone under
        them is trabecular, not cortex.
    posterior_defect:
        A :class:`PosteriorDefect` (y, z, radius): a disk on the posterior wall, the boundary
        group ``posterior_defect`` (a breach into the spinal canal), ``h_outlet`` clear of
        the wall's edges and of the basivertebral foramen.
    endplate_defect:
        An :class:`EndplateDefect` (side "upper" or "lower", x, y, radius): a disk on that
        endplate, the boundary group ``endplate_defect`` (a breach into the disc), over the
        trabecular core.
    cleft:
        A :class:`Cleft` (centre, unit normal, thickness t, radius r): the region ``cleft``,
        a slab of thickness t and radius r clipped to the body, meshed with ``h <= t/2``.
    lesion:
        A :class:`Lesion` (centre, radii along x, y, z): the region ``lesion``, an
        axis-aligned ellipsoid clipped to the body (its centre inside), meshed with a quarter
        of its smallest semi-axis (at most ``h_max``).
    basivertebral_vein:
        A :class:`BasivertebralVein` (radius r, length L): the region ``basivertebral_vein``,
        a channel of radius r (at most ``foramen_radius``) from the centre of the
        basivertebral foramen along +x for L, meshed with ``h <= r/2``.
    The regions are disjoint: lesion over cleft over basivertebral vein over cortex over
    anterior/posterior. A needle
    cavity may lie in a cleft or lesion. :func:`sim.shapes.vertebral_body.boundary_names` and
    :func:`~sim.shapes.vertebral_body.region_names` list the groups a set of features gives.

    Raises ValueError naming the parameter, its value and the allowed range for bad input.
    """
    body, features, parsed = checked_vertebral_body(
        depth=depth,
        width=width,
        height=height,
        posterior_flat=posterior_flat,
        foramen_radius=foramen_radius,
        foramen_height=foramen_height,
        vein_radius=vein_radius,
        vein_x=vein_x,
        target_fraction=target_fraction,
        needles=needles,
        h_tip=h_tip,
        h_max=h_max,
        growth=growth,
        h_outlet=h_outlet,
        cortical_shell=cortical_shell,
        posterior_defect=posterior_defect,
        endplate_defect=endplate_defect,
        cleft=cleft,
        lesion=lesion,
        basivertebral_vein=basivertebral_vein,
    )

    volume, lateral = _add_body_volume(body)
    left, right = _add_vein_patches(lateral, body, vein_radius, vein_x)
    bone = _cut_cavities(volume, parsed)
    tools = {
        "split": [_add_split_disk(body)],
        "basivertebral_foramen": [_add_foramen_disk(body, foramen_radius, foramen_height)],
        "segmental_vein_left": left,
        "segmental_vein_right": right,
    }
    solids, patches = _add_feature_tools(
        features, body, (0.0, foramen_height, foramen_radius), (vein_radius, vein_x)
    )
    tools.update(patches)
    tools.update(solids)
    pieces = _fragment(bone, tools)
    _remove_outside_volumes(pieces, list(solids))
    _remove_free_surfaces(pieces.pop("split"))
    volumes = sorted(pieces.pop("bone"))
    regions = _assign_regions(volumes, pieces, features, body)
    for name in solids:
        pieces.pop(name)
    surfaces = _classify_surfaces(
        _boundary_surfaces(volumes), pieces, parsed, body, optional=list(patches)
    )
    _add_groups(regions, surfaces, parsed)

    y_vein = body.lateral_y(vein_x)
    outlets = [
        ((body.x_wall, 0.0, foramen_height), foramen_radius),
        ((vein_x, -y_vein, 0.0), vein_radius),
        ((vein_x, y_vein, 0.0), vein_radius),
    ]
    if features.posterior_defect is not None:
        wall = features.posterior_defect
        outlets.append(((body.x_wall, wall.y, wall.z), wall.radius))
    if features.endplate_defect is not None:
        plate = features.endplate_defect
        z = body.half_height * (1.0 if plate.side == "upper" else -1.0)
        outlets.append(((plate.x, plate.y, z), plate.radius))
    extra = _feature_size_fields(features, regions, body, h_max, growth)
    _add_size_field(
        parsed, outlets, h_tip=h_tip, h_max=h_max, growth=growth, h_outlet=h_outlet, extra=extra
    )


def mesh_vertebral_body(
    geometry: VertebralBodyGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``vertebral_body`` kind: :func:`add_vertebral_body` meshed by gmsh on
    rank 0 and distributed; written to `msh_path` when given."""
    build = partial(add_vertebral_body, needles=needle_tips(needles), **geometry.builder_kwargs())
    return mesh_from_gmsh(build, comm, name, msh_path, sites)
