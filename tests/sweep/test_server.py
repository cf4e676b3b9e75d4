"""The persistent sweep worker (sim.sweep.server, driven by sim.sweep.worker): points run
in-process exactly as the command line runs them, on one rank or on two under mpirun, and a
point that hangs or kills its worker is reported with its exit code and output while the
next point gets a new worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.sweep.server import ORPHANED, run_request
from sim.sweep.worker import SERVER_PARENT, _Server, _server, stop_servers
from tests.support.processes import (
    all_gone,
    command_line,
    cpu_seconds,
    descendants,
    ends_with,
    gone,
    parent_of,
)
from tests.sweep.conftest import COMPARED, SPHERE

pytestmark = pytest.mark.serial

QUICK = [
    "geometry.mesh.size_tip=1 mm",
    "geometry.mesh.size_max=12 mm",
    "injection.needles.0.volume=0.1 mL",
    "output.fields=false",
    "output.plots=false",
    "output.fluoroscopy=false",
    "output.report=false",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
#: QUICK in some 1000 steps (about 8 s): a point that is surely still running when a test
#: kills its worker or its parent (QUICK alone now ends in under a second)
SLOW = [*QUICK, "numerics.dt_max=0.002 s"]


def test_a_request_runs_like_the_command_line(tmp_path: Path) -> None:
    bad = run_request(
        {"base": str(SPHERE), "out": str(tmp_path / "a"), "overrides": ["bone.porosity=2"]}
    )
    assert bad["exit_code"] == 2 and "bone.porosity" in str(bad["output"])
    assert not (tmp_path / "a" / "summary.json").exists()
    good = run_request({"base": str(SPHERE), "out": str(tmp_path / "b"), "overrides": QUICK})
    assert good["exit_code"] == 0, good["output"]
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["injected_volume_m3"] == pytest.approx(1e-7, rel=1e-12)


@pytest.fixture(autouse=True)
def no_idle_servers() -> Iterator[None]:
    """Each test starts and ends without servers kept for later points."""
    stop_servers()
    yield
    stop_servers()


def test_a_hung_or_killed_worker_is_replaced(tmp_path: Path) -> None:
    request = {"base": str(SPHERE), "out": str(tmp_path / "slow"), "overrides": SLOW}
    with _server(sys.executable, ENV) as first:
        code, output = first.run(request, timeout=0.05)  # still importing: times out
        assert (code, output) == (-1, "timed out after 0.05 s") and not first.alive()
    with _server(sys.executable, ENV) as second:
        assert second is not first and second.alive()
        killer = threading.Timer(1.0, lambda: os.kill(second.process.pid, signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        code, _ = second.run({**request, "out": str(tmp_path / "killed")}, timeout=60)
        killer.join()
        assert code == -signal.SIGKILL and time.monotonic() - start < 30
    with _server(sys.executable, ENV) as third:
        assert third is not second
        code, output = third.run({**request, "out": str(tmp_path / "done")}, timeout=120)
        assert code == 0, output
    assert (tmp_path / "done" / "summary.json").is_file()
    with _server(sys.executable, ENV) as again:
        assert again is third  # kept for the next point
    stop_servers(seconds=60)  # the end of its requests ends it, cleanly
    assert third.process.returncode == 0


def test_a_server_serves_whichever_thread_runs_the_next_point(tmp_path: Path) -> None:
    """A process keeps as many servers as it runs points at once, not one per thread (a Dask
    worker has a thread per core; points on M ranks take M of them), and a server outlives
    the thread whose point started it."""
    used: dict[str, tuple[_Server, int, str]] = {}

    def point(name: str) -> None:
        request = {"base": str(SPHERE), "out": str(tmp_path / name), "overrides": QUICK}
        with _server(sys.executable, ENV) as server:
            used[name] = (server, *server.run(request, timeout=300))

    for name in ("a", "b"):  # one thread after the other, each ending after its point
        thread = threading.Thread(target=point, args=(name,), daemon=True)
        thread.start()
        thread.join(timeout=300)
        assert name in used, f"point {name} did not end"
    (server_a, code_a, out_a), (server_b, code_b, out_b) = used["a"], used["b"]
    assert (code_a, code_b) == (0, 0), out_a + out_b
    assert server_b is server_a and server_a.alive()


def test_a_point_that_does_not_reach_its_answer_ends_its_server(tmp_path: Path) -> None:
    """A server whose point ended with an exception may still answer it: it is not handed to
    the next point."""
    request = {"base": str(SPHERE), "out": str(tmp_path / "a"), "overrides": SLOW}
    with pytest.raises(KeyboardInterrupt), _server(sys.executable, ENV) as server:
        assert server.process.stdin is not None
        server.process.stdin.write(json.dumps(request) + "\n")
        server.process.stdin.flush()
        raise KeyboardInterrupt  # as Ctrl-C between the request and its answer
    assert not server.alive()
    with _server(sys.executable, ENV) as other:
        assert other is not server


def test_a_server_on_two_ranks_runs_points_together_and_ends_with_its_timeout(
    tmp_path: Path,
) -> None:
    """Under mpirun -n 2 one server process runs point after point on both ranks, with the
    serial run's numbers (to the MPI tolerance), its ranks idle between points; a point that
    outlives its timeout ends mpirun and every rank."""
    serial = run_request({"base": str(SPHERE), "out": str(tmp_path / "serial"), "overrides": QUICK})
    assert serial["exit_code"] == 0, serial["output"]
    expected = json.loads((tmp_path / "serial" / "summary.json").read_text())
    with _server(sys.executable, ENV, ranks=2) as server:
        for point in ("a", "b"):
            request = {"base": str(SPHERE), "out": str(tmp_path / point), "overrides": QUICK}
            code, output = server.run(request, timeout=300)
            assert code == 0, output
            assert server.alive()
            summary = json.loads((tmp_path / point / "summary.json").read_text())
            assert summary["mpi_ranks"] == 2
            for key in COMPARED:
                assert summary[key] == pytest.approx(expected[key], rel=1e-6), (point, key)
        ranks = _ranks(server.process.pid)
        used = [cpu_seconds(p) for p in ranks]
        time.sleep(2.0)  # between points the ranks wait asleep, not polling in MPI
        assert max(cpu_seconds(p) - u for p, u in zip(ranks, used, strict=True)) < 0.2
        request = {"base": str(SPHERE), "out": str(tmp_path / "slow"), "overrides": SLOW}
        assert server.run(request, timeout=1.0) == (-1, "timed out after 1 s")
        assert not server.alive()
        assert all_gone(ranks, 30.0), "a rank outlived its server's mpirun"


def test_a_rank_that_dies_mid_point_fails_the_point_with_mpiruns_words(tmp_path: Path) -> None:
    """A rank killed by a signal (a segmentation fault, the out-of-memory killer) ends
    mpirun, whose report on its standard output is the point's error, not an answer."""
    with _server(sys.executable, ENV, ranks=2) as server:
        request = {"base": str(SPHERE), "out": str(tmp_path / "a"), "overrides": QUICK}
        assert server.run(request, timeout=300)[0] == 0
        ranks = _ranks(server.process.pid)
        killer = threading.Timer(2.0, lambda: os.kill(ranks[-1], signal.SIGKILL))
        killer.start()
        request = {"base": str(SPHERE), "out": str(tmp_path / "b"), "overrides": SLOW}
        code, output = server.run(request, timeout=120)
        killer.join()
        assert code != 0 and not server.alive()
        assert "BAD TERMINATION" in output and "signal 9" in output, output
        assert all_gone(ranks, 30.0), "a rank outlived its dead neighbour"
    assert not (tmp_path / "b" / "summary.json").exists()


