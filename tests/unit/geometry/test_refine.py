"""Uniform refinement of a built mesh (`geometry.refine`, sim.geometry.tagged_mesh.refined):
every tetrahedron becomes 8, each boundary keeps its area and each region its volume to
round-off, each tagged boundary facet becomes 4 tagged facets on the surface, and ghost
cells carry their owners' region tags. Serially and under mpirun -n 2 (where DOLFINx's own
transfer of facet tags mislabelled facets and its cell-tag transfer corrupted the heap)."""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
from mpi4py import MPI

from sim.errors import MeshError
from sim.geometry import build_mesh
from sim.geometry.tagged_mesh import TaggedMesh, refined
from sim.scenario import ScenarioError, load_scenario

from ...conftest import REPO

VERTEBROPLASTY = REPO / "scenarios" / "vertebroplasty.yaml"


def areas(tagged: TaggedMesh) -> dict[str, float]:
    """The area (m²) of each boundary from its owned facets (collective)."""
    mesh, comm = tagged.mesh, tagged.comm
    owned = mesh.topology.index_map(2).size_local
    out = {}
    for name in sorted(tagged.boundaries):
        facets = tagged.facets(name)
        facets = facets[facets < owned]
        x = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 2, facets)]
        local = 0.5 * np.linalg.norm(np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]), axis=1)
        out[name] = comm.allreduce(float(local.sum()), op=MPI.SUM)
    return out


def owned_facet_counts(tagged: TaggedMesh) -> dict[str, int]:
    owned = tagged.mesh.topology.index_map(2).size_local
    return {
        name: tagged.comm.allreduce(int((tagged.facets(name) < owned).sum()), op=MPI.SUM)
        for name in sorted(tagged.boundaries)
    }


@pytest.fixture(scope="module")
def meshes() -> tuple[TaggedMesh, TaggedMesh]:
    comm = MPI.COMM_WORLD
    coarse = build_mesh(load_scenario(VERTEBROPLASTY), comm)
    fine = build_mesh(load_scenario(VERTEBROPLASTY, ["geometry.refine=1"]), comm)
    return coarse, fine


def test_eight_children_per_cell_with_the_tags_areas_and_volumes(meshes) -> None:
    coarse, fine = meshes
    assert fine.num_cells_global() == 8 * coarse.num_cells_global()
    assert fine.boundaries == coarse.boundaries and fine.regions == coarse.regions
    assert owned_facet_counts(fine) == {k: 4 * v for k, v in owned_facet_counts(coarse).items()}
    for name, area in areas(coarse).items():
        assert areas(fine)[name] == pytest.approx(area, rel=1e-12), name
    for name in coarse.regions:
        assert fine.volume(name) == pytest.approx(coarse.volume(name), rel=1e-12), name
    assert fine.volume() == pytest.approx(coarse.volume(), rel=1e-12)


def test_tagged_facets_lie_on_the_surface_and_ghost_cells_carry_their_tags(meshes) -> None:
    _, fine = meshes
    mesh = fine.mesh
    exterior = np.zeros(mesh.topology.index_map(2).size_local, dtype=bool)
    exterior[dolfinx.mesh.exterior_facet_indices(mesh.topology)] = True
    tagged = fine.facet_tags.indices
    owned_tagged = tagged[tagged < len(exterior)]
    assert fine.comm.allreduce(int((~exterior[owned_tagged]).sum()), op=MPI.SUM) == 0
    cells = mesh.topology.index_map(3)
    n, ghosts = cells.size_local, cells.num_ghosts
    region = np.full(n + ghosts, -1.0)
    region[fine.cell_tags.indices] = fine.cell_tags.values
    from_owner = dolfinx.la.vector(cells, 1)
    from_owner.array[:n] = region[:n]
    from_owner.scatter_forward()
    assert (region >= 0).all()  # every cell, owned and ghost, is in a region
    np.testing.assert_array_equal(region[n:], from_owner.array[n:])


