"""Bad input to every sweep command is exit 2 with one message on stderr, never a traceback:
sweep files that are missing, folders, not YAML, not text, not a mapping or not valid; sweep
folders that are missing, files, without or with a broken plan.json. Broken bookkeeping files
of a sweep (failed.json, provenance.json) do not stop status or run. No point is run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.cli import main
from sim.sweep.cli import load_sweep
from sim.sweep.plan import make_plan
from sim.sweep.store import run_dir, write_plan
from tests.sweep.conftest import recorded_summary, write_sweep

pytestmark = pytest.mark.serial


def _write(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    return make


def _folder(folder: Path) -> Path:
    (folder / "plain").mkdir()
    return folder / "plain"


def _sweep_folder(folder: Path) -> Path:
    """A sweep folder given where the sweep file belongs."""
    path = write_sweep(folder)
    out = folder / "sweep"
    write_plan(out, make_plan(load_sweep(path)), path, {"kind": "local"})
    return out


def _unknown_key(folder: Path) -> Path:
    return write_sweep(folder, colour="blue")


def _too_many_runs(folder: Path) -> Path:
    """Two axes of 10 000 values each: the plan filled the memory (140 MB/s) until the
    number of runs was checked first."""
    axis = {"start": 1.0, "stop": 2.0, "num": 10_000}
    axes = [
        {"param": "cement.rheology.viscosity", "range": axis},
        {"param": "injection.needles.0.rate", "range": {**axis, "start": 1e-8, "stop": 2e-8}},
    ]
    return write_sweep(folder, axes=axes)


#: sweep file given, and part of the message
BAD_SWEEP_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda folder: folder / "missing.yaml", "file not found"),
    "a folder": (_folder, "a folder, not a sweep file"),
    "a sweep folder": (_sweep_folder, "holds its sweep file as"),
    "malformed YAML": (_write("bad.yaml", b"name: x\nbase: [unclosed\n"), "not valid YAML"),
    "a list": (_write("list.yaml", b"- a\n- b\n"), "mapping"),
    "empty": (_write("empty.yaml", b""), "mapping"),
    "not UTF-8": (_write("binary.yaml", b"\xff\xfe\x00name: x"), "not UTF-8 text: byte 0"),
    "unknown key": (_unknown_key, "colour: unknown key"),
    "too many runs": (
        _too_many_runs,
        "the sweep has 100,000,000 runs (10,000 of cement.rheology.viscosity x 10,000 of "
        "injection.needles.0.rate), more than 100,000",
    ),
}


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("case", sorted(BAD_SWEEP_FILES))
def test_a_bad_sweep_file_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    make, message = BAD_SWEEP_FILES[case]
    path = make(tmp_path)
    code = main(
        ["sweep", command, str(path), *(["--out", str(tmp_path / "out")] * (command == "run"))]
    )
    printed, err = capsys.readouterr()
    assert code == 2 and printed == ""
    assert err.startswith(f"error: {path}: invalid sweep\n") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _plan_json(content: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        out = folder / "sweep"
        out.mkdir()
        (out / "plan.json").write_text(content)
        return out

    return make


def _a_file(folder: Path) -> Path:
    (folder / "file.txt").write_text("not a folder")
    return folder / "file.txt"


RUN = {"index": 0, "params": {}, "si": {}, "overrides": []}
PLAN = {
    "name": "x",
    "base": "x.yaml",
    "parameters": [],
    "sampled": [],
    "log_scale": [],
    "sampling": {"method": "grid", "seed": 0},
    "report": {"metric": "tip_pressure_max_pa", "map": None, "leak_threshold": None},
    "design": None,
}

#: sweep folder given, and part of the message
BAD_SWEEP_FOLDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda folder: folder / "nowhere", "is not a sweep directory (no plan.json)"),
    "a file": (_a_file, "is not a sweep directory (no plan.json)"),
    "empty folder": (_folder, "is not a sweep directory (no plan.json)"),
    "empty plan": (_plan_json(""), "plan.json cannot be read as a sweep plan (Expecting value"),
    "plan cut short": (_plan_json('{"name": "x", "ru'), "cannot be read as a sweep plan"),
    "plan an array": (_plan_json("[1, 2]"), "sweep plan (top level: Input should be"),
    "plan without runs": (_plan_json(json.dumps(PLAN)), "sweep plan (runs: Field required)"),
    "plan without report": (
        _plan_json(json.dumps({k: v for k, v in PLAN.items() if k != "report"} | {"runs": []})),
        "sweep plan (report: Field required)",
    ),
    "run without id": (
        _plan_json(json.dumps({**PLAN, "runs": [RUN]})),
        "sweep plan (runs.0.id: Field required)",
    ),
    "run id a path": (
        _plan_json(json.dumps({**PLAN, "runs": [{**RUN, "id": "../../elsewhere"}]})),
        "sweep plan (runs.0.id: String should match pattern",
    ),
}


@pytest.mark.parametrize("command", [["status"], ["collect"], ["run-one", "0123456789"]])
@pytest.mark.parametrize("case", sorted(BAD_SWEEP_FOLDERS))
def test_a_bad_sweep_folder_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], case: str
) -> None:
    make, message = BAD_SWEEP_FOLDERS[case]
    folder = make(tmp_path)
    code = main(["sweep", command[0], str(folder), *command[1:]])
    printed, err = capsys.readouterr()
    assert code == 2 and printed == ""
    assert err.startswith(f"error: {folder}") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_run_one_of_a_run_not_in_the_plan_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _sweep_folder(tmp_path)
    assert main(["sweep", "run-one", str(out), "nosuchrun"]) == 2
    assert capsys.readouterr().err == f"error: nosuchrun is not a run of {out}\n"


def test_broken_bookkeeping_files_do_not_stop_status_or_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable failed.json is shown as such; an unreadable provenance.json is kept
    aside and a new one started."""
    sweep_file = write_sweep(tmp_path)
    out = tmp_path / "sweep"
    runs = make_plan(load_sweep(sweep_file)).runs
    for run in runs:
        run_dir(out, run.id).mkdir(parents=True)
        (run_dir(out, run.id) / "summary.json").write_text(json.dumps(recorded_summary()))
    (run_dir(out, runs[0].id) / "summary.json").unlink()
    (run_dir(out, runs[0].id) / "failed.json").write_text("{")
    (out / "provenance.json").write_text('{"sessions": ')
    write_plan(out, make_plan(load_sweep(sweep_file)), sweep_file, {"kind": "local"})

    assert main(["sweep", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"  failed {runs[0].id}: (failed.json cannot be read: " in printed

    (run_dir(out, runs[0].id) / "failed.json").unlink()
    (run_dir(out, runs[0].id) / "summary.json").write_text(json.dumps(recorded_summary()))
    assert main(["sweep", "run", str(sweep_file), "--out", str(out)]) == 0
    assert (out / "provenance.json.corrupt").read_text() == '{"sessions": '
    sessions = json.loads((out / "provenance.json").read_text())["sessions"]
    assert [s["event"] for s in sessions] == ["start", "end"]
