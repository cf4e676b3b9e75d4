"""Strong and weak scaling of the default scenario, up to a mesh of about a million cells.

Each case is `benchmarks/default_scenario.py --json` under `mpirun -n k` (a child process, so
that every case starts cold except for the mesh cache: `cementsim mesh` meshes each size
first, timed apart, and the runs read the cached mesh). Sizes are the largest cell size of
the vertebral body in mm, tip and outlet sizes scaled with it (3 mm is the shipped default,
18 501 cells).

Run: .venv/bin/python benchmarks/scaling.py                  (strong: 1.5 mm on 1..N ranks;
                                                               weak: cells per rank ~ fixed)
     .venv/bin/python benchmarks/scaling.py million          (the ~1M-cell case on N ranks)
     .venv/bin/python benchmarks/scaling.py refined          (the shipped mesh refined twice)
N is the number of cores (os.cpu_count()). Prints tables; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SCENARIO = HERE.parent / "scenarios" / "vertebroplasty.yaml"
#: largest cell size (mm) of the ~1M-cell vertebral body
MILLION = 0.54


def overrides(size_max_mm: float) -> list[str]:
    """Scenario overrides for cells of at most `size_max_mm` (tip and outlet sizes scaled as
    in the shipped default: 0.6 and 1 mm at 3 mm) and no optional outputs."""
    scale = size_max_mm / 3.0
    return [
        f"geometry.mesh.size_max={size_max_mm:g}mm",
        f"geometry.mesh.size_tip={0.6 * scale:.4g}mm",
        f"geometry.mesh.size_outlet={1.0 * scale:.4g}mm",
        "output.fields=false",
        "output.plots=false",
        "output.fluoroscopy=false",
        "output.report=false",
    ]


def run(size_max_mm: float, ranks: int, extra: tuple[str, ...] = ()) -> dict:
    """One case on `ranks` MPI ranks (`extra`: further overrides): the JSON record of
    default_scenario.py."""
    command = [str(BIN / "python"), str(HERE / "default_scenario.py"), "--json"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    done = subprocess.run(
        command + overrides(size_max_mm) + list(extra), capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(label: str, r: dict, reference: dict | None, ideal: float) -> str:
    """A table row; efficiency = reference wall per ideal factor / this wall."""
    stepping = sum(r["phases_s"].values())
    efficiency = "" if reference is None else f"{reference['wall_s'] * ideal / r['wall_s']:6.0%}"
    return (
        f"{label:<8} {r['ranks']:>5} {r['cells']:>9} {r['vertices']:>8} {r['steps']:>5} "
        f"{r['wall_s']:>8.1f} {r['setup_s']:>7.1f} {stepping:>8.1f} "
        f"{1e3 * stepping / r['steps']:>8.0f} {r['peak_mb_per_rank']:>8.0f} {efficiency:>6}"
    )


HEADER = (
    f"{'case':<8} {'ranks':>5} {'cells':>9} {'vertices':>8} {'steps':>5} {'wall s':>8} "
    f"{'setup s':>7} {'steps s':>8} {'ms/step':>8} {'MB/rank':>8} {'eff.':>6}"
)


def mesh_first(size_max_mm: float) -> float:
    """Mesh into the cache (`cementsim mesh`, serial); its wall time (s), reading the cached
    mesh if it was meshed before."""
    settings = [f"--set={o}" for o in overrides(size_max_mm)]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "cementsim"), "mesh", str(SCENARIO), "--out", folder, *settings],
            capture_output=True,
            check=True,
        )
        return time.perf_counter() - start


def strong(size_max_mm: float, cores: int) -> None:
    print(f"strong scaling, size_max {size_max_mm} mm (meshing: {mesh_first(size_max_mm):.1f} s)")
    print(HEADER)
    first = None
    for ranks in range(1, cores + 1):
        r = run(size_max_mm, ranks)
        print(row("strong", r, first, 1.0 / ranks), flush=True)
        first = first or r


def weak(cores: int) -> None:
    """About the same cells per rank: the cell count grows like size_max^-3."""
    print("weak scaling (cells per rank about constant)")
    print(HEADER)
    first = None
    for ranks in range(1, cores + 1):
        size = 1.5 / ranks ** (1.0 / 3.0)
        mesh_first(size)
        r = run(size, ranks)
        print(row("weak", r, first, r["cells"] / (first or r)["cells"] / ranks), flush=True)
        first = first or r


def million(cores: int) -> None:
    meshing = mesh_first(MILLION)
    r = run(MILLION, cores)
    print(f"about a million cells, size_max {MILLION} mm (meshing: {meshing:.1f} s)")
    print(HEADER)
    print(row("1M", r, None, 1.0))
    print(
        f"mass balance {r['mass_balance']:.1e}, fill {r['fill_fraction']}, "
        f"largest tip pressure {r['tip_pressure_max_pa']:.4g} Pa"
    )


def refined(cores: int) -> None:
    """The shipped mesh (3 mm) refined twice on the ranks (geometry.refine: 2), about 1.2M
    cells without meshing them in gmsh; the set-up includes the refinement."""
    mesh_first(3.0)
    r = run(3.0, cores, ("geometry.refine=2",))
    print("the shipped mesh refined twice in parallel (geometry.refine: 2)")
    print(HEADER)
    print(row("refine 2", r, None, 1.0))
    print(
        f"mass balance {r['mass_balance']:.1e}, fill {r['fill_fraction']}, "
        f"largest tip pressure {r['tip_pressure_max_pa']:.4g} Pa"
    )


if __name__ == "__main__":
    cores = os.cpu_count() or 1
    if sys.argv[1:] == ["million"]:
        million(cores)
    elif sys.argv[1:] == ["refined"]:
        refined(cores)
    else:
        strong(1.5, cores)
        weak(cores)
