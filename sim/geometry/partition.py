"""How the cells are distributed over the MPI ranks: in shells around the injection sites.

Under MPI the transport's ordered sweeps (sim.flow.ordered_transport) solve each rank's
vertices in flow order with the neighbours' last values and exchange them after every sweep,
so a step takes as many sweeps as the flow through the moving cement crosses the ranks'
boundaries back and forth. DOLFINx's graph partitioner draws the smallest boundaries, which on
the cube of benchmarks/two_phase_benchmark.py run through the inlet, along the flow: 7.5
sweeps a step over the first 5 s and 12.7 over 100 s on 2 ranks (`front_courant: 8`). Here
the cells are ordered by the distance of their centroid from the nearest injection site and
cut into consecutive parts of equal size, rank 0 nearest the needles: the flow crosses each
boundary outwards, and a step takes one sweep while the cement has not reached rank 1 (the
first 5 s of the cube, on 2, 4 or 8 ranks), 2.1 over the cube's 100 s on 2 ranks. The price:
a shell's boundary is longer than the graph cut (2.75 times the ghost vertices on the default
scenario at 0.75 mm), and the pressure solve takes 3-8 % longer at the same CG iterations;
`numerics.partition: graph` keeps DOLFINx's partition (for many ranks, where thin shells
would cross the front often).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dolfinx
import gmsh
import numpy as np
from dolfinx.io import gmsh as gmshio
from mpi4py import MPI

from sim.errors import MeshError

if TYPE_CHECKING:
    from sim.scenario.injection import Needle

#: DOLFINx's cell partitioner: (comm, parts, cell types, cells as input vertex numbers) ->
#: the destination rank of each cell
Partitioner = Callable[[MPI.Comm, int, list, list], Any]


@dataclass(frozen=True, eq=False)
class InjectionSites:
    """Where the cement enters: needle tips (m, project frame) and the boundaries that needles
    without a tip inject through (their names); `to_project` maps the gmsh model's coordinates
    into the project frame (4 x 4 affine; a mesh file's unit and frame)."""

    tips: tuple[tuple[float, float, float], ...]
    boundaries: tuple[str, ...]
    to_project: np.ndarray = field(default_factory=lambda: np.eye(4))

    @classmethod
    def of(cls, needles: Sequence[Needle]) -> InjectionSites:
        tips = tuple(tuple(float(c) for c in n.tip) for n in needles if n.tip is not None)
        return cls(tips, tuple(n.name for n in needles if n.tip is None))

    def moved(self, to_project: np.ndarray) -> InjectionSites:
        """The same sites for a gmsh model whose coordinates `to_project` maps."""
        return InjectionSites(self.tips, self.boundaries, np.asarray(to_project, dtype=float))

    def centres(self) -> np.ndarray:
        """The sites (k, 3) in the project frame: the tips, and the centroid of each named
        boundary's nodes in the current gmsh model (rank 0, which holds the model)."""
        centres = [np.asarray(self.tips, dtype=float).reshape(-1, 3)]
        for dim, tag in gmsh.model.getPhysicalGroups(2):
            if gmsh.model.getPhysicalName(dim, tag) in self.boundaries:
                _, x = gmsh.model.mesh.getNodesForPhysicalGroup(dim, tag)
                centres.append(self.project(x.reshape(-1, 3)).mean(axis=0, keepdims=True))
        return np.concatenate(centres)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Points (n, 3) of the gmsh model in the project frame."""
        return x @ self.to_project[:3, :3].T + self.to_project[:3, 3]


def around(sites: InjectionSites, comm: MPI.Comm) -> Partitioner | None:
    """The partitioner of the current gmsh model (held by rank 0; collective): shells around
    the sites; None (DOLFINx's graph partitioner) if the model has none of them. An error on
    rank 0 is raised as MeshError on every rank."""
    nodes, centres, error = np.empty((0, 3)), None, None
    if comm.rank == 0:
        try:
            centres = sites.centres()
            nodes = sites.project(gmshio.extract_geometry(gmsh.model))
        except Exception as exc:  # gmsh raises bare Exception, extract_geometry asserts
            error = f"cannot place the injection sites in the mesh: {exc!r}"
    centres, error = comm.bcast((centres, error), root=0)
    if error is not None:
        raise MeshError(error)
    return shells(nodes, centres) if len(centres) else None


def shells(nodes: np.ndarray, centres: np.ndarray) -> Partitioner:
    """Cells ordered by the distance of their centroid to the nearest of `centres` (k, 3),
    cut into consecutive equal parts (ties in the order of the input). `nodes`: the input
    vertices' coordinates, row k the vertex numbered k in the cells DOLFINx passes."""

    def partition(comm: MPI.Comm, parts: int, cell_types: list, cells: list) -> Any:
        centroids = [np.empty((0, 3))]  # cells of every type, in the order given
        for cell_type, vertices in zip(cell_types, cells, strict=True):
            per_cell = dolfinx.cpp.mesh.cell_num_vertices(cell_type)
            centroids.append(nodes[np.asarray(vertices).reshape(-1, per_cell)].mean(axis=1))
        centroid = np.concatenate(centroids)
        distance = np.full(len(centroid), np.inf)
        for centre in centres:
            np.minimum(distance, np.linalg.norm(centroid - centre, axis=1), out=distance)
        destination = np.empty(len(centroid), dtype=np.int32)
        order = np.argsort(distance, kind="stable")
        destination[order] = np.arange(len(centroid)) * parts // max(len(centroid), 1)
        adjacency = dolfinx.graph.adjacencylist(destination)
        return getattr(adjacency, "_cpp_object", adjacency)

    return partition