def test_cell_sizes_and_bad_values(tmp_path) -> None:
    coarse = load_scenario(VERTEBROPLASTY).geometry.cell_size_range()
    twice = load_scenario(VERTEBROPLASTY, ["geometry.refine=2"]).geometry.cell_size_range()
    assert coarse is not None and twice == (coarse[0] / 4, coarse[1] / 4)
    for value in ("4", "-1", "1.5", "yes"):
        with pytest.raises(ScenarioError) as info:
            load_scenario(VERTEBROPLASTY, [f"geometry.refine={value}"])
        assert "geometry.refine" in str(info.value), value


def test_interior_tagged_facets_are_refused() -> None:
    """Only facets on the surface are carried over: a boundary tagged inside the mesh (the
    plane x = 0.5 of a unit cube) is named in a MeshError, not silently dropped. Without it
    the cube refines, once and twice, with its wall's area and its volume."""
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_unit_cube(comm, 2, 2, 2, ghost_mode=dolfinx.mesh.GhostMode.none)
    mesh.topology.create_connectivity(2, 3)
    wall = dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[0], 0.0))
    inner = dolfinx.mesh.locate_entities(mesh, 2, lambda x: np.isclose(x[0], 0.5))
    facets = np.concatenate([wall, inner])
    order = np.argsort(facets)
    values = np.concatenate([np.full(len(wall), 1), np.full(len(inner), 2)]).astype(np.int32)
    n = mesh.topology.index_map(3).size_local
    cells = np.arange(n, dtype=np.int32)
    tagged = TaggedMesh(
        mesh,
        dolfinx.mesh.meshtags(mesh, 3, cells, np.ones(n, dtype=np.int32)),
        dolfinx.mesh.meshtags(mesh, 2, facets[order].astype(np.int32), values[order]),
        {"wall": 1, "inner": 2},
        {"bone": 1},
    )
    with pytest.raises(MeshError, match="boundary inner has 8 facets inside the mesh"):
        refined(tagged, 1)
    tagged.facet_tags = dolfinx.mesh.meshtags(
        mesh, 2, np.sort(wall).astype(np.int32), values[: len(wall)]
    )
    tagged.boundaries = {"wall": 1}
    assert refined(tagged, 1).num_cells_global() == 8 * tagged.num_cells_global()
    # two levels: the second refines a mesh with ghost cells (on several ranks)
    twice = refined(tagged, 2)
    assert twice.refinements == 2
    assert twice.num_cells_global() == 64 * tagged.num_cells_global()
    assert owned_facet_counts(twice) == {"wall": 16 * owned_facet_counts(tagged)["wall"]}
    assert areas(twice)["wall"] == pytest.approx(1.0, rel=1e-12)
    assert twice.volume("bone") == pytest.approx(1.0, rel=1e-12)


def test_a_graded_surface_keeps_every_tagged_facet() -> None:
    """A cube of 8 x 12 x 12 cells whose columns widen fourfold from one to the next along x,
    every surface facet tagged: some fine facets lie in a tagged triangle that is not among
    the 8 whose centroids are nearest (the search stopped there and called the boundary's
    facets interior ones), and on several ranks ghost copies of tagged facets crowded the 8."""
    comm = MPI.COMM_WORLD
    mesh = dolfinx.mesh.create_unit_cube(comm, 8, 12, 12, ghost_mode=dolfinx.mesh.GhostMode.none)
    x = mesh.geometry.x
    edges = np.concatenate([[0.0], np.cumsum(4.0 ** np.arange(8))])
    x[:, 0] = (edges / edges[-1])[np.rint(8 * x[:, 0]).astype(int)]
    mesh.topology.create_connectivity(2, 3)
    wall = np.sort(dolfinx.mesh.exterior_facet_indices(mesh.topology)).astype(np.int32)
    n = mesh.topology.index_map(3).size_local
    tagged = TaggedMesh(
        mesh,
        dolfinx.mesh.meshtags(mesh, 3, np.arange(n, dtype=np.int32), np.ones(n, dtype=np.int32)),
        dolfinx.mesh.meshtags(mesh, 2, wall, np.ones(len(wall), dtype=np.int32)),
        {"wall": 1},
        {"bone": 1},
    )
    fine = refined(tagged, 1)
    assert owned_facet_counts(fine) == {"wall": 4 * owned_facet_counts(tagged)["wall"]}
    assert areas(fine)["wall"] == pytest.approx(6.0, rel=1e-12)
