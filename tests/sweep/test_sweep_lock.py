"""One `cementsim sweep run` per sweep folder: a second one while the first holds the folder's
lock is invalid input (exit 2, the folder and the lock named on stderr) and changes nothing;
the lock is held while points run and released when the session ends. No point is run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sim.cli import main
from sim.sweep.cli import load_sweep
from sim.sweep.plan import make_plan
from sim.sweep.store import SweepBusyError, run_dir, sweep_lock
from tests.sweep.conftest import cementsim, recorded_summary, write_sweep

pytestmark = pytest.mark.serial


def finished_sweep(tmp_path: Path) -> tuple[Path, Path]:
    """The six-point sweep file and a folder where every point has a recorded summary (so a
    `sweep run` there has nothing to run)."""
    sweep_file = write_sweep(tmp_path)
    out = tmp_path / "sweep"
    for run in make_plan(load_sweep(sweep_file)).runs:
        run_dir(out, run.id).mkdir(parents=True)
        (run_dir(out, run.id) / "summary.json").write_text(json.dumps(recorded_summary()))
    return sweep_file, out


def test_a_second_sweep_run_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    sweep_file, out = finished_sweep(tmp_path)
    with sweep_lock(out):
        second = cementsim("sweep", "run", str(sweep_file), "--out", str(out))
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stdout == ""
    assert second.stderr.startswith(
        f"error: another `cementsim sweep run` is working on {out} (pid {os.getpid()} on "
    )
    assert f"its lock {out / '.sweep.lock'}" in second.stderr
    assert "Traceback" not in second.stderr
    assert not (out / "plan.json").exists() and not (out / "provenance.json").exists()


def test_the_lock_is_held_while_points_run_and_released_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sim.sweep.executors

    sweep_file, out = finished_sweep(tmp_path)
    seen: list[str] = []

    def execute(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        with pytest.raises(SweepBusyError) as busy:
            with sweep_lock(out):
                pass
        seen.append(str(busy.value))
        return []

    monkeypatch.setattr(sim.sweep.executors, "execute", execute)
    assert main(["sweep", "run", str(sweep_file), "--out", str(out)]) == 0
    assert len(seen) == 1 and f"pid {os.getpid()} on " in seen[0]
    assert "done 6, failed 0, pending 0" in capsys.readouterr().out
    with sweep_lock(out):  # released: a third session may start
        pass


def test_an_uncreatable_sweep_folder_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep_file = write_sweep(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for out in (blocker, blocker / "sub"):
        code = main(["sweep", "run", str(sweep_file), "--out", str(out)])
        printed, err = capsys.readouterr()
        assert code == 2 and printed == ""
        assert err.startswith("error: command line: invalid options\n")
        assert f"sweep folder {str(out)!r} cannot be created: " in err


def test_a_submitted_array_without_waiting_is_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--no-wait`: the points are still pending when sbatch has taken the array, which is
    not a failure (exit 0, was 1)."""
    import sim.sweep.executors

    submitted: list[int] = []

    def submit_array(sweep_dir: Path, todo: list[Any], ex: Any) -> str:
        submitted.append(len(todo))
        return "4242"

    monkeypatch.setattr(sim.sweep.executors, "submit_array", submit_array)
    out = tmp_path / "sweep"
    args = ["sweep", "run", str(write_sweep(tmp_path)), "--out", str(out)]
    assert main([*args, "--executor", "slurm_array", "--no-wait"]) == 0
    printed = capsys.readouterr().out
    assert submitted == [6]
    assert "array job 4242 submitted" in printed
    assert "done 0, failed 0, pending 6" in printed
    assert f"follow the array with `cementsim sweep status {out}`" in printed
