"""Mesh convergence of the leak numbers: leaked volume per route, first-leak time, fill.

Each scenario runs on its shipped mesh scaled by the factors given (1 = as shipped, 0.5 =
twice finer: every element size and the size gradient halved, and numerics.dt_max where the
scenario sets one: the first-leak time of a slowly growing leak depends on the step as much
as on the mesh), and the table shows each
number per mesh, the change from the first (shipped) to the last (finest) mesh relative to
the finest, differences below a floor not counting (the leak threshold for volumes, 1 s, 1e-3
of fill, 1 Pa), and the observed order of
convergence from the three finest meshes refined by a constant ratio r (e.g. 1, 0.7071,
0.5: r = sqrt 2), p = log(|f(h r^2) - f(h r)| / |f(h r) - f(h)|) / log r. The shipped mesh
sizes are the coarsest level: the sizes cannot all grow (an outlet mesh size must stay below
the outlet's radius).

Run: .venv/bin/python benchmarks/mesh_convergence.py [SCENARIO ...] [--factors 1 0.7071 0.5]
     .venv/bin/mpirun -n 2 .venv/bin/python benchmarks/mesh_convergence.py ...
Default scenarios: the five in DEFAULT (the default scenario, a Habib bench, the posterior
defect, the cleft and the short-axis sacroplasty); name others to run them (README Validation
lists the results for every shipped scenario that leaks).
Nothing is asserted; the numbers are printed (and written as JSON with --json FILE).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [
    "vertebroplasty.yaml",
    "habib2010/low_viscosity_3.5min.yaml",
    "anatomy/vertebroplasty_posterior_defect.yaml",
    "anatomy/vertebroplasty_cleft.yaml",
    "anatomy/sacroplasty_short_axis.yaml",
]
QUIET = [
    "output.fields=false",
    "output.plots=false",
    "output.fluoroscopy=false",
    "output.report=false",
]


def mesh_overrides(scenario: Scenario, factor: float) -> list[str]:
    """--set overrides that scale every element size and the size gradient by `factor`, and
    the largest time step where the scenario sets one (refinement in space and time)."""
    mesh = getattr(scenario.geometry, "mesh", None)
    if mesh is None:
        raise SystemExit(f"{scenario.name}: geometry kind without mesh sizes")
    values = mesh.model_dump()
    out = [
        f"geometry.mesh.{key}={value * factor!r}"
        for key, value in values.items()
        if key.startswith("size_") or key == "growth"
    ]
    if scenario.numerics.dt_max is not None:
        out.append(f"numerics.dt_max={scenario.numerics.dt_max * factor!r}")
    return out


def leak_numbers(summary: dict[str, Any]) -> dict[str, float | None]:
    """The numbers whose convergence is tabulated (SI)."""
    out: dict[str, float | None] = {"tip_pressure_max_pa": summary["tip_pressure_max_pa"]}
    for route, value in summary["leaked_volume_m3"].items():
        out[f"leaked_m3.{route}"] = value
        out[f"first_leak_s.{route}"] = summary["first_leak_time_s"][route]
    for target, value in summary["fill_fraction"].items():
        out[f"fill.{target}"] = value
    return out


def relative_change(coarse: float | None, fine: float | None, floor: float) -> float | None:
    """|coarse - fine| / max(|fine|, floor); None where either is missing."""
    if coarse is None or fine is None:
        return None
    return abs(coarse - fine) / max(abs(fine), floor)


def observed_order(a: float | None, b: float | None, c: float | None, ratio: float) -> float:
    """Order p from values on meshes h*ratio^2, h*ratio, h (refined by 1/ratio each)."""
    if None in (a, b, c) or b == c or a == b:
        return math.nan
    return math.log(abs(a - b) / abs(b - c)) / math.log(1 / ratio)  # type: ignore[operator]


def floor_of(name: str, threshold: float) -> float:
    """Absolute scale below which differences do not count: the leak threshold for volumes,
    1 s for times, 1e-3 for fill fractions, 1 Pa for pressures."""
    if name.startswith("leaked_m3"):
        return threshold
    return {"first_leak_s": 1.0, "fill": 1e-3, "tip_pressure_max_pa": 1.0}[name.split(".")[0]]


def run_levels(path: Path, factors: list[float], comm: MPI.Comm) -> list[dict[str, Any]]:
    base = load_scenario(path, QUIET)
    levels = []
    for factor in factors:
        sc = load_scenario(path, QUIET + mesh_overrides(base, factor))
        out = Path(
            comm.bcast(tempfile.mkdtemp(prefix="cementsim-conv-") if comm.rank == 0 else None)
        )
        start = time.perf_counter()
        summary = run_scenario(sc, out, comm)
        levels.append(
            {
                "factor": factor,
                "cells": summary["n_cells"],
                "steps": summary["n_steps"],
                "wall_s": time.perf_counter() - start,
                "threshold": summary["leak_threshold_m3"],
                "numbers": leak_numbers(summary),
            }
        )
        if comm.rank == 0:
            print(
                f"  {path.name}: factor {factor:g}, {summary['n_cells']} cells, "
                f"{summary['n_steps']} steps, {levels[-1]['wall_s']:.1f} s",
                flush=True,
            )
    return levels


def table(name: str, levels: list[dict[str, Any]]) -> str:
    factors = [lv["factor"] for lv in levels]
    lines = [
        f"{name}",
        "  " + "quantity".ljust(34) + "".join(f"{'h x ' + format(f, 'g'):>14s}" for f in factors),
    ]
    lines[-1] += "   shipped vs finest   order"
    lines.append("  " + "cells".ljust(34) + "".join(f"{lv['cells']:>14d}" for lv in levels))
    threshold = levels[0]["threshold"]
    for quantity in levels[0]["numbers"]:
        values = [lv["numbers"][quantity] for lv in levels]
        cells = "".join(f"{'-' if v is None else format(v, '.5g'):>14s}" for v in values)
        floor = floor_of(quantity, threshold)
        change = relative_change(values[0], values[-1], floor) if len(values) > 1 else None
        order = math.nan
        if len(values) > 2:
            order = observed_order(values[-3], values[-2], values[-1], factors[-1] / factors[-2])
        lines.append(
            "  "
            + quantity.ljust(34)
            + cells
            + f"   {'-' if change is None else format(100 * change, '6.1f') + ' %':>14s}"
            + f"   {order:5.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=DEFAULT)
    parser.add_argument("--factors", nargs="+", type=float, default=[1.0, 0.5])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    results = {}
    for name in args.scenarios:
        path = Path(name) if Path(name).is_file() else REPO / "scenarios" / name
        results[name] = run_levels(path, sorted(args.factors, reverse=True), comm)
        if comm.rank == 0:
            print(table(name, results[name]), flush=True)
    if args.json and comm.rank == 0:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
