"""Mobility and relative permeability (sim.physics.mobility, relative_permeability).

Exact values of the Corey laws and mobilities, f(0) = 0 and f(1) = 1, d_fractional against
the analytic derivative of the linear model and central differences of the Corey one, the
inflection point of f (1/2 for Corey 2/2 with equal viscosities, none for the linear model),
and the scenario spec -> law mapping.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import Corey, relative_permeability
from sim.scenario.materials import CoreyRelativePermeability, LinearRelativePermeability

S = np.linspace(0.0, 1.0, 11)


def test_corey_values_and_derivatives():
    kr = Corey(2.0, 3.0)
    assert np.allclose(kr.cement(S), S**2, rtol=0, atol=1e-15)
    assert np.allclose(kr.marrow(S), (1 - S) ** 3, rtol=0, atol=1e-15)
    assert np.allclose(kr.d_cement(S), 2 * S, rtol=0, atol=1e-15)
    assert np.allclose(kr.d_marrow(S), -3 * (1 - S) ** 2, rtol=0, atol=1e-15)


def test_total_and_fractional_flow():
    m = Mobility(Corey(1.0, 1.0), mu_m=0.01)
    mu_c = 0.04  # M = 4: f = S / (S + 4 (1 - S))
    assert np.allclose(m.total(S, mu_c), S / 0.04 + (1 - S) / 0.01, rtol=1e-15)
    assert np.allclose(m.fractional(S, mu_c), S / (S + 4 * (1 - S)), rtol=1e-15)
    assert m.fractional(np.array([0.0, 1.0]), mu_c).tolist() == [0.0, 1.0]
    # df/dS = 4 / (S + 4 (1 - S))^2
    assert np.allclose(m.d_fractional(S, mu_c), 4 / (S + 4 * (1 - S)) ** 2, rtol=1e-14)
    # a viscosity per point
    mu = np.linspace(0.01, 1.0, 11)
    assert np.allclose(m.fractional(S, mu), (S / mu) / (S / mu + (1 - S) / 0.01), rtol=1e-14)


def test_d_fractional_matches_central_differences():
    m = Mobility(Corey(2.0, 3.0), mu_m=0.01)
    s = np.linspace(0.05, 0.95, 19)
    h = 1e-6
    for mu_c in (0.001, 0.01, 100.0):
        fd = (m.fractional(s + h, mu_c) - m.fractional(s - h, mu_c)) / (2 * h)
        assert np.allclose(m.d_fractional(s, mu_c), fd, rtol=1e-6, atol=1e-9)


def test_inflection_point():
    corey = Mobility(Corey(2.0, 2.0), mu_m=0.01)
    # f = S^2 / (S^2 + (1 - S)^2) is symmetric about (1/2, 1/2)
    assert float(corey.inflection(0.01)) == pytest.approx(0.5, abs=1e-3)
    # more viscous cement: f'' changes sign later
    assert float(corey.inflection(1.0)) > 0.5
    linear = Mobility(Corey(1.0, 1.0), mu_m=0.01)
    assert np.all(np.isnan(linear.inflection(np.array([1e-4, 0.01, 10.0]))))


def test_relative_permeability_from_the_scenario():
    spec = CoreyRelativePermeability(model="corey", cement_exponent=3.0, marrow_exponent=1.5)
    assert relative_permeability(spec) == Corey(3.0, 1.5)
    assert relative_permeability(LinearRelativePermeability(model="linear")) == Corey(1.0, 1.0)
