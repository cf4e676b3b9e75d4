"""Collecting and analysing a sweep, on sweep folders and tables with known answers (no runs):
the table in CSV, HDF5 and Parquet, leak maps, Sobol indices, main effects, the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from sim.outputs.summary import write_json_atomic
from sim.sweep.analysis import leak_map, main_effects, rank_correlations, sobol_indices
from sim.sweep.cli import load_sweep
from sim.sweep.plan import make_plan, unit_samples
from sim.sweep.report import write_sweep_report
from sim.sweep.store import run_dir, write_plan
from tests.sweep.conftest import write_sweep

pytestmark = pytest.mark.serial

VISCOSITY = "cement.rheology.viscosity"
RATE = "injection.needles.0.rate"
THRESHOLD = 1e-9


def fake_leak(viscosity: float, rate: float) -> float:
    """Leaked volume (m³) of the synthetic sweep: leaks when thin cement goes in fast."""
    return max(0.0, 2e-9 * (rate / 3e-8) * (100.0 / viscosity) - 1.5e-9)


@pytest.fixture
def fake_sweep(tmp_path: Path) -> Path:
    """The six-point sphere sweep with made-up results: five finished, one failed."""
    sweep_file = write_sweep(tmp_path)
    plan = make_plan(load_sweep(sweep_file))
    out = tmp_path / "sweep"
    write_plan(out, plan, sweep_file, {"kind": "local"})
    for k, run in enumerate(plan.runs):
        folder = run_dir(out, run.id)
        folder.mkdir(parents=True)
        if k == 4:
            write_json_atomic(folder / "failed.json", {"error": "PETSc diverged: boom"})
            continue
        v, q = run.si[VISCOSITY], run.si[RATE]
        leak = fake_leak(v, q)
        write_json_atomic(
            folder / "summary.json",
            {
                "scenario": "sphere",
                "tip_pressure_max_pa": 1e3 * v * q / 3e-8,
                "injected_volume_m3": 1e-6,
                "leaked_volume_m3": {"far_field": leak},
                "leaked_volume_total_m3": leak,
                "leak_threshold_m3": THRESHOLD,
                "first_leak_time_s": {"far_field": None if leak <= THRESHOLD else 10.0},
                "injected_volume_at_first_leak_m3": {
                    "far_field": None if leak <= THRESHOLD else 0.5e-6
                },
                "cloud": {"extent_m": [0.01, 0.02, 0.03]},
            },
        )
        injected = np.linspace(0, 1e-6, 5)
        rows = ["injected_volume_m3,leaked_volume_m3.far_field,fill_fraction.core"]
        rows += [f"{x!r},{leak * x / 1e-6!r},{0.3 * x / 1e-6!r}" for x in injected]
        (folder / "timeseries.csv").write_text("\n".join(rows) + "\n")
    return out


def test_collect_writes_one_row_per_run_in_csv_hdf5_and_parquet(fake_sweep: Path) -> None:
    paths = write_sweep_report(fake_sweep)
    plan = json.loads((fake_sweep / "plan.json").read_text())
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == [r["id"] for r in plan["runs"]]
    assert [r["status"] for r in rows].count("failed") == 1
    failed = next(r for r in rows if r["status"] == "failed")
    assert "boom" in failed["error"] and failed["summary.tip_pressure_max_pa"] == ""
    with h5py.File(paths["hdf5"]) as h5:
        pressure = h5["runs/summary.tip_pressure_max_pa"][:]
        viscosity = h5["runs"][VISCOSITY][:]
        status = [s.decode() for s in h5["runs/status"][:]]
        extent = h5["runs/summary.cloud.extent_m.2"][:]
    for k, row in enumerate(rows):
        assert viscosity[k] == float(row[VISCOSITY])
        if status[k] == "done":
            assert pressure[k] == float(row["summary.tip_pressure_max_pa"])
            assert extent[k] == 0.03
        else:
            assert np.isnan(pressure[k])
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(paths["parquet"]).to_pydict()
    assert table["run"] == [r["run"] for r in rows]
    assert table["summary.tip_pressure_max_pa"][0] == float(rows[0]["summary.tip_pressure_max_pa"])


def test_collect_analysis_and_report_have_the_known_numbers(fake_sweep: Path) -> None:
    paths = write_sweep_report(fake_sweep)
    analysis = json.loads((fake_sweep / "analysis.json").read_text())
    plan = json.loads((fake_sweep / "plan.json").read_text())
    done = [r for k, r in enumerate(plan["runs"]) if k != 4]
    leaks = [fake_leak(r["si"][VISCOSITY], r["si"][RATE]) > THRESHOLD for r in done]
    assert 0 < sum(leaks) < len(leaks)
    assert analysis["done"] == 5 and analysis["failed"] == 1 and analysis["pending"] == 0
    assert analysis["leak_probability"] == pytest.approx(np.mean(leaks))
    assert analysis["leak_probability_per_route"]["far_field"] == pytest.approx(np.mean(leaks))
    assert analysis["leak_map"]["parameters"] == [VISCOSITY, RATE]
    assert np.nansum(analysis["leak_map"]["count"]) == 5
    for name in ("leak_map", "curves", "sensitivity", "report"):
        assert paths[name].is_file() and paths[name].stat().st_size > 1000
    page = paths["report"].read_text()
    assert "PETSc diverged: boom" in page
    assert f"{100 * np.mean(leaks):.0f} %" in page
    assert page.count("data:image/png;base64,") == 3


def test_leak_map_counts_and_probabilities_per_cell() -> None:
    a = np.repeat([1.0, 2.0, 3.0], 4)
    b = np.tile([10.0, 10.0, 20.0, 20.0], 3)
    volume = np.where((a >= 2) & (b == 20.0), 5e-9, 0.0)
    volume[0] = 2e-9  # one of the two (1, 10) runs leaks
    columns = {
        "a": a,
        "b": b,
        "summary.leaked_volume_total_m3": volume,
        "summary.leak_threshold_m3": np.full(12, 1e-9),
    }
    m = leak_map(columns, "a", "b")
    assert m.count.tolist() == [[2, 2, 2], [2, 2, 2]]
    assert m.probability.tolist() == [[0.5, 0, 0], [0, 1, 1]]
    assert m.mean_leaked[0, 0] == pytest.approx(1e-9)
    strict = leak_map(columns, "a", "b", threshold=3e-9)
    assert strict.probability[0, 0] == 0.0


def test_leak_map_bins_continuous_parameters() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 500), 10 ** rng.uniform(0, 3, 500)
    leaked = np.where(a > 0.5, 1e-8, 0.0)
    columns = {
        "a": a,
        "b": b,
        "summary.leaked_volume_total_m3": leaked,
        "summary.leak_threshold_m3": np.full(500, 1e-9),
    }
    m = leak_map(columns, "a", "b", log=frozenset({"b"}))
    assert m.binned == (True, True) and m.count.shape == (6, 6) and m.count.sum() == 500
    assert np.allclose(m.b_levels, np.geomspace(b.min(), b.max(), 7))
    centres = 0.5 * (m.a_levels[1:] + m.a_levels[:-1])
    exact = np.broadcast_to(centres > 0.5, m.probability.shape)
    clear = np.abs(centres - 0.5) > 0.1  # columns away from the step
    assert np.array_equal(m.probability[:, clear], exact[:, clear].astype(float))


def test_sobol_indices_of_an_additive_function() -> None:
    """y = 4 x1 + x2 (+ 0 x3) on the unit cube: S1 = ST = (16, 1, 0) / 17."""
    design = unit_samples("saltelli", 3, 1024, seed=2)
    y = 4 * design[:, 0] + design[:, 1]
    s = sobol_indices(design, y, ["x1", "x2", "x3"], "y")
    exact = np.array([16, 1, 0]) / 17
    assert np.allclose(s.first, exact, atol=0.03)
    assert np.allclose(s.total, exact, atol=0.03)
    assert np.all(s.first_conf < 0.1)


def test_sobol_indices_see_interactions() -> None:
    """y = x1 x2 with x ~ U(-1, 1) (unit cube mapped): no first-order effect, ST = 1 each."""
    design = unit_samples("saltelli", 2, 2048, seed=5)
    x = 2 * design - 1
    s = sobol_indices(design, x[:, 0] * x[:, 1], ["x1", "x2"], "y")
    assert np.allclose(s.first, 0.0, atol=0.05)
    assert np.allclose(s.total, 1.0, atol=0.1)


def test_main_effects_and_rank_correlations() -> None:
    a, b = np.meshgrid([1.0, 2.0, 3.0], [0.0, 10.0], indexing="ij")
    columns = {"a": a.ravel(), "b": b.ravel(), "summary.y": (2 * a + 0.1 * b).ravel()}
    effects = main_effects(columns, ["a", "b"], "summary.y")
    assert effects.first == pytest.approx([4.0, 1.0])
    assert effects.low == pytest.approx([2.5, 4.0])
    rng = np.random.default_rng(1)
    x1, x2 = rng.uniform(size=200), rng.uniform(size=200)
    columns = {"x1": x1, "x2": x2, "summary.y": np.exp(3 * x1) - 0.0 * x2}
    rho = rank_correlations(columns, ["x1", "x2"], "summary.y")
    assert rho.first[0] == pytest.approx(1.0)
    assert abs(rho.first[1]) < 0.2
