"""Full runs of the shipped scenarios (coarse): outputs, conservation, leakage, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
from mpi4py import MPI

from sim.run import run_scenario
from sim.scenario import load_scenario

from ..conftest import REPO
from ..support.summaries import assert_summary_has_its_layout

COARSE = ["geometry.mesh.size_tip=0.8 mm", "geometry.mesh.size_max=4 mm"]
ML = 1e-6


def run(scenarios: Path, out: Path, overrides: list[str], name: str = "vertebroplasty.yaml"):
    scenario = load_scenario(scenarios / name, COARSE + overrides)
    summary = run_scenario(scenario, out, MPI.COMM_WORLD, source=scenarios / name)
    return scenario, summary


def assert_conserved(summary: dict) -> None:
    injected = summary["injected_volume_m3"]
    accounted = summary["cement_in_bone_m3"] + summary["leaked_volume_total_m3"]
    assert abs(injected - accounted) / injected <= 1e-10
    assert summary["mass_balance_rel_error"] <= 1e-10
    assert summary["saturation_min"] >= 0.0
    assert summary["saturation_max"] <= 1.0


def test_default_scenario_writes_a_complete_run_directory(scenarios, shared_tmp_path):
    out = shared_tmp_path / "run"
    scenario, summary = run(scenarios, out, [])
    assert_conserved(summary)
    assert_summary_has_its_layout(scenario, summary)  # what a sweep's report.metric may name
    assert summary["injected_volume_m3"] == pytest.approx(4 * ML, rel=1e-12)
    assert 0.05 < summary["fill_fraction"]["anterior"] < 0.5
    assert set(summary["leaked_volume_m3"]) == {"basivertebral", "segmental_veins"}
    assert summary["mpi_ranks"] == MPI.COMM_WORLD.size
    assert summary["tip_pressure_max_pa"] > scenario.leak_routes["basivertebral"].pressure
    if MPI.COMM_WORLD.rank != 0:
        return
    on_disk = json.loads((out / "summary.json").read_text())
    for key in (
        "injected_volume_m3",
        "cement_in_bone_m3",
        "leaked_volume_m3",
        "first_leak_time_s",
        "fill_fraction",
        "cloud_volume_m3",
        "cloud_max_distance_from_tip_m",
        "tip_pressure_max_pa",
        "mass_balance_rel_error",
        "n_cells",
        "n_steps",
        "mpi_ranks",
        "wall_time_s",
    ):
        assert key in on_disk, key
    with (out / "timeseries.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["n_steps"] + 1
    injected = np.array([float(r["injected_volume_m3"]) for r in rows])
    assert np.all(np.diff(injected) > 0) and injected[0] == 0.0
    with h5py.File(out / "results.h5") as h5:
        np.testing.assert_array_equal(h5["timeseries/injected_volume_m3"][:], injected)
        assert "timeseries/fill_fraction.anterior" in h5
        assert "timeseries/leaked_volume_m3.basivertebral" in h5
    with meshio.xdmf.TimeSeriesReader(str(out / "fields.xdmf")) as reader:
        _, cells = reader.read_points_cells()
        assert {c.type for c in cells} == {"tetra", "triangle"}
        assert len(cells[0].data) == summary["n_cells"]
        assert reader.num_steps == scenario.output.field_snapshots + 2
        times = []
        for k in range(reader.num_steps):
            t, point_data, cell_data = reader.read_data(k)
            times.append(t)
            # the degree of cure is a field only with cure kinetics (this cement cures by age)
            assert set(point_data) == {"saturation", "pressure"}
            assert {"darcy_velocity", "cement_viscosity", "region", "boundary"} <= set(cell_data)
            assert {"porosity", "permeability"} <= set(cell_data)
            assert 0.0 <= point_data["saturation"].min() <= point_data["saturation"].max() <= 1.0
        assert times[0] == 0.0 and times[-1] == pytest.approx(summary["end_time_s"])
        assert np.all(np.diff(times) > 0)
        # the final saturation field holds the cement in bone
        cement = point_data["saturation"] > 0.5
        assert cement.any() and not cement.all()
    for column in (
        "syringe_pressure_pa.needle",
        "tip_pressure_pa.needle",
        "injection_rate_m3_s.needle",
        "cement_viscosity_min_pa_s",
        "cement_viscosity_max_pa_s",
        "picard_iterations",
    ):
        assert column in rows[0], column
    syringe = np.array([float(r["syringe_pressure_pa.needle"]) for r in rows])
    tip = np.array([float(r["tip_pressure_pa.needle"]) for r in rows])
    assert np.all(syringe > tip)  # the cannula costs pressure
    for name in (
        "pressure_vs_volume.png",
        "leakage_vs_volume.png",
        "saturation_midplanes.png",
        "pressure_vs_time.png",
        "viscosity_vs_time.png",
        "scenario.resolved.yaml",
        "scenario.input.yaml",
        "versions.json",
        "run.log",
        "fields.xdmf",
    ):
        assert (out / name).stat().st_size > 0, name


def test_needle_near_the_posterior_wall_leaks_through_the_foramen(scenarios, shared_tmp_path):
    _, summary = run(scenarios, shared_tmp_path / "leak", ["injection.needles.0.tip=[-9, 0, 0] mm"])
    assert_conserved(summary)
    assert summary["leaked_volume_m3"]["basivertebral"] > 0.05 * ML
    first = summary["first_leak_time_s"]["basivertebral"]
    assert first is not None and 0 < first < summary["end_time_s"]
    assert summary["first_leak_time_s"]["segmental_veins"] is None
    assert summary["leaked_volume_total_m3"] == pytest.approx(
        sum(summary["leaked_volume_m3"].values()), rel=1e-12
    )


def test_a_failed_run_leaves_the_earlier_run_as_it_was(scenarios, shared_tmp_path, monkeypatch):
    out = shared_tmp_path / "run"
    earlier = {"summary.json": "{}", "scenario.resolved.yaml": "name: earlier\n", "x.png": "x"}
    if MPI.COMM_WORLD.rank == 0:
        out.mkdir()
        for name, text in earlier.items():
            (out / name).write_text(text)
    MPI.COMM_WORLD.barrier()
    from sim.stepper import Stepper

    original = Stepper.advance

    def failing(self, dt):
        if self.state.counters.steps >= 3:
            raise RuntimeError("simulated failure")
        return original(self, dt)

    monkeypatch.setattr(Stepper, "advance", failing)
    with pytest.raises(RuntimeError, match="simulated failure"):
        run(scenarios, out, [])
    if MPI.COMM_WORLD.rank != 0:
        return
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier
    failed = shared_tmp_path / "run.failed"
    assert (failed / "timeseries.csv").exists()  # partial results stay for inspection
    assert not (failed / "summary.json").exists()
    assert {p.name for p in shared_tmp_path.iterdir()} == {"run", "run.failed", ".run.lock"}


def test_every_shipped_scenario_validates(scenarios):
    """Every scenario file validates (sweep files, in `sweeps/`, are planned in tests/sweep);
    none reads a file outside the repository."""
    files = sorted(p for p in scenarios.rglob("*.yaml") if "sweeps" not in p.parts)
    assert len(files) >= 4
    for path in files:
        scenario = load_scenario(path)
        source = getattr(scenario.geometry, "path", None)
        if source is not None:
            assert Path(source).resolve().is_relative_to(REPO), (path, source)
