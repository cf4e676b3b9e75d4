"""Point evaluation of a finite-element function, gathered over all ranks."""

from __future__ import annotations

import dolfinx.geometry
import numpy as np
from dolfinx import fem
from mpi4py import MPI


class Probe:
    """Evaluates functions on one mesh at fixed points (m); NaN where a point is outside."""

    def __init__(self, mesh: dolfinx.mesh.Mesh, points: np.ndarray) -> None:
        self.comm = mesh.comm
        self.n_points = len(points)
        tree = dolfinx.geometry.bb_tree(mesh, 3)
        candidates = dolfinx.geometry.compute_collisions_points(tree, points)
        colliding = dolfinx.geometry.compute_colliding_cells(mesh, candidates, points)
        n_owned_cells = mesh.topology.index_map(3).size_local
        point_of_link = np.repeat(np.arange(len(points)), np.diff(colliding.offsets))
        owned = colliding.array < n_owned_cells
        # first owned cell of each point that has one
        self._index, first = np.unique(point_of_link[owned], return_index=True)
        self._cells = colliding.array[owned][first].astype(np.int32)
        self._points = points[self._index]
        # a point on a partition boundary may be found by two ranks: the lowest rank keeps it
        owner = np.full(len(points), self.comm.size, dtype=np.int32)
        owner[self._index] = self.comm.rank
        self.comm.Allreduce(MPI.IN_PLACE, owner, op=MPI.MIN)
        keep = owner[self._index] == self.comm.rank
        self._index, self._cells, self._points = (
            self._index[keep],
            self._cells[keep],
            self._points[keep],
        )

    def __call__(self, u: fem.Function) -> np.ndarray:
        """Values of scalar `u` at the points, on every rank (NaN outside the mesh)."""
        local = np.zeros(self.n_points)
        if len(self._index):
            local[self._index] = u.eval(self._points, self._cells).ravel()
        mask = np.zeros(self.n_points)
        mask[self._index] = 1.0
        self.comm.Allreduce(MPI.IN_PLACE, local, op=MPI.SUM)
        self.comm.Allreduce(MPI.IN_PLACE, mask, op=MPI.SUM)
        values, hits = local, mask
        return np.where(hits > 0, values, np.nan)
