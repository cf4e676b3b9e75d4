"""The run summary: headline numbers in SI with the unit in each key (summary.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim import measurements as measure
from sim.outputs.metrics import cloud_shape, coverage
from sim.outputs.timeseries import TimeSeries

if TYPE_CHECKING:
    from sim.problem import InjectionProblem


def first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First x where y reaches `level` (linear between samples), None if it never does."""
    above = np.nonzero(y >= level)[0]
    if len(above) == 0:
        return None
    k = int(above[0])
    if k == 0 or y[k] == y[k - 1]:
        return float(x[k])
    return float(x[k - 1] + (level - y[k - 1]) * (x[k] - x[k - 1]) / (y[k] - y[k - 1]))


def build_summary(
    problem: InjectionProblem, series: TimeSeries, wall_time: float, stop_reason: str
) -> dict[str, Any]:
    """Summary of a finished run (collective: every rank must call it)."""
    threshold = problem.scenario.output.leak_threshold
    time = series.column("time_s")
    injected = series.column("injected_volume_m3")
    leaked = series.columns_starting("leaked_volume_m3")
    tip = series.columns_starting("tip_pressure_pa")
    syringe = series.columns_starting("syringe_pressure_pa")
    cloud_volume, cloud_distance = measure.cloud(problem)
    mu_low = series.column("cement_viscosity_min_pa_s")
    mu_high = series.column("cement_viscosity_max_pa_s")
    summary: dict[str, Any] = {
        "scenario": problem.scenario.name,
        "stop_reason": stop_reason,
        "injected_volume_m3": measure.injected(problem),
        "planned_volume_m3": measure.total_volume(problem),
        "injected_volume_per_needle_m3": {n.name: n.protocol.injected for n in problem.needles},
        "cement_in_bone_m3": measure.cement_in_bone(problem),
        "leaked_volume_m3": {name: float(v[-1]) for name, v in leaked.items()},
        "leaked_volume_total_m3": measure.leaked(problem),
        "leak_threshold_m3": threshold,
        "first_leak_time_s": {n: first_crossing(time, v, threshold) for n, v in leaked.items()},
        "injected_volume_at_first_leak_m3": {
            n: first_crossing(injected, v, threshold) for n, v in leaked.items()
        },
        "marrow_outflow_m3": {r.name: r.marrow_out for r in problem.routes},
        "fill_fraction": {t: measure.fill_fraction(problem, t) for t in problem.scenario.targets},
        "coverage": {t: coverage(problem, t) for t in problem.scenario.targets},
        "cloud": cloud_shape(problem),
        "front_distance_min_m": {
            name: _extreme(np.min, values)
            for name, values in series.columns_starting("front_distance_m").items()
        },
        "cloud_volume_m3": cloud_volume,
        "cloud_max_distance_from_tip_m": cloud_distance,
        "tip_pressure_max_pa": max(float(v.max()) for v in tip.values()),
        "tip_pressure_final_pa": {n: float(v[-1]) for n, v in tip.items()},
        "syringe_pressure_max_pa": {n: float(v.max()) for n, v in syringe.items()},
        "cement_viscosity_in_bone_pa_s": {
            "min": _extreme(np.nanmin, mu_low),
            "max": _extreme(np.nanmax, mu_high),
        },
        "bone_porosity": problem.medium.statistics["porosity"],
        "bone_permeability_m2": problem.medium.statistics["permeability_m2"],
        "mass_balance_rel_error": float(series.column("mass_balance_rel_error").max()),
        "saturation_min": float(series.column("saturation_min").min()),
        "saturation_max": float(series.column("saturation_max").max()),
        "end_time_s": problem.state.t,
        "n_cells": problem.tagged.num_cells_global(),
        "n_vertices": problem.disc.V.dofmap.index_map.size_global,
        "n_steps": problem.state.counters.steps,
        "n_rejected_steps": problem.state.counters.rejected,
        "picard_iterations_max": int(series.column("picard_iterations").max()),
        "picard_not_converged_steps": problem.state.counters.picard_failures,
        "mpi_ranks": problem.comm.size,
        "wall_time_s": wall_time,
        "timings_s": {
            "pressure_assembly_and_solve": problem.timings.assembly_and_pressure,
            "fluxes": problem.timings.fluxes,
            "transport": problem.timings.transport,
            "output": problem.timings.output,
            # of the phases above, the time inside PETSc's linear solves (pressure, transport)
            # and in the transport's compiled sweeps
            "petsc_solves": problem.flow.solver.solver_seconds + problem.transport.solver_seconds,
            "transport_sweeps": problem.transport.sweeps.seconds,
        },
    }
    for component in problem.stepper.components:
        summary.update(component.summary(problem.state))
    return summary


def _extreme(pick: Any, values: np.ndarray) -> float | None:
    """min or max of the finite values, None if there are none."""
    finite = values[np.isfinite(values)]
    return float(pick(finite)) if len(finite) else None


def write_text_atomic(path: Path, text: str) -> None:
    """Write text so that `path` either does not exist or is complete (also across processes:
    the temporary file is private to this process)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that `path` either does not exist or is complete."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
