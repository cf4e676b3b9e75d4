"""`cementsim sweep plan|run|status|collect|run-one`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sim.scenario.loader import describe_error, read_yaml
from sim.sweep.spec import Executor, SweepSpec

if TYPE_CHECKING:
    from sim.sweep.plan import Plan

EXIT_INVALID = 2
JOBQUEUE_OPTIONS = (
    ("cores", int, "cores per job"),
    ("memory", str, "memory per job, e.g. 4GB"),
    ("walltime", str, "time limit per job, e.g. 02:00:00"),
    ("queue", str, "partition (SLURM) or queue (PBS)"),
    ("account", str, "account to charge"),
    ("jobs", int, "dask-jobqueue: number of worker jobs"),
    ("interface", str, "dask-jobqueue: network interface of the workers, e.g. ib0"),
)


def add_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="parameter sweeps: plan, run, status, collect")
    commands = sweep.add_subparsers(dest="sweep_command", required=True)
    plan = commands.add_parser("plan", help="expand a sweep file and list its runs")
    plan.add_argument("sweep_file", type=Path)
    run = commands.add_parser("run", help="run (or resume) a sweep")
    run.add_argument("sweep_file", type=Path)
    run.add_argument("--out", type=Path, help="sweep directory (default results/sweeps/NAME)")
    run.add_argument(
        "--executor", choices=["serial", "local", "dask", "slurm", "pbs", "slurm_array"]
    )
    run.add_argument("--workers", type=int, help="runs at once (local pool, LocalCluster)")
    run.add_argument("--ranks-per-run", type=int, help="MPI ranks of each run")
    run.add_argument("--retries", type=int, help="attempts after a failed first one")
    run.add_argument("--scheduler", help="address of a running Dask scheduler (implies dask)")
    queue = run.add_argument_group("cluster jobs (slurm, pbs, slurm_array)")
    for option, kind, text in JOBQUEUE_OPTIONS:
        queue.add_argument(f"--{option}", type=kind, help=text)
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="slurm_array: submit and return (follow with `cementsim sweep status`)",
    )
    run.add_argument(
        "--write-script",
        action="store_true",
        help="slurm_array: only write SWEEP_DIR/array.sbatch, to submit by hand",
    )
    status = commands.add_parser("status", help="how many runs are done, failed, corrupt, pending")
    status.add_argument("sweep_dir", type=Path)
    collect = commands.add_parser("collect", help="one table (CSV, HDF5, Parquet) and a report")
    collect.add_argument("sweep_dir", type=Path)
    one = commands.add_parser("run-one", help="run one planned run (used by job arrays)")
    one.add_argument("sweep_dir", type=Path)
    one.add_argument("run_id")


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file (base path relative to the file)."""
    from sim.scenario import ScenarioError

    if path.is_dir():
        problem = "a folder, not a sweep file"
        if (path / "sweep.yaml").is_file():
            problem += f" (this sweep folder holds its sweep file as {path / 'sweep.yaml'})"
        raise ScenarioError(str(path), [problem], "sweep")
    try:
        data = read_yaml(path, "sweep")
    except OSError as exc:  # not UTF-8 is the reader's ScenarioError
        raise ScenarioError(str(path), [f"cannot be read: {exc}"], "sweep") from None
    if isinstance(data.get("base"), str):
        base = Path(data["base"])
        data["base"] = str(base if base.is_absolute() else (path.parent / base).resolve())
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = [describe_error(e, data).replace("(top level): ", "") for e in exc.errors()]
        raise ScenarioError(str(path), problems, "sweep") from None


