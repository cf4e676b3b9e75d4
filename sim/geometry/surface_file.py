"""The ``surface_file`` geometry kind: a bone surface read, checked and filled with tetrahedra
(sim.geometry.surface_import), its boundaries and regions named by the scenario's selectors
(sim.geometry.selectors)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from sim.geometry.selectors import tag_mesh
from sim.geometry.surface_import import import_surface, mesh_surface_volume, plausible_unit
from sim.geometry.tagged_mesh import MeshError, TaggedMesh
from sim.units import metres_per

if TYPE_CHECKING:
    from sim.scenario.geometry import SurfaceFileGeometry
    from sim.scenario.injection import Needle


def mesh_surface_file(
    geometry: SurfaceFileGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
) -> TaggedMesh:
    """The builder of the ``surface_file`` kind: read and check the surface (every rank:
    errors are raised everywhere), mesh it on rank 0 refined around the needle tips, then name
    boundaries and regions by the selectors; written to `msh_path` when given."""
    surface, report = import_surface(geometry.path, metres_per(geometry.length_unit))
    message = plausible_unit(report)
    if message is not None:
        raise MeshError(f"geometry.length_unit: {message}")
    tips = [(n.name, np.asarray(n.tip), n.inner_radius) for n in needles]
    tagged = mesh_surface_volume(
        surface,
        comm,
        h_max=geometry.mesh.size_max,
        h_min=geometry.mesh.size_tip,
        needles=tips,
        growth=geometry.mesh.growth,
        name=name,
        msh_path=msh_path,
    )
    return tag_mesh(
        tagged,
        facets={tag: spec.build() for tag, spec in geometry.boundaries.items()},
        cells={tag: spec.build() for tag, spec in geometry.regions.items()},
    )
