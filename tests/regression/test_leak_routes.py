"""Every kind of leak route: its flux law, its accounting, and the mass balance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.scenario import load_scenario

from ..verification.conftest import Extremes, simulate

ML = 1e-6


def resistive_column(scenarios, conductance: float, p_ext: float, extra: str = "") -> Any:
    """The curing column full of a Newtonian cement, its outlet face a resistive opening
    (conductance m/(Pa s), outside pressure Pa; `extra`: more keys of the route)."""
    return load_scenario(
        scenarios / "verification/column_curing.yaml",
        [
            "cement.curing={law: none}",
            f"leak_routes={{outlet: {{kind: resistive, boundary: outlet, pressure: {p_ext}, "
            f"conductance: {conductance}{extra}}}}}",
        ],
    )


def test_resistive_opening_passes_conductance_times_pressure_difference(scenarios):
    """Column full of cement, outlet face resistive: outflow = C A (p - p_ext) = Q."""
    conductance, p_ext = 2e-7, 500.0  # m/(Pa s), Pa
    sc = resistive_column(scenarios, conductance, p_ext)
    geo, needle = sc.geometry, sc.injection.needles[0]
    area = geo.width**2
    rows = []

    def each(pb):
        outlet = pb.tagged.facets("outlet")
        rows.append(
            (
                measure.tip_pressure(pb, pb.needles[0].name),
                measure.route(pb, "outlet").leaked,
                pb.state.t,
                measure.mass_balance_error(pb),
                outlet,
            )
        )

    simulate(sc, [], lambda p: None, each)
    mu, k, q = sc.cement.rheology.viscosity, sc.bone.permeability, needle.rate
    p_outlet_face = p_ext + q / (conductance * area)
    expected_tip = p_outlet_face + mu * q * geo.length / (k * area)
    for tip, leaked, t, mass, _ in rows[1:]:
        assert tip == pytest.approx(expected_tip, rel=1e-9)
        assert leaked == pytest.approx(q * t, rel=1e-9)  # all that enters leaves (S = 1)
        assert mass <= 1e-10


def test_leak_region_counts_the_cement_that_enters_it(scenarios):
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            "geometry.mesh.size_tip=0.8 mm",
            "geometry.mesh.size_max=4 mm",
            "injection.needles.0.tip=[-1, 0, 0] mm",
            "leak_routes.posterior_region={kind: region, regions: [posterior]}",
        ],
    )
    rows = []

    def each(pb):
        region = measure.route(pb, "posterior_region")
        in_region = pb.comm.allreduce(
            float(np.sum(region.region_pore_volume * pb.state.S.x.array[: pb.disc.n_owned]))
        )
        rows.append(
            (
                region.leaked,
                in_region,
                measure.cement_in_bone(pb),
                measure.injected(pb),
                measure.leaked(pb),
                measure.mass_balance_error(pb),
            )
        )

    simulate(sc, [], lambda p: None, each)
    leaked, in_region, in_bone, injected, total_leaked, _ = rows[-1]
    assert leaked == pytest.approx(in_region, rel=1e-12)
    assert 0.1 * ML < leaked < injected
    assert injected == pytest.approx(in_bone + total_leaked, rel=1e-10)
    assert max(r[-1] for r in rows) <= 1e-10
    assert np.all(np.diff([r[0] for r in rows]) >= -1e-18)  # the region only fills


def test_vein_passes_poiseuille_flow_of_the_fluid_that_reaches_it(scenarios):
    """Column full of cement draining through veins: Q = n pi d^4 / (128 L mu_c) (p - p_ext)."""
    d, length, count, p_ext = 1.0e-3, 0.02, 3, 800.0
    sc = load_scenario(
        scenarios / "verification/column_curing.yaml",
        [
            "cement.curing={law: none}",
            f"leak_routes={{outlet: {{kind: vein, boundary: outlet, pressure: {p_ext}, "
            f"diameter: {d}, length: {length}, count: {count}}}}}",
        ],
    )
    geo, needle = sc.geometry, sc.injection.needles[0]
    mu, k, q = sc.cement.rheology.viscosity, sc.bone.permeability, needle.rate
    p_face = p_ext + q * 128 * length * mu / (count * np.pi * d**4)
    expected_tip = p_face + mu * q * geo.length / (k * geo.width**2)
    tips = []
    _, pb = simulate(
        sc, [], lambda p: None, lambda p: tips.append(measure.tip_pressure(p, p.needles[0].name))
    )
    np.testing.assert_allclose(tips[1:], expected_tip, rtol=1e-9)
    assert measure.route(pb, "outlet").leaked == pytest.approx(measure.injected(pb), rel=1e-9)


def test_veins_drain_cement_less_than_open_outlets(scenarios):
    base = [
        "geometry.mesh.size_tip=0.8 mm",
        "geometry.mesh.size_max=4 mm",
        "injection.needles.0.tip=[-9, 0, 0] mm",
    ]
    leaked = {}
    for kind in ("outlet", "vein"):
        route = (
            "{kind: vein, boundary: basivertebral_foramen, diameter: 2 mm, length: 10 mm, "
            "pressure: 1 kPa}"
            if kind == "vein"
            else "{kind: outlet, boundary: basivertebral_foramen, pressure: 1 kPa}"
        )
        sc = load_scenario(
            scenarios / "vertebroplasty.yaml", [*base, f"leak_routes.basivertebral={route}"]
        )
        extremes = Extremes()
        _, pb = simulate(sc, [], lambda p: None, extremes)
        extremes.assert_conservative()
        leaked[kind] = measure.route(pb, "basivertebral")
    assert 0 < leaked["vein"].leaked < 0.5 * leaked["outlet"].leaked
    assert leaked["vein"].marrow_out > leaked["vein"].leaked  # marrow drains freely


def test_vein_openings_stay_above_the_venous_pressure(scenarios):
    """Discrete maximum principle at Robin openings: no vertex of a vein falls below the
    venous pressure when cement arrives there (a consistent boundary mass matrix let the
    marrow-filled neighbours' conductance pull it down to 982 Pa against 1 kPa here)."""
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            "geometry={kind: vertebral_body, mesh: {size_tip: 0.7 mm, size_max: 3.5 mm, "
            "growth: 0.25, size_outlet: 1 mm}}",
            "injection.needles.0.tip=[-8, 0, 0] mm",
            "cement={rheology: {model: newtonian, viscosity: 65 Pa*s}}",
            "marrow.viscosity=0.05 Pa*s",
            "leak_routes={basivertebral: {kind: vein, boundary: basivertebral_foramen, "
            "diameter: 2 mm, length: 10 mm, pressure: 1 kPa}, segmental_veins: {kind: vein, "
            "boundary: [segmental_vein_left, segmental_vein_right], diameter: 1.5 mm, "
            "length: 10 mm, pressure: 1 kPa}}",
            "injection.stop.time_limit=50 s",
        ],
    )
    lowest = {}

    def each(pb):
        for route in pb.routes:
            p = pb.state.p.x.array[route.dofs].min(initial=np.inf)
            lowest[route.name] = min(lowest.get(route.name, np.inf), p)

    _, pb = simulate(sc, [], lambda p: None, each)
    assert measure.route(pb, "basivertebral").leaked > 1e-9  # cement reached the vein
    for name, p in lowest.items():
        p = pb.comm.allreduce(p, op=MPI.MIN)
        assert p >= sc.leak_routes[name].pressure * (1 - 1e-9), (name, p)


