"""Time the default scenario (`make demo`): wall time, steps, seconds per step by phase, memory.

Run: .venv/bin/python benchmarks/default_scenario.py            (serial)
     .venv/bin/mpirun -n 2 .venv/bin/python benchmarks/default_scenario.py
     ... default_scenario.py geometry.mesh.size_max=1.5mm ...     (scenario overrides)
     ... default_scenario.py --json ...                           (one JSON line instead)
Prints one table; nothing is asserted (timings on shared machines are noisy).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    comm = MPI.COMM_WORLD
    as_json = "--json" in sys.argv[1:]
    overrides = [a for a in sys.argv[1:] if a != "--json"]
    scenario = load_scenario(REPO / "scenarios" / "vertebroplasty.yaml", overrides)
    out = Path(comm.bcast(tempfile.mkdtemp(prefix="cementsim-bench-") if comm.rank == 0 else None))
    start = time.perf_counter()
    summary = run_scenario(scenario, out, comm)
    wall = time.perf_counter() - start
    peak_mb = comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, op=MPI.MAX)
    if comm.rank != 0:
        return
    steps = summary["n_steps"]
    t = summary["timings_s"]
    phases = {
        "pressure assembly + solve": t["pressure_assembly_and_solve"],
        "fluxes": t["fluxes"],
        "transport": t["transport"],
        "output (series, fields, plots)": t["output"],
    }
    setup = wall - sum(phases.values())
    if as_json:
        record = {
            "ranks": comm.size,
            "cells": summary["n_cells"],
            "vertices": summary["n_vertices"],
            "steps": steps,
            "wall_s": wall,
            "setup_s": setup,
            "phases_s": phases,
            "petsc_solves_s": t["petsc_solves"],
            "transport_sweeps_s": t["transport_sweeps"],
            "peak_mb_per_rank": peak_mb,
            "mass_balance": summary["mass_balance_rel_error"],
            "fill_fraction": summary["fill_fraction"],
            "tip_pressure_max_pa": summary["tip_pressure_max_pa"],
            "cloud_volume_m3": summary["cloud_volume_m3"],
        }
        print(json.dumps(record))
        return
    print(
        f"default scenario: {summary['n_cells']} cells, {summary['n_vertices']} vertices, "
        f"{comm.size} rank(s)"
    )
    print(f"  wall time            {wall:8.2f} s   (set-up incl. meshing {setup:.2f} s)")
    print(f"  time steps           {steps:8d}")
    for name, seconds in phases.items():
        print(f"  {name:<30s} {seconds:7.2f} s  {1e3 * seconds / steps:7.1f} ms/step")
    stepping = sum(phases.values()) - phases["output (series, fields, plots)"]
    print(
        f"  of the steps, in PETSc's linear solves {t['petsc_solves']:.2f} s "
        f"({t['petsc_solves'] / stepping:.0%}), in the compiled sweeps "
        f"{t['transport_sweeps']:.2f} s ({t['transport_sweeps'] / stepping:.0%})"
    )
    print(f"  peak memory per rank {peak_mb:8.0f} MB")
    print(f"  mass balance error   {summary['mass_balance_rel_error']:8.1e}")


if __name__ == "__main__":
    main()
