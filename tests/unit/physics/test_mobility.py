"""Unit tests of phase mobilities and fractional flow (sim.physics.mobility).

f(S) = (k_rc / mu_c) / (k_rc / mu_c + k_rm / mu_m). Pure functions: runs serially and under
``mpirun -n 2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import Corey, relative_permeability
from sim.scenario.materials import CoreyRelativePermeability, LinearRelativePermeability

MU_M = 0.05  # marrow viscosity (Pa*s)
RATIOS = [0.1, 1.0, 100.0, 1e4]  # viscosity ratio mu_c / mu_m
LAWS = {"linear": Corey(1.0, 1.0), "corey22": Corey(2.0, 2.0), "corey31": Corey(3.0, 1.5)}
S_INSIDE = np.linspace(0.01, 0.99, 99)


def second_derivative(mob: Mobility, s: np.ndarray | float, mu_c: float, h: float = 1e-4):
    """Central second difference of f at s."""
    return (
        mob.fractional(s + h, mu_c) - 2.0 * mob.fractional(s, mu_c) + mob.fractional(s - h, mu_c)
    ) / h**2


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
def test_d_fractional_matches_central_difference(law: str, ratio: float) -> None:
    mob = Mobility(LAWS[law], MU_M)
    mu_c = ratio * MU_M
    h = 1e-6
    fd = (mob.fractional(S_INSIDE + h, mu_c) - mob.fractional(S_INSIDE - h, mu_c)) / (2 * h)
    exact = mob.d_fractional(S_INSIDE, mu_c)
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(exact, fd, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
def test_fractional_flow_ends_and_monotone(law: str, ratio: float) -> None:
    mob = Mobility(LAWS[law], MU_M)
    mu_c = ratio * MU_M
    assert mob.fractional(np.array(0.0), mu_c) == 0.0
    assert mob.fractional(np.array(1.0), mu_c) == 1.0
    s = np.linspace(0.0, 1.0, 2001)
    f = mob.fractional(s, mu_c)
    assert np.all((f >= 0.0) & (f <= 1.0))
    assert np.all(np.diff(f) > 0.0)
    assert np.all(mob.d_fractional(S_INSIDE, mu_c) > 0.0)


def test_fractional_flow_per_point_viscosity() -> None:
    """An array of cement viscosities gives one value per point."""
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    s = np.array([0.5, 0.5, 0.5])
    mu_c = np.array([0.1, 1.0, 10.0]) * MU_M
    f = mob.fractional(s, mu_c)
    # S = 1/2 with equal exponents: f = 1 / (1 + mu_c / mu_m)
    np.testing.assert_allclose(f, 1.0 / (1.0 + mu_c / MU_M), rtol=1e-14)


def test_fractional_flow_linear_closed_form() -> None:
    mob = Mobility(Corey(1.0, 1.0), MU_M)
    m = 100.0
    s = S_INSIDE
    np.testing.assert_allclose(mob.fractional(s, m * MU_M), s / (s + m * (1 - s)), rtol=1e-13)
    np.testing.assert_allclose(
        mob.d_fractional(s, m * MU_M), m / (s + m * (1 - s)) ** 2, rtol=1e-12
    )


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
def test_total_mobility_at_the_ends(law: str, ratio: float) -> None:
    mob = Mobility(LAWS[law], MU_M)
    mu_c = ratio * MU_M
    assert mob.total(np.array(0.0), mu_c) == pytest.approx(1.0 / MU_M, rel=1e-15)
    assert mob.total(np.array(1.0), mu_c) == pytest.approx(1.0 / mu_c, rel=1e-15)


def test_relative_permeability_of_the_scenario_models() -> None:
    assert relative_permeability(LinearRelativePermeability(model="linear")) == Corey(1.0, 1.0)
    spec = CoreyRelativePermeability(model="corey", cement_exponent=3, marrow_exponent=2)
    kr = relative_permeability(spec)
    assert kr == Corey(3.0, 2.0)
    assert kr.cement(np.array(0.5)) == pytest.approx(0.125)
    assert kr.marrow(np.array(0.5)) == pytest.approx(0.25)


# --- inflection point ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio",
    [
        1e-3,
        0.1,
        1.0,
        10.0,
        100.0,
        1e4,
    ],
)
def test_linear_relative_permeability_has_no_inflection(ratio: float) -> None:
    mob = Mobility(Corey(1.0, 1.0), MU_M)
    assert np.isnan(mob.inflection(ratio * MU_M))


@pytest.mark.parametrize("ratio", RATIOS)
def test_corey_inflection_is_where_the_curvature_changes_sign(ratio: float) -> None:
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    mu_c = ratio * MU_M
    s_infl = float(mob.inflection(mu_c))
    assert 0.0 < s_infl < 1.0
    delta = min(0.01, 0.5 * s_infl, 0.5 * (1.0 - s_infl))
    left = second_derivative(mob, s_infl - delta, mu_c, h=min(1e-4, 0.1 * delta))
    right = second_derivative(mob, s_infl + delta, mu_c, h=min(1e-4, 0.1 * delta))
    assert left > 0.0 > right  # convex below the inflection, concave above


def test_corey_inflection_for_equal_viscosities_is_one_half() -> None:
    # M = 1: f = S^2 / (S^2 + (1 - S)^2) is point-symmetric about (1/2, 1/2)
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    assert float(mob.inflection(MU_M)) == pytest.approx(0.5, abs=1e-3)


def test_corey_inflection_moves_with_the_viscosity_ratio() -> None:
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    s = mob.inflection(np.array(RATIOS) * MU_M)
    assert s.shape == (len(RATIOS),)
    assert np.all(np.diff(s) > 0.01)  # more viscous cement: inflection nearer S = 1


def test_inflection_per_point_viscosity_matches_scalar_calls() -> None:
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    mu_c = np.array([0.1, 1.0, 100.0]) * MU_M
    together = mob.inflection(mu_c)
    one_by_one = [float(mob.inflection(m)) for m in mu_c]
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=0)


# --- Buckley-Leverett ----------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.5, 100.0])
def test_welge_tangent_point_of_corey_22(a: float) -> None:
    """Shock saturation S_f of f(S)/S = f'(S) is sqrt(a / (1 + a)), a = mu_c / mu_m."""
    mob = Mobility(Corey(2.0, 2.0), MU_M)
    mu_c = a * MU_M

    def welge(s: float) -> float:
        return float(mob.fractional(np.array(s), mu_c) - s * mob.d_fractional(np.array(s), mu_c))

    assert welge(1e-6) < 0.0 < welge(1.0)
    s_f = brentq(welge, 1e-6, 1.0, xtol=1e-15, rtol=1e-15)
    assert s_f == pytest.approx(math.sqrt(a / (1.0 + a)), rel=1e-12)
    # the front is above the inflection point, as for any S-shaped f
    assert s_f > float(mob.inflection(mu_c))
