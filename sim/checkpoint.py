"""Checkpoints: everything that evolves during a run, in one HDF5 file, so that the run can
go on later (`cementsim run --resume`) on the same or another number of MPI ranks.

The parts of a run (the state, the stepper, the injector, each component, the outputs) give
their evolving state as a flat dict (`Saved`): JSON values (numbers, strings, None, lists,
dicts), NumPy arrays that are the same on every rank, and `VertexValues` / `CellValues`,
arrays over the owned P1 vertices / owned cells of this rank. Those are gathered to rank 0
and stored by the mesh's input node and input cell numbers (`mesh.geometry.
input_global_indices`, `mesh.topology.original_cell_index`), which do not depend on the
partition; on restore every rank reads them and picks its owned and ghost entries. Floats
are stored exactly (float64, JSON with repr), so a resumed run continues bit for bit on the
same number of ranks.

The file (``<parent>/<name>.checkpoint.h5`` beside the results folder) also holds the hash
and the resolved scenario of the run, and the coordinates of the mesh vertices: a resume
with another scenario, or on a mesh that was not rebuilt identically, is refused
(`CheckpointError`, invalid input). Rank 0 writes it to a temporary name, syncs and renames
it, so the file is always a complete checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dolfinx
import h5py
import numpy as np
from mpi4py import MPI

from sim.errors import InputError

if TYPE_CHECKING:
    from sim.discretisation import Discretisation

#: version of the file layout (2: the transport's iteration counters renamed, stop 23; 3: the
#: stepper's time-error estimate and its counter, stop 24)
FORMAT = 3


class CheckpointError(InputError):
    """A run cannot resume: no checkpoint, or one of another scenario or mesh."""


@dataclass(frozen=True)
class VertexValues:
    """Values per owned P1 vertex of this rank (first axis); restored as values per local
    vertex, owned and ghost."""

    values: np.ndarray


@dataclass(frozen=True)
class CellValues:
    """Values per owned cell of this rank (first axis); restored as values per local cell,
    owned and ghost."""

    values: np.ndarray


#: the evolving state of one part of a run: JSON values, global arrays, vertex/cell values
Saved = dict[str, Any]


class Layout:
    """The input node number of every local P1 vertex and the input cell number of every
    local cell (owned first, then ghosts): the keys under which checkpoints store them."""

    def __init__(self, disc: Discretisation) -> None:
        mesh = disc.mesh
        self.disc = disc
        self.comm = disc.comm
        self.vertex_ids = np.empty(disc.n_local, dtype=np.int64)
        #: of a refined mesh, the sorted vertex numbers of each local cell: DOLFINx refines
        #: a few cells otherwise on another partition (where Plaza's longest edge ties), and
        #: a checkpoint of such a mesh must not resume there
        self.cell_vertices: np.ndarray | None = None
        if disc.tagged.refinements:
            self.vertex_ids, self.cell_ids, self.cell_vertices = _ids_by_position(disc)
        else:
            nodes = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
            # P1 on affine tetrahedra: the cell's dofs and geometry nodes share the vertex order
            self.vertex_ids[disc.cell_dofs] = nodes[mesh.geometry.dofmaps[0]]
            n_cells = len(disc.cell_dofs)
            self.cell_ids = np.asarray(mesh.topology.original_cell_index, dtype=np.int64)[:n_cells]
        self.n_vertex_ids = self._count(self.vertex_ids)
        self.n_cell_ids = self._count(self.cell_ids)

    def _count(self, ids: np.ndarray) -> int:
        return int(self.comm.allreduce(int(ids.max(initial=-1)), op=MPI.MAX)) + 1

    def gather(self, saved: VertexValues | CellValues) -> np.ndarray | None:
        """The owned values of every rank by input number on rank 0 (NaN where no vertex or
        cell has that number), None elsewhere (collective)."""
        vertex = isinstance(saved, VertexValues)
        n = self.disc.n_owned if vertex else self.disc.n_cells
        ids = (self.vertex_ids if vertex else self.cell_ids)[:n]
        values = np.asarray(saved.values, dtype=np.float64)
        parts = self.comm.gather((ids, values[:n]), root=0)
        if parts is None:
            return None
        size = self.n_vertex_ids if vertex else self.n_cell_ids
        out = np.full((size, *values.shape[1:]), np.nan)
        for part_ids, part_values in parts:
            out[part_ids] = part_values
        return out

    def pick(self, stored: np.ndarray, vertex: bool) -> np.ndarray:
        """This rank's local entries (owned and ghost) of values stored by input number."""
        return stored[self.vertex_ids if vertex else self.cell_ids]


