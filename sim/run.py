"""One run = one results directory: set up, time loop, outputs, summary (written last)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from sim.geometry import build_mesh
from sim.mpi_logging import log_to_file
from sim.outputs.fields import FieldWriter
from sim.outputs.plots import ML, plot_against_volume, plot_midplanes
from sim.outputs.quantities import standard_quantities
from sim.outputs.rundir import prepare_run_directory, versions, write_provenance
from sim.outputs.summary import build_summary, write_json_atomic
from sim.outputs.timeseries import TimeSeries
from sim.problem import InjectionProblem
from sim.scenario import Scenario

log = logging.getLogger(__name__)


def snapshot_times(t_end: float, count: int) -> list[float]:
    """`count` field-output times spread evenly inside (0, t_end) (s)."""
    return [t_end * k / (count + 1) for k in range(1, count + 1)]


def run_scenario(
    scenario: Scenario,
    run_dir: Path,
    comm: MPI.Comm = MPI.COMM_WORLD,
    source: Path | None = None,
) -> dict[str, Any]:
    """Run a scenario into `run_dir` and return its summary (on every rank).

    summary.json is written last and atomically: a failed or interrupted run has none.
    """
    start = time.perf_counter()
    if comm.rank == 0:
        prepare_run_directory(run_dir)
        write_provenance(run_dir, scenario, source)
    comm.barrier()
    handler = log_to_file(run_dir / "run.log")
    try:
        log.info("cementsim run of '%s' into %s on %d rank(s)", scenario.name, run_dir, comm.size)
        log.info("versions: %s", versions())
        tagged = build_mesh(scenario, comm, msh_path=run_dir / "mesh.msh")
        problem = InjectionProblem(scenario, tagged)
        problem.initialise()
        log.info(
            "mesh: %d cells, %d vertices",
            tagged.num_cells_global(),
            problem.V.dofmap.index_map.size_global,
        )
        summary = _time_loop(problem, run_dir, start)
    finally:
        if handler is not None:
            logging.getLogger("sim").removeHandler(handler)
            handler.close()
    return summary


def _time_loop(problem: InjectionProblem, run_dir: Path, start: float) -> dict[str, Any]:
    scenario, comm = problem.scenario, problem.comm
    series = TimeSeries(standard_quantities(problem), run_dir / "timeseries.csv", comm.rank)
    fields = FieldWriter(run_dir / "fields.xdmf", problem) if scenario.output.fields else None
    t_end = problem.end_time()
    snapshots = snapshot_times(t_end, scenario.output.field_snapshots)
    reported = [0.0]

    def on_step(pb: InjectionProblem) -> None:
        t0 = time.perf_counter()
        series.record(pb)
        at_snapshot = any(abs(pb.t - s) <= 1e-9 * t_end for s in snapshots)
        if fields is not None and (
            pb.step_count == 0 or at_snapshot or pb.t >= t_end * (1 - 1e-12)
        ):
            fields.write()
        if pb.injected() >= reported[0] + 0.1 * sum(n.volume for n in pb.needles):
            reported[0] = pb.injected()
            log.info(
                "t = %7.2f s  injected %6.3f mL  step %d", pb.t, pb.injected() / ML, pb.step_count
            )
        pb.timings.output += time.perf_counter() - t0

    try:
        problem.run(on_step, output_times=snapshots)
    finally:
        series.close()
        if fields is not None:
            fields.close()
    t0 = time.perf_counter()
    if comm.rank == 0:
        series.write_hdf5(run_dir / "results.h5")
    if scenario.output.plots:
        if comm.rank == 0:
            plot_against_volume(
                series,
                "tip_pressure_pa",
                1e3,
                "tip pressure (kPa)",
                "Pressure at the needle tip",
                run_dir / "pressure_vs_volume.png",
            )
            plot_against_volume(
                series,
                "leaked_volume_m3",
                ML,
                "leaked cement (mL)",
                "Leakage per route",
                run_dir / "leakage_vs_volume.png",
            )
        plot_midplanes(problem, run_dir / "saturation_midplanes.png")
    problem.timings.output += time.perf_counter() - t0
    summary = build_summary(problem, series, time.perf_counter() - start)
    problem.destroy()
    if comm.rank == 0:
        write_json_atomic(run_dir / "summary.json", summary)
    comm.barrier()
    return summary
