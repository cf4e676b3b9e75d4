"""Every shipped scenario gives the summary numbers recorded for it (relative 1e-12).

The guard for changes that must not change numbers (refactoring the solver into components,
issue 10): each scenario file under scenarios/ (sweep files excepted) runs with its outputs
off on a coarser mesh (tip size at least 1.2 mm where the needle allows it, largest size at
least 6 mm), serially, and every physics number of its summary is compared with
tests/regression/data/shipped_summaries.json; volumes (m³) also within 1e-12 of the injected
volume (a leak of 1e-33 m³ is round-off). Record on the machine that compares (one BLAS
thread).

Runs are reproducible to the last digit: the pressure solver avoids the OpenBLAS reductions
whose summation order depends on how the vectors sit in memory (sim/flow/pressure.py), which
made repeated runs differ by up to 3e-12 (and the guard compare at 1e-9) until stop 17. A
different machine, BLAS or PETSc build may still round differently. Slow (about 15 minutes
on 2 cores): run on request,

    .venv/bin/python -m pytest --runslow tests/regression/test_shipped_summaries.py

and record again, after a change that is meant to change the numbers, with

    .venv/bin/python -m tests.regression.test_shipped_summaries
"""

from __future__ import annotations

import os

# one BLAS thread, as in tests/conftest.py (threaded BLAS sums differ from run to run); set
# before numpy loads when this module records (python -m)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario
from sim.scenario.geometry import BoundedBySurface

from ..conftest import REPO
from .test_equivalence import NOT_PHYSICS, assert_same_numbers, flat

RECORD = Path(__file__).parent / "data" / "shipped_summaries.json"
QUIET = [
    "output.fields=false",
    "output.plots=false",
    "output.fluoroscopy=false",
    "output.report=false",
]
SHIPPED = sorted(
    str(p.relative_to(REPO / "scenarios"))
    for p in (REPO / "scenarios").rglob("*.yaml")
    if "sweeps" not in p.parts
)


def coarse_overrides(name: str) -> list[str]:
    """--set overrides that make a shipped scenario quick: outputs off, a coarser mesh."""
    scenario = load_scenario(REPO / "scenarios" / name, QUIET)
    mesh = getattr(scenario.geometry, "mesh", None)
    sizes = {} if mesh is None else mesh.model_dump()
    out = list(QUIET)
    # a surface's needles inject as sources: the needle bounds its tip size (kept as shipped)
    surface = isinstance(scenario.geometry, BoundedBySurface)
    if sizes.get("size_tip") is not None and not surface:
        out.append(f"geometry.mesh.size_tip={max(sizes['size_tip'], 1.2e-3)!r}")
    if sizes.get("size_max") is not None:
        out.append(f"geometry.mesh.size_max={max(sizes['size_max'], 6e-3)!r}")
    return out


def summary_of(name: str) -> dict[str, Any]:
    """The physics numbers of the coarse run of a shipped scenario (serial)."""
    scenario = load_scenario(REPO / "scenarios" / name, coarse_overrides(name))
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_scenario(scenario, Path(tmp) / "run", MPI.COMM_SELF)
    return {k: v for k, v in summary.items() if k not in NOT_PHYSICS}


def _recorded() -> dict[str, Any]:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_gives_its_recorded_summary(name):
    recorded = _recorded()
    assert name in recorded, f"no recorded summary for {name}: record with the command above"
    expected = recorded[name]
    assert_same_numbers(
        expected, summary_of(name), rtol=1e-12, volume_scale=expected["injected_volume_m3"]
    )


def record(names: list[str]) -> None:
    """Run the given (or every) shipped scenario and store its summary numbers."""
    recorded = _recorded()
    for name in names or SHIPPED:
        recorded[name] = summary_of(name)
        print(f"{name}: {len(flat(recorded[name]))} numbers recorded", flush=True)
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    record(sys.argv[1:])