def main(args: argparse.Namespace) -> int:
    from sim.scenario import ScenarioError
    from sim.sweep.executors import ScriptValueError
    from sim.sweep.plan import PlanError
    from sim.sweep.store import NotASweepError, SweepBusyError

    try:
        if args.sweep_command == "plan":
            return _plan(args)
        if args.sweep_command == "run":
            return _run(args)
        if args.sweep_command == "status":
            return _status(args.sweep_dir)
        if args.sweep_command == "collect":
            return _collect(args.sweep_dir)
        return _run_one(args.sweep_dir, args.run_id)
    except (ScenarioError, PlanError, NotASweepError, ScriptValueError, SweepBusyError) as exc:
        _error(str(exc))
        return EXIT_INVALID


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _plan(args: argparse.Namespace) -> int:
    from sim.sweep.plan import make_plan

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `cementsim sweep plan ... | head`
    plan = make_plan(load_sweep(args.sweep_file))
    names = plan.parameter_names
    print(
        f"sweep '{plan.spec.name}': {len(plan.runs)} runs ({plan.spec.sampling.method}"
        f"{', ' + str(plan.dropped) + ' dropped by constraints' if plan.dropped else ''})"
    )
    print("  run         " + "  ".join(names))
    for run in plan.runs:
        cells = [_shown(run.params.get(n)) for n in names]
        print(
            f"  {run.id}  " + "  ".join(c.ljust(len(n)) for c, n in zip(cells, names, strict=True))
        )
    return 0


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _run(args: argparse.Namespace) -> int:
    """`sweep run`: plan, then run the pending points while holding the sweep folder's lock
    (a second `sweep run` on the same folder is refused, exit 2)."""
    from sim.scenario import ScenarioError
    from sim.sweep.plan import make_plan
    from sim.sweep.store import sweep_lock

    spec = load_sweep(args.sweep_file)
    executor = _executor(spec, args)
    plan = make_plan(spec)
    sweep_dir = args.out or Path("results") / "sweeps" / spec.name
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(
            "command line",
            [f"sweep folder {str(sweep_dir)!r} cannot be created: {exc.strerror}"],
            "options",
        ) from None
    with sweep_lock(sweep_dir):
        return _session(args, spec, plan, executor, sweep_dir)


def _session(
    args: argparse.Namespace, spec: SweepSpec, plan: Plan, executor: Executor, sweep_dir: Path
) -> int:
    """One session of `sweep run` in its (locked) folder: record the plan, run what is
    pending, report."""
    from sim.sweep.executors import ExecutorError, execute, pending_runs, write_array_script
    from sim.sweep.store import record_session, status, write_plan

    write_plan(sweep_dir, plan, args.sweep_file, executor.model_dump())
    record_session(sweep_dir, "start", executor=executor.model_dump())
    total, start = len(plan.runs), time.perf_counter()
    before = status(sweep_dir)
    done = [len(before["done"])]
    corrupt = f", {len(before['corrupt'])} to run again (corrupt)" if before["corrupt"] else ""
    print(
        f"sweep '{spec.name}': {total} runs, {done[0]} already done{corrupt}, executor "
        f"{executor.kind} -> {sweep_dir.resolve()}",
        flush=True,
    )

    def report(result: dict[str, Any]) -> None:
        if result["status"] == "done":
            done[0] += 1
        tail = "" if result["status"] == "done" else f": {result.get('error', '')[-200:]}"
        print(f"  [{done[0]}/{total}] {result['id']} {result['status']}{tail}", flush=True)

    if args.write_script:
        todo = pending_runs(sweep_dir, plan.runs)
        if not todo:
            print("every run is done: no array script written")
            return 0
        script = write_array_script(sweep_dir, todo, executor)
        print(f"wrote {script.resolve()}: submit it with `sbatch {script}`")
        return 0
    try:
        results = execute(sweep_dir, spec.base, plan.runs, executor, report, not args.no_wait)
    except ExecutorError as exc:
        _error(str(exc))
        return 1
    state = status(sweep_dir)
    record_session(
        sweep_dir,
        "end",
        seconds=time.perf_counter() - start,
        **{k: len(v) for k, v in state.items()},
    )
    print(f"{_counts(state)} ({len(results)} run now, {time.perf_counter() - start:.1f} s)")
    if args.no_wait:  # submitted, nothing failed: the array runs the rest
        print(f"follow the array with `cementsim sweep status {sweep_dir}`")
        return 0
    return 0 if len(state["done"]) == total else 1


