"""Unit tests of the cannula pressure drop (sim.physics.cannula) and of the rate of a
pressure-controlled needle (sim.needles.pressure_controlled_rate).

The generic Rabinowitsch-Mooney integration must reproduce the closed forms of power-law and
Newtonian tube flow; for other laws the drop must rise with the rate. Pure functions: runs
serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

from mpi4py import MPI  # noqa: F401  (before dolfinx, which sim.needles imports)

# isort: split
import numpy as np
import pytest

from sim.needle import GAUGE_INNER_DIAMETER
from sim.needles import pressure_controlled_rate
from sim.physics.cannula import (
    cannula_pressure_drop,
    power_law_pressure_drop,
    tube_pressure_drop,
)
from sim.physics.rheology import CarreauYasuda, Cross, HerschelBulkley, Newtonian, PowerLaw

LENGTH = 0.12  # m, the default cannula length
GAUGES = [8, 11, 15]
RATES = [1e-9, 5e-8, 3e-7]  # m^3/s: 0.06, 3 and 18 mL/min


def radius(gauge: int) -> float:
    return 0.5 * GAUGE_INNER_DIAMETER[gauge]


# --- closed forms --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1.0, 0.7, 0.4])
@pytest.mark.parametrize("gauge", GAUGES)
def test_rabinowitsch_mooney_equals_the_power_law_closed_form(n: float, gauge: int) -> None:
    # a pure power law: PowerLaw holds its viscosity below min_shear_rate, which the closed
    # form does not; at 1e-30 1/s that plateau is out of reach of the quadrature
    k = 150.0
    law = PowerLaw(k, n, min_shear_rate=1e-30)
    for q in RATES:
        exact = power_law_pressure_drop(q, LENGTH, radius(gauge), k, n)
        generic = tube_pressure_drop(q, LENGTH, radius(gauge), law)
        assert generic == pytest.approx(exact, rel=1e-10), (n, gauge, q)


def test_power_law_closed_form_by_hand() -> None:
    # dp = (2 K L / R) ((3n + 1) / n Q / (pi R^3))^n
    k, n, r, q = 150.0, 0.6, 1.2e-3, 5e-8
    expected = 2 * k * LENGTH / r * ((3 * n + 1) / n * q / (np.pi * r**3)) ** n
    assert power_law_pressure_drop(q, LENGTH, r, k, n) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("gauge", GAUGES)
def test_newtonian_closed_form_is_poiseuille(gauge: int) -> None:
    mu, r = 100.0, radius(gauge)
    for q in RATES:
        poiseuille = 8 * mu * LENGTH * q / (np.pi * r**4)
        assert power_law_pressure_drop(q, LENGTH, r, mu, 1.0) == pytest.approx(
            poiseuille, rel=1e-12
        )
        generic = tube_pressure_drop(q, LENGTH, r, Newtonian(mu))
        assert generic == pytest.approx(poiseuille, rel=1e-10)


def test_factor_scales_the_drop() -> None:
    r, q = radius(11), 5e-8
    base = tube_pressure_drop(q, LENGTH, r, Newtonian(100.0))
    assert tube_pressure_drop(q, LENGTH, r, Newtonian(100.0), 7.0) == pytest.approx(
        7.0 * base, rel=1e-10
    )
    pl = PowerLaw(150.0, 0.5, min_shear_rate=1e-30)
    assert tube_pressure_drop(q, LENGTH, r, pl, 3.0) == pytest.approx(
        power_law_pressure_drop(q, LENGTH, r, 450.0, 0.5), rel=1e-10
    )


@pytest.mark.parametrize("rate", [0.0, -1e-8])
def test_no_flow_no_drop(rate: float) -> None:
    assert power_law_pressure_drop(rate, LENGTH, 1e-3, 100.0, 0.6) == 0.0
    assert tube_pressure_drop(rate, LENGTH, 1e-3, Newtonian(100.0)) == 0.0


def test_thinner_needle_needs_more_pressure() -> None:
    law = Cross(2000.0, 0.4, 3.0)
    drops = [tube_pressure_drop(5e-8, LENGTH, radius(g), law) for g in sorted(GAUGE_INNER_DIAMETER)]
    assert np.all(np.diff(drops) > 0)  # 8 G (widest) ... 15 G (narrowest)


# --- other laws: monotone in the rate ------------------------------------------------------


@pytest.mark.parametrize(
    "law",
    [
        Cross(2000.0, 0.4, 3.0, 5.0),
        CarreauYasuda(2000.0, 0.4, 3.0, 0.8, 5.0),
        HerschelBulkley(80.0, 150.0, 0.6),
        HerschelBulkley(500.0, 100.0, 1.0),
    ],
    ids=["cross", "carreau_yasuda", "herschel_bulkley", "bingham"],
)
def test_drop_is_monotone_in_the_rate(law: object) -> None:
    rates = np.geomspace(1e-10, 1e-6, 9)
    drops = np.array([tube_pressure_drop(q, LENGTH, radius(11), law) for q in rates])
    assert np.all(np.isfinite(drops))
    assert np.all(np.diff(drops) > 0)


def test_herschel_bulkley_needs_the_yield_stress() -> None:
    # the wall stress tau_w = dp R / (2 L) exceeds the yield stress at any rate
    tau_y, r = 500.0, radius(11)
    law = HerschelBulkley(tau_y, 100.0, 0.6)
    for q in (1e-10, 1e-8, 1e-6):
        wall_stress = tube_pressure_drop(q, LENGTH, r, law) * r / (2 * LENGTH)
        assert wall_stress > tau_y


def test_cross_drop_lies_between_its_newtonian_plateaus() -> None:
    mu0, mu_inf, r, q = 2000.0, 5.0, radius(11), 5e-8
    drop = tube_pressure_drop(q, LENGTH, r, Cross(mu0, 0.4, 3.0, mu_inf))
    low = power_law_pressure_drop(q, LENGTH, r, mu_inf, 1.0)
    high = power_law_pressure_drop(q, LENGTH, r, mu0, 1.0)
    assert low < drop < high


# --- pressure-controlled rate --------------------------------------------------------------


@pytest.mark.parametrize(
    ("syringe", "tip0", "r_bone", "r_needle"),
    [(1.5e6, 1e3, 1e12, 4e12), (3e5, 0.0, 2.5e12, 1e11), (2e6, 5e5, 1e13, 1e13)],
)
def test_linear_cannula_gives_the_series_resistance_rate(
    syringe: float, tip0: float, r_bone: float, r_needle: float
) -> None:
    q = pressure_controlled_rate(syringe, tip0, r_bone, lambda x: r_needle * x, None)
    exact = (syringe - tip0) / (r_needle + r_bone)
    assert q == pytest.approx(exact, rel=1e-10)
    # a cap above the natural rate changes nothing
    capped = pressure_controlled_rate(syringe, tip0, r_bone, lambda x: r_needle * x, 2 * exact)
    assert capped == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("syringe", [1e3, 5e2, 0.0])
def test_no_flow_when_the_syringe_pressure_does_not_exceed_the_tip(syringe: float) -> None:
    q = pressure_controlled_rate(syringe, 1e3, 1e12, lambda x: 4e12 * x, None)
    assert q == 0.0
    assert pressure_controlled_rate(syringe, 1e3, 1e12, lambda x: 4e12 * x, 1e-7) == 0.0


def test_rate_is_capped_at_max_rate() -> None:
    natural = (1.5e6 - 1e3) / (1e12 + 4e12)
    q = pressure_controlled_rate(1.5e6, 1e3, 1e12, lambda x: 4e12 * x, 0.5 * natural)
    assert q == 0.5 * natural


def test_nonlinear_cannula_balances_the_syringe_pressure() -> None:
    r = radius(11)
    law = PowerLaw(150.0, 0.45)

    def drop(q: float) -> float:
        return power_law_pressure_drop(q, LENGTH, r, law.consistency, law.n)

    syringe, tip0, r_bone = 2e6, 1e3, 5e12
    q = pressure_controlled_rate(syringe, tip0, r_bone, drop, None)
    assert q > 0
    assert tip0 + r_bone * q + drop(q) == pytest.approx(syringe, rel=1e-10)


# --- the law picks its form ----------------------------------------------------------------


def test_each_law_gets_its_closed_form_or_the_integral() -> None:
    r, q = radius(11), 5e-8
    assert cannula_pressure_drop(Newtonian(80.0), q, LENGTH, r, 2.0, None) == pytest.approx(
        power_law_pressure_drop(q, LENGTH, r, 160.0, 1.0), rel=1e-14
    )
    pl = PowerLaw(300.0, 0.6)
    assert cannula_pressure_drop(pl, q, LENGTH, r, 1.5, None) == pytest.approx(
        power_law_pressure_drop(q, LENGTH, r, 450.0, 0.6), rel=1e-14
    )
    cross = Cross(500.0, 0.4, 3.0, 20.0)
    assert cannula_pressure_drop(cross, q, LENGTH, r, 1.0, None) == pytest.approx(
        tube_pressure_drop(q, LENGTH, r, cross), rel=1e-14
    )


def test_a_cap_below_the_whole_flow_curve_makes_any_law_newtonian_at_the_cap() -> None:
    r, q, cap = radius(11), 5e-8, 5.0
    newtonian = power_law_pressure_drop(q, LENGTH, r, cap, 1.0)
    for law in (Newtonian(80.0), PowerLaw(3000.0, 0.6), Cross(500.0, 0.4, 3.0, 20.0)):
        drop = cannula_pressure_drop(law, q, LENGTH, r, 1.0, cap)
        assert drop == pytest.approx(newtonian, rel=1e-6), type(law).__name__
