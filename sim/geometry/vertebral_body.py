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
SI units (metres) throughout. +x anterior, y lateral (left = -y, right = +y), +z cranial, as
in the anatomy data in ``shared/data/anatomy``. The origin is the centre of the ellipse at
mid-height.

- Cross-section: the ellipse ``(x/a)^2 + (y/b)^2 <= 1`` with ``b = width/2`` and
  ``a = depth/(1 + posterior_flat)``, cut by the posterior wall ``x = -posterior_flat*a``
  (keeping larger x). ``depth`` is therefore the AP extent of the final body, from the
  posterior wall to the anterior apex ``x = a``, not the depth of the full ellipse.
- Height: ``-height/2 <= z <= height/2``.
- Split plane between the regions: ``x = a - target_fraction*depth``.

Default dimensions: a mid-lumbar body (L3) about 45 mm wide, 35 mm deep and 28 mm high
(Panjabi MM et al. 1992, "Human lumbar vertebrae: quantitative three-dimensional anatomy",
Spine 17:299-306, endplate width and depth and body height; Zhou SH et al. 2000, Eur Spine J
9:242-248, similar values). The basivertebral foramen is a few mm across and sits at about
mid-height of the posterior wall; lumbar segmental veins are 1-3 mm in diameter.

Physical groups (names; each gmsh entity is in exactly one group of its dimension)
------------------------------------------------------------------------------------
- volumes (dim 3): ``anterior``, ``posterior``;
- surfaces (dim 2): ``endplate_upper``, ``endplate_lower``, ``basivertebral_foramen``,
  ``posterior_wall``, ``segmental_vein_left``, ``segmental_vein_right``, ``lateral_wall``, and
  one group per needle named after the needle (the surface of its cavity).

The anterior/posterior interface is internal and is in no surface group. The physical tags
are fixed: see :data:`VOLUME_GROUPS`, :data:`SURFACE_GROUPS` and :data:`FIRST_NEEDLE_TAG`.

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
and 7 shape variants all gave min SICN >= 0.22.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gmsh
import numpy as np

__all__ = [
    "FIRST_NEEDLE_TAG",
    "SURFACE_GROUPS",
    "VOLUME_GROUPS",
    "add_vertebral_body",
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
#: physical tag of the first needle's cavity surface; the next needles count up from it
FIRST_NEEDLE_TAG = 101

#: the size is h_outlet up to this many h_outlet beyond the edge of an outlet patch
_OUTLET_SIZE_REACH = 3.0


@dataclass(frozen=True)
class _Body:
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
class _Needle:
    """A needle tip: the cavity centre (m) and radius (m)."""

    name: str
    centre: np.ndarray
    radius: float


def _body_dims(
    depth: float, width: float, height: float, posterior_flat: float, target_fraction: float
) -> _Body:
    """Derived dimensions from the public parameters (validated here)."""
    for name, value in (("depth", depth), ("width", width), ("height", height)):
        _require(value > 0.0, name, value, "> 0 m")
    _require(0.0 < posterior_flat < 1.0, "posterior_flat", posterior_flat, "in (0, 1)")
    _require(0.0 < target_fraction < 1.0, "target_fraction", target_fraction, "in (0, 1)")
    a = depth / (1.0 + posterior_flat)
    return _Body(
        a=a,
        b=width / 2.0,
        half_height=height / 2.0,
        x_wall=-posterior_flat * a,
        x_split=a - target_fraction * depth,
    )


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    """Raise ValueError naming the parameter, its value and the allowed range unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} = {value!r} is out of range: must be {allowed}")


# --- analytic inside test -------------------------------------------------------------------


def _ellipse_root(r0: float, z0: float, z1: float, g: float) -> float:
    """Bisection root of Eberly's ellipse-distance function (see `_distance_to_ellipse`)."""
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


def _distance_to_ellipse(u: float, v: float, a: float, b: float) -> float:
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


def _clearance(point: np.ndarray, body: _Body) -> float:
    """Signed distance (m) from ``point`` to the body surface: > 0 inside, < 0 outside.

    Inside, the body is the intersection of three convex sets (elliptic cylinder, half-space,
    slab), so the distance to its boundary is the smallest distance to their boundaries.
    Outside, the value is only a lower bound of minus the distance, which is all we need.
    """
    x, y, z = (float(c) for c in point)
    d_ellipse = _distance_to_ellipse(x, y, body.a, body.b)
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
) -> bool:
    """True if ``point`` (m) lies inside the body at least ``margin`` (m) from its boundary.

    Analytic (no gmsh); the dimensions (m) mean the same as in :func:`add_vertebral_body`.
    A point on the boundary is inside for ``margin = 0``.
    """
    body = _body_dims(depth, width, height, posterior_flat, target_fraction=0.5)
    p = np.asarray(point, dtype=float)
    _require(p.shape == (3,) and bool(np.all(np.isfinite(p))), "point", point, "3 finite numbers")
    return _clearance(p, body) >= margin