def _ranks(mpirun: int) -> list[int]:
    """The pids of the ranks of a server under `mpirun` (not the processes a rank forks to
    mesh, which have its command line)."""
    ranks = [
        p
        for p in descendants(mpirun)
        if "sim.sweep.server" in command_line(p)
        and "sim.sweep.server" not in command_line(parent_of(p) or 0)
    ]
    assert len(ranks) == 2
    return ranks


#: a sweep worker that starts a server on two ranks (with the parent-death signal on mpirun),
#: hands it one point and waits
WORKER_OF_TWO = """
import json, os, sys, time
from sim.sweep.worker import _server
taken = _server(sys.executable, {**os.environ, "OMP_NUM_THREADS": "1"}, ranks=2)
server = taken.__enter__()
server.process.stdin.write(sys.argv[1] + "\\n"); server.process.stdin.flush()
print(server.process.pid, flush=True)
time.sleep(600)
"""


def test_a_server_on_two_ranks_ends_when_its_worker_dies_mid_point(tmp_path: Path) -> None:
    worker, mpirun = _mid_point(WORKER_OF_TWO, tmp_path)
    ranks = _ranks(mpirun)
    assert ends_with(worker, mpirun), "mpirun outlived the worker"
    assert all_gone(ranks, 30.0), "a rank outlived its worker"
    assert not (tmp_path / "p" / "summary.json").exists()


def _mid_point(parent_code: str, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A process running `parent_code`, which starts a server, hands it a slow point (out:
    tmp_path / "p") and prints the server's pid, once the point has begun: (the process, the
    server's pid)."""
    point = {"base": str(SPHERE), "out": str(tmp_path / "p"), "overrides": SLOW}
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, json.dumps(point)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        server = int(parent.stdout.readline())
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".p.staging-*")):  # the run has begun
            assert time.monotonic() < deadline and not gone(server), "the point never started"
            time.sleep(0.05)
    except BaseException:  # its server has the parent-death signal or the watchdog
        parent.kill()
        parent.wait()
        raise
    return parent, server


#: a parent that starts a server with no parent-death signal, hands it one point and waits
PARENT = """
import json, subprocess, sys, time
server = subprocess.Popen([sys.executable, "-m", "sim.sweep.server"], stdin=subprocess.PIPE)
server.stdin.write((sys.argv[1] + "\\n").encode()); server.stdin.flush()
print(server.pid, flush=True)
time.sleep(600)
"""


def test_a_server_ends_when_its_parent_dies_mid_point(tmp_path: Path) -> None:
    """Without the parent-death signal (the wrapper's), the server's own watchdog ends it."""
    parent, server = _mid_point(PARENT, tmp_path)
    assert ends_with(parent, server), "the server outlived its parent"
    assert not (tmp_path / "p" / "summary.json").exists()


def test_a_server_whose_parent_died_before_it_started_ends() -> None:
    env = {**os.environ, SERVER_PARENT: "1"}  # not this server's parent
    server = subprocess.Popen(
        [sys.executable, "-m", "sim.sweep.server"], stdin=subprocess.PIPE, env=env
    )
    try:
        assert server.wait(timeout=60) == ORPHANED
    finally:
        server.kill()
