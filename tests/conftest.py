"""Test configuration: MPI-aware temporary folders, markers, and quiet non-root ranks.

The suite runs twice: serially (`pytest`) and under `mpirun -n 2 python -m pytest -m
"not serial"`. Tests marked `serial` run only in the first; tests marked `slow` run only with
`--runslow`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per MPI rank (set before numpy loads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest
from mpi4py import MPI

# generated meshes are cached for the session (sim.geometry.mesh_cache), not in the user's
# cache folder; the folder goes with the session
_MESH_CACHE = tempfile.mkdtemp(prefix="cementsim-test-meshes-")
os.environ.setdefault("CEMENTSIM_MESH_CACHE", _MESH_CACHE)
atexit.register(shutil.rmtree, _MESH_CACHE, ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
ANATOMY = REPO.parent / "shared" / "data" / "anatomy"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    if MPI.COMM_WORLD.rank != 0:  # one report is enough; failures still set the exit code
        sys.stdout = open(os.devnull, "w")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    parallel = MPI.COMM_WORLD.size > 1
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow"))
        if "serial" in item.keywords and parallel:
            item.add_marker(pytest.mark.skip(reason="serial only"))


@pytest.fixture
def comm() -> MPI.Comm:
    return MPI.COMM_WORLD


@pytest.fixture
def shared_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder that is the same on every rank (created by rank 0)."""
    comm = MPI.COMM_WORLD
    path = tmp_path_factory.mktemp("shared") if comm.rank == 0 else None
    return Path(comm.bcast(str(path) if path else None, root=0))


@pytest.fixture
def scenarios() -> Path:
    return REPO / "scenarios"
