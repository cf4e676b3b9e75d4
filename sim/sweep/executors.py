"""Executors of a sweep: a serial loop, a local pool, Dask (LocalCluster or a running
scheduler), dask-jobqueue on SLURM or PBS, and a SLURM job array (sbatch --array).

All run the pending points with sim.sweep.worker.run_point, in worker processes apart from
the sweep's, so a crashed run cannot take the sweep down; finished points are skipped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path
from typing import Any

from sim.sweep.plan import PlannedRun
from sim.sweep.spec import Executor
from sim.sweep.store import DONE, status_of
from sim.sweep.worker import run_point, stop_servers

Report = Callable[[dict[str, Any]], None]


def pending_runs(sweep_dir: Path, runs: Iterable[PlannedRun]) -> list[PlannedRun]:
    return [r for r in runs if status_of(sweep_dir, r.id) != DONE]


def _arguments(sweep_dir: Path, base: Path, run: PlannedRun, ex: Executor) -> dict[str, Any]:
    return {
        "sweep_dir": str(sweep_dir),
        "base": str(base),
        "run_id": run.id,
        "overrides": run.overrides,
        "ranks": ex.ranks_per_run,
        "retries": ex.retries,
        "timeout": ex.timeout,
        "python": sys.executable,
        "checkpoint_every": ex.checkpoint_every,
    }


def execute(
    sweep_dir: Path,
    base: Path,
    runs: list[PlannedRun],
    ex: Executor,
    report: Report,
    wait: bool = True,
) -> list[dict[str, Any]]:
    """Run the pending points with executor `ex`; `report` is called with each result.
    `wait`: False submits a SLURM array and returns without waiting for it."""
    todo = pending_runs(sweep_dir, runs)
    if not todo:
        return []
    args = [_arguments(sweep_dir, base, r, ex) for r in todo]
    if ex.kind in ("serial", "local"):
        try:
            if ex.kind == "serial":
                return _collect((run_point(**a) for a in args), report)
            with ThreadPoolExecutor(max_workers=ex.workers) as pool:
                futures = [pool.submit(run_point, **a) for a in args]
                return _collect((f.result() for f in as_completed(futures)), report)
        finally:
            stop_servers()  # their memory, while the sweep's results are collected
    if ex.kind == "slurm_array":
        return run_array(sweep_dir, todo, ex, report, wait)
    return _run_dask(args, ex, report, sweep_dir / "logs")


def _collect(results: Iterable[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    out = []
    for result in results:
        report(result)
        out.append(result)
    return out


def _run_dask(
    args: list[dict[str, Any]], ex: Executor, report: Report, logs: Path
) -> list[dict[str, Any]]:
    """Submit every point to Dask (a LocalCluster, a running scheduler, or jobqueue jobs).

    On jobqueue clusters each worker offers `slots` = its cores and each run takes
    ranks_per_run of them, so a job runs as many runs at once as its cores allow. A task whose
    workers kept dying is reported lost (the run stays pending for the next session)."""
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = None
    resources = None
    if ex.kind == "dask":
        if ex.scheduler is None:
            cluster = LocalCluster(
                n_workers=ex.workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
    else:
        cluster = _jobqueue_cluster(ex, logs)
        cluster.scale(jobs=ex.jobqueue.jobs)
        resources = {"slots": ex.ranks_per_run}
    client = Client(ex.scheduler) if cluster is None else Client(cluster)
    try:
        futures = {
            client.submit(
                run_point, **a, pure=False, key=f"run-{a['run_id']}", resources=resources
            ): a["run_id"]
            for a in args
        }
        return _collect((_outcome(f, futures[f]) for f in dask_completed(futures)), report)
    finally:
        try:
            if cluster is None:  # a running scheduler's workers outlive the sweep: not its servers
                with suppress(Exception):  # a worker that is gone has none to end
                    client.run(stop_servers)
        finally:
            client.close()
        if cluster is not None:
            cluster.close()


def _outcome(future: Any, run_id: str) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # a lost task must not end the sweep
        return {"id": run_id, "status": "lost", "error": f"{type(exc).__name__}: {exc}"}


def _jobqueue_cluster(ex: Executor, logs: Path) -> Any:
    """A dask-jobqueue SLURMCluster or PBSCluster: one worker process per job, with
    max(cores, ranks_per_run) cores offered as `slots`."""
    import dask_jobqueue

    kind = dask_jobqueue.SLURMCluster if ex.kind == "slurm" else dask_jobqueue.PBSCluster
    q = ex.jobqueue
    cores = max(q.cores, ex.ranks_per_run)
    options: dict[str, Any] = {
        "cores": cores,
        "processes": 1,
        "memory": q.memory,
        "walltime": q.walltime,
        "python": sys.executable,
        "job_name": "cementsim",
        "worker_extra_args": ["--resources", f"slots={cores}"],
        "job_script_prologue": ["export OMP_NUM_THREADS=1"],
        "log_directory": str(logs),
    }
    optional = {"queue": q.queue, "account": q.account, "interface": q.interface}
    options.update({k: v for k, v in optional.items() if v})
    return kind(**options)


# ----------------------------------------------------------------------------- job arrays
class ScriptValueError(ValueError):
    """A value that cannot be written into array.sbatch (invalid input: exit 2)."""


#: what a path may not hold in an #SBATCH line: sbatch splits the line at white space and
#: reads quotes, backslashes and '#' itself (no shell quoting), SLURM reads '%' in file names
#: as a pattern; control characters (a newline ends the line) and undecodable bytes
_UNSAFE_IN_DIRECTIVE = re.compile(r"[\s\"'\\#%\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _directive_path(sweep_dir: Path) -> str:
    """The sweep folder's path as it goes into an #SBATCH option; ScriptValueError if it
    cannot."""
    text = str(sweep_dir)
    bad = _UNSAFE_IN_DIRECTIVE.search(text)
    if bad:
        raise ScriptValueError(
            f"sweep folder {text!r}: its path goes into '#SBATCH --output=' of array.sbatch, "
            f"which cannot hold {bad.group()!r} (nor white space, quotes, backslashes, '#', "
            "'%' or control characters); choose another folder (--out)"
        )
    return text


def _job_name(sweep_dir: Path) -> str:
    """cementsim-FOLDER with every character SLURM job names may not safely hold replaced."""
    return "cementsim-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", sweep_dir.name)[:64]


def write_array_script(sweep_dir: Path, todo: list[PlannedRun], ex: Executor) -> Path:
    """SWEEP_DIR/array.sbatch: one array task per pending run (ids in array_runs.txt).

    The #SBATCH values are checked (the executor's by sim.sweep.spec.JobQueue, the folder's
    path here) rather than quoted, as sbatch does not read them as shell words; every word
    of the shell lines is quoted with shlex.quote."""
    folder = _directive_path(sweep_dir)
    q = ex.jobqueue
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={_job_name(sweep_dir)}",
        f"#SBATCH --array=0-{len(todo) - 1}",
        f"#SBATCH --ntasks=1 --cpus-per-task={max(q.cores, ex.ranks_per_run)}",
        f"#SBATCH --mem={q.memory}",
        f"#SBATCH --time={q.walltime}",
        f"#SBATCH --output={folder}/logs/array-%A_%a.out",
        *([f"#SBATCH --partition={q.queue}"] if q.queue else []),
        *([f"#SBATCH --account={q.account}"] if q.account else []),
        "set -euo pipefail",
        "export OMP_NUM_THREADS=1",
        f'RUN_ID=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" '
        f"{shlex.quote(str(sweep_dir / 'array_runs.txt'))})",
        f"exec {shlex.quote(sys.executable)} -m sim sweep run-one "
        f'{shlex.quote(str(sweep_dir))} "$RUN_ID"',
        "",
    ]
    (sweep_dir / "array_runs.txt").write_text("".join(f"{r.id}\n" for r in todo))
    (sweep_dir / "logs").mkdir(exist_ok=True)
    script = sweep_dir / "array.sbatch"
    script.write_text("\n".join(lines))
    return script


class ExecutorError(RuntimeError):
    """A cluster command (sbatch, squeue) failed or a cluster could not be started."""


def submit_array(sweep_dir: Path, todo: list[PlannedRun], ex: Executor) -> str:
    """Write the array script and submit it with sbatch; returns the job id."""
    script = write_array_script(sweep_dir, todo, ex)
    try:
        done = subprocess.run(
            ["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ExecutorError(
            f"sbatch not found: submit {script} on a SLURM login node, or use another executor"
        ) from None
    if done.returncode != 0:
        raise ExecutorError(f"sbatch {script} failed: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]


def run_array(
    sweep_dir: Path,
    todo: list[PlannedRun],
    ex: Executor,
    report: Report,
    wait: bool = True,
    poll: float = 2.0,
) -> list[dict[str, Any]]:
    """Submit the array; with `wait`, poll squeue until it has left the queue and report each
    run's state (otherwise return at once: `cementsim sweep status` follows it)."""
    job = submit_array(sweep_dir, todo, ex)
    if not wait:
        report({"id": f"array job {job}", "status": "submitted"})
        return []
    while True:
        queue = subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%i"], capture_output=True, text=True, check=False
        )
        if queue.returncode != 0 or not queue.stdout.strip():
            break
        time.sleep(poll)
    results = []
    for run in todo:
        results.append({"id": run.id, "status": status_of(sweep_dir, run.id), "job": job})
        report(results[-1])
    return results
