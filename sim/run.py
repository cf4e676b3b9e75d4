"""One run = one results directory: set up, time loop, outputs, summary (written last), in a
staging folder that replaces the results directory when the run is complete (RunFolder)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from sim import measurements as measure
from sim.components.base import Figure
from sim.geometry import build_mesh
from sim.mpi_logging import log_to_file
from sim.outputs.fields import FieldWriter
from sim.outputs.imaging import FluoroscopyRecorder
from sim.outputs.paraview import write_paraview_script
from sim.outputs.plots import ML, RunPlots, plot_midplanes, plot_series
from sim.outputs.quantities import standard_quantities
from sim.outputs.report import write_report, write_report_parts
from sim.outputs.rundir import RunFolder, versions, write_provenance
from sim.outputs.summary import build_summary, write_json_atomic
from sim.outputs.timeseries import TimeSeries
from sim.problem import InjectionProblem
from sim.progress import ProgressBar
from sim.scenario import Scenario

log = logging.getLogger(__name__)


def snapshot_volumes(total: float, count: int) -> list[float]:
    """Injected volumes (m³) at which fields are written: `count` evenly inside (0, total)."""
    return [total * k / (count + 1) for k in range(1, count + 1)]


def run_scenario(
    scenario: Scenario,
    run_dir: Path,
    comm: MPI.Comm = MPI.COMM_WORLD,
    source: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a scenario into `run_dir` and return its summary (on every rank).

    The run holds the lock of `run_dir` and writes into a staging folder beside it, with
    summary.json last; the complete folder then replaces `run_dir` (sim.outputs.rundir.
    RunFolder). A failed or interrupted run leaves `run_dir` as it was and its partial
    results, without summary.json, in ``<run_dir>.failed``. Raises RunFolderError (on every
    rank, before writing anything) when another run holds the lock.
    progress: show a progress bar (rank 0, terminals only).
    """
    start = time.perf_counter()
    with RunFolder(run_dir, comm) as staging:
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
            with ProgressBar(measure.total_volume(problem), progress) as bar:
                summary = _time_loop(problem, staging, start, bar)
        finally:
            if handler is not None:
                logging.getLogger("sim").removeHandler(handler)
                handler.close()
    return summary


def _time_loop(
    problem: InjectionProblem, run_dir: Path, start: float, bar: ProgressBar
) -> dict[str, Any]:
    scenario, comm = problem.scenario, problem.comm
    series = TimeSeries(standard_quantities(problem), run_dir / "timeseries.csv", comm.rank)
    out = scenario.output
    fields = FieldWriter(run_dir / "fields.xdmf", problem) if out.fields else None
    fluoro = FluoroscopyRecorder(problem, out.fluoroscopy_pixel) if out.fluoroscopy else None
    total = measure.total_volume(problem)
    pending = snapshot_volumes(total, scenario.output.field_snapshots)
    reported = [0.0]

    def on_step(pb: InjectionProblem) -> None:
        t0 = time.perf_counter()
        series.record(pb)
        injected = measure.injected(pb)
        due = bool(pending) and injected >= pending[0] * (1 - 1e-12)
        while pending and injected >= pending[0] * (1 - 1e-12):
            pending.pop(0)
        if pb.state.counters.steps == 0 or due:
            snapshot()
        bar.update(pb)
        if injected >= reported[0] + 0.1 * total:
            reported[0] = injected
            log.info(
                "t = %7.2f s  injected %6.3f mL  step %d",
                pb.state.t,
                injected / ML,
                pb.state.counters.steps,
            )
        pb.timings.output += time.perf_counter() - t0

    def snapshot() -> None:
        if fields is not None:
            fields.write()
        if fluoro is not None:
            fluoro.record()
        written.append(problem.state.t)

    written: list[float] = []
    try:
        stop_reason = problem.run(on_step)
        if not written or written[-1] < problem.state.t:
            snapshot()  # the final state
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
