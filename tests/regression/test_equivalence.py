"""The same physics must give the same answer: in mm as in SI, on 2 ranks as on 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from sim.outputs.report import results_rows
from sim.run import run_scenario
from sim.scenario import load_scenario, validate_scenario
from sim.scenario.frames import FRAMES

#: summary entries that describe the machine, not the physics
NOT_PHYSICS = {"wall_time_s", "timings_s", "mpi_ranks", "scenario"}


def flat(d: dict, prefix: str = "") -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k, v in d.items():
        if k in NOT_PHYSICS:
            continue
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def assert_same_numbers(a: dict, b: dict, rtol: float, volume_scale: float = 0.0) -> None:
    """Every number of summary b equals a's within rtol; volumes (m³) also within
    rtol * volume_scale (a leak of 1e-33 m³ is round-off, not a number to compare digit by
    digit)."""
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if va is None or vb is None or isinstance(va, str):
            assert va == vb, key
        elif key in ("mass_balance_rel_error", "heat_balance_rel_error"):  # round-off
            assert max(va, vb) <= 1e-10
        else:
            floor = rtol * volume_scale if "_m3" in key else 0.0
            assert vb == pytest.approx(va, rel=rtol, abs=max(floor, 1e-30)), key


SI = {
    "name": "units_si",
    "geometry": {
        "kind": "ball",
        "radius": 0.02,
        "mesh": {"size_tip": 0.0006, "size_max": 0.005, "growth": 0.4},
    },
    "bone": {"porosity": 0.9, "permeability": 1e-9},
    "cement": {
        "rheology": {"model": "power_law", "consistency": 45.0, "n": 0.65},
        "curing": {"law": "exponential", "reference_age": 240.0, "time_constant": 120.0},
    },
    "marrow": {"viscosity": 0.05},
    "injection": {
        "start_after_mixing": 240.0,
        "needles": [{"inner_diameter": 0.0024, "rate": 5e-8, "volume": 1e-6}],
    },
    "leak_routes": {"far": {"kind": "outlet", "boundary": "outer", "pressure": 1000.0}},
    "output": {"fields": False, "plots": False},
}

MM = {
    "name": "units_mm",
    "geometry": {
        "kind": "ball",
        "radius": "20 mm",
        "mesh": {"size_tip": "0.6 mm", "size_max": "5 mm", "growth": 0.4},
    },
    "bone": {"porosity": 0.9, "permeability": "1e-3 mm^2"},
    "cement": {
        "rheology": {"model": "power_law", "consistency": "45000 mPa*s^0.65", "n": 0.65},
        "curing": {"law": "exponential", "reference_age": "4 min", "time_constant": "2 min"},
    },
    "marrow": {"viscosity": "50 mPa*s"},
    "injection": {
        "start_after_mixing": "4 min",
        "needles": [{"inner_diameter": "2.4 mm", "rate": "3 mL/min", "volume": "1 mL"}],
    },
    "leak_routes": {"far": {"kind": "outlet", "boundary": "outer", "pressure": "1 kPa"}},
    "output": {"fields": False, "plots": False},
}


@pytest.mark.serial  # units are converted before any mesh: nothing parallel
def test_scenario_in_mm_ml_mpas_gives_the_si_answer(shared_tmp_path):
    comm = MPI.COMM_WORLD
    a = run_scenario(validate_scenario(SI), shared_tmp_path / "si", comm)
    b = run_scenario(validate_scenario(MM), shared_tmp_path / "mm", comm)
    assert a["n_steps"] > 10
    assert_same_numbers(a, b, rtol=1e-12)


def _write_msh(path: Path, scale: float, shift: float = 0.0) -> None:
    """A ball mesh (radius 20 mm) written with coordinates multiplied by `scale`, its centre
    moved by `shift` (in the written units) along the file's x axis."""
    from sim.geometry.ball import add_ball

    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        gmsh.model.add("ball")
        add_ball(
            radius=0.02,
            inlet_radius=0.0012,
            inlet_name="needle",
            h_tip=0.0006,
            h_max=0.005,
            growth=0.4,
        )
        gmsh.model.mesh.generate(3)
        if scale != 1.0 or shift != 0.0:
            gmsh.model.mesh.affineTransform([scale, 0, 0, shift, 0, scale, 0, 0, 0, 0, scale, 0])
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def test_mesh_file_in_mm_gives_the_answer_of_the_mesh_in_m(shared_tmp_path):
    """Also a mesh in DICOM LPS coordinates whose ball is centred 10 mm to the patient's left
    (file x), brought back by frame: LPS and a translation of -10 mm along project y: the
    same answer (the tip at the origin would be 14 mm off-centre with the frame ignored)."""
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        _write_msh(shared_tmp_path / "ball_m.msh", 1.0)
        _write_msh(shared_tmp_path / "ball_mm.msh", 1000.0)
        _write_msh(shared_tmp_path / "ball_lps.msh", 1000.0, shift=10.0)
    comm.barrier()
    summaries = []
    placed = {"frame": "LPS", "transform": {"translate": "[0, -10, 0] mm"}}
    for name, unit, placement in (("m", "m", {}), ("mm", "mm", {}), ("lps", "mm", placed)):
        data = {
            **SI,
            "name": f"file_{name}",
            "geometry": {
                "kind": "mesh_file",
                "path": str(shared_tmp_path / f"ball_{name}.msh"),
                "length_unit": unit,
                **placement,
            },
            "injection": {
                **SI["injection"],
                "needles": [{**SI["injection"]["needles"][0], "tip": [0, 0, 0]}],
            },
        }
        summaries.append(run_scenario(validate_scenario(data), shared_tmp_path / name, comm))
    assert_same_numbers(summaries[0], summaries[1], rtol=1e-6)
    # the LPS mesh is the ball turned by 90 degrees about z: directions turn with it
    turn = FRAMES["LPS"]
    for key, matrix in (("centre_m", turn), ("extent_m", np.abs(turn))):
        vector, turned = summaries[0]["cloud"].pop(key), summaries[2]["cloud"].pop(key)
        assert turned == pytest.approx(matrix @ vector, rel=1e-6, abs=1e-12), key
    assert_same_numbers(summaries[0], summaries[2], rtol=1e-6)


def serial_and_two_ranks(scenario: Path, overrides: list[str], tmp_path: Path) -> tuple[dict, dict]:
    """The summaries of `scenario` with `overrides` run here (one rank) into tmp_path/serial
    and with `mpirun -n 2` into tmp_path/parallel."""
    serial = run_scenario(load_scenario(scenario, overrides), tmp_path / "serial", MPI.COMM_WORLD)
    mpirun = Path(sys.executable).parent / "mpirun"
    launcher = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    assert launcher, "mpirun not found"
    cmd = [launcher, "-n", "2", sys.executable, "-m", "sim", "run", str(scenario)]
    cmd += ["--out", str(tmp_path / "parallel"), "--quiet"]
    for o in overrides:
        cmd += ["--set", o]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    parallel = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    assert parallel["mpi_ranks"] == 2
    return serial, parallel


@pytest.mark.serial
def test_two_mpi_ranks_give_the_serial_answer(scenarios, tmp_path):
    overrides = [
        "geometry.mesh.size_tip=0.8 mm",
        "geometry.mesh.size_max=4 mm",
        "injection.needles.0.tip=[-9, 0, 0] mm",
        # heat on: hot cement (this cement has no exotherm), a probe, 20 s of follow-up
        "heat.cement_temperature=60 degC",
        "heat.follow_up=20 s",
        "heat.probes.centre=[0, 0, 0] mm",
    ]
    serial, parallel = serial_and_two_ranks(scenarios / "vertebroplasty.yaml", overrides, tmp_path)
    assert serial["leaked_volume_m3"]["basivertebral"] > 0  # leakage is part of the comparison
    assert serial["probe_temperature_max_k"]["centre"] > 311.0  # and so is heat
    assert_same_numbers(serial, parallel, rtol=1e-6)
    # the report and the plots come out of the parallel run too, with the same numbers
    for name in (
        "report.html",
        "pressure_vs_volume.png",
        "saturation_midplanes.png",
        "fluoroscopy_ap.png",
        "fluoroscopy.gif",
        "temperature_vs_time.png",
        "temperature_midplanes.png",
    ):
        assert (tmp_path / "parallel" / name).stat().st_size > 0, name
    # round-off differs
    machine = ("Wall time", "Steps, cells, ranks", "Mass balance error", "Heat balance error")
    rows = {
        run: [
            r
            for r in results_rows(
                tmp_path / run, json.loads((tmp_path / run / "summary.json").read_text())
            )
            if r[0] not in machine
        ]
        for run in ("serial", "parallel")
    }
    assert rows["serial"] == rows["parallel"]
    images = [np.load(tmp_path / run / "fluoroscopy.npz")["cement_ap"] for run in rows]
    np.testing.assert_allclose(images[0], images[1], rtol=1e-6, atol=1e-12)


@pytest.mark.serial
def test_two_mpi_ranks_give_the_serial_answer_after_a_pause(scenarios, tmp_path):
    """Four aliquots with pauses of 10 s. While the injection pauses the pressure is uniform
    to round-off, and the first step after a pause took each cell's mobility from the vertex
    that round-off made the highest: a choice that depended on the partition (the cement
    cloud's volume 1 % apart on 2 ranks, its centre 30 %). Tied vertices now share it."""
    overrides = [
        "injection.needles.0.aliquots={volume: 1 mL, count: 4, rate: 4 mL/min, pause: 10 s}",
        "injection.needles.0.rate=null",
        "injection.needles.0.volume=null",
        "output.fields=false",
        "output.plots=false",
        "output.fluoroscopy=false",
        "output.report=false",
    ]
    serial, parallel = serial_and_two_ranks(scenarios / "vertebroplasty.yaml", overrides, tmp_path)
    assert serial["n_steps"] == parallel["n_steps"] and serial["injected_volume_m3"] > 3.99e-6
    assert_same_numbers(serial, parallel, rtol=1e-9, volume_scale=serial["injected_volume_m3"])