def _executor(spec: SweepSpec, args: argparse.Namespace) -> Executor:
    """The sweep file's executor with the command-line options applied (and validated)."""
    from sim.scenario import ScenarioError

    data = spec.executor.model_dump()
    given = {
        "kind": args.executor or ("dask" if args.scheduler else None),
        "workers": args.workers,
        "ranks_per_run": args.ranks_per_run,
        "retries": args.retries,
        "scheduler": args.scheduler,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    queue = {o: getattr(args, o) for o, _, _ in JOBQUEUE_OPTIONS}
    data["jobqueue"].update({k: v for k, v in queue.items() if v is not None})
    if (args.write_script or args.no_wait) and data["kind"] != "slurm_array":
        raise ScenarioError(
            "command line", ["--write-script and --no-wait need --executor slurm_array"]
        )
    try:
        return Executor.model_validate(data)
    except ValidationError as exc:
        problems = [describe_error(e, data).replace("(top level): ", "") for e in exc.errors()]
        raise ScenarioError(
            "command line", [f"executor.{p}" for p in problems], "options"
        ) from None


def _counts(state: dict[str, list[str]]) -> str:
    """'done 4, failed 1, pending 1' (and the corrupt runs when there are any)."""
    corrupt = f", corrupt {len(state['corrupt'])}" if state["corrupt"] else ""
    return (
        f"done {len(state['done'])}, failed {len(state['failed'])}{corrupt}, "
        f"pending {len(state['pending'])}"
    )


def _status(sweep_dir: Path) -> int:
    from sim.sweep.store import point_state, run_dir, status
    from sim.sweep.worker import last_error

    state = status(sweep_dir)
    print(f"{sweep_dir}: {_counts(state)}")
    for run_id in state["failed"]:
        print(f"  failed {run_id}: {last_error(sweep_dir, run_id).strip()[-200:]}")
    for run_id in state["corrupt"]:
        problem = point_state(run_dir(sweep_dir, run_id)).problem
        print(f"  corrupt {run_id} (run again by `cementsim sweep run`): {problem[-200:]}")
    return 0


def _collect(sweep_dir: Path) -> int:
    from sim.sweep.report import write_sweep_report
    from sim.sweep.store import read_plan

    read_plan(sweep_dir)  # NotASweepError for a folder that is not a sweep
    paths = write_sweep_report(sweep_dir)
    analysis = json.loads((sweep_dir / "analysis.json").read_text())
    for warning in analysis.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    for kind, path in paths.items():
        print(f"{kind:>12}: {path.resolve()}")
    return 0


def _run_one(sweep_dir: Path, run_id: str) -> int:
    from sim.outputs.rundir import CHECKPOINT_EVERY
    from sim.sweep.store import planned_runs, read_plan
    from sim.sweep.worker import run_point, stop_servers

    plan = read_plan(sweep_dir)
    run = next((r for r in planned_runs(sweep_dir) if r.id == run_id), None)
    if run is None:
        _error(f"{run_id} is not a run of {sweep_dir}")
        return EXIT_INVALID
    ex = plan.get("executor", {})
    try:
        result = run_point(
            str(sweep_dir),
            plan["base"],
            run.id,
            run.overrides,
            ranks=ex.get("ranks_per_run", 1),
            retries=ex.get("retries", 1),
            timeout=ex.get("timeout", 86400.0),
            checkpoint_every=ex.get("checkpoint_every", CHECKPOINT_EVERY),
        )
    finally:
        stop_servers()
    print(f"{run_id}: {result['status']}")
    return 0 if result["status"] == "done" else 1