# --- input validation -----------------------------------------------------------------------


def _validate_sizes(h_tip: float, h_max: float, growth: float, h_outlet: float) -> None:
    """Check the mesh-size parameters (m, growth dimensionless)."""
    _require(h_tip > 0.0, "h_tip", h_tip, "> 0 m")
    _require(h_max >= h_tip, "h_max", h_max, f">= h_tip = {h_tip} m")
    _require(growth > 0.0, "growth", growth, "> 0")
    _require(0.0 < h_outlet <= h_max, "h_outlet", h_outlet, f"in (0, h_max = {h_max}] m")


def _validate_patches(
    body: _Body,
    foramen_radius: float,
    foramen_height: float,
    vein_radius: float,
    vein_x: float,
    h_outlet: float,
) -> None:
    """Check that the outlet patches fit on their faces, h_outlet away from the face edges."""
    _require(
        0.0 < foramen_radius <= body.wall_half_width - h_outlet,
        "foramen_radius",
        foramen_radius,
        f"in (0, {body.wall_half_width - h_outlet:.6g}] m (posterior wall half-width minus "
        "h_outlet)",
    )
    z_max = body.half_height - foramen_radius - h_outlet
    _require(
        abs(foramen_height) <= z_max,
        "foramen_height",
        foramen_height,
        f"in [-{z_max:.6g}, {z_max:.6g}] m (patch inside the posterior wall)",
    )
    _require(
        0.0 < vein_radius <= body.half_height - h_outlet,
        "vein_radius",
        vein_radius,
        f"in (0, {body.half_height - h_outlet:.6g}] m (half the height minus h_outlet)",
    )
    x_lo, x_hi = body.x_wall + vein_radius + h_outlet, body.a - vein_radius - h_outlet
    _require(
        x_lo <= vein_x <= x_hi,
        "vein_x",
        vein_x,
        f"in [{x_lo:.6g}, {x_hi:.6g}] m (patch on the curved lateral wall)",
    )
    _require(
        h_outlet <= min(foramen_radius, vein_radius),
        "h_outlet",
        h_outlet,
        f"<= the smallest patch radius {min(foramen_radius, vein_radius):.6g} m",
    )


def _parse_needles(
    needles: Sequence[tuple[str, np.ndarray, float]], body: _Body, h_tip: float
) -> list[_Needle]:
    """Validate the needles and return them as `_Needle` records."""
    _require(len(needles) > 0, "needles", needles, "at least one (name, tip, radius)")
    reserved = set(VOLUME_GROUPS) | set(SURFACE_GROUPS)
    parsed: list[_Needle] = []
    for name, tip, radius in needles:
        centre = np.asarray(tip, dtype=float)
        _require(
            isinstance(name, str) and name != "" and name not in reserved,
            "needle name",
            name,
            f"a non-empty string other than {sorted(reserved)}",
        )
        _require(name not in {n.name for n in parsed}, "needle name", name, "unique")
        _require(
            centre.shape == (3,) and bool(np.all(np.isfinite(centre))),
            f"tip of needle {name!r}",
            tip,
            "3 finite numbers (m)",
        )
        _require(radius > 0.0, f"radius of needle {name!r}", radius, "> 0 m")
        clearance = _clearance(centre, body)
        _require(
            clearance - radius >= h_tip,
            f"tip of needle {name!r}",
            tuple(centre.tolist()),
            f"inside the body with the cavity (radius {radius} m) at least h_tip = {h_tip} m "
            f"from the boundary (cavity clearance is {clearance - radius:.6g} m)",
        )
        _check_split_clearance(name, centre, radius, body, h_tip)
        for other in parsed:
            gap = float(np.linalg.norm(centre - other.centre)) - radius - other.radius
            _require(
                gap >= h_tip,
                f"tip of needle {name!r}",
                tuple(centre.tolist()),
                f"at least h_tip = {h_tip} m from the cavity of needle {other.name!r} "
                f"(gap is {gap:.6g} m)",
            )
        parsed.append(_Needle(name, centre, float(radius)))
    return parsed


