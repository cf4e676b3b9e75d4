"""The mesh cache (sim.geometry.mesh_cache): a geometry meshed once is read back bit for bit
(coordinates, cells, tags, quality info) without meshing again; any change of the inputs is a
new entry; the cache can be turned off. Serially and under mpirun -n 2 (rank 0 meshes and
reads the cache)."""

from __future__ import annotations

from pathlib import Path

import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from sim.geometry import build_mesh, mesh_cache
from sim.geometry.tagged_mesh import TaggedMesh
from sim.scenario import load_scenario

from ...conftest import REPO

COARSE = ["geometry.mesh.size_tip=1 mm", "geometry.mesh.size_max=4 mm"]


def arrays(tagged: TaggedMesh) -> list[np.ndarray]:
    m = tagged.mesh
    return [
        m.geometry.x,
        m.topology.connectivity(m.topology.dim, 0).array,
        tagged.cell_tags.indices,
        tagged.cell_tags.values,
        tagged.facet_tags.indices,
        tagged.facet_tags.values,
    ]


@pytest.fixture
def cache(shared_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CEMENTSIM_MESH_CACHE", str(shared_tmp_path / "meshes"))
    return shared_tmp_path / "meshes"


def entries(cache: Path) -> int:
    n = len(list(cache.glob("*.msh"))) if MPI.COMM_WORLD.rank == 0 else 0
    return MPI.COMM_WORLD.bcast(n, root=0)


@pytest.mark.parametrize(
    ("scenario", "coarse"),
    [
        ("vertebroplasty.yaml", COARSE),
        ("anatomy/vertebroplasty_L1_real_surface.yaml", ["geometry.mesh.size_max=5 mm"]),
    ],
)
def test_a_cached_mesh_is_the_generated_one_and_is_not_meshed_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, coarse: list[str]
) -> None:
    sc = load_scenario(REPO / "scenarios" / scenario, coarse)
    first = build_mesh(sc, MPI.COMM_WORLD)
    assert entries(cache) == 1

    def no_meshing(*_: object) -> None:
        raise AssertionError("meshed again")

    monkeypatch.setattr(gmsh.model.mesh, "generate", no_meshing)
    second = build_mesh(sc, MPI.COMM_WORLD)
    for a, b in zip(arrays(first), arrays(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (first.boundaries, first.regions) == (second.boundaries, second.regions)
    assert first.info == second.info  # e.g. min_sicn of an imported surface


def test_other_inputs_are_other_entries_and_off_is_off(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = REPO / "scenarios" / "verification" / "sphere_newtonian.yaml"
    coarse = ["geometry.mesh.size_max=20 mm", "geometry.mesh.size_tip=1 mm"]
    build_mesh(load_scenario(path, coarse), MPI.COMM_WORLD)
    build_mesh(load_scenario(path, [*coarse, "geometry.radius=40 mm"]), MPI.COMM_WORLD)
    build_mesh(
        load_scenario(path, [*coarse, "injection.needles.0.inner_diameter=2 mm"]), MPI.COMM_WORLD
    )
    build_mesh(load_scenario(path, [*coarse, "cement.rheology.viscosity=50 Pa*s"]), MPI.COMM_WORLD)
    assert entries(cache) == 3  # the viscosity does not change the mesh
    monkeypatch.setenv("CEMENTSIM_MESH_CACHE", "off")
    assert mesh_cache.folder() is None
    build_mesh(load_scenario(path, [*coarse, "geometry.radius=30 mm"]), MPI.COMM_WORLD)
    assert entries(cache) == 3


def test_keys_need_a_stable_digest() -> None:
    from functools import partial

    assert mesh_cache.key_of(partial(max, 1.0, 2.0)) == mesh_cache.key_of(partial(max, 1.0, 2.0))
    assert mesh_cache.key_of(partial(max, 1.0, 2.5)) != mesh_cache.key_of(partial(max, 1.0, 2.0))
    assert mesh_cache.key_of(partial(max, object())) is None  # its text is its address


def test_an_entry_is_the_meshed_file_and_a_failed_store_leaves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = tmp_path / "made.msh"
    mesh.write_bytes(bytes(range(256)) * 40)
    entry = tmp_path / "cache" / "key.msh"
    mesh_cache.store(entry, {"min_sicn": 0.25}, mesh)
    assert entry.read_bytes() == mesh.read_bytes()
    assert mesh_cache.info_of(entry) == {"min_sicn": 0.25}
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    mesh_cache.store(tmp_path / "blocked" / "key.msh", {}, mesh)  # warns, does not raise
    mesh_cache.store(tmp_path / "cache" / "other.msh", {}, tmp_path / "missing.msh")
    assert "could not store" in caplog.text
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["key.json", "key.msh"]
