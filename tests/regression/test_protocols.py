"""Injection protocols end to end: aliquots, stop rules, two needles one after the other."""

from __future__ import annotations

import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.run import run_scenario
from sim.scenario import load_scenario

from ..verification.conftest import simulate

ML = 1e-6
COARSE_BALL = [
    "geometry.mesh.growth=0.5",
    "geometry.mesh.size_tip=0.6 mm",
    "geometry.mesh.size_max=10 mm",
]
COARSE_BODY = ["geometry.mesh.size_tip=0.8 mm", "geometry.mesh.size_max=4 mm"]


def test_aliquots_inject_exactly_the_scheduled_volumes(scenarios, shared_tmp_path):
    aliquot, count, rate, pause = 0.5 * ML, 4, 3 * ML / 60, 20.0
    sc = load_scenario(
        scenarios / "verification/sphere_newtonian.yaml",
        [
            *COARSE_BALL,
            "injection.needles.0.rate=null",
            "injection.needles.0.volume=null",
            f"injection.needles.0.aliquots={{volume: {aliquot}, count: {count}, rate: {rate}, "
            f"pause: {pause}}}",
        ],
    )
    duration = aliquot / rate
    ends = [k * (duration + pause) + duration for k in range(count)]
    starts = [k * (duration + pause) for k in range(count)]
    at_ends, _ = simulate(sc, ends + starts[1:], lambda pb: (pb.state.t, measure.injected(pb)))
    injected_at = sorted(at_ends)
    for k, end in enumerate(ends):
        _, v = next(x for x in injected_at if x[0] == pytest.approx(end, rel=1e-12))
        assert v == pytest.approx((k + 1) * aliquot, rel=1e-12)
    for k, start in enumerate(starts[1:], start=1):  # nothing flows during a pause
        _, v = next(x for x in injected_at if x[0] == pytest.approx(start, rel=1e-12))
        assert v == pytest.approx(k * aliquot, rel=1e-12)
    summary = run_scenario(sc, shared_tmp_path / "aliquots", MPI.COMM_WORLD)
    assert summary["stop_reason"] == "volume_reached"
    assert summary["injected_volume_m3"] == pytest.approx(count * aliquot, rel=1e-12)
    assert summary["mass_balance_rel_error"] <= 1e-10


def test_first_leak_stops_the_injection(scenarios, shared_tmp_path):
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            *COARSE_BODY,
            "injection.needles.0.tip=[-9, 0, 0] mm",
            "injection.stop.on_first_leak=true",
            "output.fields=false",
            "output.plots=false",
        ],
    )
    summary = run_scenario(sc, shared_tmp_path / "leakstop", MPI.COMM_WORLD)
    assert summary["stop_reason"] == "first_leak:basivertebral"
    assert summary["injected_volume_m3"] < 4 * ML
    leaked = summary["leaked_volume_m3"]["basivertebral"]
    assert sc.output.leak_threshold <= leaked < 0.05 * ML  # stopped at the first leak
    assert summary["mass_balance_rel_error"] <= 1e-10


def test_syringe_pressure_limit_and_time_limit_stop_the_injection(scenarios):
    sc = load_scenario(
        scenarios / "verification/sphere_newtonian.yaml",
        [*COARSE_BALL, "injection.stop.max_syringe_pressure=0.98 MPa"],
    )
    _, pb = simulate(sc, [], lambda p: None)
    assert pb.stepper.stop_reason() == "syringe_pressure_limit:needle"
    assert pb.state.syringe_pressures[0] >= 0.98e6
    assert 0.2 * ML < measure.injected(pb) < 5 * ML
    sc = load_scenario(
        scenarios / "verification/sphere_newtonian.yaml",
        [*COARSE_BALL, "injection.stop.time_limit=30 s"],
    )
    _, pb = simulate(sc, [], lambda p: None)
    assert pb.stepper.stop_reason() == "time_limit"
    assert pb.state.t == pytest.approx(30.0, rel=1e-12)
    assert measure.injected(pb) == pytest.approx(30.0 * 3 * ML / 60, rel=1e-12)


def test_bipedicular_needles_one_after_the_other(scenarios, shared_tmp_path):
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            *COARSE_BODY,
            "output.fields=false",
            "output.plots=false",
            "injection.needles=[{name: left, tip: '[6, 8, 0] mm', gauge: 11, rate: 3 mL/min, "
            "volume: 2 mL}, {name: right, tip: '[6, -8, 0] mm', gauge: 11, rate: 3 mL/min, "
            "volume: 2 mL, after: left}]",
        ],
    )
    rows = []
    _, pb = simulate(sc, [], lambda p: None, lambda p: rows.append((p.state.t, *p.state.rates)))
    left, right = pb.injector.by_name("left"), pb.injector.by_name("right")
    assert left.finished_at == pytest.approx(40.0, rel=1e-12)
    assert right.started_at == left.finished_at
    assert right.finished_at == pytest.approx(80.0, rel=1e-12)
    assert left.injected == pytest.approx(2 * ML, rel=1e-12)
    assert right.injected == pytest.approx(2 * ML, rel=1e-12)
    assert all(r_left == 0 or r_right == 0 for _, r_left, r_right in rows)  # never together
    assert measure.mass_balance_error(pb) <= 1e-10
    summary = run_scenario(sc, shared_tmp_path / "bipedicular", MPI.COMM_WORLD)
    assert set(summary["syringe_pressure_max_pa"]) == {"left", "right"}
    assert summary["injected_volume_per_needle_m3"]["right"] == pytest.approx(2 * ML, rel=1e-12)
