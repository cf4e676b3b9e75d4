"""Fixtures shared by the gmsh geometry tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx.io.gmsh
import gmsh
import pytest

COMM, ROOT = MPI.COMM_WORLD, 0


@pytest.fixture
def gmsh_model() -> Iterator[None]:
    """A fresh gmsh session with one empty model, finalised afterwards."""
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("geometry")
    try:
        yield
    finally:
        gmsh.finalize()


def build_on_root(what: str, make: Callable[[], dict]) -> tuple[dict, dolfinx.io.gmsh.MeshData]:
    """Run `make` (builds and meshes a gmsh model, returns its measurements) on rank 0 only;
    a failure there fails the test on every rank (no MPI deadlock). Returns the measurements
    (broadcast) and the distributed dolfinx mesh."""
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        measured, error = None, None
        if COMM.rank == ROOT:
            try:
                gmsh.model.add(what)
                measured = make()
            except Exception as exc:  # reported on every rank below
                error = repr(exc)
        error = COMM.bcast(error, root=ROOT)
        if error is not None:
            pytest.fail(f"building the {what} failed on rank 0: {error}")
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model, COMM, ROOT, gdim=3)
    finally:
        gmsh.finalize()
    return COMM.bcast(measured, root=ROOT), data
