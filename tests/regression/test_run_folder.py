"""A run's results folder is replaced as a whole when the run is complete, is locked while it
runs, and never looks complete after a failure (sim.outputs.rundir.RunFolder)."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
from mpi4py import MPI

import sim.run
from sim.cli import main
from sim.run import run_scenario
from sim.scenario import load_scenario

from ..conftest import REPO

SPHERE = REPO / "scenarios" / "verification" / "sphere_newtonian.yaml"
QUICK = [
    "geometry.mesh.size_tip=1 mm",
    "geometry.mesh.size_max=12 mm",
    "injection.needles.0.volume=0.1 mL",
    "output.plots=false",
]
#: what a QUICK run writes with fields, fluoroscopy and report off
BARE = {
    "mesh.msh",
    "report_parts.json",
    "results.h5",
    "run.log",
    "scenario.input.yaml",
    "scenario.resolved.yaml",
    "summary.json",
    "timeseries.csv",
    "versions.json",
}
OPTIONAL_OFF = [f"output.{name}=false" for name in ("fields", "fluoroscopy", "report")]
ROOT = MPI.COMM_WORLD.rank == 0


def quick_run(out: Path, overrides: list[str]) -> dict:
    return run_scenario(load_scenario(SPHERE, QUICK + overrides), out, source=SPHERE)


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_rerun_replaces_the_whole_folder(shared_tmp_path: Path) -> None:
    out = shared_tmp_path / "run"
    quick_run(out, [])
    if ROOT:
        first = names(out)
        assert {"fields.xdmf", "fields.h5", "fluoroscopy_ap.png", "report.html"} <= first
        assert BARE <= first
    second = quick_run(out, OPTIONAL_OFF)
    if not ROOT:
        return
    assert names(out) == BARE  # nothing of the first run that the second did not write
    assert json.loads((out / "summary.json").read_text())["n_steps"] == second["n_steps"]
    log = (out / "run.log").read_text()
    assert log.count("cementsim run of 'sphere_newtonian'") == 1  # a fresh log per run
    assert names(shared_tmp_path) == {"run", ".run.lock"}  # no staging or old folder left


@pytest.mark.serial  # the report is written on rank 0 alone: its failure is rank 0's alone
def test_a_failing_report_leaves_no_summary(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"

    def failing(run_dir: Path, summary: dict) -> Path:
        raise OSError("simulated report failure")

    monkeypatch.setattr(sim.run, "write_report", failing)
    with pytest.raises(OSError, match="simulated report failure"):
        quick_run(out, ["output.fields=false", "output.fluoroscopy=false"])
    failed = tmp_path / "run.failed"
    assert names(tmp_path) == {"run.failed", ".run.lock"}  # the target was never made
    assert BARE - {"summary.json"} <= names(failed)  # the partial results, for inspection
    assert not list(tmp_path.rglob("summary.json"))

    monkeypatch.undo()
    quick_run(out, OPTIONAL_OFF)
    assert names(out) == BARE
    assert names(tmp_path) == {"run", ".run.lock"}  # a run that succeeds removes run.failed


def test_a_locked_folder_is_refused_at_once(
    shared_tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = shared_tmp_path / "run"
    lock_path = shared_tmp_path / ".run.lock"
    lock = None
    if ROOT:  # another run holds the lock
        lock = open(lock_path, "w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    MPI.COMM_WORLD.barrier()
    try:
        code = main(["run", str(SPHERE), "--out", str(out), "--quiet"])
    finally:
        if lock is not None:
            lock.close()
    assert code == 2
    if ROOT:
        err = capsys.readouterr().err
        assert f"results folder {out} is in use by another run" in err
        assert str(lock_path) in err
        assert names(shared_tmp_path) == {".run.lock"}  # nothing written
