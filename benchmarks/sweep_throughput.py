"""Sweep throughput (runs per hour): a serial loop, the local pool and a Dask LocalCluster.

Run: .venv/bin/python benchmarks/sweep_throughput.py [--workers 2] [--points 8]
     [--ranks-per-run 2]
(with --ranks-per-run M each point runs on M MPI ranks: a worker is `mpirun -n M python -m
sim.sweep.server`; on a 2-core machine use --workers 1 with M = 2.)
Each executor runs the same coarse sphere points (the shipped example sweep, viscosity x rate,
outputs off) into a fresh folder through `cementsim sweep run`; the start-up of the sweep's
worker processes (Python, DOLFINx, PETSc: once per worker, sim.sweep.server) and the mesh of
each run are included, as on a cluster. Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "scenarios" / "sweeps" / "sphere_viscosity_rate.yaml"


def sweep_file(folder: Path, points: int) -> Path:
    data = yaml.safe_load(SWEEP.read_text())
    data["base"] = str((SWEEP.parent / data["base"]).resolve())
    data["axes"] = [
        {
            "param": "cement.rheology.viscosity",
            "range": {"start": 50, "stop": 400, "num": points // 2, "spacing": "log"},
        },
        {"param": "injection.needles.0.rate", "values": ["2 mL/min", "4 mL/min"]},
    ]
    data.pop("report")
    path = folder / "throughput.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--ranks-per-run", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cementsim-sweep-bench-"))
    path = sweep_file(folder, args.points)
    rows = []
    for executor in ("serial", "local", "dask"):
        out = folder / executor
        start = time.perf_counter()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "sim",
                "sweep",
                "run",
                str(path),
                "--out",
                str(out),
                "--executor",
                executor,
                "--workers",
                str(args.workers),
                "--ranks-per-run",
                str(args.ranks_per_run),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"{executor} sweep failed:\n{run.stdout}\n{run.stderr}")
        summaries = [json.loads(p.read_text()) for p in out.glob("runs/*/summary.json")]
        inside = np.median([s["wall_time_s"] for s in summaries])
        per_process = np.median(
            [
                json.loads(p.read_text())["attempts"][-1]["seconds"]
                for p in out.glob("runs/*/attempts.json")
            ]
        )
        rows.append(
            (executor, len(summaries), wall, 3600 * len(summaries) / wall, inside, per_process)
        )
    serial = rows[0][3]
    print(
        f"sweep throughput, {args.points} coarse sphere runs on {args.ranks_per_run} rank(s) "
        f"each, {args.workers} workers ({folder})"
    )
    print(
        f"{'executor':10s} {'runs':>5s} {'wall s':>8s} {'runs/h':>8s} {'speed-up':>9s} "
        f"{'run s':>7s} {'attempt s':>10s}"
    )
    for name, n, wall, per_hour, inside, process in rows:
        print(
            f"{name:10s} {n:5d} {wall:8.1f} {per_hour:8.0f} {per_hour / serial:9.2f} "
            f"{inside:7.2f} {process:10.2f}"
        )
    print(
        "run s: median wall time inside a run; attempt s: median time of a point as its "
        "worker saw it (mesh, run, outputs; the worker's start-up for its first point)"
    )


if __name__ == "__main__":
    main()
