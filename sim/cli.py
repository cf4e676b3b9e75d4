"""Command line: ``cementsim validate|run|mesh SCENARIO``, ``report``, ``sweep``,
``permeability BLOCK`` (sim/ct/permeability_cli.py) and ``labels LABELMAP``
(sim/labels_cli.py).

Exit codes: 0 success; 2 invalid input (scenario, overrides, missing or mistagged mesh, an
unusable `--out` or `--results-root`, a results folder locked by another run, `--resume`
without a checkpoint of this scenario), with a message naming the field, the value and what
is allowed; 1 a run that failed; 3 a run that SIGTERM or SIGUSR1 ended after writing its
checkpoint (go on with `--resume`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

# one thread per MPI rank: threaded BLAS would oversubscribe the cores mpirun assigns
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from sim.outputs.rundir import CHECKPOINT_EVERY, checkpoint_interval
from sim.scenario import ScenarioError, load_scenario

EXIT_INVALID = 2
EXIT_INTERRUPTED = 3
ML = 1e-6


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cementsim",
        description="Simulate bone-cement injection into trabecular bone: fill and leakage.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    def scenario_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("scenario", type=Path, help="scenario file (YAML)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a scenario value, e.g. --set injection.needles.0.rate='2 mL/min'",
        )
        return p

    scenario_command("validate", "check a scenario file without building anything")
    run = scenario_command("run", "run a scenario and write a results directory")
    run.add_argument("--out", type=Path, help="results directory (default: results/NAME-HASH)")
    run.add_argument(
        "--results-root",
        type=Path,
        default=Path("results"),
        help="where default results directories go (default: ./results)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="go on from the checkpoint of an interrupted run into the same folder",
    )
    run.add_argument(
        "--checkpoint-every",
        default=CHECKPOINT_EVERY,
        metavar="TIME",
        help=f"wall time between checkpoints, e.g. '10 min', or 'never' (default: "
        f"{CHECKPOINT_EVERY}); SIGTERM and SIGUSR1 always checkpoint and end the run",
    )
    run.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="write no checkpoints, and let SIGTERM and SIGUSR1 end the run at once",
    )
    run.add_argument(
        "--no-signal-checkpoints",
        action="store_true",
        help="let SIGTERM and SIGUSR1 end the run at once, without a checkpoint; the interval "
        "checkpoints are still written (sweep workers, whose points must die with them)",
    )
    run.add_argument("--quiet", action="store_true", help="only warnings and errors")
    run.add_argument("--log-all-ranks", action="store_true", help="log from every MPI rank")
    from sim.sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    from sim.ct.permeability_cli import add_parser as add_permeability_parser

    add_permeability_parser(sub)
    from sim.labels_cli import add_parser as add_labels_parser

    add_labels_parser(sub)
    report = sub.add_parser(
        "report",
        help="write report.html of a finished run",
        description="write report.html of a finished run",
    )
    report.add_argument("run_dir", type=Path, help="a results directory with summary.json")
    mesh = scenario_command("mesh", "build the scenario's mesh and write it (no simulation)")
    mesh.add_argument("--out", type=Path, help="output folder (default: results/NAME-HASH)")
    mesh.add_argument("--results-root", type=Path, default=Path("results"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        import sim

        print(f"cementsim {sim.__version__}")
        return 0
    if args.command is None:
        _parser().print_help()
        return EXIT_INVALID
    if args.command == "report":
        return _report(args.run_dir)
    if args.command == "labels":
        from sim.labels_cli import main as labels_main

        return labels_main(args)
    if args.command == "sweep":
        from sim.sweep.cli import main as sweep_main

        return sweep_main(args)
    if args.command == "permeability":
        from sim.ct.permeability_cli import main as permeability_main

        return permeability_main(args)
    try:
        scenario = load_scenario(args.scenario, args.overrides)
    except ScenarioError as exc:
        _error(str(exc))
        return EXIT_INVALID
    if args.command == "validate":
        for warning in scenario.warnings():
            _say(f"warning: {warning}")
        _say(f"{args.scenario}: valid scenario '{scenario.name}'")
        return 0
    out = _output_folder(args, scenario)
    if out is None:
        return EXIT_INVALID
    if args.command == "run" and not args.no_checkpoints:
        try:
            args.checkpoint_every = checkpoint_interval(args.checkpoint_every)
        except ValueError as exc:
            _error(f"--checkpoint-every {args.checkpoint_every}: {exc}")
            return EXIT_INVALID
    return _with_mpi(args, scenario, out)


def _output_folder(args: argparse.Namespace, scenario: Any) -> Path | None:
    """The folder `run` or `mesh` writes, or None (after a message) if it cannot be written.

    Checked before DOLFINx is imported, so that a bad path costs no time and no traceback.
    """
    from sim.outputs.rundir import ALLOWED, default_run_directory, unusable_reason

    if args.out is not None:
        option, value, out = "--out", args.out, args.out
    else:
        option, value = "--results-root", args.results_root
        out = default_run_directory(scenario, args.results_root)
    reason = unusable_reason(out, replaces=args.command == "run")
    if reason is None:
        return out
    allowed = ALLOWED if option == "--out" else "a folder in which folders can be created"
    what = "" if out == value else f" (results folder {out})"
    _error(f"{option} {value}{what}: {reason}; {option} must be {allowed}")
    return None


def _with_mpi(args: argparse.Namespace, scenario: Any, out: Path) -> int:
    from mpi4py import MPI

    from sim.errors import InputError, RunFailed, RunFolderError, RunInterrupted
    from sim.mpi_logging import configure
    from sim.outputs.rundir import failed_folder, partial_folder

    comm = MPI.COMM_WORLD
    configure(
        logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        all_ranks=getattr(args, "log_all_ranks", False),
    )
    try:
        if args.command == "mesh":
            return _mesh(scenario, out, comm)
        from sim.run import run_scenario

        summary = run_scenario(
            scenario,
            out,
            comm,
            source=args.scenario,
            progress=not args.quiet,
            resume=args.resume,
            checkpoint_every=None if args.no_checkpoints else args.checkpoint_every,
            signals=not (args.no_checkpoints or args.no_signal_checkpoints),
        )
    except RunInterrupted as exc:  # raised on every rank, after the checkpoint
        _error(
            f"run interrupted by {exc}; partial results in {partial_folder(out)}; go on with "
            "the same command and --resume"
        )
        return EXIT_INTERRUPTED
    except RunFolderError as exc:  # raised on every rank, before anything is written
        _error(str(exc))
        return EXIT_INVALID
    except InputError as exc:  # raised on every rank: a clean input error
        _error(f"{args.scenario}: {exc}")
        return EXIT_INVALID
    except RunFailed as exc:  # raised on every rank, with a message for the user
        _error(
            f"the run failed: {exc}; {out} is as it was; partial results (no summary.json) "
            f"are in {failed_folder(out)}"
        )
        return 1
    except Exception:
        # an error on one rank would leave the others waiting in a collective call forever;
        # the process ends with the abort, so the why goes to the process's own standard
        # error (a sweep worker captures sys.stderr, sim.sweep.server)
        stream = sys.__stderr__ if comm.size > 1 and sys.__stderr__ else sys.stderr
        traceback.print_exc(file=stream)
        print(
            f"error on rank {comm.rank}: the run failed; {out} is as it was; partial results "
            f"(no summary.json) are in {failed_folder(out)} or, if the run was aborted, in "
            f".{out.name}.staging-* beside it",
            file=stream,
            flush=True,
        )
        if comm.size > 1:
            comm.Abort(1)
        return 1
    if comm.rank == 0:
        print(headline(summary, out))
    return 0


def _mesh(scenario: Any, out: Path, comm: Any) -> int:
    from dolfinx.io import XDMFFile

    from sim.geometry import build_mesh

    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    tagged = build_mesh(scenario, comm, msh_path=out / "mesh.msh")
    with XDMFFile(comm, str(out / "mesh.xdmf"), "w") as xdmf:
        xdmf.write_mesh(tagged.mesh)
        tagged.cell_tags.name = "regions"
        tagged.facet_tags.name = "boundaries"
        xdmf.write_meshtags(tagged.cell_tags, tagged.mesh.geometry)
        xdmf.write_meshtags(tagged.facet_tags, tagged.mesh.geometry)
    quality = tagged.cell_quality()
    from mpi4py import MPI

    q_min = comm.allreduce(float(quality.min(initial=1.0)), op=MPI.MIN)
    levels = scenario.geometry.refine
    generated = f", as generated, before geometry.refine: {levels}" if levels else ""
    if comm.rank == 0:
        print(
            f"mesh of '{scenario.name}': {tagged.num_cells_global()} cells, "
            f"min radius ratio {q_min:.3f}\n"
            f"  boundaries: {', '.join(sorted(tagged.boundaries))}\n"
            f"  regions: {', '.join(sorted(tagged.regions))}\n"
            f"  written: {out / 'mesh.xdmf'} (ParaView), {out / 'mesh.msh'} (gmsh{generated})"
        )
    return 0


def _report(run_dir: Path) -> int:
    from sim.outputs.report import write_report

    if not (run_dir / "summary.json").is_file():
        _error(f"{run_dir}: no summary.json, so not a finished run (it failed or is running)")
        return EXIT_INVALID
    _say(f"report: {write_report(run_dir).resolve()}")
    return 0


def headline(summary: dict[str, Any], out: Path) -> str:
    """The numbers a user wants first, where the rest is, and what makes the run doubtful
    (sim.outputs.report.run_warnings)."""
    from sim.outputs.report import run_warnings, stop_phrase

    rows = [
        ("injected", f"{summary['injected_volume_m3'] / ML:8.3f} mL"),
        ("in bone", f"{summary['cement_in_bone_m3'] / ML:8.3f} mL"),
    ]
    for target, fill in summary["fill_fraction"].items():
        rows.append((f"fill of {target}", f"{100 * fill:8.1f} % of pore volume"))
    for route, volume in summary["leaked_volume_m3"].items():
        first = summary["first_leak_time_s"][route]
        when = f"first at {first:.1f} s" if first is not None else "no leak"
        rows.append((f"leaked {route}", f"{volume / ML:8.4f} mL ({when})"))
    syringe = max(summary["syringe_pressure_max_pa"].values())
    rows += [
        ("peak tip pressure", f"{summary['tip_pressure_max_pa'] / 1e3:8.1f} kPa"),
        ("peak syringe", f"{syringe / 1e3:8.1f} kPa (tip + cannula)"),
        ("stopped because", stop_phrase(summary)),
        ("mass balance error", f"{summary['mass_balance_rel_error']:8.1e}"),
    ]
    width = max(len(label) for label, _ in rows) + 1  # names of targets and routes vary
    lines = [f"results: {out.resolve()}"] + [f"  {label:<{width}s}{value}" for label, value in rows]
    lines.append(
        f"  {summary['n_steps']} steps, {summary['n_cells']} cells, "
        f"{summary['mpi_ranks']} rank(s), {summary['wall_time_s']:.1f} s"
    )
    lines += [f"warning: {w}" for w in run_warnings(summary)]
    return "\n".join(lines)


def _say(message: str) -> None:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(message)


def _error(message: str) -> None:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(f"error: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
