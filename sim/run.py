"""One run = one results directory: set up, time loop, outputs, summary (written last), in a
staging folder that replaces the results directory when the run is complete (RunFolder)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from sim import __version__
from sim import measurements as measure
from sim.checkpoint import (
    CheckpointError,
    Layout,
    Saved,
    read_checkpoint,
    read_meta,
    scenario_changes,
    write_checkpoint,
)
from sim.components.base import Figure
from sim.errors import RunInterrupted
from sim.geometry import build_mesh
from sim.mpi_logging import log_to_file
from sim.outputs.fields import FieldWriter
from sim.outputs.imaging import FluoroscopyRecorder
from sim.outputs.paraview import write_paraview_script
from sim.outputs.plots import ML, RunPlots, plot_midplanes, plot_series
from sim.outputs.quantities import standard_quantities
from sim.outputs.report import write_report, write_report_parts
from sim.outputs.rundir import (
    RunFolder,
    checkpoint_file,
    config_hash,
    versions,
    write_provenance,
)
from sim.outputs.summary import build_summary, write_json_atomic
from sim.outputs.timeseries import TimeSeries
from sim.problem import InjectionProblem
from sim.progress import ProgressBar
from sim.scenario import Scenario

log = logging.getLogger(__name__)


def snapshot_volumes(total: float, count: int) -> list[float]:
    """Injected volumes (m³) at which fields are written: `count` evenly inside (0, total)."""
    return [total * k / (count + 1) for k in range(1, count + 1)]


#: signals that make a run write a checkpoint and end (SLURM's --signal sends one of them)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Checkpoints:
    """When a run writes its checkpoint: every `interval` s of wall time (None: never) and
    when a signal of SIGNALS arrives, after which the run ends (RunInterrupted). The
    handlers only note the signal; `due` decides after a step, the same on every rank.
    A context manager that installs the handlers (with `signals`, in the main thread) and
    puts the earlier ones back."""

    def __init__(
        self, path: Path, interval: float | None, comm: MPI.Comm, signals: bool = True
    ) -> None:
        self.path = path
        self.signals = signals
        self.interval = interval
        self.comm = comm
        self.signal: str | None = None
        self._last = time.monotonic()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Checkpoints:
        if self.signals and threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _note(self, number: int, frame: object) -> None:
        self.signal = signal.Signals(number).name

    def due(self) -> tuple[bool, bool]:
        """Whether to write a checkpoint now and whether to end the run after it (collective:
        any rank's signal, rank 0's clock; `signal` is then the same on every rank)."""
        late = (
            self.comm.rank == 0
            and self.interval is not None
            and time.monotonic() - self._last >= self.interval
        )
        # the signal's number (> 1) if any rank has one, else 1 if it is time, else 0
        mine = signal.Signals[self.signal].value if self.signal else int(late)
        code = self.comm.allreduce(mine, op=MPI.MAX)
        if code:
            self._last = time.monotonic()
        if code > 1:
            self.signal = signal.Signals(code).name
        return code > 0, code > 1


def run_scenario(
    scenario: Scenario,
    run_dir: Path,
    comm: MPI.Comm = MPI.COMM_WORLD,
    source: Path | None = None,
    progress: bool = False,
    resume: bool = False,
    checkpoint_every: float | None = None,
    signals: bool = True,
) -> dict[str, Any]:
    """Run a scenario into `run_dir` and return its summary (on every rank).

    The run holds the lock of `run_dir` and writes into a staging folder beside it, with
    summary.json last; the complete folder then replaces `run_dir` (sim.outputs.rundir.
    RunFolder). A failed run leaves `run_dir` as it was and its partial results, without
    summary.json, in ``<run_dir>.failed``. Raises RunFolderError (on every rank, before
    writing anything) when another run holds the lock.

    Checkpoints (sim.checkpoint) go to ``<run_dir>.checkpoint.h5``: every `checkpoint_every`
    s of wall time (None: only on a signal) and, with `signals`, on SIGTERM or SIGUSR1, after
    which the run ends with RunInterrupted, its partial results in ``<run_dir>.partial``
    (without `signals` they end the run at once). `resume`: go on
    from that checkpoint (CheckpointError, before anything is written, if there is none or
    it is of another scenario); the results folder is then that of one uninterrupted run.
    A complete run deletes the checkpoint. progress: show a progress bar (rank 0, terminals
    only).
    """
    start = time.perf_counter()
    folder = RunFolder(run_dir, comm)
    path = checkpoint_file(Path(run_dir).resolve())
    if resume:
        check_resumable(scenario, path, comm)
    elif comm.rank == 0 and path.is_file():
        log.warning(
            "%s holds the checkpoint of an earlier run into %s: this run starts from the "
            "beginning and replaces it (`--resume` goes on from a checkpoint)",
            path,
            run_dir,
        )
    with folder as staging:
        if comm.rank == 0:
            write_provenance(staging, scenario, source)
        comm.barrier()
        handler = log_to_file(staging / "run.log")
        try:
            log.info(
                "cementsim run of '%s' into %s on %d rank(s)", scenario.name, run_dir, comm.size
            )
            log.info("versions: %s", versions())
            for warning in scenario.warnings():
                log.warning(warning)
            tagged = build_mesh(scenario, comm, msh_path=staging / "mesh.msh")
            problem = InjectionProblem(scenario, tagged)
            problem.initialise()
            log.info(
                "mesh: %d cells, %d vertices",
                tagged.num_cells_global(),
                problem.disc.V.dofmap.index_map.size_global,
            )
            with (
                # the handlers go in after PETSc has put in its own (which would abort)
                Checkpoints(path, checkpoint_every, comm, signals) as checkpoints,
                ProgressBar(measure.total_volume(problem), progress) as bar,
            ):
                loop = _TimeLoop(problem, staging, bar, checkpoints)
                if resume:
                    loop.restore(read_checkpoint(path, loop.layout))
                summary = loop.run(start)
        finally:
            if handler is not None:
                logging.getLogger("sim").removeHandler(handler)
                handler.close()
    return summary


def check_resumable(scenario: Scenario, path: Path, comm: MPI.Comm) -> None:
    """CheckpointError (on every rank) unless `path` is a checkpoint of this scenario."""
    error = None
    if comm.rank == 0:
        try:
            meta = read_meta(path)
            if meta["scenario_hash"] != config_hash(scenario):
                added: list[str] = []
                changes = scenario_changes(
                    meta["scenario"], scenario.model_dump(mode="json"), added=added
                )
                if changes and added == changes:  # settings this version has and that lacked
                    version = meta.get("version")  # recorded since stop 29
                    written = f"cementsim {version}" if version else "an earlier cementsim"
                    error = (
                        f"cannot resume from {path}: it was written by {written}, "
                        f"whose scenarios had no {', '.join(added)} (this is {__version__}); "
                        "resume with the version that wrote it, or run without --resume"
                    )
                else:
                    error = (
                        f"cannot resume from {path}: the scenario differs from the "
                        f"checkpointed run's in {', '.join(changes) or 'its resolved values'}; "
                        "resume with the same scenario and --set values, or run without --resume"
                    )
        except CheckpointError as exc:
            error = str(exc)
    error = comm.bcast(error, root=0)
    if error is not None:
        raise CheckpointError(error)


class _TimeLoop:
    """The time loop of a run and its outputs: time series, fields, fluoroscopy, progress,
    checkpoints."""

    def __init__(
        self, problem: InjectionProblem, run_dir: Path, bar: ProgressBar, checkpoints: Checkpoints
    ) -> None:
        scenario = problem.scenario
        out = scenario.output
        self.problem = problem
        self.run_dir = run_dir
        self.bar = bar
        self.checkpoints = checkpoints
        self.series = TimeSeries(
            standard_quantities(problem), run_dir / "timeseries.csv", problem.comm.rank
        )
        self.fields = (
            FieldWriter(run_dir / "fields.xdmf", problem, self.layout) if out.fields else None
        )
        self.fluoro = (
            FluoroscopyRecorder(problem, out.fluoroscopy_pixel) if out.fluoroscopy else None
        )
        self.total = measure.total_volume(problem)
        self.pending = snapshot_volumes(self.total, out.field_snapshots)
        self.reported = 0.0
        self.written: list[float] = []

    @cached_property
    def layout(self) -> Layout:
        """The input numbers of the vertices and cells, for the field writer and checkpoints;
        built when first needed (collective: every rank asks at the same point), so that a
        run with neither does not gather a refined mesh's coordinates to rank 0."""
        return Layout(self.problem.disc)

    def on_step(self, pb: InjectionProblem) -> None:
        """Record the step; write fields at the snapshot volumes; checkpoint when due."""
        t0 = time.perf_counter()
        self.series.record(pb)
        injected = measure.injected(pb)
        pending = self.pending
        due = bool(pending) and injected >= pending[0] * (1 - 1e-12)
        while pending and injected >= pending[0] * (1 - 1e-12):
            pending.pop(0)
        if pb.state.counters.steps == 0 or due:
            self.snapshot()
        self.bar.update(pb)
        if injected >= self.reported + 0.1 * self.total:
            self.reported = injected
            log.info(
                "t = %7.2f s  injected %6.3f mL  step %d",
                pb.state.t,
                injected / ML,
                pb.state.counters.steps,
            )
        write, end = self.checkpoints.due()
        if write:
            self.checkpoint()
        pb.timings.output += time.perf_counter() - t0
        if end:
            raise RunInterrupted(
                f"{self.checkpoints.signal} at t = {pb.state.t:.4g} s "
                f"(step {pb.state.counters.steps}): checkpoint written to {self.checkpoints.path}"
            )

    def snapshot(self) -> None:
        if self.fields is not None:
            self.fields.write()
        if self.fluoro is not None:
            self.fluoro.record()
        self.written.append(self.problem.state.t)

    def checkpoint(self) -> None:
        """Write the checkpoint of the run as it is now (collective)."""
        t0 = time.perf_counter()
        pb = self.problem
        parts = pb.checkpoint()
        parts["outputs"] = {
            "rows": np.array(self.series.rows),
            "columns": self.series.columns,
            "pending": self.pending,
            "reported": self.reported,
            "written": self.written,
        }
        if self.fields is not None:
            parts["fields"] = self.fields.checkpoint()
        if self.fluoro is not None:
            parts["fluoroscopy"] = self.fluoro.checkpoint()
        meta = {
            "scenario_hash": config_hash(pb.scenario),
            "scenario": pb.scenario.model_dump(mode="json"),
            "t": pb.state.t,
            "steps": pb.state.counters.steps,
            "ranks": pb.comm.size,
            "version": __version__,
        }
        write_checkpoint(self.checkpoints.path, parts, self.layout, meta)
        log.info(
            "checkpoint at t = %.4g s (step %d): %s, %.2f s",
            pb.state.t,
            pb.state.counters.steps,
            self.checkpoints.path,
            time.perf_counter() - t0,
        )

    def restore(self, parts: dict[str, Saved]) -> None:
        """Take up a checkpoint: the problem, then what the outputs had recorded."""
        pb = self.problem
        pb.restore(parts)
        outputs = parts["outputs"]
        self.series.restore(outputs["rows"], outputs["columns"])
        self.pending = list(outputs["pending"])
        self.reported = outputs["reported"]
        self.written = list(outputs["written"])
        if self.fields is not None:
            self.fields.restore(parts["fields"])
        if self.fluoro is not None:
            self.fluoro.restore(parts["fluoroscopy"])
        log.info(
            "resumed from the checkpoint at t = %.4g s (step %d)",
            pb.state.t,
            pb.state.counters.steps,
        )

    def run(self, start: float) -> dict[str, Any]:
        """Advance to the end, write the outputs and the summary; return the summary."""
        problem, run_dir = self.problem, self.run_dir
        scenario, comm = problem.scenario, problem.comm
        series, fields, fluoro = self.series, self.fields, self.fluoro
        try:
            stop_reason = problem.run(self.on_step)
            if not self.written or self.written[-1] < problem.state.t:
                self.snapshot()  # the final state
        finally:
            series.close()
            if fields is not None:
                fields.close()
        log.info("run ended at t = %.2f s (injection: %s)", problem.state.t, stop_reason)
        t0 = time.perf_counter()
        if comm.rank == 0:
            series.write_hdf5(run_dir / "results.h5")
        figures: list[Figure] = []
        if scenario.output.plots:
            if comm.rank == 0:
                plot_series(series, run_dir)
            t1 = time.perf_counter()
            plot_midplanes(problem, run_dir / "saturation_midplanes.png")
            plots = RunPlots(problem, series, run_dir)
            figures = [f for c in problem.stepper.components for f in c.figures(plots)]
            log.info("plots: %.2f s, slices %.2f s", t1 - t0, time.perf_counter() - t1)
        if fields is not None and comm.rank == 0:
            write_paraview_script(run_dir)
        if fluoro is not None:
            t1 = time.perf_counter()
            fluoro.write(run_dir)
            log.info("fluoroscopy images: %.2f s", time.perf_counter() - t1)
        problem.timings.output += time.perf_counter() - t0
        summary = build_summary(problem, series, time.perf_counter() - start, stop_reason)
        log.info("timings (s): %s; wall %.2f s", summary["timings_s"], summary["wall_time_s"])
        rows = [r for c in problem.stepper.components for r in c.report_rows(summary)]
        problem.destroy()
        if comm.rank == 0:
            write_report_parts(run_dir, rows, figures)
            if scenario.output.report:
                write_report(run_dir, summary)
            write_json_atomic(run_dir / "summary.json", summary)  # last: the run is complete
        return summary
