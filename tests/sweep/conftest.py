"""Shared pieces of the sweep tests: sweep files written into temporary folders, and one local
sweep of the shipped six-point example whose results the other executors must reproduce."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "scenarios" / "sweeps"
SPHERE_SWEEP = SWEEPS / "sphere_viscosity_rate.yaml"
SPHERE = REPO / "scenarios" / "verification" / "sphere_newtonian.yaml"
RECORDED = REPO / "tests" / "regression" / "data" / "shipped_summaries.json"
#: summary numbers that must agree between executors (deterministic runs)
COMPARED = (
    "tip_pressure_max_pa",
    "injected_volume_m3",
    "cement_in_bone_m3",
    "cloud_volume_m3",
    "cloud_max_distance_from_tip_m",
    "n_steps",
)


def write_sweep(folder: Path, name: str = "test_sweep", **changes: Any) -> Path:
    """The shipped six-point sphere sweep with `changes` applied, as folder/name.yaml."""
    data = yaml.safe_load(SPHERE_SWEEP.read_text())
    data["base"] = str(SPHERE)
    data["name"] = name
    if "axes" in changes:
        data.pop("report")  # its map names the shipped axes
    data.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def recorded_summary() -> dict[str, Any]:
    """The summary of the sphere verification case, as recorded from a real run."""
    return json.loads(RECORDED.read_text())["verification/sphere_newtonian.yaml"]


def cementsim(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`python -m sim ARGS` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def summaries(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Summary of every finished run of a sweep, by run id (not the hidden staging folders
    of runs about to finish)."""
    return {
        p.parent.name: json.loads(p.read_text())
        for p in sorted((sweep_dir / "runs").glob("*/summary.json"))
        if not p.parent.name.startswith(".")
    }


def attempts(sweep_dir: Path, run_id: str) -> list[dict[str, Any]]:
    path = sweep_dir / "runs" / run_id / "attempts.json"
    return json.loads(path.read_text())["attempts"] if path.is_file() else []


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped six-point sweep run with the local pool (2 workers), collected."""
    folder = tmp_path_factory.mktemp("local_sweep")
    out = folder / "sweep"
    run = cementsim(
        "sweep",
        "run",
        str(write_sweep(folder)),
        "--out",
        str(out),
        "--executor",
        "local",
        "--workers",
        "2",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    collect = cementsim("sweep", "collect", str(out))
    assert collect.returncode == 0, collect.stdout + collect.stderr
    return out


def by_parameters(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Summary of every finished run of a sweep, by its parameter values (SI)."""
    plan = json.loads((sweep_dir / "plan.json").read_text())
    done = summaries(sweep_dir)
    return {
        json.dumps(r["si"], sort_keys=True): done[r["id"]] for r in plan["runs"] if r["id"] in done
    }


def assert_same_results(a: Path, b: Path, rel: float = 1e-9) -> None:
    """Two sweep folders hold the same runs (ids) with the same summary numbers (to `rel`:
    1e-6 between runs on different numbers of MPI ranks)."""
    sa, sb = summaries(a), summaries(b)
    assert sorted(sa) == sorted(sb)
    assert len(sa) == len(json.loads((a / "plan.json").read_text())["runs"])
    for run_id, summary in sa.items():
        for key in COMPARED:
            assert sb[run_id][key] == pytest.approx(summary[key], rel=rel), (run_id, key)