def test_threshold_opening_passes_flow_above_its_opening_pressure(scenarios):
    """Column full of cement, outlet face resistive and shut below dp_open: it opens and lets
    out C A (p - p_ext - dp_open) = Q, so the tip pressure rises by exactly dp_open."""
    conductance, p_ext, dp_open = 2e-7, 500.0, 3000.0  # m/(Pa s), Pa, Pa
    sc = resistive_column(scenarios, conductance, p_ext, f", opening_pressure: {dp_open} Pa")
    geo, needle = sc.geometry, sc.injection.needles[0]
    area = geo.width**2
    rows = []
    simulate(
        sc,
        [],
        lambda p: None,
        lambda pb: rows.append((measure.tip_pressure(pb, pb.needles[0].name), pb.state.t)),
    )
    mu, k, q = sc.cement.rheology.viscosity, sc.bone.permeability, needle.rate
    expected = p_ext + dp_open + q / (conductance * area) + mu * q * geo.length / (k * area)
    for tip, _ in rows[1:]:
        assert tip == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("dp_open", [0.0, 500.0, 1e6])
def test_threshold_opening_is_shut_below_and_open_above_its_reference(scenarios, dp_open):
    """A posterior-wall defect as a threshold path beside draining veins: every defect vertex
    is either shut (p <= p_out + dp_open, no outflow) or open with outflow C A_i (p - p_ref),
    and the net flux of the boxes matches that outflow; a high threshold keeps it shut."""
    c = 1e-6  # m/(Pa s)
    sc = load_scenario(
        scenarios / "anatomy/vertebroplasty_posterior_defect.yaml",
        [
            "geometry.mesh.size_tip=1 mm",
            "geometry.mesh.size_max=5 mm",
            "geometry.mesh.size_outlet=1 mm",
            "cement={rheology: {model: newtonian, viscosity: 100 Pa*s}}",
            "injection.needles.0.volume=3 mL",
            f"leak_routes.spinal_canal={{kind: resistive, boundary: posterior_defect, "
            f"pressure: 1 kPa, conductance: {c}, opening_pressure: {dp_open} Pa}}",
        ],
    )
    states = []

    def each(pb):
        route = measure.route(pb, "spinal_canal")
        robin = pb.flow.openings.robin
        p = pb.state.p.x.array[route.dofs]
        reference = robin.pressure[route.dofs]
        expected = np.where(p > reference, c * robin.area[route.dofs] * (p - reference), 0.0)
        net_out = -pb.flow.fluxes.divergence()[route.dofs]
        scale = sum(pb.state.rates) or 1.0
        np.testing.assert_allclose(net_out, expected, atol=1e-9 * scale)
        opened = pb.comm.allreduce(int(np.sum(p > reference)), op=MPI.SUM)
        states.append((opened, pb.comm.allreduce(len(p), op=MPI.SUM)))

    _, pb = simulate(sc, [], lambda p: None, each)
    drained = (
        measure.route(pb, "spinal_canal").leaked + measure.route(pb, "spinal_canal").marrow_out
    )
    print(f"dp_open {dp_open:g} Pa: open vertices per step {sorted(set(states))}")
    opened = [o for o, _ in states]
    if dp_open >= 1e6:
        assert max(opened) == 0 and drained <= 1e-12 * measure.injected(pb)
    else:
        assert max(opened) > 0 and drained > 1e-6 * measure.injected(pb)
    if dp_open == 500.0:  # partly open: the active set is exercised
        assert any(0 < o < n for o, n in states)
    assert measure.mass_balance_error(pb) <= 1e-10
