"""Runs with random bone properties (bone.heterogeneity): conservative, logged, written, and
the same on 2 MPI ranks as serially."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import meshio
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario

from .test_equivalence import SI, assert_same_numbers

#: the coarse 20 mm ball of test_equivalence (0.6-5 mm cells) with random bone: a correlation
#: length of 3 mm (below size_max: a warning), BV/TV CV 0.3, permeability scatter, a trend
HETEROGENEOUS = {
    **SI,
    "name": "heterogeneous_ball",
    "bone": {
        "porosity": 0.9,
        "permeability": 1e-9,
        "heterogeneity": {
            "seed": 11,
            "correlation_length": "3 mm",
            "bone_volume_fraction_cv": 0.3,
            "permeability_log_std": 0.5,
            "trend": [{"axis": [1, 0, 0], "change": -0.2}],
        },
    },
    "output": {"fields": True, "plots": False, "fluoroscopy": False, "report": False},
}


def write_scenario(folder: Path) -> Path:
    path = folder / "heterogeneous.yaml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(yaml.safe_dump(HETEROGENEOUS))
    MPI.COMM_WORLD.barrier()
    return path


def bone_fields(run_dir: Path) -> dict[str, np.ndarray]:
    """Porosity and permeability of the tetrahedra in fields.xdmf, at the first time."""
    with meshio.xdmf.TimeSeriesReader(str(run_dir / "fields.xdmf")) as reader:
        _, cells = reader.read_points_cells()
        _, _, cell_data = reader.read_data(0)
    tetra = next(i for i, block in enumerate(cells) if block.type == "tetra")
    return {name: cell_data[name][tetra] for name in ("porosity", "permeability")}


def test_run_with_heterogeneity_is_conservative_and_logs_its_statistics(shared_tmp_path):
    summary = run_scenario(
        load_scenario(write_scenario(shared_tmp_path)), shared_tmp_path / "run", MPI.COMM_WORLD
    )
    assert summary["n_steps"] > 10
    assert summary["mass_balance_rel_error"] <= 1e-10
    assert 0.0 <= summary["saturation_min"] and summary["saturation_max"] <= 1.0
    if MPI.COMM_WORLD.rank == 0:
        log = (shared_tmp_path / "run" / "run.log").read_text()
        assert "WARNING" in log and "correlation_length: 3 mm is shorter than" in log
        stats = re.search(r"bone porosity: mean ([\d.]+), CV ([\d.]+), min ([\d.]+)", log)
        assert stats is not None, log
        mean, cv, lo = (float(v) for v in stats.groups())
        assert 0.87 < mean < 0.92 and 0.01 < cv < 0.1 and 0.05 <= lo < 0.85
        assert "bone permeability (mean principal value): mean" in log
        fields = bone_fields(shared_tmp_path / "run")
        assert np.std(fields["porosity"]) > 0.01
        assert np.all(fields["permeability"] > 0)


@pytest.mark.serial
def test_two_mpi_ranks_give_the_serial_answer_with_heterogeneity(tmp_path):
    """Same summary to 1e-6 and the same cell properties, bit for bit up to the order of the
    cells (the random field does not depend on the partition)."""
    path = write_scenario(tmp_path)
    serial = run_scenario(load_scenario(path), tmp_path / "serial", MPI.COMM_WORLD)
    mpirun = Path(sys.executable).parent / "mpirun"
    launcher = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    assert launcher, "mpirun not found"
    cmd = [launcher, "-n", "2", sys.executable, "-m", "sim", "run", str(path)]
    cmd += ["--out", str(tmp_path / "parallel"), "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    parallel = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    assert parallel["mpi_ranks"] == 2
    assert_same_numbers(serial, parallel, rtol=1e-6, volume_scale=serial["injected_volume_m3"])
    one, two = bone_fields(tmp_path / "serial"), bone_fields(tmp_path / "parallel")
    for name in one:
        np.testing.assert_array_equal(np.sort(two[name]), np.sort(one[name]))
