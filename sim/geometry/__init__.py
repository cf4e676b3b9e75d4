"""Geometry: generated (gmsh) and imported tetrahedral meshes with named tags."""

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
    VertebralBodyGeometry,
)
from sim.units import LENGTH, to_si

__all__ = ["MeshError", "TaggedMesh", "build_mesh"]


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
            needles=[
                (n.name, np.asarray(n.tip), n.inner_radius)
                + ((np.asarray(n.entry),) if n.entry is not None else ())
                for n in needles
            ],
            h_tip=geo.mesh.size_tip,
            h_max=geo.mesh.size_max,
            growth=geo.mesh.growth,
            h_outlet=geo.mesh.size_outlet,
            **geo.features(),
        )
        tagged = mesh_from_gmsh(build, comm, scenario.name, msh_path)
    elif isinstance(geo, MeshFileGeometry):
        tagged = read_msh(geo.path, comm)
        tagged.scale(to_si(f"1 {geo.length_unit}", LENGTH))
    else:  # pragma: no cover - the scenario schema admits no other kind
        raise MeshError(f"unknown geometry kind {geo.kind!r}")
    tagged.check_names(scenario.referenced_boundaries(), scenario.referenced_regions())
    cavities = {n.name for n in needles if n.tip is None or not isinstance(geo, MeshFileGeometry)}
    tagged.check_names(cavities, ())  # generated geometries always mesh a cavity per needle
    return tagged
