"""Cost of the optional outputs: the default scenario with every output on, and with fields,
plots, fluoroscopy and report off (the time series and summary are always written).

Run: .venv/bin/python benchmarks/output_overhead.py [--repeats 5] [--ranks 1 2]
                                                   [--set KEY=VALUE ...]
Each configuration runs `repeats` times, on and off alternating (the machine may be shared);
medians are printed. Times: `run` is the run's own wall time (summary.json: set-up, meshing,
time loop, outputs), `process` includes Python start-up and imports; `output` is the run's
output timing (time series every step, fields and fluoroscopy at the snapshots, then plots,
images and files; the recorder's set-up is not in it but is in `run`). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OFF = [
    "output.fields=false",
    "output.plots=false",
    "output.fluoroscopy=false",
    "output.report=false",
]
LOG_TIMES = {
    "plots": re.compile(r"plots: ([\d.]+) s, slices ([\d.]+) s"),
    "fluoroscopy images": re.compile(r"fluoroscopy images: ([\d.]+) s"),
}


def command(ranks: int, out: Path, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "sim", "run", str(REPO / "scenarios" / "vertebroplasty.yaml")]
    cmd += ["--out", str(out), "--quiet"]
    for o in overrides:
        cmd += ["--set", o]
    if ranks == 1:
        return cmd
    mpirun = Path(sys.executable).parent / "mpirun"
    launcher = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    if launcher is None:
        sys.exit("mpirun not found")
    return [launcher, "-n", str(ranks), *cmd]


def run_once(ranks: int, out: Path, overrides: list[str]) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    start = time.perf_counter()
    done = subprocess.run(command(ranks, out, overrides), capture_output=True, text=True, env=env)
    process = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"run failed:\n{done.stderr}")
    summary = json.loads((out / "summary.json").read_text())
    row = {
        "run": summary["wall_time_s"],
        "process": process,
        "output": summary["timings_s"]["output"],
        "steps": summary["n_steps"],
    }
    log = (out / "run.log").read_text()
    for name, pattern in LOG_TIMES.items():
        match = pattern.search(log)
        if match:
            row[name] = sum(float(g) for g in match.groups())
    return row


def median(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cementsim-overhead-"))
    try:
        for ranks in args.ranks:
            rows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
            for k in range(args.repeats):
                for label in ("on", "off"):
                    extra = OFF if label == "off" else []
                    out = base / f"{ranks}-{label}-{k}"
                    rows[label].append(run_once(ranks, out, args.overrides + extra))
            on, off = rows["on"], rows["off"]
            steps = int(median(on, "steps"))
            print(f"default scenario, {ranks} rank(s), {steps} steps, median of {args.repeats}:")
            reference = median(off, "run")
            for key in ("run", "process", "output"):
                a, b = median(on, key), median(off, key)
                print(
                    f"  {key:<8s} all outputs {a:6.2f} s   optional outputs off {b:6.2f} s"
                    f"   difference {a - b:5.2f} s ({100 * (a - b) / reference:3.0f} % of the run)"
                )
            print(
                f"  end of run: plots + sections {median(on, 'plots'):.2f} s, "
                f"fluoroscopy images {median(on, 'fluoroscopy images'):.2f} s"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
