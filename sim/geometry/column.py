"""Square column of bone along x with a structured tetrahedral mesh (1-D verification)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dolfinx
import numpy as np
from mpi4py import MPI

from sim.geometry.tagged_mesh import TaggedMesh

if TYPE_CHECKING:
    from sim.geometry.partition import InjectionSites
    from sim.scenario.geometry import ColumnGeometry
    from sim.scenario.injection import Needle


def mesh_column(
    geometry: ColumnGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``column`` kind: its structured mesh (DOLFINx, no gmsh file), the
    face x = 0 named after the one needle; distributed by DOLFINx's graph partitioner, which
    cuts the column across its flow (`sites` unused)."""
    return column_mesh(
        comm,
        length=geometry.length,
        width=geometry.width,
        cells_along=geometry.cells_along,
        cells_across=geometry.cells_across,
        inlet_name=needles[0].name,
    )


def column_mesh(
    comm: MPI.Comm,
    *,
    length: float,
    width: float,
    cells_along: int,
    cells_across: int,
    inlet_name: str,
) -> TaggedMesh:
    """Column [0, length] x [0, width]^2 (m), each hexahedron split into six tetrahedra.

    Boundaries: `inlet_name` at x = 0, ``outlet`` at x = length, ``sides`` elsewhere.
    Region ``bone`` is the whole column.
    """
    mesh = dolfinx.mesh.create_box(
        comm,
        [np.zeros(3), np.array([length, width, width])],
        [cells_along, cells_across, cells_across],
        cell_type=dolfinx.mesh.CellType.tetrahedron,
    )
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    tol = 1e-9 * length
    inlet = dolfinx.mesh.locate_entities_boundary(mesh, tdim - 1, lambda x: x[0] < tol)
    outlet = dolfinx.mesh.locate_entities_boundary(mesh, tdim - 1, lambda x: x[0] > length - tol)
    every = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    sides = np.setdiff1d(every, np.union1d(inlet, outlet))
    facets = np.concatenate([inlet, outlet, sides]).astype(np.int32)
    values = np.concatenate(
        [np.full(len(inlet), 1), np.full(len(outlet), 2), np.full(len(sides), 3)]
    ).astype(np.int32)
    order = np.argsort(facets)
    facet_tags = dolfinx.mesh.meshtags(mesh, tdim - 1, facets[order], values[order])
    n_cells = mesh.topology.index_map(tdim).size_local
    cells = np.arange(n_cells, dtype=np.int32)
    cell_tags = dolfinx.mesh.meshtags(mesh, tdim, cells, np.ones(n_cells, dtype=np.int32))
    return TaggedMesh(
        mesh, cell_tags, facet_tags, {inlet_name: 1, "outlet": 2, "sides": 3}, {"bone": 1}
    )
