"""A real one-node SLURM cluster on localhost: what cementsim's sweeps on SLURM stand on.

Sweeps run through dask-jobqueue and through an sbatch array and must give the local pool's
numbers. The module-scoped fixture runs ``tests/support/slurm/start.sh`` (installs Debian's
slurm-wlm and munge with apt-get when missing, writes a private configuration, starts munged,
slurmctld and slurmd, waits for the node to be idle) and ``stop.sh`` at teardown. The tests
submit real jobs with ``sbatch --wrap`` and ``sbatch --array`` and wait for them with
``squeue`` and ``scontrol`` (no ``sacct``: there is no slurmdbd), then check that ``stop.sh``
leaves no daemon behind.

Without ``CEMENTSIM_REQUIRE_SLURM=1`` the module is skipped where the cluster cannot be had (not
root, no apt-get, apt-get failing, daemons that cannot start); with it, any of these fails.
Serial only: one cluster per machine, and the daemons are not MPI-aware.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sweep.conftest import (
    COMPARED,
    REPO,
    assert_same_results,
    by_parameters,
    write_sweep,
)

pytestmark = pytest.mark.serial

SUPPORT = Path(__file__).resolve().parents[1] / "support" / "slurm"
START = SUPPORT / "start.sh"
STOP = SUPPORT / "stop.sh"
STATE_DIR = Path(os.environ.get("CEMENTSIM_SLURM_DIR", "/tmp/cementsim-slurm"))
REQUIRE = os.environ.get("CEMENTSIM_REQUIRE_SLURM", "") not in ("", "0")
DAEMONS = ("slurmctld", "slurmd", "slurmstepd", "munged")
JOB_TIMEOUT = 60.0  # seconds for a job (or a whole array) to run to completion
START_TIMEOUT = 900  # seconds for start.sh, apt-get install included
SWEEP_TIMEOUT = 900  # seconds for a six-point sweep through the cluster


def _unavailable(reason: str) -> None:
    """Skip, or fail when the cluster is required (CEMENTSIM_REQUIRE_SLURM=1)."""
    if REQUIRE:
        pytest.fail(f"CEMENTSIM_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(f"no SLURM test cluster here: {reason} (set CEMENTSIM_REQUIRE_SLURM=1 to fail)")


def _daemon_pids() -> dict[int, str]:
    """Live (non-zombie) SLURM and munge daemon processes on this machine: pid -> name."""
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
            if name not in DAEMONS:
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found[int(proc.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _stop() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(STOP)], capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture(scope="module")
def daemons_before() -> dict[int, str]:
    """Daemons that were running before this module started its cluster (not ours to judge)."""
    return _daemon_pids()


@pytest.fixture(scope="module")
def slurm_conf(daemons_before: dict[int, str]) -> Iterator[Path]:
    """Start the cluster, yield its slurm.conf, stop it at teardown."""
    if not START.is_file():
        pytest.fail(f"{START} is missing", pytrace=False)
    if shutil.which("bash") is None or shutil.which("flock") is None:
        _unavailable("bash or flock is missing")
    if os.geteuid() != 0:
        _unavailable("not root (start.sh installs packages and runs the daemons as root)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        _unavailable("slurm-wlm is not installed and there is no apt-get to install it")

    t0 = time.monotonic()
    try:
        run = subprocess.run(
            ["bash", str(START)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        _stop()
        pytest.fail(f"start.sh took more than {START_TIMEOUT} s: {exc}", pytrace=False)
    elapsed = time.monotonic() - t0
    if run.returncode != 0:
        output = _tail(run.stderr + run.stdout)
        _stop()
        if run.returncode in (3, 4):  # 3: cannot install, 4: daemons would not come up
            _unavailable(f"start.sh exited {run.returncode}:\n{output}")
        pytest.fail(f"start.sh exited {run.returncode}:\n{output}", pytrace=False)
    export = [ln for ln in run.stdout.splitlines() if ln.startswith("export SLURM_CONF=")]
    assert export, f"start.sh printed no 'export SLURM_CONF=' line:\n{run.stdout}"
    conf = Path(export[-1].split("=", 1)[1])
    assert conf == STATE_DIR / "slurm.conf"
    assert conf.is_file()
    print(f"SLURM test cluster up in {elapsed:.1f} s: SLURM_CONF={conf}")
    try:
        yield conf
    finally:
        stop = _stop()
        assert stop.returncode == 0, f"stop.sh failed:\n{_tail(stop.stderr + stop.stdout)}"


def _env(conf: Path) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(conf)}


def _slurm(conf: Path, *args: str, timeout: float = 30) -> str:
    run = subprocess.run(
        list(args), env=_env(conf), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, f"{shlex.join(args)} exited {run.returncode}:\n{run.stderr}"
    return run.stdout


def _sbatch(conf: Path, workdir: Path, *args: str) -> str:
    """Submit with sbatch; return the job id."""
    out = _slurm(conf, "sbatch", "--parsable", f"--chdir={workdir}", *args)
    job_id = out.strip().split(";")[0]
    assert job_id.isdigit(), f"sbatch printed {out!r}"
    return job_id


def _cluster_state(conf: Path) -> str:
    """What the cluster says about its queue and node, and the end of slurmctld's log: the
    diagnosis printed when a job does not start or end in time."""
    log = STATE_DIR / "log" / "slurmctld.log"
    ctld_tail = _tail(log.read_text(errors="replace"), 20) if log.exists() else "(no log)"
    queue = _slurm(conf, "squeue", "-h", "-o", "%i %T %r")
    nodes = _slurm(conf, "sinfo", "-h", "-N", "-o", "%N %T %E")
    return f"squeue:\n{queue}sinfo:\n{nodes}slurmctld.log:\n{ctld_tail}"


def _wait(conf: Path, job_id: str, expected: list[Path]) -> None:
    """Wait until the job (all its array tasks) left the queue and wrote the expected files;
    then check with scontrol that every task COMPLETED with exit code 0."""
    deadline = time.monotonic() + JOB_TIMEOUT
    queued = "?"
    while time.monotonic() < deadline:
        queued = _slurm(conf, "squeue", "-h", "-j", job_id, "-o", "%i %T %r").strip()
        if not queued and all(p.exists() for p in expected):
            break
        time.sleep(0.5)
    else:
        missing = [p.name for p in expected if not p.exists()]
        pytest.fail(
            f"job {job_id} not done after {JOB_TIMEOUT:.0f} s: squeue says {queued!r}, "
            f"missing files {missing}\n{_cluster_state(conf)}",
            pytrace=False,
        )
    records = _slurm(conf, "scontrol", "-o", "show", "job", job_id).strip().splitlines()
    assert records, f"scontrol knows no job {job_id}"
    for record in records:
        fields = dict(f.split("=", 1) for f in record.split() if "=" in f)
        assert fields.get("JobState") == "COMPLETED", record
        assert fields.get("ExitCode") == "0:0", record


def _node() -> str:
    return subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()


def test_sinfo_lists_the_node_idle(slurm_conf: Path) -> None:
    out = _slurm(slurm_conf, "sinfo", "-h", "-N", "-o", "%N %P %T %c")
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows == [[_node(), "debug*", "idle", str(len(os.sched_getaffinity(0)))]]
    assert "is UP" in _slurm(slurm_conf, "scontrol", "ping")


def test_sbatch_wrap_job_runs(slurm_conf: Path, tmp_path: Path) -> None:
    out = tmp_path / "wrap.txt"
    job_id = _sbatch(
        slurm_conf,
        tmp_path,
        "--job-name=cementsim-wrap",
        f"--output={tmp_path}/slurm-%j.out",
        f"--wrap=echo job=$SLURM_JOB_ID node=$SLURMD_NODENAME > {out}",
    )
    _wait(slurm_conf, job_id, [out])
    assert out.read_text().split() == [f"job={job_id}", f"node={_node()}"]


def test_sbatch_array_job_runs_every_task(slurm_conf: Path, tmp_path: Path) -> None:
    outs = [tmp_path / f"task-{i}.txt" for i in range(4)]
    job_id = _sbatch(
        slurm_conf,
        tmp_path,
        "--array=0-3",
        "--job-name=cementsim-array",
        f"--output={tmp_path}/slurm-%A_%a.out",
        f"--wrap=echo $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT"
        f" > {tmp_path}/task-$SLURM_ARRAY_TASK_ID.txt",
    )
    _wait(slurm_conf, job_id, outs)
    for i, out in enumerate(outs):
        assert out.read_text().split() == [job_id, str(i), "4"]


def test_job_runs_the_project_python_with_numpy(slurm_conf: Path, tmp_path: Path) -> None:
    import numpy

    out = tmp_path / "numpy.txt"
    code = (
        "import sys, numpy; "
        f"open({str(out)!r}, 'w').write(sys.executable + ' ' + numpy.__version__ + ' ' + "
        "str(int(numpy.arange(10).sum())))"
    )
    job_id = _sbatch(
        slurm_conf,
        tmp_path,
        "--job-name=cementsim-python",
        f"--output={tmp_path}/slurm-%j.out",
        f"--wrap={shlex.quote(sys.executable)} -c {shlex.quote(code)}",
    )
    _wait(slurm_conf, job_id, [out])
    assert out.read_text().split() == [sys.executable, numpy.__version__, "45"]


def test_dask_jobqueue_workers_run_as_slurm_jobs(
    slurm_conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dask workers as SLURM jobs (sbatch), a map over them, then scancel on close.
    Skipped while dask-jobqueue is not installed in the project's environment."""
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    monkeypatch.setenv("SLURM_CONF", str(slurm_conf))  # dask-jobqueue runs sbatch/squeue/scancel
    cluster = SLURMCluster(
        queue="debug",
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        interface="lo",
        local_directory=str(tmp_path),
        log_directory=str(tmp_path / "logs"),
    )
    with cluster, Client(cluster) as client:
        cluster.scale(jobs=2)
        client.wait_for_workers(2, timeout=JOB_TIMEOUT)
        squares = client.gather(client.map(lambda x: x * x, range(8)))
    assert squares == [x * x for x in range(8)]
    deadline = time.monotonic() + JOB_TIMEOUT
    while _slurm(slurm_conf, "squeue", "-h", "-n", "dask-worker", "-o", "%i").strip():
        assert time.monotonic() < deadline, "dask-worker jobs still queued after close()"
        time.sleep(0.5)


