"""Fields for ParaView: every field the components list (saturation, pressure, Darcy velocity,
cement viscosity, degree of cure with cure kinetics, ...; sim.components.base.OutputField),
porosity, permeability (the mean principal value trace(K)/3, m²) and region tags (cells),
boundary tags (boundary triangles), at output times. The bone properties and the tags do not
change: they are gathered once and repeated at each time, so that ParaView shows them at
every time.

One XDMF time series (``fields.xdmf`` + ``fields.h5``) written with meshio from rank 0 after
gathering the owned vertices and cells in global numbering, so that ParaView ("Xdmf3 Reader")
and Python (``meshio.xdmf.TimeSeriesReader``) both read it. Time is in seconds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import meshio
import numpy as np

from sim.bone import mean_permeability
from sim.checkpoint import Layout, Saved

if TYPE_CHECKING:
    from sim.problem import InjectionProblem


class FieldWriter:
    """Writes the mesh with its tags once, then the fields at each `write()` (collective).

    Rank 0 keeps what it has written, so that a checkpoint can hold it (by input vertex and
    cell number) and a resumed run writes it again before going on.
    """

    def __init__(self, path: Path, problem: InjectionProblem, layout: Layout) -> None:
        self.problem = problem
        self.comm = problem.comm
        self.times: list[float] = []
        self.fields = problem.stepper.fields()
        disc = problem.disc
        imap = disc.V.dofmap.index_map
        self._global = imap.local_to_global(
            np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        )
        n_cells = disc.n_cells
        cells = self._global[disc.cell_dofs[:n_cells]]
        x = disc.x_owned
        facets, facet_values = self._boundary_triangles()
        cell_tags = np.zeros(n_cells, dtype=np.int32)
        owned = problem.tagged.cell_tags.indices < n_cells
        cell_tags[problem.tagged.cell_tags.indices[owned]] = problem.tagged.cell_tags.values[owned]
        bone = {
            "porosity": problem.medium.porosity.x.array[:n_cells],
            "permeability": mean_permeability(problem.medium.permeability[:n_cells]),
        }
        gathered = self.comm.gather(
            (
                self._global[: imap.size_local],
                x,
                cells,
                cell_tags,
                facets,
                facet_values,
                bone,
                layout.vertex_ids[: imap.size_local],
                layout.cell_ids[:n_cells],
            ),
            root=0,
        )
        self._writer = None
        self.written: list[tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        if self.comm.rank == 0:
            ids = np.concatenate([g[0] for g in gathered])
            points = np.empty((imap.size_global, 3))
            points[ids] = np.concatenate([g[1] for g in gathered])
            #: input number of each point and cell of the file
            self._point_ids = np.empty(imap.size_global, dtype=np.int64)
            self._point_ids[ids] = np.concatenate([g[7] for g in gathered])
            self._cell_ids = np.concatenate([g[8] for g in gathered])
            self._cells = np.concatenate([g[2] for g in gathered])
            self._tri = np.concatenate([g[4] for g in gathered])
            self._writer = meshio.xdmf.TimeSeriesWriter(str(path))
            with contextlib.chdir(path.parent):  # meshio opens its .h5 in the working folder
                self._writer.__enter__()
            self._writer.write_points_cells(
                points, [("tetra", self._cells), ("triangle", self._tri)]
            )
            self._region = np.concatenate([g[3] for g in gathered])
            self._boundary = np.concatenate([g[5] for g in gathered])
            self._bone = {name: np.concatenate([g[6][name] for g in gathered]) for name in bone}
            self._n_points = imap.size_global

    def _boundary_triangles(self) -> tuple[np.ndarray, np.ndarray]:
        """Owned tagged boundary facets as global vertex triples, with their tag values."""
        tags = self.problem.tagged.facet_tags
        mesh = self.problem.disc.mesh
        owned = tags.indices < mesh.topology.index_map(2).size_local
        facets, values = tags.indices[owned], tags.values[owned]
        f2v = mesh.topology.connectivity(2, 0)
        if f2v is None:
            mesh.topology.create_connectivity(2, 0)
            f2v = mesh.topology.connectivity(2, 0)
        v2d = _vertex_to_dof(self.problem)
        tri = np.array([v2d[f2v.links(f)] for f in facets], dtype=np.int64).reshape(-1, 3)
        return self._global[tri] if len(tri) else np.zeros((0, 3), np.int64), values

    def write(self) -> None:
        """Append the current state at time t (s)."""
        t = self.problem.state.t
        disc = self.problem.disc
        point_values, cell_values = {}, {}
        for field in self.fields:
            width = field.function.function_space.dofmap.index_map_bs
            if field.location == "point":
                point_values[field.name] = field.function.x.array[: width * disc.n_owned]
            else:
                values = field.function.x.array[: width * disc.n_cells]
                cell_values[field.name] = values.reshape(-1, width) if width > 1 else values
        gathered = self.comm.gather(
            (self._global[: disc.n_owned], point_values, cell_values), root=0
        )
        self.times.append(t)
        if self.comm.rank != 0:
            return
        ids = np.concatenate([g[0] for g in gathered])
        point_data = {}
        for name in point_values:
            values = np.empty(self._n_points)
            values[ids] = np.concatenate([g[1][name] for g in gathered])
            point_data[name] = values
        cells = {name: np.concatenate([g[2][name] for g in gathered]) for name in cell_values}
        self._write(t, point_data, cells)

    def _write(
        self, t: float, point_data: dict[str, np.ndarray], cells: dict[str, np.ndarray]
    ) -> None:
        """Append fields at time t (s) on rank 0: values per point and per cell of the file."""
        self.written.append((t, point_data, cells))
        n_tri = len(self._tri)
        cell_data = {}
        for name, values in cells.items():
            cell_data[name] = [values, np.zeros((n_tri, *values.shape[1:]))]
        for name, values in self._bone.items():
            cell_data[name] = [values, np.zeros(n_tri)]
        cell_data["region"] = [self._region, np.zeros(n_tri, dtype=np.int32)]
        cell_data["boundary"] = [np.zeros(len(self._region), dtype=np.int32), self._boundary]
        self._writer.write_data(t, point_data=point_data, cell_data=cell_data)

    def checkpoint(self) -> Saved:
        """The times written (s) and, on rank 0, every field written, by input vertex or cell
        number (arrays of the global kind: rank 0's are stored)."""
        saved: Saved = {"times": self.times}
        if self.comm.rank != 0:
            return saved
        for kind, index, ids in (("point", 1, self._point_ids), ("cell", 2, self._cell_ids)):
            for name in self.written[0][index] if self.written else {}:
                stacked = np.array([w[index][name] for w in self.written])
                values = np.full((len(self.written), ids.max() + 1, *stacked.shape[2:]), np.nan)
                values[:, ids] = stacked
                saved[f"{kind}:{name}"] = values
        return saved

    def restore(self, saved: Saved) -> None:
        """Write again the fields of a `checkpoint()` (collective)."""
        self.times = list(saved["times"])
        if self.comm.rank != 0:
            return
        for k, t in enumerate(self.times):
            point_data, cells = {}, {}
            for key, values in saved.items():
                kind, _, name = key.partition(":")
                if kind == "point":
                    point_data[name] = values[k][self._point_ids]
                elif kind == "cell":
                    cells[name] = values[k][self._cell_ids]
            self._write(t, point_data, cells)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
            self._writer = None


def _vertex_to_dof(problem: InjectionProblem) -> np.ndarray:
    """Map local mesh vertices to local P1 dofs."""
    mesh = problem.disc.mesh
    n_vertices = mesh.topology.index_map(0).size_local + mesh.topology.index_map(0).num_ghosts
    c2v = mesh.topology.connectivity(3, 0)
    out = np.empty(n_vertices, dtype=np.int64)
    n_all = len(problem.disc.cell_dofs)
    out[c2v.array.reshape(n_all, 4)] = problem.disc.cell_dofs
    return out


__all__ = ["FieldWriter"]
