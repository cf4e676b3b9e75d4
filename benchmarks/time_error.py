"""Step rules against their time error on what users read: the first-leak time and the leaked
volume of Habib et al.'s low-viscosity 3.5-min case (scenarios/habib2010), which leaks through
the basivertebral vein 7 s into a 160-s injection.

Each rule runs the shipped scenario with outputs off (so that no output time sets a step);
the reference takes steps of at most 0.1 s and a saturation change of at most 0.1 (about
1600 steps). Rules: the shipped one (`max_saturation_change` 0.25 by default, `dt_max` 1 s),
tighter saturation changes, and `numerics.time_tolerance` (sim.flow.time_error) on top of the
shipped rule ("redone": steps taken back for an estimated error above twice the tolerance).

Run: .venv/bin/mpirun -n 2 .venv/bin/python benchmarks/time_error.py     (about 6 min here)
     ... time_error.py tolerance      (only the rules whose name contains the word, and the
                                        reference)
Prints one table; nothing is asserted (timings on shared machines are noisy).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "habib2010" / "low_viscosity_3.5min.yaml"
QUIET = [f"output.{key}=false" for key in ("fields", "plots", "report", "fluoroscopy")]

REFERENCE = ["numerics.dt_max=0.1 s", "numerics.max_saturation_change=0.1"]
RULES = {
    "shipped (saturation change 0.25)": [],
    "max_saturation_change 0.15": ["numerics.max_saturation_change=0.15"],
    "max_saturation_change 0.1": ["numerics.max_saturation_change=0.1"],
    **{
        f"time_tolerance {tol:g}": [f"numerics.time_tolerance={tol:g}"]
        for tol in (0.03, 0.01, 0.003, 0.001)
    },
}


def run(overrides: list[str]) -> tuple[dict, float]:
    """The summary and wall time (s) of the scenario with `overrides`."""
    comm = MPI.COMM_WORLD
    scenario = load_scenario(SCENARIO, QUIET + overrides)
    out = Path(comm.bcast(tempfile.mkdtemp(prefix="cementsim-bench-") if comm.rank == 0 else None))
    start = time.perf_counter()
    summary = run_scenario(scenario, out, comm)
    return summary, time.perf_counter() - start


def readouts(summary: dict) -> tuple[float, float]:
    """First-leak time (s) and leaked volume (m³) through the basivertebral vein."""
    return summary["first_leak_time_s"]["basivertebral"], summary["leaked_volume_m3"][
        "basivertebral"
    ]


def main() -> None:
    comm = MPI.COMM_WORLD
    rules = [r for r in RULES if len(sys.argv) < 2 or sys.argv[1] in r]
    reference, wall = run(REFERENCE)
    t_ref, v_ref = readouts(reference)
    rows = [("reference (dt_max 0.1 s, change 0.1)", reference, wall)]
    rows += [(rule, *run(RULES[rule])) for rule in rules]
    if comm.rank != 0:
        return
    print(f"Habib 2010 low viscosity 3.5 min, {reference['n_cells']} cells, {comm.size} rank(s)")
    print(
        f"{'rule':<38s} {'steps':>6s} {'redone':>6s} {'first leak s':>13s} {'error':>7s} "
        f"{'leaked mL':>10s} {'error':>7s} {'wall s':>7s}"
    )
    for rule, summary, seconds in rows:
        t, v = readouts(summary)
        print(
            f"{rule:<38s} {summary['n_steps']:6d} {summary['n_rejected_steps']:6d} {t:13.3f} "
            f"{t / t_ref - 1:+7.1%} {v * 1e6:10.4f} {v / v_ref - 1:+7.2%} {seconds:7.1f}"
        )


if __name__ == "__main__":
    main()
