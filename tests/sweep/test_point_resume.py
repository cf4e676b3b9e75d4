"""A sweep point killed with its worker (a job at its wall-time limit: SIGKILL to the whole
process group) goes on from its last checkpoint at the next `sweep run`, to the numbers an
uninterrupted run gives; a point whose checkpoint cannot be resumed starts afresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, SPHERE, attempts, cementsim, write_sweep

pytestmark = pytest.mark.serial

#: one point of the sphere case, 500 steps of at most 0.2 s: it must outlast the 0.5 s the
#: test lets it run on after its first checkpoint (with its own 60 steps it once ended within
#: them, in a clean-clone run of stop 24); a checkpoint after every step
AXES = [{"param": "cement.rheology.viscosity", "values": ["100 Pa*s"]}]
EXECUTOR = {"kind": "serial", "retries": 0, "checkpoint_every": "1 ms"}
QUICK = {
    "numerics.dt_max": "0.2 s",
    "geometry.mesh.growth": 0.5,
    "geometry.mesh.size_tip": "0.6 mm",
    "geometry.mesh.size_max": "10 mm",
    "injection.needles.0.volume": "1 mL",
    "output.fields": False,
    "output.plots": False,
    "output.fluoroscopy": False,
    "output.report": False,
}


def sweep_file(folder: Path) -> Path:
    return write_sweep(folder, axes=AXES, executor=EXECUTOR, set=QUICK)


def kill_when_checkpointed(sweep: Path, out: Path) -> Path:
    """Start `sweep run` in its own process group and SIGKILL the group once the point has
    a checkpoint; the point's folder."""
    tag = f"cementsim-test-{os.getpid()}-{time.monotonic_ns()}"
    child = subprocess.Popen(
        [sys.executable, "-m", "sim", "sweep", "run", str(sweep), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "CEMENTSIM_TEST_TAG": tag},
    )
    deadline = time.monotonic() + 300
    try:
        while not list((out / "runs").glob("*.checkpoint.h5")):
            assert child.poll() is None, "the sweep ended before its point checkpointed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # a few steps on
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        _kill_tagged(tag)  # worker servers outlived the group (seen once: 23 GB, running on)
    (checkpoint,) = (out / "runs").glob("*.checkpoint.h5")
    return checkpoint.with_name(checkpoint.name.removesuffix(".checkpoint.h5"))


def test_a_killed_point_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    sweep = sweep_file(tmp_path)
    out = tmp_path / "sweep"
    point = kill_when_checkpointed(sweep, out)
    assert not (point / "summary.json").exists()
    again = cementsim("sweep", "run", str(sweep), "--out", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    log = (point / "run.log").read_text()
    assert "resum" in log.lower(), log
    summary = json.loads((point / "summary.json").read_text())
    assert not point.with_name(f"{point.name}.checkpoint.h5").exists()  # done: removed
    reference = tmp_path / "reference"
    overrides = [f"{k}={v}" for k, v in QUICK.items()] + ["cement.rheology.viscosity=100 Pa*s"]
    direct = cementsim(
        "run",
        str(SPHERE),
        "--out",
        str(reference),
        "--quiet",
        *[a for o in overrides for a in ("--set", o)],
    )
    assert direct.returncode == 0, direct.stderr
    expected = json.loads((reference / "summary.json").read_text())
    for key in ("tip_pressure_max_pa", "cement_in_bone_m3", "n_steps", "end_time_s"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-12), key


def test_a_checkpoint_that_cannot_be_resumed_is_dropped(tmp_path: Path) -> None:
    sweep = sweep_file(tmp_path)
    out = tmp_path / "sweep"
    point = kill_when_checkpointed(sweep, out)
    checkpoint = point.with_name(f"{point.name}.checkpoint.h5")
    checkpoint.write_bytes(b"not a checkpoint")
    first = cementsim("sweep", "run", str(sweep), "--out", str(out))
    assert first.returncode != 0  # the resume failed (retries: 0) ...
    assert attempts(out, point.name)[-1]["status"] == "failed"
    assert not checkpoint.exists()  # ... and the checkpoint went with it
    second = cementsim("sweep", "run", str(sweep), "--out", str(out))
    assert second.returncode == 0, second.stdout + second.stderr
    assert (point / "summary.json").is_file()


def _kill_tagged(tag: str) -> None:
    """SIGKILL every process started with CEMENTSIM_TEST_TAG=tag in its environment."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and tag.encode() in (proc / "environ").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue
