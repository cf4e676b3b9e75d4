"""Tetrahedral meshes of closed bone surfaces (gmsh).

The surface is read, cleaned and checked without gmsh by sim.shapes.surface; here it is
remeshed and filled with tetrahedra::

    surface, report = import_surface("L1_body.obj.xz", length_unit_factor=1.0)
    tagged = mesh_surface_volume(surface, comm, h_max=2.5e-3, h_min=0.5e-3,
                                 needles=[NeedleTip("left", tip, 1.195e-3)], growth=0.3)

or, inside a gmsh model of one's own, :func:`add_surface_volume` (geometry, size field and
physical groups, no meshing; like :func:`sim.geometry.vertebral_body.add_vertebral_body`).

Physical groups made by :func:`add_surface_volume`: volume ``bone`` (tag :data:`BONE_TAG`)
and surface ``surface`` (tag :data:`SURFACE_TAG`, the whole boundary; split it later with
:mod:`sim.geometry.selectors`).

Meshing (measured on this 2-core machine, gmsh 4.15, remesh=True, HXT, then ``generate(3)``
and ``optimize("Netgen")`` as in :func:`mesh_surface_volume`; one 11 G needle of inner radius
1.195 mm, h_min 0.5 mm, growth 0.3)
--------------------------------------------------------------------------------------------
- ``L1_body.obj`` (6 774 triangles, some thin), h_max 2.5 mm, needle at the volume
  centroid: 21 227 tetrahedra, min SICN 0.33 (0.35 before the optimiser), gmsh 1.5 s.
  Without remeshing gmsh's default Delaunay gives min SICN 0.003 (0.01 after Netgen); HXT
  on the unremeshed surface 0.19 but 9 s.
- ``S1_Schrumpfverpacken.obj`` (whole sacrum, genus 11, 26 550 triangles), h_max 4 mm,
  needle in the left ala at (-21.4, -40.0, -13.1) mm: 31 375 tetrahedra, min SICN 0.20
  (0.09 before the optimiser), gmsh 4.3 s.

gmsh's ``createGeometry`` fails ("Wrong topology of boundary mesh for parametrization") on
the sacrum at feature angles of 40 degrees or less; :func:`add_surface_volume` then retries
with larger angles (60, 90, 180 degrees), which only changes where patch borders (feature
curves) lie.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import gmsh
import numpy as np
from mpi4py import MPI

from sim.errors import MeshError
from sim.geometry.gmsh_tools import math_field, point_distance, threshold_field, use_smallest_size
from sim.geometry.mesh_cache import key_of
from sim.geometry.partition import InjectionSites
from sim.geometry.tagged_mesh import TaggedMesh, generated
from sim.shapes.primitives import NeedleTip, largest_source_size
from sim.shapes.surface import Surface, SurfaceError, check, check_tip

log = logging.getLogger(__name__)

#: physical tag of the volume group ``bone`` (dim 3)
BONE_TAG = 1
#: physical tag of the surface group ``surface`` (dim 2): the whole boundary
SURFACE_TAG = 1

#: feature angles (degrees) tried in turn when gmsh cannot parametrise the patches
_FALLBACK_ANGLES = (60.0, 90.0, 180.0)

#: which of the cells, given their centroids (n, 3) (m), belong to a region (bool (n,))
CellTest = Callable[[np.ndarray], np.ndarray]

# --- volume meshing ---------------------------------------------------------------------------


def add_surface_volume(
    surface: Surface,
    *,
    h_max: float,
    h_min: float,
    needles: Sequence[NeedleTip] = (),
    growth: float = 0.3,
    remesh: bool = True,
    feature_angle: float = 40.0,
    refine_radii: float = 3.0,
) -> None:
    """Build the volume bounded by `surface` into the current gmsh model (rank 0 only).

    The surface must be clean (one closed, manifold, outward-oriented shell; see
    :func:`clean` and :func:`check`); the current model should hold no other mesh. Adds:

    - with `remesh` (the default), the surface reparametrised by gmsh
      (``classifySurfaces`` with `feature_angle` in degrees, split into parametrisable
      patches, then ``createGeometry``) so that ``generate`` remeshes it with the size field;
      without it the input triangles are kept as they are (the tetrahedra are then only as
      good as the triangles allow);
    - a ``geo`` volume bounded by it, synchronised;
    - physical groups: volume ``bone`` (:data:`BONE_TAG`) and surface ``surface``
      (:data:`SURFACE_TAG`, every boundary patch);
    - a background size field: ``h_min`` within ``refine_radii`` needle radii of each needle
      tip, growing by ``growth`` (size per distance) to ``h_max``; ``h_max`` elsewhere.
      Options Mesh.MeshSizeFromPoints, MeshSizeFromCurvature and MeshSizeExtendFromBoundary
      are set to 0, Mesh.MeshSizeMax to ``h_max`` and Mesh.Algorithm3D to 10 (HXT).

    Needles ``(name, tip, radius, ...)`` (m; further items, such as an entry point, are
    ignored) are not cavities here: the inflow is a source spread
    over the control volumes within the needle's inner radius (DESIGN.md §3), so the mesh is
    only refined there. ``h_min`` must be at most half of each radius, and each tip must lie
    inside the surface at least one radius from it.

    Does not mesh: the caller runs ``gmsh.model.mesh.generate(3)`` and
    ``gmsh.model.mesh.optimize("Netgen")`` (as :func:`mesh_surface_volume` and
    :func:`sim.geometry.tagged_mesh.mesh_from_gmsh` do). Raises ValueError for bad sizes or
    needles, SurfaceError for a surface that is not one closed shell or that gmsh cannot
    reparametrise.
    """
    _check_sizes(h_max, h_min, growth, feature_angle, refine_radii)
    report = check(surface, self_intersections=True)
    if report.n_components != 1:
        raise SurfaceError(
            f"the surface has {report.n_components} separate shells; only a single closed "
            "shell can be meshed"
        )
    _check_needles(needles, surface, h_min)

    if remesh:
        surfaces = _reparametrised(surface, feature_angle)
    else:
        surfaces = [_add_discrete(surface)]
    loop = gmsh.model.geo.addSurfaceLoop(surfaces)
    volume = gmsh.model.geo.addVolume([loop])
    gmsh.model.geo.synchronize()
    gmsh.model.addPhysicalGroup(3, [volume], BONE_TAG, "bone")
    gmsh.model.addPhysicalGroup(2, surfaces, SURFACE_TAG, "surface")
    _add_size_field(needles, h_max=h_max, h_min=h_min, growth=growth, reach=refine_radii)


def _check_sizes(
    h_max: float, h_min: float, growth: float, feature_angle: float, refine_radii: float
) -> None:
    checks = [
        ("h_max", h_max, h_max > 0, "> 0 m"),
        ("h_min", h_min, 0 < h_min <= h_max, f"in (0, h_max = {h_max!r}] m"),
        ("growth", growth, growth > 0, "> 0"),
        ("feature_angle", feature_angle, 0 < feature_angle <= 180, "in (0, 180] degrees"),
        ("refine_radii", refine_radii, refine_radii >= 1, ">= 1"),
    ]
    for name, value, ok, allowed in checks:
        if not (ok and math.isfinite(value)):
            raise ValueError(f"{name} = {value!r} is out of range: must be {allowed}")


def _check_needles(needles: Sequence[NeedleTip], surface: Surface, h_min: float) -> None:
    """Each needle checked: radius > 0 and at least 2 h_min, tip inside the surface at least
    one radius from it (ValueError naming the needle otherwise). Entry points are not used."""
    for needle in needles:
        name, tip, radius = needle.name, needle.centre, needle.radius
        if not radius > 0:
            raise ValueError(f"needle '{name}': radius = {radius!r} must be > 0 m")
        if h_min > largest_source_size(radius):
            raise ValueError(
                f"needle '{name}': h_min = {h_min:g} m must be at most half the needle's inner "
                f"radius ({largest_source_size(radius):g} m) so that the inflow is spread over "
                "several control volumes"
            )
        check_tip(surface, name, tip, radius)


def _add_discrete(surface: Surface) -> int:
    """A discrete gmsh surface holding the triangles; returns its tag."""
    tag = gmsh.model.addDiscreteEntity(2)
    node0 = int(gmsh.model.mesh.getMaxNodeTag())
    gmsh.model.mesh.addNodes(
        2, tag, np.arange(1, len(surface.points) + 1) + node0, surface.points.ravel()
    )
    gmsh.model.mesh.addElementsByType(tag, 2, [], (surface.triangles + 1 + node0).ravel())
    return tag


def _reparametrised(surface: Surface, feature_angle: float) -> list[int]:
    """Discrete surface classified into parametrisable patches; their surface tags."""
    angles = [feature_angle] + [a for a in _FALLBACK_ANGLES if a > feature_angle]
    errors = []
    for angle in angles:
        before = set(gmsh.model.getEntities())
        _add_discrete(surface)
        try:
            gmsh.model.mesh.classifySurfaces(math.radians(angle), True, True, math.pi)
            gmsh.model.mesh.createGeometry()
        except Exception as exc:  # gmsh raises bare Exception
            errors.append(f"{angle:g} degrees: {exc}")
            new = [e for e in gmsh.model.getEntities() if e not in before]
            gmsh.model.mesh.clear(new)
            gmsh.model.removeEntities(new, recursive=True)
            continue
        if errors:
            log.info("gmsh reparametrised the surface at a feature angle of %g degrees", angle)
        return [t for d, t in gmsh.model.getEntities(2) if (d, t) not in before]
    raise SurfaceError("gmsh cannot reparametrise the surface: " + "; ".join(errors))


def _add_size_field(
    needles: list[NeedleTip],
    *,
    h_max: float,
    h_min: float,
    growth: float,
    reach: float,
) -> None:
    """Background size (m): h_min within `reach` radii of each needle tip, growing by `growth`
    to h_max, and h_max everywhere else."""
    fields = []
    for n in needles:
        distance = math_field(point_distance(n.centre))
        fields.append(threshold_field(distance, h_min, reach * n.radius, h_max, growth))
    fields.append(math_field(f"{h_max:.12f}"))
    use_smallest_size(fields, h_max)
    # HXT: on these surfaces it gives min SICN 0.09-0.35 before the Netgen optimiser where the
    # default Delaunay gives 0.02-0.03, and it honours the size field inside a coarse input
    # triangulation (remesh=False), which Delaunay does not
    gmsh.option.setNumber("Mesh.Algorithm3D", 10)


def mesh_surface_volume(
    surface: Surface,
    comm: MPI.Comm,
    *,
    h_max: float,
    h_min: float,
    needles: Sequence[NeedleTip] = (),
    growth: float = 0.3,
    remesh: bool = True,
    name: str = "surface",
    msh_path: Path | None = None,
    regions: Mapping[str, CellTest] | None = None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """Mesh the volume bounded by `surface` on rank 0 and distribute it (collective).

    :func:`add_surface_volume`, then ``generate(3)`` and ``optimize("Netgen")``, then the
    `regions` split off (:func:`split_regions`); written to `msh_path` when given, so the
    file holds the regions as named physical groups. `surface` and `regions` are used on
    rank 0 only; the cells are distributed around `sites` when given (sim.geometry.partition).
    The TaggedMesh has the boundary ``surface``, the region ``bone`` and the `regions`; its
    ``info`` holds ``min_sicn`` (gmsh's minimum scaled Jacobian of the tetrahedra),
    ``num_cells`` and ``mesh_seconds`` (gmsh time; of the first meshing when the mesh comes
    from the mesh cache, sim.geometry.mesh_cache, whose key holds the regions' repr: a test
    without a stable one, such as a lambda, is not cached). Errors on rank 0
    (bad input, gmsh failures, an empty region) are raised as MeshError on every rank
    (SurfaceError is a MeshError).
    """

    def generate() -> dict[str, float]:
        start = time.perf_counter()
        gmsh.model.add(name)
        add_surface_volume(
            surface, h_max=h_max, h_min=h_min, needles=needles, growth=growth, remesh=remesh
        )
        gmsh.model.mesh.generate(3)
        gmsh.model.mesh.optimize("Netgen")
        tets, _ = gmsh.model.mesh.getElementsByType(4)
        if len(tets) == 0:
            raise SurfaceError("gmsh produced no tetrahedra")
        quality = gmsh.model.mesh.getElementQualities(tets, "minSICN")
        split_regions(regions or {})
        return {
            "min_sicn": float(quality.min()),
            "num_cells": float(len(tets)),
            "mesh_seconds": time.perf_counter() - start,
        }

    inputs = ("surface_volume", surface.points, surface.triangles, h_max, h_min, needles)
    ordered = list((regions or {}).items())  # the order decides overlaps
    key = key_of((*inputs, growth, remesh, ordered)) if comm.rank == 0 else None
    what = f"cannot mesh the surface '{name}'"
    return generated(generate, comm, what, msh_path, key, sites)


def split_regions(regions: Mapping[str, CellTest]) -> None:
    """Move the tetrahedra of the volume ``bone`` of the current gmsh model whose centroids
    pass a region's test into a volume (and physical group) of the region's name, in the
    order given (a cell goes to the first region that claims it; the rest stays ``bone``).
    Physical tags count up from BONE_TAG + 1. MeshError naming a region that gets no cell."""
    if not regions:
        return
    (bone,) = (int(t) for t in gmsh.model.getEntitiesForPhysicalGroup(3, BONE_TAG))
    tags, nodes = gmsh.model.mesh.getElementsByType(4, bone)
    nodes = nodes.reshape(-1, 4)
    node_tags, coords, _ = gmsh.model.mesh.getNodes(-1, -1, True, False)
    order = np.argsort(node_tags)
    xyz = coords.reshape(-1, 3)[order]
    centroids = xyz[np.searchsorted(node_tags[order], nodes)].mean(axis=1)
    free = np.ones(len(tags), dtype=bool)
    for offset, (name, test) in enumerate(regions.items(), start=1):
        take = free & np.asarray(test(centroids), dtype=bool)
        if not take.any():
            raise MeshError(f"region '{name}' holds no tetrahedron (no cell centroid in it)")
        free &= ~take
        gmsh.model.mesh.removeElements(3, bone, tags[take])
        volume = gmsh.model.addDiscreteEntity(3)
        gmsh.model.mesh.addElementsByType(volume, 4, tags[take], nodes[take].ravel())
        gmsh.model.addPhysicalGroup(3, [volume], BONE_TAG + offset, name)
    gmsh.model.mesh.reclassifyNodes()
