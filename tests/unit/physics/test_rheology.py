"""Unit tests of the cement rheology laws (sim.physics.rheology) and the porous closures.

Each law's apparent viscosity is checked against its closed form at several shear rates, its
limits, and the linear scaling by the cure factor. Pure functions: runs serially and under
``mpirun -n 2``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.physics.rheology import CarreauYasuda, Cross, HerschelBulkley, Newtonian, PowerLaw
from sim.physics.rheology.porous_closure import CLOSURES, PorousClosure, rabinowitsch_shift
from sim.scenario.cement import (
    BinghamRheology,
    CarreauYasudaRheology,
    CrossRheology,
    HerschelBulkleyRheology,
    NewtonianRheology,
    PowerLawRheology,
)

RATES = np.array([1e-2, 0.1, 1.0, 3.7, 10.0, 100.0, 1e3])  # 1/s

LAWS = {
    "newtonian": Newtonian(150.0),
    "power_law": PowerLaw(150.0, 0.6),
    "cross": Cross(2000.0, 0.4, 3.0, infinite_viscosity=5.0),
    "carreau": CarreauYasuda(2000.0, 0.4, 3.0),
    "carreau_yasuda": CarreauYasuda(2000.0, 0.4, 3.0, a=0.8, infinite_viscosity=5.0),
    "herschel_bulkley": HerschelBulkley(80.0, 150.0, 0.6),
    "bingham": HerschelBulkley(80.0, 150.0, 1.0),
}


# --- closed forms --------------------------------------------------------------------------


def test_newtonian_is_constant() -> None:
    mu = Newtonian(150.0).apparent_viscosity(RATES)
    assert mu.shape == RATES.shape
    assert np.all(mu == 150.0)
    assert Newtonian(150.0).apparent_viscosity(np.zeros(3)).tolist() == [150.0] * 3
    assert Newtonian(150.0).flow_index == 1.0


@pytest.mark.parametrize("n", [1.0, 0.8, 0.6, 0.3])
def test_power_law_closed_form(n: float) -> None:
    law = PowerLaw(150.0, n, min_shear_rate=1e-3)
    np.testing.assert_allclose(law.apparent_viscosity(RATES), 150.0 * RATES ** (n - 1), rtol=1e-14)
    assert law.flow_index == n


def test_power_law_is_held_below_the_minimum_shear_rate() -> None:
    law = PowerLaw(150.0, 0.6, min_shear_rate=1e-3)
    held = 150.0 * 1e-3 ** (0.6 - 1)
    low = np.array([0.0, 1e-9, 1e-6, 5e-4, 1e-3])
    np.testing.assert_allclose(law.apparent_viscosity(low), held, rtol=1e-14)
    assert law.apparent_viscosity(np.array([2e-3]))[0] < held  # shear-thinning above it


def test_cross_closed_form() -> None:
    mu0, mu_inf, n, lam = 2000.0, 5.0, 0.4, 3.0
    law = Cross(mu0, n, lam, mu_inf)
    expected = mu_inf + (mu0 - mu_inf) / (1 + (lam * RATES) ** (1 - n))
    np.testing.assert_allclose(law.apparent_viscosity(RATES), expected, rtol=1e-14)
    # at 1/lambda the viscosity is halfway between the plateaus
    assert law.apparent_viscosity(np.array([1 / lam]))[0] == pytest.approx(0.5 * (mu0 + mu_inf))


@pytest.mark.parametrize("a", [2.0, 0.8])
def test_carreau_yasuda_closed_form(a: float) -> None:
    mu0, mu_inf, n, lam = 2000.0, 5.0, 0.4, 3.0
    law = CarreauYasuda(mu0, n, lam, a, mu_inf)
    expected = mu_inf + (mu0 - mu_inf) * (1 + (lam * RATES) ** a) ** ((n - 1) / a)
    np.testing.assert_allclose(law.apparent_viscosity(RATES), expected, rtol=1e-14)


@pytest.mark.parametrize("law", [Cross(2000.0, 0.4, 3.0), CarreauYasuda(2000.0, 0.4, 3.0, 0.8)])
def test_zero_shear_plateau(law: Cross | CarreauYasuda) -> None:
    rest = law.apparent_viscosity(np.array([0.0, 1e-12, 1e-9]))
    np.testing.assert_allclose(rest, 2000.0, rtol=1e-5)
    assert rest[0] == 2000.0


@pytest.mark.parametrize(
    "law", [Cross(2000.0, 0.4, 3.0, 5.0), CarreauYasuda(2000.0, 0.4, 3.0, 0.8, 5.0)]
)
def test_infinite_shear_plateau(law: Cross | CarreauYasuda) -> None:
    fast = law.apparent_viscosity(np.array([1e12, 1e15]))
    np.testing.assert_allclose(fast, 5.0, rtol=1e-3)
    assert np.all(fast > 5.0)


@pytest.mark.parametrize(
    "law",
    [Cross(2000.0, 0.4, 3.0), CarreauYasuda(2000.0, 0.4, 3.0), CarreauYasuda(2000, 0.4, 3, 0.8)],
)
def test_power_law_slope_at_large_shear_rate(law: Cross | CarreauYasuda) -> None:
    g = np.array([1e6, 1e7])
    mu = law.apparent_viscosity(g)
    slope = np.diff(np.log(mu)) / np.diff(np.log(g))
    assert slope[0] == pytest.approx(law.n - 1.0, abs=1e-3)
    # and the power-law consistency mu_0 lambda^(n-1)
    assert mu[1] == pytest.approx(2000.0 * (3.0 * 1e7) ** (law.n - 1.0), rel=1e-3)


@pytest.mark.parametrize("n", [1.0, 0.6, 0.3])
def test_herschel_bulkley_stress_above_the_regularisation(n: float) -> None:
    tau_y, k, g_r = 80.0, 150.0, 1e-3
    law = HerschelBulkley(tau_y, k, n, regularisation_rate=g_r)
    g = np.array([0.05, 0.1, 1.0, 10.0, 1e3])  # >= 50 g_r
    stress = law.apparent_viscosity(g) * g
    np.testing.assert_allclose(stress, tau_y + k * g**n, rtol=1e-6)
    # the regularised form itself, at every rate
    full = tau_y * (1 - np.exp(-RATES / g_r)) / RATES + k * RATES ** (n - 1)
    np.testing.assert_allclose(law.apparent_viscosity(RATES), full, rtol=1e-13)


@pytest.mark.parametrize("n", [1.0, 0.6])
def test_herschel_bulkley_is_finite_at_rest(n: float) -> None:
    tau_y, k, g_r = 80.0, 150.0, 1e-3
    law = HerschelBulkley(tau_y, k, n, regularisation_rate=g_r)
    rest = law.apparent_viscosity(np.array([0.0, 1e-9, law.min_shear_rate]))
    assert np.all(np.isfinite(rest))
    assert rest[0] == rest[1] == rest[2]  # held below min_shear_rate
    # mu -> tau_y / g_r + K gamma^(n-1), to O(gamma / g_r) = 1e-3
    expected = tau_y / g_r + k * law.min_shear_rate ** (n - 1)
    assert rest[0] == pytest.approx(expected, rel=1e-3)
    # and the yield stress makes it much more viscous than the consistency alone at rest
    assert rest[0] > tau_y / g_r


def test_bingham_is_herschel_bulkley_with_n_one() -> None:
    tau_y, mu_p, g_r = 80.0, 150.0, 1e-3
    law = BinghamRheology(
        model="bingham", yield_stress=tau_y, viscosity=mu_p, regularisation_rate=g_r
    ).build()
    assert law == HerschelBulkley(tau_y, mu_p, 1.0, g_r)
    assert law.flow_index == 1.0
    g = np.array([0.05, 1.0, 10.0, 1e3])
    np.testing.assert_allclose(law.apparent_viscosity(g) * g, tau_y + mu_p * g, rtol=1e-6)


def test_herschel_bulkley_without_yield_stress_is_a_power_law() -> None:
    hb = HerschelBulkley(0.0, 150.0, 0.6)
    pl = PowerLaw(150.0, 0.6)
    np.testing.assert_allclose(hb.apparent_viscosity(RATES), pl.apparent_viscosity(RATES))


# --- the cure factor -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LAWS))
def test_factor_scales_linearly(name: str) -> None:
    law = LAWS[name]
    base = law.apparent_viscosity(RATES)
    assert law.apparent_viscosity(RATES, 1.0) == pytest.approx(base, rel=1e-15)
    for f in (0.5, 3.0, 1e4):
        np.testing.assert_allclose(law.apparent_viscosity(RATES, f), f * base, rtol=1e-14)
    # a factor per point
    factors = np.linspace(1.0, 20.0, RATES.size)
    np.testing.assert_allclose(law.apparent_viscosity(RATES, factors), factors * base, rtol=1e-14)
    assert np.all(law.apparent_viscosity(RATES, 0.0) == 0.0)


@pytest.mark.parametrize("name", list(LAWS))
def test_shear_thinning_or_constant(name: str) -> None:
    mu = LAWS[name].apparent_viscosity(RATES)
    assert np.all(mu > 0)
    assert np.all(np.diff(mu) <= 0)


# --- from the scenario ---------------------------------------------------------------------


def test_rheology_law_of_each_scenario_model() -> None:
    specs = [
        (NewtonianRheology(model="newtonian", viscosity=100.0), Newtonian(100.0)),
        (
            PowerLawRheology(model="power_law", consistency=150.0, n=0.6, min_shear_rate=1e-2),
            PowerLaw(150.0, 0.6, 1e-2),
        ),
        (
            CrossRheology(
                model="cross", viscosity=2000.0, n=0.4, time_constant=3.0, infinite_viscosity=5.0
            ),
            Cross(2000.0, 0.4, 3.0, 5.0),
        ),
        (
            CarreauYasudaRheology(
                model="carreau_yasuda",
                viscosity=2000.0,
                n=0.4,
                time_constant=3.0,
                a=0.8,
                infinite_viscosity=5.0,
            ),
            CarreauYasuda(2000.0, 0.4, 3.0, 0.8, 5.0),
        ),
        (
            HerschelBulkleyRheology(
                model="herschel_bulkley",
                yield_stress=80.0,
                consistency=150.0,
                n=0.6,
                regularisation_rate=1e-2,
            ),
            HerschelBulkley(80.0, 150.0, 0.6, 1e-2),
        ),
    ]
    for spec, law in specs:
        assert spec.build() == law, spec.model


# --- porous closures -----------------------------------------------------------------------


def _cells(velocity: list[list[float]], k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.array(velocity, dtype=float)
    return u, np.broadcast_to(k, (len(u), 3, 3)).copy()


def _darcy_power_law(closure: PorousClosure, k: float, phi: float, K: float, n: float) -> float:
    """|grad p| (Pa/m) that drives |u| = 1e-4 m/s of a power-law cement through the closure."""
    u, perm = _cells([[1e-4, 0, 0]], k * np.eye(3))
    rate = closure.shear_rate(u, perm, np.array([phi]), n)[0]
    return K * rate ** (n - 1) * 1e-4 / k


@pytest.mark.parametrize("n", [0.3, 0.65, 0.9, 1.2])
def test_christopher_middleman_is_the_blake_kozeny_power_law(n: float) -> None:
    """u^n = (k / H) |grad p| with H = (K/12)(9 + 3/n)^n (150 k phi)^((1-n)/2)."""
    k, phi, K, u = 2e-8, 0.9, 150.0, 1e-4
    H = K / 12 * (9 + 3 / n) ** n * (150 * k * phi) ** ((1 - n) / 2)
    got = _darcy_power_law(PorousClosure("christopher_middleman"), k, phi, K, n)
    assert got == pytest.approx(H * u**n / k, rel=1e-12)


@pytest.mark.parametrize("n", [0.3, 0.65, 0.9])
def test_capillary_bundle_is_power_law_tube_flow(n: float) -> None:
    """Tubes of radius R = sqrt(8k/phi) with mean velocity V = u/phi need the power-law
    Hagen-Poiseuille gradient G = (2K/R)((3n+1)/n V/R)^n."""
    k, phi, K, u = 2e-8, 0.9, 150.0, 1e-4
    R, V = np.sqrt(8 * k / phi), u / phi
    G = 2 * K / R * ((3 * n + 1) / n * V / R) ** n
    got = _darcy_power_law(PorousClosure("capillary_bundle"), k, phi, K, n)
    assert got == pytest.approx(G, rel=1e-12)


def test_named_closures_differ_by_the_blake_kozeny_tortuosity() -> None:
    for n in (0.3, 0.65):
        cm = PorousClosure("christopher_middleman").alpha(n)
        bundle = PorousClosure("capillary_bundle").alpha(n)
        assert cm / bundle == pytest.approx(12 / np.sqrt(300), rel=1e-14)


@pytest.mark.parametrize("closure", ["christopher_middleman", "capillary_bundle"])
def test_named_closures_are_continuous_at_n_equal_one(closure: str) -> None:
    c = PorousClosure(closure)
    assert c.alpha(1.0) == pytest.approx(c.alpha(1.0 + 1e-5), rel=1e-5)
    assert c.alpha(1.0) == pytest.approx(c.alpha(1.0 - 1e-5), rel=1e-5)
    assert rabinowitsch_shift(1.0) == pytest.approx(np.exp(-0.25), rel=1e-15)


def test_shift_factor_closure_keeps_its_alpha_for_every_n() -> None:
    c = PorousClosure("shift_factor", 2.5)
    assert [c.alpha(n) for n in (0.3, 0.7, 1.0)] == [2.5, 2.5, 2.5]


def test_closures_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown closure 'ergun'"):
        PorousClosure("ergun")
    with pytest.raises(ValueError, match="needs a shift factor"):
        PorousClosure("shift_factor")
    assert set(CLOSURES) == {"christopher_middleman", "capillary_bundle", "shift_factor"}


@pytest.mark.parametrize("n", [1.0, 0.65, 0.3])
@pytest.mark.parametrize("alpha", [1.0, 6.0])
def test_isotropic_porous_shear_rate(n: float, alpha: float) -> None:
    k, phi = 2e-8, 0.9
    u, perm = _cells(
        [[1e-4, 0, 0], [0, -3e-5, 0], [2e-5, 1e-5, -4e-5], [1e-7, 1e-7, 1e-7]], k * np.eye(3)
    )
    porosity = np.full(len(u), phi)
    got = PorousClosure("shift_factor", alpha).shear_rate(u, perm, porosity, n)
    speed = np.linalg.norm(u, axis=1)
    np.testing.assert_allclose(got, alpha * speed / np.sqrt(k * phi), rtol=1e-14)


def test_anisotropic_porous_shear_rate_uses_the_permeability_along_the_flow() -> None:
    kxx, kyy, kzz, phi, n = 1e-8, 4e-8, 9e-8, 0.8, 0.5
    u, perm = _cells(
        [[2e-4, 0, 0], [0, 2e-4, 0], [0, 0, -2e-4], [1e-4, 1e-4, 0]], np.diag([kxx, kyy, kzz])
    )
    closure = PorousClosure("christopher_middleman")
    got = closure.shear_rate(u, perm, np.full(len(u), phi), n)
    c = closure.alpha(n)
    speed = 2e-4
    for cell, k_along in enumerate([kxx, kyy, kzz]):
        assert got[cell] == pytest.approx(c * speed / np.sqrt(k_along * phi), rel=1e-14)
    # oblique flow: k_u = u.K.u / |u|^2 = (kxx + kyy) / 2 for a 45 degree direction
    oblique = c * np.sqrt(2) * 1e-4 / np.sqrt(0.5 * (kxx + kyy) * phi)
    assert got[3] == pytest.approx(oblique, rel=1e-14)


def test_porous_shear_rate_is_zero_without_flow() -> None:
    u, perm = _cells([[0, 0, 0], [0, 0, 0], [1e-5, 0, 0]], np.diag([1e-8, 4e-8, 9e-8]))
    got = PorousClosure().shear_rate(u, perm, np.array([0.9, 0.5, 0.9]), 0.6)
    assert got[0] == 0.0 and got[1] == 0.0
    assert got[2] > 0.0
    assert np.all(np.isfinite(got))


def test_porous_shear_rate_is_per_cell() -> None:
    # different porosity and permeability in each cell
    u = np.array([[1e-4, 0, 0], [1e-4, 0, 0]])
    perm = np.stack([1e-8 * np.eye(3), 4e-8 * np.eye(3)])
    got = PorousClosure("shift_factor", 1.0).shear_rate(u, perm, np.array([0.9, 0.4]), 1.0)
    np.testing.assert_allclose(
        got, [1e-4 / np.sqrt(1e-8 * 0.9), 1e-4 / np.sqrt(4e-8 * 0.4)], rtol=1e-14
    )
