"""A distributed tetrahedral mesh with named boundary and region tags, and its quality."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import dolfinx
import gmsh
import numpy as np
from dolfinx.io import gmsh as gmshio
from mpi4py import MPI
from scipy.spatial import cKDTree

from sim.errors import MeshError
from sim.geometry.gmsh_tools import in_child, interruptible
from sim.geometry.mesh_cache import entry, info_of, key_of, store
from sim.geometry.partition import InjectionSites, around
from sim.shapes.orientation import frame_warnings
from sim.shapes.surface import Surface
from sim.units import metres_per

if TYPE_CHECKING:
    from sim.scenario.geometry import MeshFileGeometry
    from sim.scenario.injection import Needle

log = logging.getLogger(__name__)


@dataclass
class TaggedMesh:
    """Mesh (coordinates in m) with facet tags for boundaries and cell tags for regions.

    boundaries / regions map a tag name to its integer value in `facet_tags` / `cell_tags`.
    """

    mesh: dolfinx.mesh.Mesh
    cell_tags: dolfinx.mesh.MeshTags
    facet_tags: dolfinx.mesh.MeshTags
    boundaries: dict[str, int]
    regions: dict[str, int]
    info: dict[str, float] = field(default_factory=dict)
    #: uniform refinements since the mesh was built (sim.checkpoint numbers the vertices and
    #: cells of a refined mesh by position: its input numbers depend on the partition)
    refinements: int = 0

    @property
    def comm(self) -> MPI.Comm:
        return self.mesh.comm

    def facets(self, name: str) -> np.ndarray:
        """Local indices of the facets of boundary `name`."""
        return self.facet_tags.find(self.boundaries[name])

    def cells(self, name: str) -> np.ndarray:
        """Local indices of the cells of region `name`."""
        return self.cell_tags.find(self.regions[name])

    def volume(self, region: str | None = None) -> float:
        """The volume (m³) of region `region`, or of the whole mesh (collective)."""
        n = self.mesh.topology.index_map(3).size_local
        cells = np.arange(n, dtype=np.int32) if region is None else self.cells(region)
        cells = cells[cells < n]
        nodes = dolfinx.mesh.entities_to_geometry(self.mesh, 3, cells)
        x = self.mesh.geometry.x[nodes][:, :4]
        local = float(np.abs(np.linalg.det(x[:, 1:] - x[:, :1])).sum() / 6.0)
        return float(self.comm.allreduce(local, op=MPI.SUM))

    def num_cells_global(self) -> int:
        return self.mesh.topology.index_map(3).size_global

    def check_names(self, boundaries: Iterable[str], regions: Iterable[str]) -> None:
        """MeshError unless every named boundary and region exists and is not empty."""
        problems = []
        for kind, names, known, find in (
            ("boundary", boundaries, self.boundaries, self.facets),
            ("region", regions, self.regions, self.cells),
        ):
            for name in sorted(set(names)):
                count = len(find(name)) if name in known else 0
                if self.comm.allreduce(count, op=MPI.SUM) == 0:
                    problems.append(
                        f"the mesh has no {kind} '{name}' (it has: {', '.join(sorted(known))})"
                    )
        if problems:
            raise MeshError("; ".join(problems))

    def scale(self, factor: float) -> None:
        """Multiply all coordinates by `factor` (e.g. 1e-3 for a mesh written in mm)."""
        self.mesh.geometry.x[:] *= factor

    def move(self, affine: np.ndarray) -> None:
        """Map all coordinates (m) by the 4 x 4 `affine` (into the project frame)."""
        if not np.array_equal(affine, np.eye(4)):
            x = self.mesh.geometry.x
            x[:] = x @ affine[:3, :3].T + affine[:3, 3]

    def cell_quality(self) -> np.ndarray:
        """Radius ratio 3 r_in / r_circ of each owned cell (1 for a regular tetrahedron)."""
        tdim = 3
        n = self.mesh.topology.index_map(tdim).size_local
        nodes = dolfinx.mesh.entities_to_geometry(self.mesh, tdim, np.arange(n, dtype=np.int32))
        x = self.mesh.geometry.x[nodes]
        return radius_ratio(x)


def radius_ratio(x: np.ndarray) -> np.ndarray:
    """Radius ratio 3 r_in / r_circ of tetrahedra with vertex coordinates x (n, 4, 3)."""
    e1, e2, e3 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]
    vol6 = np.abs(np.einsum("ij,ij->i", e1, np.cross(e2, e3)))
    faces = ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3))
    area = sum(
        0.5 * np.linalg.norm(np.cross(x[:, b] - x[:, a], x[:, c] - x[:, a]), axis=1)
        for a, b, c in faces
    )
    r_in = 0.5 * vol6 / area
    # circumradius: |a^2 (b x c) + b^2 (c x a) + c^2 (a x b)| / (2 * 6V)
    a2, b2, c2 = (np.einsum("ij,ij->i", e, e)[:, None] for e in (e1, e2, e3))
    num = a2 * np.cross(e2, e3) + b2 * np.cross(e3, e1) + c2 * np.cross(e1, e2)
    r_circ = np.linalg.norm(num, axis=1) / (2.0 * vol6)
    return 3.0 * r_in / r_circ


def refined(tagged: TaggedMesh, levels: int) -> TaggedMesh:
    """`tagged` refined uniformly `levels` times (each tetrahedron split into 8 at its edge
    midpoints; every rank refines its own cells, so the partition is kept), with its cell and
    facet tags carried over to the children, ghosts included (collective)."""
    for _ in range(levels):
        coarse = tagged.mesh
        coarse.topology.create_entities(1)
        fine, parent_cell, _ = dolfinx.mesh.refine(
            coarse, option=dolfinx.mesh.RefinementOption.parent_cell
        )
        tagged = replace(
            tagged,
            mesh=fine,
            cell_tags=_cell_tags_on(fine, parent_cell, tagged),
            facet_tags=_facet_tags_on(fine, tagged),
            refinements=tagged.refinements + 1,
        )
    return tagged


def _cell_tags_on(
    fine: dolfinx.mesh.Mesh, parent_cell: np.ndarray, tagged: TaggedMesh
) -> dolfinx.mesh.MeshTags:
    """The region tags of `tagged` on `fine`, its refinement: each cell takes its parent's
    tag, its ghost cells from their owners. `parent_cell` lists the local parent of each
    child in the order the children were made, before DOLFINx reordered them (their
    `original_cell_index`). Not `dolfinx.mesh.transfer_meshtag`: on a refined mesh with ghost
    cells (as DOLFINx 0.11 makes it on several ranks) it reads past `parent_cell` and
    corrupted the heap. MeshError if a child does not lie in the parent found for it."""
    cells = fine.topology.index_map(3)
    n = cells.size_local
    made = np.asarray(fine.topology.original_cell_index[:n], dtype=np.int64) - cells.local_range[0]
    parents = np.asarray(parent_cell, dtype=np.int32)[made]
    coarse = tagged.mesh
    child = fine.geometry.x[
        dolfinx.mesh.entities_to_geometry(fine, 3, np.arange(n, dtype=np.int32))
    ]
    parent = coarse.geometry.x[dolfinx.mesh.entities_to_geometry(coarse, 3, parents)]
    edges = (parent[:, 1:] - parent[:, :1]).transpose(0, 2, 1)
    local = np.linalg.solve(edges, (child.mean(axis=1) - parent[:, 0])[:, :, None])[:, :, 0]
    inside = (local >= -1e-9).all(axis=1) & (local.sum(axis=1) <= 1 + 1e-9)
    if not tagged.comm.allreduce(bool(inside.all()), op=MPI.LAND):
        raise MeshError("refining the mesh: a cell does not lie in the parent DOLFINx gave it")
    tag_of = np.full(coarse.topology.index_map(3).size_local, -1.0)
    owned_tags = tagged.cell_tags.indices < len(tag_of)
    tag_of[tagged.cell_tags.indices[owned_tags]] = tagged.cell_tags.values[owned_tags]
    values = dolfinx.la.vector(cells, 1)  # float64, the scatter's type: tags are exact in it
    values.array[:n] = tag_of[parents]
    values.scatter_forward()
    marked = np.flatnonzero(values.array >= 0).astype(np.int32)
    return dolfinx.mesh.meshtags(fine, 3, marked, values.array[marked].astype(np.int32))


def _facet_tags_on(fine: dolfinx.mesh.Mesh, tagged: TaggedMesh) -> dolfinx.mesh.MeshTags:
    """The boundary tags of `tagged` on `fine`, a refinement of its mesh: each local facet of
    `fine` with one local cell (ghosts included) that lies in a tagged facet of the coarse mesh
    takes its tag. Found geometrically among the tagged facets of all ranks: DOLFINx 0.11's
    `transfer_meshtag` by parent facet mislabelled facets on 2 ranks (tagged areas off by up
    to 2 times; right in serial), and its refined mesh has ghost cells whose parents are on
    other ranks. MeshError unless every tagged facet has its 4 children tagged."""
    coarse, tags = tagged.mesh, tagged.facet_tags
    owned = tags.indices < coarse.topology.index_map(2).size_local  # each facet once
    corners = coarse.geometry.x[dolfinx.mesh.entities_to_geometry(coarse, 2, tags.indices[owned])]
    parts = tagged.comm.allgather((corners, tags.values[owned]))
    triangles = np.concatenate([c for c, _ in parts]).reshape(-1, 3, 3)
    values = np.concatenate([v for _, v in parts])
    fine.topology.create_connectivity(2, 3)
    f2c = fine.topology.connectivity(2, 3)
    facets = np.flatnonzero(np.diff(f2c.offsets) == 1).astype(np.int32)
    centre = fine.geometry.x[dolfinx.mesh.entities_to_geometry(fine, 2, facets)].mean(axis=1)
    found = np.full(len(facets), -1, dtype=np.int64)
    # the tagged triangle that holds each centre, among those whose centroids lie within
    # `reach` of it (the farthest any corner lies from its triangle's centroid): the nearest
    # 8 first, more for the centres not yet found (on a graded surface the one that holds a
    # centre may lie further down the list); collective
    middle = triangles.mean(axis=1)
    reach = float(np.linalg.norm(triangles - middle[:, None], axis=2).max(initial=0.0))
    tree, k, searched = cKDTree(middle), 8, 0
    open_ = np.ones(len(facets), dtype=bool)  # a tagged triangle may still hold it
    while searched < len(triangles):
        look = np.flatnonzero(open_ & (found < 0))
        k = min(k, len(triangles))
        distance, nearby = tree.query(centre[look], k=k)
        distance, nearby = distance.reshape(len(look), k), nearby.reshape(len(look), k)
        for column in nearby[:, searched:].T:
            inside = (found[look] < 0) & _in_triangle(centre[look], triangles[column])
            found[look[inside]] = column[inside]
        open_[look[distance[:, -1] > reach]] = False  # the rest lie further off
        if not tagged.comm.allreduce(bool((open_ & (found < 0)).any()), op=MPI.LOR):
            break
        searched, k = k, 8 * k
    keep = found >= 0
    fine_tags = dolfinx.mesh.meshtags(fine, 2, facets[keep], values[found[keep]].astype(np.int32))
    exterior = dolfinx.mesh.exterior_facet_indices(coarse.topology)
    for name, tag in sorted(tagged.boundaries.items()):
        if _owned_count(fine_tags, tag, fine) == 4 * _owned_count(tags, tag, coarse):
            continue
        inner = np.setdiff1d(tags.find(tag), exterior)
        inner = (inner < coarse.topology.index_map(2).size_local).sum()  # owned
        inner = int(tagged.comm.allreduce(int(inner), op=MPI.SUM))
        raise MeshError(
            f"refining the mesh: boundary {name} has {inner} facets inside the mesh, which "
            "refinement does not carry over (only facets on its surface)"
            if inner
            else f"refining the mesh: the facets of boundary {name} were not all found on the "
            "refined mesh"
        )
    return fine_tags


def _owned_count(tags: dolfinx.mesh.MeshTags, value: int, mesh: dolfinx.mesh.Mesh) -> int:
    """How many facets tagged `value` the ranks own (collective)."""
    owned = mesh.topology.index_map(2).size_local
    count = int((tags.find(value) < owned).sum())
    return int(mesh.comm.allreduce(count, op=MPI.SUM))


def _in_triangle(points: np.ndarray, triangles: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Whether each point (n, 3) lies in its triangle (n, 3, 3): within tol of its plane and
    of its edges, relative to its size."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    u, v, w = b - a, c - a, points - a
    normal = np.cross(u, v)
    area2 = np.einsum("ij,ij->i", normal, normal)
    size = np.sqrt(np.maximum(np.einsum("ij,ij->i", u, u), np.einsum("ij,ij->i", v, v)))
    off_plane = np.abs(np.einsum("ij,ij->i", normal, w)) / np.sqrt(area2)
    beta = np.einsum("ij,ij->i", np.cross(w, v), normal) / area2
    gamma = np.einsum("ij,ij->i", np.cross(u, w), normal) / area2
    return (off_plane <= tol * size) & (beta >= -tol) & (gamma >= -tol) & (beta + gamma <= 1 + tol)


def mesh_from_gmsh(
    build: Callable[[], None],
    comm: MPI.Comm,
    name: str,
    msh_path: Path | None = None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """Build a gmsh model with `build()` on rank 0, mesh it in 3-D and distribute it (in
    shells around `sites` when given: sim.geometry.partition).

    `build` creates the geometry, named physical groups and the mesh-size field in the current
    gmsh model. With `msh_path` the gmsh mesh is also written there.
    """

    def generate() -> dict[str, float]:
        gmsh.model.add(name)
        build()
        gmsh.model.mesh.generate(3)
        gmsh.model.mesh.optimize("Netgen")
        return {}

    key = key_of(build) if comm.rank == 0 else None
    return generated(generate, comm, f"gmsh failed to mesh '{name}'", msh_path, key, sites)


def generated(
    generate: Callable[[], dict[str, float]],
    comm: MPI.Comm,
    what: str,
    msh_path: Path | None,
    key: str | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The mesh `generate` makes in a gmsh session (in a child process of rank 0, which a
    crash of gmsh ends instead of the run: sim.geometry.gmsh_tools.in_child; `generate`
    returns the info to keep with the mesh), or the one the mesh cache
    (sim.geometry.mesh_cache) holds for `key`; distributed (around `sites` when given), its
    info in TaggedMesh.info, written to `msh_path` when given (collective).
    """
    cached = entry(key) if comm.rank == 0 else None
    hit = comm.bcast(cached is not None and cached.is_file(), root=0)
    info: dict[str, float] = {}

    def action() -> None:
        if hit:
            assert cached is not None
            gmsh.open(str(cached))
            info.update(info_of(cached))
        else:
            with tempfile.TemporaryDirectory(prefix="cementsim-gmsh-") as folder:
                made = Path(folder) / "mesh.msh"
                info.update(in_child(generate, made))
                gmsh.open(str(made))
                if cached is not None:
                    store(cached, info, made)
        if msh_path is not None:
            gmsh.write(str(msh_path))

    tagged = _distribute(action, comm, what, sites)
    tagged.info.update(comm.bcast(info, root=0))
    return tagged


