"""What heat costs: the same injection with and without the heat component.

The thermal vertebroplasty scenario (scenarios/thermal/vertebroplasty_bath.yaml) is run for
its injection only (heat.follow_up = 0, so that both runs take the same steps' worth of
flow), once with its `heat` section and once without; prints both wall times and the
ratio (the issue's budget: at most 1.3). The timings of the phases are printed too.

Run: .venv/bin/python benchmarks/heat_overhead.py [--coarse]   (mpirun -n 2 works)
Nothing is asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario, validate_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "thermal" / "vertebroplasty_bath.yaml"
QUIET = [
    "output.fields=false",
    "output.plots=false",
    "output.fluoroscopy=false",
    "output.report=false",
    "heat.follow_up=0",
]
COARSE = ["geometry.mesh.size_tip=1.2 mm", "geometry.mesh.size_max=5 mm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coarse", action="store_true")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    with_heat = load_scenario(SCENARIO, QUIET + (COARSE if args.coarse else []))
    without = validate_scenario({**with_heat.model_dump(exclude={"heat"}), "name": "without_heat"})
    walls = {}
    for label, scenario in (("without heat", without), ("with heat", with_heat)):
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_scenario(scenario, Path(comm.bcast(tmp)) / "run", comm)
        walls[label] = summary["wall_time_s"]
        if comm.rank == 0:
            print(
                f"{label:13s} {summary['wall_time_s']:7.1f} s wall, {summary['n_steps']} "
                f"steps, {summary['n_cells']} cells; phases {summary['timings_s']}"
            )
    if comm.rank == 0:
        print(f"ratio {walls['with heat'] / walls['without heat']:.2f} (budget 1.30)")


if __name__ == "__main__":
    main()