def _ids_by_position(disc: Discretisation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of the local vertices and cells that do not depend on the partition, for a
    mesh refined in parallel (whose input numbers do): the vertices in the lexicographic order
    of their coordinates (bitwise the same on any partition, each new vertex being the
    midpoint of the same two), the cells in that of their sorted vertex numbers; and those
    sorted vertex numbers of every local cell (collective)."""
    mesh, n = disc.mesh, disc.n_owned
    x = np.empty((disc.n_local, 3))
    x[disc.cell_dofs] = mesh.geometry.x[mesh.geometry.dofmaps[0]]
    vertex = _exchanged(_ranked(x[:n], disc.comm), disc.V.dofmap.index_map)
    cells = mesh.topology.index_map(3)
    corners = np.sort(vertex[disc.cell_dofs], axis=1)  # local cells: owned, then ghosts
    cell = _exchanged(_ranked(corners[: cells.size_local], disc.comm), cells)
    return vertex.astype(np.int64), cell.astype(np.int64), corners.astype(np.int64)


def _ranked(keys: np.ndarray, comm: MPI.Comm) -> np.ndarray:
    """The position of each row of `keys` (the owned rows of every rank) in the lexicographic
    order of all of them, as float64 (collective)."""
    parts = comm.gather(keys, root=0)
    chunks = None
    if parts is not None:
        everything = np.concatenate(parts)
        order = np.lexsort(everything.T[::-1])
        position = np.empty(len(order))
        position[order] = np.arange(len(order))
        chunks = np.split(position, np.cumsum([len(p) for p in parts])[:-1])
    return np.asarray(comm.scatter(chunks, root=0))


def _jsonable(saved: Saved) -> dict[str, Any]:
    return {
        k: v for k, v in saved.items() if not isinstance(v, VertexValues | CellValues | np.ndarray)
    }


def write_checkpoint(
    path: Path, parts: dict[str, Saved], layout: Layout, meta: dict[str, Any]
) -> None:
    """Write the parts of a run to `path` (collective; rank 0 writes, atomically)."""
    gathered: dict[str, dict[str, tuple[str, np.ndarray | None]]] = {}
    for name, saved in parts.items():
        gathered[name] = {}
        for key, value in saved.items():
            if isinstance(value, VertexValues | CellValues):
                kind = "vertex" if isinstance(value, VertexValues) else "cell"
                gathered[name][key] = (kind, layout.gather(value))
            elif isinstance(value, np.ndarray):
                gathered[name][key] = ("global", value)
    x = layout.gather(VertexValues(layout.disc.x_owned))
    cell_vertices = None
    if layout.cell_vertices is not None:
        cell_vertices = layout.gather(CellValues(layout.cell_vertices.astype(np.float64)))
    if layout.comm.rank != 0:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["format"] = FORMAT
            h5.attrs["meta"] = json.dumps(meta)
            h5.create_dataset("mesh/x", data=x)
            if cell_vertices is not None:
                h5.create_dataset("mesh/cell_vertices", data=cell_vertices)
            for name, saved in parts.items():
                group = h5.create_group(f"parts/{name}")
                group.attrs["values"] = json.dumps(_jsonable(saved))
                for key, (kind, data) in gathered[name].items():
                    dataset = group.create_dataset(key, data=data)
                    dataset.attrs["kind"] = kind
            h5.flush()
            os.fsync(h5.id.get_vfd_handle())
        os.replace(tmp, path)
    finally:  # a failed write (a full disk) leaves no partial file
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def local_copy(parts: dict[str, Saved], disc: Discretisation) -> dict[str, Saved]:
    """A copy of `parts` (from a `checkpoint()`) in the form `read_checkpoint` gives back, for
    a `restore()` later in the same run: vertex and cell values as this rank's local entries,
    owned then ghosts (exchanged with the neighbouring ranks; collective), the rest copied."""
    cell_map = disc.mesh.topology.index_map(3)
    out: dict[str, Saved] = {}
    for name, saved in parts.items():
        out[name] = {}
        for key, value in saved.items():
            if isinstance(value, VertexValues):
                out[name][key] = _exchanged(value.values, disc.V.dofmap.index_map)
            elif isinstance(value, CellValues):
                out[name][key] = _exchanged(value.values, cell_map)
            else:
                out[name][key] = copy.deepcopy(value)
    return out


def _exchanged(values: np.ndarray, index_map: dolfinx.common.IndexMap) -> np.ndarray:
    """Owned values (first axis) extended to the ghosts of `index_map`."""
    trailing = values.shape[1:]
    block = int(np.prod(trailing))
    vector = dolfinx.la.vector(index_map, block)
    n = index_map.size_local
    vector.array[: n * block] = np.asarray(values[:n], dtype=np.float64).ravel()
    vector.scatter_forward()
    return vector.array.reshape(-1, *trailing).copy()


def read_meta(path: Path) -> dict[str, Any]:
    """The run description stored with a checkpoint (scenario hash and resolved scenario,
    time, steps, ranks, the cementsim version that wrote it); CheckpointError if there is none
    or it cannot be read."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from: {path} does not exist")
    try:
        with h5py.File(path, "r") as h5:
            if int(h5.attrs["format"]) != FORMAT:
                raise CheckpointError(
                    f"{path}: checkpoint format {h5.attrs['format']}, this version reads "
                    f"{FORMAT}; start the run again without --resume"
                )
            return dict(json.loads(h5.attrs["meta"]))
    except (OSError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc


def read_checkpoint(path: Path, layout: Layout) -> dict[str, Saved]:
    """The parts of a run from `path`, vertex and cell values as this rank's local entries
    (every rank reads). CheckpointError if the mesh is not the one checkpointed."""
    with h5py.File(path, "r") as h5:
        stored = h5["mesh/x"][...]
        x = layout.pick(stored, vertex=True) if len(stored) == layout.n_vertex_ids else None
        # the vertex coordinates as tabulated differ in the last bit between partitions
        extent = float(np.nanmax(np.abs(stored))) if len(stored) else 0.0
        mismatch = x is None or not np.allclose(
            x, layout.disc.V.tabulate_dof_coordinates(), rtol=0.0, atol=1e-12 * extent
        )
        cells_differ = False
        if layout.cell_vertices is not None:  # a refined mesh: its cells too
            corners = h5["mesh/cell_vertices"][...] if "mesh/cell_vertices" in h5 else None
            cells_differ = (
                corners is None
                or len(corners) != layout.n_cell_ids
                or not np.array_equal(layout.pick(corners, vertex=False), layout.cell_vertices)
            )
        ranks = json.loads(h5.attrs["meta"]).get("ranks")
        sizes = {"vertex": layout.n_vertex_ids, "cell": layout.n_cell_ids}
        mismatch |= any(  # values of more or fewer entities than this mesh has
            len(dataset) != sizes[dataset.attrs["kind"]]
            for group in h5["parts"].values()
            for dataset in group.values()
            if dataset.attrs["kind"] != "global"
        )
        mismatch = layout.comm.allreduce(mismatch, op=MPI.LOR)
        if not mismatch and layout.comm.allreduce(cells_differ, op=MPI.LOR):
            raise CheckpointError(
                f"{path}: the refined mesh differs from the checkpointed run's in some cells "
                "(DOLFINx refines a few cells otherwise on another number of ranks, where their "
                f"longest edges tie); resume on {ranks} rank(s), or start the run again "
                "without --resume"
            )
        if mismatch:
            raise CheckpointError(
                f"{path}: the mesh differs from the checkpointed run's (was it built with "
                "another gmsh version?); start the run again without --resume"
            )
        parts: dict[str, Saved] = {}
        for name, group in h5["parts"].items():
            saved: Saved = json.loads(group.attrs["values"])
            for key, dataset in group.items():
                data = dataset[...]
                kind = dataset.attrs["kind"]
                saved[key] = data if kind == "global" else layout.pick(data, kind == "vertex")
            parts[name] = saved
    return parts


def scenario_changes(
    before: dict[str, Any], after: dict[str, Any], prefix: str = "", added: list[str] | None = None
) -> list[str]:
    """Dotted names of the values that differ between two resolved scenarios (JSON); those
    `before` does not hold at all (settings of a later version) also go into `added`."""
    changes = []
    for key in sorted(set(before) | set(after), key=str):
        a, b = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += scenario_changes(a, b, name + ".", added)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if isinstance(x, dict) and isinstance(y, dict):
                    changes += scenario_changes(x, y, f"{name}.{i}.", added)
                elif x != y:
                    changes.append(f"{name}.{i}")
        elif a != b:
            changes.append(name)
            if key not in before and added is not None:
                added.append(name)
    return changes