def read_msh(path: Path, comm: MPI.Comm, sites: InjectionSites | None = None) -> TaggedMesh:
    """Read a gmsh .msh file with named physical groups (coordinates as stored), distributed
    around `sites` when given."""
    what = f"cannot read mesh file '{path}'"
    return _distribute(lambda: gmsh.open(str(path)), comm, what, sites)


def read_mesh_file(
    geometry: MeshFileGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``mesh_file`` kind: the file read, scaled to metres and moved into
    the project frame; a warning in the log when its outer surface is probably not in the
    project frame (sim.shapes.orientation, as for surface files)."""
    scale = metres_per(geometry.length_unit)
    to_project = geometry.to_project()
    if sites is not None:
        sites = sites.moved(to_project @ np.diag([scale, scale, scale, 1.0]))
    tagged = read_msh(geometry.path, comm, sites)
    tagged.scale(scale)
    tagged.move(to_project)
    surface = outer_surface(tagged)
    if surface is not None:
        for warning in frame_warnings(surface):
            log.warning(warning)
    return tagged


def outer_surface(tagged: TaggedMesh) -> Surface | None:
    """The exterior facets of the mesh as a triangle soup (m), gathered on rank 0 (None on
    the other ranks; collective)."""
    mesh = tagged.mesh
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    facets = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    corners = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, tdim - 1, facets)][:, :3]
    gathered = tagged.comm.gather(corners, root=0)
    if gathered is None:
        return None
    points = np.concatenate(gathered).reshape(-1, 3)
    return Surface(points, np.arange(len(points)).reshape(-1, 3))


def _distribute(
    action: Callable[[], None], comm: MPI.Comm, what: str, sites: InjectionSites | None
) -> TaggedMesh:
    """Run a gmsh action on rank 0, then hand the model to DOLFINx on all ranks, in shells
    around `sites` (sim.geometry.partition), or where DOLFINx's graph partitioner puts the
    cells if None.

    An error on rank 0 is raised as MeshError on every rank (no rank is left waiting).
    """
    error = None
    if comm.rank == 0:
        with interruptible():  # Ctrl-C ends the process while gmsh meshes
            gmsh.initialize(interruptible=False)
            gmsh.option.setNumber("General.Terminal", 0)
            try:
                action()
            except Exception as exc:  # gmsh raises bare Exception
                error = f"{what}: {exc}"
    error = comm.bcast(error, root=0)
    try:
        if error is not None:
            raise MeshError(error)
        partitioner = around(sites, comm) if sites is not None and comm.size > 1 else None
        data = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=3, partitioner=partitioner)
    finally:
        if comm.rank == 0:
            gmsh.finalize()
    return _from_mesh_data(data)


def _from_mesh_data(data: gmshio.MeshData) -> TaggedMesh:
    if data.cell_tags is None or data.facet_tags is None:
        raise MeshError("the mesh has no physical groups for cells and facets")
    boundaries = {n: g.tag for n, g in data.physical_groups.items() if g.dim == 2}
    regions = {n: g.tag for n, g in data.physical_groups.items() if g.dim == 3}
    return TaggedMesh(data.mesh, data.cell_tags, data.facet_tags, boundaries, regions)
