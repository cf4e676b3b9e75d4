"""Direct (MUMPS Cholesky) against multigrid (CG + GAMG) pressure solves: where they cross.

Runs the default scenario at several mesh sizes with `numerics.pressure_solver` direct and
multigrid and prints the pressure time per step (assembly + solve; the operator changes
every step as the front moves). The 1-D column of
`two_phase_benchmark.py` (4004 unknowns) is the other end: run it with the option set.

Run: .venv/bin/python benchmarks/pressure_solvers.py            (or under mpirun -n N)
     .venv/bin/python benchmarks/pressure_solvers.py 3 1.5 1    (largest cell sizes, mm)
Nothing is asserted.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mpi4py import MPI
from scaling import overrides

from sim.run import run_scenario
from sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]


def one(size_max_mm: float, method: str, comm: MPI.Comm) -> dict:
    """Summary of the default scenario with cells of at most `size_max_mm`
    (tip and outlet sizes scaled with it, as in scaling.py) and the given pressure solver."""
    settings = [*overrides(size_max_mm), f"numerics.pressure_solver={method}"]
    scenario = load_scenario(REPO / "scenarios" / "vertebroplasty.yaml", settings)
    out = Path(comm.bcast(tempfile.mkdtemp(prefix="cementsim-psolve-") if comm.rank == 0 else None))
    return run_scenario(scenario, out, comm)


def main() -> None:
    comm = MPI.COMM_WORLD
    sizes = [float(a) for a in sys.argv[1:]] or [3.0, 2.0, 1.5, 1.0]
    if comm.rank == 0:
        print(f"default scenario, {comm.size} rank(s): pressure assembly + solve per step")
        print(f"{'size_max':>9} {'cells':>8} {'vertices':>9} {'direct':>10} {'multigrid':>10}")
    for size in sizes:
        per_step = {}
        for method in ("direct", "multigrid"):
            summary = one(size, method, comm)
            t = summary["timings_s"]["pressure_assembly_and_solve"]
            per_step[method] = 1e3 * t / max(summary["n_steps"], 1)
        if comm.rank == 0:
            print(
                f"{size:>7.2f}mm {summary['n_cells']:>8d} {summary['n_vertices']:>9d} "
                f"{per_step['direct']:>7.1f} ms {per_step['multigrid']:>7.1f} ms"
            )


if __name__ == "__main__":
    main()
