"""The mesh of a scenario: generated (gmsh), read from a .msh file, or from a bone surface."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from mpi4py import MPI

from sim.geometry.tagged_mesh import MeshError, TaggedMesh, mesh_from_gmsh, read_msh
from sim.scenario import Scenario
from sim.scenario.geometry import (
    BallGeometry,
    ColumnGeometry,
    MeshFileGeometry,
    SacrumGeometry,
    SurfaceFileGeometry,
    VertebralBodyGeometry,
    needle_specs,
)
from sim.units import metres_per


def build_mesh(scenario: Scenario, comm: MPI.Comm, msh_path: Path | None = None) -> TaggedMesh:
    """The tagged mesh of a scenario, checked to hold every tag the scenario names.

    Generated meshes are also written to `msh_path` (gmsh format) when it is given.
    """
    geo = scenario.geometry
    needles = scenario.injection.needles
    if isinstance(geo, ColumnGeometry):
        from sim.geometry.column import column_mesh

        tagged = column_mesh(
            comm,
            length=geo.length,
            width=geo.width,
            cells_along=geo.cells_along,
            cells_across=geo.cells_across,
            inlet_name=needles[0].name,
        )
    elif isinstance(geo, BallGeometry):
        from sim.geometry.ball import add_ball

        build = partial(
            add_ball,
            radius=geo.radius,
            inlet_radius=needles[0].inner_radius,
            inlet_name=needles[0].name,
            h_tip=geo.mesh.size_tip,
            h_max=geo.mesh.size_max,
            growth=geo.mesh.growth,
        )
        tagged = mesh_from_gmsh(build, comm, scenario.name, msh_path)
    elif isinstance(geo, VertebralBodyGeometry):
        from sim.geometry.vertebral_body import add_vertebral_body

        build = partial(
            add_vertebral_body,
            depth=geo.depth,
            width=geo.width,
            height=geo.height,
            posterior_flat=geo.posterior_flat,
            foramen_radius=geo.foramen_radius,
            foramen_height=geo.foramen_height,
            vein_radius=geo.vein_radius,
            vein_x=geo.vein_x,
            target_fraction=geo.target_fraction,
            needles=needle_specs(needles),
            **geo.mesh.builder_sizes(),
            **geo.features(),
        )
        tagged = mesh_from_gmsh(build, comm, scenario.name, msh_path)
    elif isinstance(geo, SacrumGeometry):
        from sim.geometry.sacrum import add_sacrum

        build = partial(add_sacrum, needles=needle_specs(needles), **geo.builder_kwargs())
        tagged = mesh_from_gmsh(build, comm, scenario.name, msh_path)
    elif isinstance(geo, MeshFileGeometry):
        tagged = read_msh(geo.path, comm)
        tagged.scale(metres_per(geo.length_unit))
    elif isinstance(geo, SurfaceFileGeometry):
        tagged = _surface_mesh(geo, scenario, comm, msh_path)
    else:  # pragma: no cover - the scenario schema admits no other kind
        raise MeshError(f"unknown geometry kind {geo.kind!r}")
    tagged.check_names(scenario.referenced_boundaries(), scenario.referenced_regions())
    imported = (MeshFileGeometry, SurfaceFileGeometry)
    cavities = {n.name for n in needles if n.tip is None or not isinstance(geo, imported)}
    tagged.check_names(cavities, ())  # generated geometries always mesh a cavity per needle
    return tagged


def _surface_mesh(
    geo: SurfaceFileGeometry, scenario: Scenario, comm: MPI.Comm, msh_path: Path | None
) -> TaggedMesh:
    """Read and check the surface (every rank: errors are raised everywhere), mesh it on rank
    0, then name boundaries and regions by the scenario's selectors."""
    from sim.geometry.selectors import tag_mesh
    from sim.geometry.surface_import import import_surface, mesh_surface_volume, plausible_unit

    surface, report = import_surface(geo.path, metres_per(geo.length_unit))
    message = plausible_unit(report)
    if message is not None:
        raise MeshError(f"geometry.length_unit: {message}")
    needles = [(n.name, np.asarray(n.tip), n.inner_radius) for n in scenario.injection.needles]
    tagged = mesh_surface_volume(
        surface,
        comm,
        h_max=geo.mesh.size_max,
        h_min=geo.mesh.size_tip,
        needles=needles,
        growth=geo.mesh.growth,
        name=scenario.name,
        msh_path=msh_path,
    )
    return tag_mesh(
        tagged,
        facets={name: spec.build() for name, spec in geo.boundaries.items()},
        cells={name: spec.build() for name, spec in geo.regions.items()},
    )