def _sweep_on_slurm(conf: Path, folder: Path, *options: str, **changes: Any) -> Path:
    """Run the six-point sweep (with `changes` to the sweep file) with `options` against the
    test cluster; its folder."""
    out = folder / "sweep"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "sweep",
            "run",
            str(write_sweep(folder, **changes)),
            "--out",
            str(out),
            "--queue",
            "debug",
            "--cores",
            "1",
            "--memory",
            "1GB",
            "--walltime",
            "00:20:00",
            *options,
        ],
        env=_env(conf),
        capture_output=True,
        text=True,
        timeout=SWEEP_TIMEOUT,
        check=False,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_sweep_through_dask_jobqueue_gives_the_local_results(
    slurm_conf: Path, local_sweep: Path, tmp_path: Path
) -> None:
    """`cementsim sweep run --executor slurm`: dask workers as SLURM jobs run every point."""
    out = _sweep_on_slurm(
        slurm_conf, tmp_path, "--executor", "slurm", "--jobs", "2", "--interface", "lo"
    )
    assert_same_results(local_sweep, out)
    job_logs = list((out / "logs").glob("*.out")) + list((out / "logs").glob("*.err"))
    assert job_logs, "no SLURM job wrote a log: did the workers run as jobs?"
    assert not _slurm(slurm_conf, "squeue", "-h", "-o", "%i").strip(), "jobs left queued"