def _check_split_clearance(
    name: str, centre: np.ndarray, radius: float, body: _Body, h_tip: float
) -> None:
    """Reject a cavity that (nearly) touches the split plane: it would give sliver elements."""
    gap = abs(abs(centre[0] - body.x_split) - radius)
    _require(
        gap >= 0.5 * h_tip,
        f"tip of needle {name!r}",
        tuple(centre.tolist()),
        f"a cavity either crossing the anterior/posterior split plane x = {body.x_split:.6g} m "
        f"or clear of it, by at least h_tip/2 = {0.5 * h_tip} m (it is {gap:.6g} m from "
        "tangency); move the tip or change target_fraction",
    )


# --- geometry -------------------------------------------------------------------------------


def _add_body_volume(body: _Body) -> tuple[int, int]:
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
    lateral: int, body: _Body, vein_radius: float, vein_x: float
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Cut the two vein patches (left, right) out of copies of the lateral face."""
    occ = gmsh.model.occ
    reach = 2.0 * body.b  # from the mid-plane y = 0 to well outside the wall
    patches = []
    for side in (-1.0, 1.0):
        cylinder = occ.addCylinder(vein_x, 0.0, 0.0, 0.0, side * reach, 0.0, vein_radius)
        patch, _ = occ.intersect(occ.copy([(2, lateral)]), [(3, cylinder)])
        patches.append(patch)
    return patches[0], patches[1]


def _add_split_disk(body: _Body) -> tuple[int, int]:
    """A planar disk at x = x_split larger than the body (cuts it into two regions)."""
    radius = 2.0 * (body.a + body.b + body.half_height)
    return 2, gmsh.model.occ.addDisk(
        body.x_split, 0.0, 0.0, radius, radius, zAxis=[1.0, 0.0, 0.0], xAxis=[0.0, 1.0, 0.0]
    )


def _add_foramen_disk(body: _Body, radius: float, z: float) -> tuple[int, int]:
    """The foramen patch: a disk lying on the posterior wall."""
    return 2, gmsh.model.occ.addDisk(
        body.x_wall, 0.0, z, radius, radius, zAxis=[1.0, 0.0, 0.0], xAxis=[0.0, 1.0, 0.0]
    )


def _cut_cavities(volume: int, needles: list[_Needle]) -> list[tuple[int, int]]:
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


# --- classification and groups --------------------------------------------------------------


def _adjacent_volumes(surface: int) -> int:
    """Number of volumes bounded by ``surface``."""
    upward, _ = gmsh.model.getAdjacencies(2, surface)
    return len(upward)


def _classify_plane(surface: int, body: _Body, tol: float) -> str | None:
    """Group name of a planar boundary face (endplate or posterior wall), None if neither."""
    x, _, z = gmsh.model.occ.getCenterOfMass(2, surface)
    if abs(z - body.half_height) < tol:
        return "endplate_upper"
    if abs(z + body.half_height) < tol:
        return "endplate_lower"
    if abs(x - body.x_wall) < tol:
        return "posterior_wall"
    return None


def _nearest_needle(surface: int, needles: list[_Needle]) -> str:
    """Name of the needle whose cavity centre is nearest to the face's centre of mass."""
    com = np.array(gmsh.model.occ.getCenterOfMass(2, surface))
    return min(needles, key=lambda n: float(np.linalg.norm(com - n.centre))).name


def _classify_surfaces(
    surfaces: set[int], patches: dict[str, set[int]], needles: list[_Needle], body: _Body
) -> dict[str, list[int]]:
    """Sort the boundary faces into the named groups; RuntimeError if one is left over."""
    tol = 1e-6 * (body.a + body.b + body.half_height)
    groups: dict[str, list[int]] = {name: [] for name in SURFACE_GROUPS}
    groups.update({n.name: [] for n in needles})
    for s in sorted(surfaces):
        kind = gmsh.model.getType(2, s)
        patch = next((name for name, tags in patches.items() if s in tags), None)
        if patch is not None:
            name = patch
        elif kind == "Sphere":
            name = _nearest_needle(s, needles)
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
    volumes: list[int], surfaces: dict[str, list[int]], needles: list[_Needle], body: _Body
) -> None:
    """Create the named physical groups (tags from VOLUME_GROUPS, SURFACE_GROUPS)."""
    regions: dict[str, list[int]] = {"anterior": [], "posterior": []}
    for v in volumes:
        x = gmsh.model.occ.getCenterOfMass(3, v)[0]
        regions["anterior" if x > body.x_split else "posterior"].append(v)
    for name, tags in regions.items():
        if not tags:
            raise RuntimeError(f"vertebral body: region {name!r} has no volume")
        gmsh.model.addPhysicalGroup(3, tags, VOLUME_GROUPS[name], name)
    tag_of = dict(SURFACE_GROUPS)
    tag_of.update({n.name: FIRST_NEEDLE_TAG + i for i, n in enumerate(needles)})
    for name, tags in surfaces.items():
        gmsh.model.addPhysicalGroup(2, tags, tag_of[name], name)


