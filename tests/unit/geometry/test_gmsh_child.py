"""Meshing in a child process (sim.geometry.gmsh_tools.in_child): the mesh it writes is the one
gmsh makes in-process, node for node; a crash of gmsh (a signal), a kill, an exit without a
mesh or an exception in the builder comes back as a MeshError on every rank that says which,
and the process meshes again afterwards. Serially and under mpirun -n 2 (rank 0 meshes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from sim.errors import MeshError
from sim.geometry import build_mesh
from sim.geometry.gmsh_tools import in_child
from sim.scenario import load_scenario

from ...conftest import REPO

SPHERE = REPO / "scenarios" / "verification" / "sphere_newtonian.yaml"
COARSE = ["geometry.mesh.size_max=20 mm", "geometry.mesh.size_tip=1 mm"]


def box() -> dict[str, float]:
    """A meshed box with a physical volume, in the current gmsh session."""
    gmsh.model.add("box")
    gmsh.model.occ.addBox(0.0, 0.0, 0.0, 1.0, 2.0, 3.0)
    gmsh.model.occ.synchronize()
    gmsh.model.addPhysicalGroup(3, [1], 1, "inside")
    gmsh.option.setNumber("Mesh.MeshSizeMax", 0.4)
    gmsh.model.mesh.generate(3)
    return {"num_nodes": float(len(gmsh.model.mesh.getNodes()[0]))}


def nodes() -> tuple[np.ndarray, np.ndarray]:
    """Node tags and coordinates of the current gmsh model."""
    tags, coords, _ = gmsh.model.mesh.getNodes()
    return tags, coords


@pytest.mark.serial
def test_the_child_writes_the_mesh_gmsh_makes_in_process(tmp_path: Path) -> None:
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        info = in_child(box, tmp_path / "box.msh")
        gmsh.open(str(tmp_path / "box.msh"))
        from_child = nodes()
        gmsh.clear()
        assert box() == info
        in_process = nodes()
    finally:
        gmsh.finalize()
    assert info["num_nodes"] > 100
    for a, b in zip(from_child, in_process, strict=True):
        np.testing.assert_array_equal(a, b)


CRASH = (
    f"gmsh crashed (SIGSEGV), a defect of gmsh {gmsh.__version__} rather than of the input; "
    "other sizes in geometry.mesh may mesh"
)


def cells(sc: object) -> int:
    return build_mesh(sc, MPI.COMM_WORLD).mesh.topology.index_map(3).size_global


KILLED = (
    "gmsh's process was killed (SIGKILL; the system does so when memory runs out, and a "
    "coarser mesh needs less)"
)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("signal", CRASH),
        ("killed", KILLED),
        ("exit", "gmsh's process ended with exit code 3 and no mesh"),
        ("error", "no tets here"),
    ],
)
def test_a_crash_or_an_error_while_meshing_is_a_mesh_error_on_every_rank(
    monkeypatch: pytest.MonkeyPatch, failure: str, expected: str
) -> None:
    monkeypatch.setenv("CEMENTSIM_MESH_CACHE", "off")
    sc = load_scenario(SPHERE, COARSE)
    before = cells(sc)

    def failing(_: int) -> None:
        if failure == "signal":
            os.kill(os.getpid(), signal.SIGSEGV)
        if failure == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if failure == "exit":  # as a C++ exit() would
            os._exit(3)
        raise Exception("no tets here")  # gmsh raises bare Exception

    with monkeypatch.context() as patched:
        patched.setattr(gmsh.model.mesh, "generate", failing)
        with pytest.raises(MeshError) as caught:
            build_mesh(sc, MPI.COMM_WORLD)
    assert str(caught.value) == f"gmsh failed to mesh 'sphere_newtonian': {expected}"
    assert cells(sc) == before  # the process meshes as before