def test_sweep_through_an_sbatch_array_gives_the_local_results(
    slurm_conf: Path, local_sweep: Path, tmp_path: Path
) -> None:
    """`cementsim sweep run --executor slurm_array`: one array task per point, each run on two
    MPI ranks inside its task (same numbers as the serial runs, to the MPI tolerance). Two of
    the six points (tasks on two ranks run one after the other on the 2-core test node)."""
    axes = [
        {"param": "cement.rheology.viscosity", "values": ["50 Pa*s", "200 Pa*s"]},
        {"param": "injection.needles.0.rate", "values": ["4 mL/min"]},
    ]
    options = ("--executor", "slurm_array", "--ranks-per-run", "2")
    out = _sweep_on_slurm(slurm_conf, tmp_path, *options, axes=axes)
    local, array = by_parameters(local_sweep), by_parameters(out)
    assert len(array) == 2 and set(array) <= set(local)
    for point, summary in array.items():
        for key in COMPARED:
            assert summary[key] == pytest.approx(local[point][key], rel=1e-6), (point, key)
        assert summary["mpi_ranks"] == 2
    assert len(list((out / "logs").glob("array-*_*.out"))) == 2


def test_stop_leaves_no_daemons(
    slurm_conf: Path, daemons_before: dict[int, str], tmp_path: Path
) -> None:
    """Last in this module: stop.sh ends every daemon of the cluster (and the fixture's own
    stop.sh at teardown then has nothing left to do)."""
    # A job still running when the cluster stops must not outlive it, nor its slurmstepd.
    pidfile = tmp_path / "job.pid"
    _sbatch(
        slurm_conf, tmp_path, "--output=/dev/null", f"--wrap=echo $$ > {pidfile}; exec sleep 300"
    )
    deadline = time.monotonic() + JOB_TIMEOUT
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, (
            f"the sleeping job did not start in {JOB_TIMEOUT:.0f} s\n{_cluster_state(slurm_conf)}"
        )
        time.sleep(0.2)
    job_pid = int(pidfile.read_text())
    stop = _stop()
    assert stop.returncode == 0, _tail(stop.stderr + stop.stdout)
    deadline = time.monotonic() + 10
    while True:  # killed daemons may take a moment to be reaped
        left = {pid: name for pid, name in _daemon_pids().items() if pid not in daemons_before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"daemons left behind after stop.sh: {left}"
    assert not _alive(job_pid), f"the running job's process {job_pid} outlived the cluster"
    for name in ("slurmctld", "slurmd", "munged"):
        pgrep = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
        ours = [p for p in pgrep.stdout.split() if int(p) not in daemons_before]
        alive = [p for p in ours if int(p) in _daemon_pids()]  # pgrep also lists zombies
        assert not alive, f"pgrep -x {name} still finds {alive}"
    assert not (STATE_DIR / "run" / "slurmctld.pid").exists()
    assert not (STATE_DIR / "munge" / "munged.pid").exists()