# --- mesh size ------------------------------------------------------------------------------


def _distance_field(centre: Sequence[float]) -> int:
    """MathEval field: Euclidean distance (m) from a point."""
    x0, y0, z0 = (f"({float(c):.12f})" for c in centre)  # fixed point: no exponent to parse
    field = gmsh.model.mesh.field.add("MathEval")
    gmsh.model.mesh.field.setString(field, "F", f"Sqrt((x-{x0})^2+(y-{y0})^2+(z-{z0})^2)")
    return field


def _graded_field(
    centre: Sequence[float], radius: float, h_min: float, h_max: float, growth: float
) -> int:
    """Threshold field: h_min within ``radius`` of ``centre``, growing by ``growth`` to h_max."""
    field = gmsh.model.mesh.field.add("Threshold")
    gmsh.model.mesh.field.setNumber(field, "InField", _distance_field(centre))
    gmsh.model.mesh.field.setNumber(field, "SizeMin", h_min)
    gmsh.model.mesh.field.setNumber(field, "SizeMax", h_max)
    gmsh.model.mesh.field.setNumber(field, "DistMin", radius)
    gmsh.model.mesh.field.setNumber(field, "DistMax", radius + (h_max - h_min) / growth)
    return field


def _add_size_field(
    needles: list[_Needle],
    outlets: list[tuple[tuple[float, float, float], float]],
    *,
    h_tip: float,
    h_max: float,
    growth: float,
    h_outlet: float,
) -> None:
    """Background size: min over needle and outlet gradings (all lengths in m)."""
    fields = [_graded_field(n.centre, n.radius, h_tip, h_max, growth) for n in needles]
    fields += [
        _graded_field(c, r + _OUTLET_SIZE_REACH * h_outlet, h_outlet, h_max, growth)
        for c, r in outlets
    ]
    smallest = gmsh.model.mesh.field.add("Min")
    gmsh.model.mesh.field.setNumbers(smallest, "FieldsList", fields)
    gmsh.model.mesh.field.setAsBackgroundMesh(smallest)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", h_max)


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
    needles: Sequence[tuple[str, np.ndarray, float]],
    h_tip: float = 0.4e-3,
    h_max: float = 3e-3,
    growth: float = 0.3,
    h_outlet: float = 0.5e-3,
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
        ``(name, tip_xyz, radius)`` per needle: a spherical cavity of ``radius`` (the needle's
        inner radius) centred at ``tip_xyz`` is removed from the bone and its surface is the
        group ``name``. The cavity must lie inside the body at least ``h_tip`` from the
        boundary and from the other cavities, and either cross the split plane or stay clear
        of it by ``h_tip/2``.
    h_tip, h_max, growth:
        Element size ``min(h_max, h_tip + growth*(distance to the nearest tip centre -
        radius))``.
    h_outlet:
        Element size on and up to ``3*h_outlet`` around each outlet patch (graded by
        ``growth`` beyond); at most the smallest patch radius. The patches must lie
        ``h_outlet`` inside their faces.

    Raises ValueError naming the parameter, its value and the allowed range for bad input.
    """
    body = _body_dims(depth, width, height, posterior_flat, target_fraction)
    _validate_sizes(h_tip, h_max, growth, h_outlet)
    _validate_patches(body, foramen_radius, foramen_height, vein_radius, vein_x, h_outlet)
    parsed = _parse_needles(needles, body, h_tip)

    volume, lateral = _add_body_volume(body)
    left, right = _add_vein_patches(lateral, body, vein_radius, vein_x)
    bone = _cut_cavities(volume, parsed)
    tools = {
        "split": [_add_split_disk(body)],
        "basivertebral_foramen": [_add_foramen_disk(body, foramen_radius, foramen_height)],
        "segmental_vein_left": left,
        "segmental_vein_right": right,
    }
    pieces = _fragment(bone, tools)
    _remove_free_surfaces(pieces.pop("split"))
    volumes = sorted(pieces.pop("bone"))
    surfaces = _classify_surfaces(_boundary_surfaces(volumes), pieces, parsed, body)
    _add_groups(volumes, surfaces, parsed, body)

    y_vein = body.lateral_y(vein_x)
    outlets = [
        ((body.x_wall, 0.0, foramen_height), foramen_radius),
        ((vein_x, -y_vein, 0.0), vein_radius),
        ((vein_x, y_vein, 0.0), vein_radius),
    ]
    _add_size_field(parsed, outlets, h_tip=h_tip, h_max=h_max, growth=growth, h_outlet=h_outlet)
