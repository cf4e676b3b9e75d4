"""Points whose summary.json is corrupt (empty, cut short, not an object, without the numbers
the collector reads): not done, shown by `sweep status` with the reason, skipped by `sweep
collect` with a warning on stderr, run again by `sweep run`. Fake point folders hold a summary
recorded from a real run (tests/regression/data) or a broken one; one test runs a point."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.outputs.summary import write_json_atomic
from sim.sweep.cli import load_sweep
from sim.sweep.executors import pending_runs
from sim.sweep.plan import make_plan
from sim.sweep.store import (
    CORRUPT,
    DONE,
    FAILED,
    PENDING,
    planned_runs,
    point_state,
    read_plan,
    run_dir,
    status,
    write_plan,
)
from tests.sweep.conftest import cementsim, recorded_summary, write_sweep

pytestmark = pytest.mark.serial


def without(key: str) -> str:
    return json.dumps({k: v for k, v in recorded_summary().items() if k != key})


def changed(key: str, value: Any) -> str:
    return json.dumps({**recorded_summary(), key: value})


#: broken summary.json contents and (part of) the reason given for each
CORRUPT_SUMMARIES = {
    "empty": ("", "summary.json is empty"),
    "blank": ("  \n", "summary.json is empty"),
    "cut short": (json.dumps(recorded_summary())[:200], "summary.json is not valid JSON"),
    "not utf-8": ("\udcff", "summary.json cannot be read"),
    "an array": ("[1, 2]", "holds an array, not an object of results"),
    "null": ("null", "holds null, not an object of results"),
    "no total leak": (without("leaked_volume_total_m3"), "leaked_volume_total_m3: Field required"),
    "threshold as text": (
        changed("leak_threshold_m3", "1e-9"),
        "leak_threshold_m3: Input should be a valid number",
    ),
    "route leak as text": (
        changed("leaked_volume_m3", {"far_field": "0"}),
        "leaked_volume_m3.far_field: Input should be a valid number",
    ),
    "first leak not a mapping": (
        changed("injected_volume_at_first_leak_m3", 3.0),
        "injected_volume_at_first_leak_m3: Input should be a valid dictionary",
    ),
}


def write_summary(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_bytes(text.encode("utf-8", "surrogateescape"))


def test_a_recorded_summary_makes_a_point_done(tmp_path: Path) -> None:
    write_summary(tmp_path, json.dumps(recorded_summary()))
    state = point_state(tmp_path)
    assert state.status == DONE and state.summary == recorded_summary() and state.problem == ""


@pytest.mark.parametrize("case", sorted(CORRUPT_SUMMARIES))
def test_a_corrupt_summary_makes_a_point_corrupt_with_the_reason(tmp_path: Path, case: str) -> None:
    text, reason = CORRUPT_SUMMARIES[case]
    write_summary(tmp_path, text)
    (tmp_path / "failed.json").write_text('{"error": "an earlier failure"}')
    state = point_state(tmp_path)
    assert state.status == CORRUPT and state.summary is None
    assert reason in state.problem


def test_without_summary_a_point_is_failed_or_pending(tmp_path: Path) -> None:
    assert point_state(tmp_path / "never_started").status == PENDING
    (tmp_path / "failed.json").write_text('{"error": "diverged"}')
    assert point_state(tmp_path).status == FAILED


@pytest.fixture
def sweep_with_corrupt_points(tmp_path: Path) -> Path:
    """The six-point sphere sweep, planned: r0 done (recorded summary, empty timeseries.csv),
    r1 empty summary, r2 summary cut short, r3 summary without leaked_volume_total_m3, r4
    failed, r5 pending."""
    sweep_file = write_sweep(tmp_path)
    plan = make_plan(load_sweep(sweep_file))
    out = tmp_path / "sweep"
    write_plan(out, plan, sweep_file, {"kind": "local"})
    ids = [r.id for r in plan.runs]
    write_summary(run_dir(out, ids[0]), json.dumps(recorded_summary()))
    (run_dir(out, ids[0]) / "timeseries.csv").write_text("")
    write_summary(run_dir(out, ids[1]), CORRUPT_SUMMARIES["empty"][0])
    write_summary(run_dir(out, ids[2]), CORRUPT_SUMMARIES["cut short"][0])
    write_summary(run_dir(out, ids[3]), CORRUPT_SUMMARIES["no total leak"][0])
    run_dir(out, ids[4]).mkdir(parents=True)
    write_json_atomic(run_dir(out, ids[4]) / "failed.json", {"error": "PETSc diverged: boom"})
    return out


def run_ids(sweep_dir: Path) -> list[str]:
    return [r["id"] for r in read_plan(sweep_dir)["runs"]]


def test_status_shows_corrupt_points_with_their_reason(
    sweep_with_corrupt_points: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = sweep_with_corrupt_points
    ids = run_ids(out)
    assert status(out) == {
        DONE: ids[:1],
        CORRUPT: ids[1:4],
        FAILED: ids[4:5],
        PENDING: ids[5:],
    }
    assert main(["sweep", "status", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert err == ""
    lines = printed.splitlines()
    assert lines[0] == f"{out}: done 1, failed 1, corrupt 3, pending 1"
    assert f"  failed {ids[4]}: PETSc diverged: boom" in lines
    corrupt = [line for line in lines if line.startswith("  corrupt ")]
    assert [line.split()[1] for line in corrupt] == ids[1:4]
    assert corrupt[0].endswith(": summary.json is empty")
    assert "summary.json is not valid JSON" in corrupt[1]
    assert "leaked_volume_total_m3: Field required" in corrupt[2]


def test_collect_skips_corrupt_points_with_a_warning_on_stderr(
    sweep_with_corrupt_points: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = sweep_with_corrupt_points
    ids = run_ids(out)
    assert main(["sweep", "collect", str(out)]) == 0
    printed, err = capsys.readouterr()
    assert "Traceback" not in printed + err and "warning" not in printed
    warning = next(line for line in err.splitlines() if "corrupt" in line)
    assert warning.startswith("warning: 3 corrupt run(s) skipped")
    assert f"{ids[1]}: summary.json is empty" in warning
    assert (
        "warning: fill_vs_volume.png leaves out 1 run(s) whose timeseries.csv cannot be read: "
        f"{ids[0]}" in err.splitlines()
    )
    with (out / "results.csv").open() as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    assert [rows[i]["status"] for i in ids] == [DONE, CORRUPT, CORRUPT, CORRUPT, FAILED, PENDING]
    assert rows[ids[0]]["summary.tip_pressure_max_pa"] != ""
    for run_id in ids[1:4]:
        assert rows[run_id]["summary.tip_pressure_max_pa"] == ""
    assert rows[ids[1]]["error"] == "summary.json is empty"
    analysis = json.loads((out / "analysis.json").read_text())
    assert (analysis["done"], analysis["corrupt"], analysis["failed"], analysis["pending"]) == (
        1,
        3,
        1,
        1,
    )
    page = (out / "sweep_report.html").read_text()
    assert "Failed and corrupt runs" in page and f"run {ids[1]} (corrupt)" in page


def test_corrupt_points_are_pending_for_the_next_run(sweep_with_corrupt_points: Path) -> None:
    out = sweep_with_corrupt_points
    ids = run_ids(out)
    assert [r.id for r in pending_runs(out, planned_runs(out))] == ids[1:]


def test_sweep_run_reruns_a_point_whose_summary_is_corrupt(tmp_path: Path) -> None:
    """One point with an empty summary.json: `sweep run` runs it again (one short run) and
    ends with every point done."""
    axes = [{"param": "cement.rheology.viscosity", "values": ["100 Pa*s"]}]
    sweep_file = write_sweep(tmp_path, axes=axes)
    out = tmp_path / "sweep"
    plan = make_plan(load_sweep(sweep_file))
    write_plan(out, plan, sweep_file, {"kind": "serial"})
    folder = run_dir(out, plan.runs[0].id)
    write_summary(folder, "")
    run = cementsim("sweep", "run", str(sweep_file), "--out", str(out), "--executor", "serial")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 already done, 1 to run again (corrupt)" in run.stdout
    assert point_state(folder).status == DONE
    assert status(out)[DONE] == [plan.runs[0].id]
