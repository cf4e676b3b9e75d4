"""Sweeps that run: the local pool, Dask (its own LocalCluster, or a running scheduler whose
worker is killed mid-way), and a sweep interrupted and resumed with a failing point.

Each sweep is the shipped six-point coarse sphere example (a few seconds per run); runs are
deterministic, so every executor must give the local pool's numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import parent_of, processes_mentioning
from tests.sweep.conftest import (
    REPO,
    assert_same_results,
    attempts,
    cementsim,
    summaries,
    write_sweep,
)

pytestmark = pytest.mark.serial

WAIT = 600.0  # s, for a whole sweep on a loaded 2-core machine


def _wait_for_summaries(out: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT
    while len(summaries(out)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"fewer than {count} runs finished in {WAIT} s"
        time.sleep(0.2)


def _holds_a_run_lock(pid: int, out: Path) -> bool:
    """Whether process `pid` has a point of this sweep locked (runs it)."""
    runs = str(out / "runs")
    try:
        targets = [os.readlink(fd) for fd in (Path("/proc") / str(pid) / "fd").iterdir()]
    except OSError:
        return False
    return any(t.startswith(runs) and t.endswith(".lock") for t in targets)


def _worker_running_a_point(workers: set[int], out: Path, driver: subprocess.Popen) -> int:
    """Wait until one of the `workers` (pids) runs a point of this sweep; its pid."""
    deadline = time.monotonic() + WAIT
    while True:
        for pid in workers:
            if _holds_a_run_lock(pid, out):
                return pid
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, f"no worker started a point in {WAIT} s"
        time.sleep(0.05)


def _exactly_once(out: Path, unrecorded: frozenset[str] = frozenset()) -> None:
    """Every finished run finished in exactly one recorded attempt; runs in `unrecorded` (whose
    worker was killed between the run's end and the record) in at most one."""
    for run_id in summaries(out):
        done = [a for a in attempts(out, run_id) if a["status"] == "done"]
        allowed = (0, 1) if run_id in unrecorded else (1,)
        assert len(done) in allowed, (run_id, attempts(out, run_id))


def test_local_pool_runs_every_point_once_and_collects(local_sweep: Path) -> None:
    plan = json.loads((local_sweep / "plan.json").read_text())
    assert len(summaries(local_sweep)) == len(plan["runs"]) == 6
    _exactly_once(local_sweep)
    for summary in summaries(local_sweep).values():
        assert summary["mass_balance_rel_error"] <= 1e-10
        assert summary["injected_volume_m3"] == pytest.approx(1e-6, rel=1e-9)
    table = (local_sweep / "results.csv").read_text().splitlines()
    assert len(table) == 7
    provenance = json.loads((local_sweep / "provenance.json").read_text())
    events = [s["event"] for s in provenance["sessions"]]
    assert events == ["start", "end"] and "versions" in provenance["sessions"][0]
    status = cementsim("sweep", "status", str(local_sweep))
    assert "done 6, failed 0, pending 0" in status.stdout
    again = cementsim("sweep", "run", str(local_sweep / "sweep.yaml"), "--out", str(local_sweep))
    assert again.returncode != 0 or "6 already done" in again.stdout


def test_dask_local_cluster_gives_the_local_pool_results(local_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run = cementsim(
        "sweep",
        "run",
        str(write_sweep(tmp_path)),
        "--out",
        str(out),
        "--executor",
        "dask",
        "--workers",
        "2",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    _exactly_once(out)
    assert_same_results(local_sweep, out)


def test_dask_worker_killed_mid_sweep_loses_nothing(local_sweep: Path, tmp_path: Path) -> None:
    """A running scheduler (given by address); one worker is SIGKILLed while it runs a point.
    Dask resubmits that point; its half-done run process dies with the worker, and every point
    ends up done exactly once with the local pool's numbers."""
    from dask.distributed import Client, LocalCluster

    out = tmp_path / "sweep"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim",
                "sweep",
                "run",
                str(write_sweep(tmp_path)),
                "--out",
                str(out),
                "--scheduler",
                cluster.scheduler_address,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for_summaries(out, 1, driver)
        victim = _worker_running_a_point(set(client.run(os.getpid).values()), out, driver)
        os.kill(victim, signal.SIGKILL)
        done_at_kill = frozenset(summaries(out))
        output, _ = driver.communicate(timeout=WAIT)
    assert driver.returncode == 0, output
    _exactly_once(out, unrecorded=done_at_kill)
    assert_same_results(local_sweep, out)


def test_interrupted_sweep_resumes_and_records_the_failing_point(tmp_path: Path) -> None:
    """Kill the sweep (its pool) after two runs; the rerun completes each remaining point once,
    keeps the finished ones, and records the point that cannot run with its error."""
    sweep = write_sweep(
        tmp_path,
        derived={
            "numerics.max_steps": "20000 - 19997 * (cement.rheology.viscosity > 150) "
            "* (injection.needles.0.rate > 5e-8)"
        },
        executor={"kind": "local", "workers": 2, "retries": 1},
    )
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sim", "sweep", "run", str(sweep), "--out", str(out)]
    first = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_summaries(out, 2, first)
    servers = [p for p in processes_mentioning("sim.sweep.server") if parent_of(p) == first.pid]
    assert len(servers) == 2  # one persistent worker process per point running at once
    first.kill()  # the driver and its worker threads; their servers must follow
    first.wait()
    killed_at = time.time()
    deadline = time.monotonic() + 30
    while processes_mentioning(str(out)) or any(Path(f"/proc/{p}").exists() for p in servers):
        assert time.monotonic() < deadline, "servers outlived the killed sweep"
        time.sleep(0.2)
    before = {k: (out / "runs" / k / "summary.json").stat().st_mtime for k in summaries(out)}
    assert 2 <= len(before) < 6

    second = cementsim("sweep", "run", str(sweep), "--out", str(out))
    assert second.returncode == 1, second.stdout + second.stderr  # one point failed
    assert f"{len(before)} already done" in second.stdout
    plan = json.loads((out / "plan.json").read_text())
    failing = [r["id"] for r in plan["runs"] if r["si"]["numerics.max_steps"] == 3]
    assert len(failing) == 1
    finished = summaries(out)
    assert sorted(finished) == sorted(r["id"] for r in plan["runs"] if r["id"] not in failing)
    for run_id, mtime in before.items():  # not run again
        assert (out / "runs" / run_id / "summary.json").stat().st_mtime == mtime
        assert all(
            a["finished"] <= time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(killed_at + 1))
            for a in attempts(out, run_id)
        )
    _exactly_once(out, unrecorded=frozenset(before))
    failed = json.loads((out / "runs" / failing[0] / "failed.json").read_text())
    assert "max_steps" in failed["error"] or "steps" in failed["error"]
    assert [a["status"] for a in attempts(out, failing[0])][-2:] == ["failed", "failed"]
    status = cementsim("sweep", "status", str(out))
    assert "done 5, failed 1, pending 0" in status.stdout and failing[0] in status.stdout
    collect = cementsim("sweep", "collect", str(out))
    assert collect.returncode == 0, collect.stdout + collect.stderr
    page = (out / "sweep_report.html").read_text()
    assert failing[0] in page
