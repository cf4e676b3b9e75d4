"""Pressure-controlled injection (by hand): the flow follows from the series resistance.

Newtonian cement, syringe pressure P held; the cannula resistance is R_n = 8 mu L/(pi R^4)
and the bone's, from case A, R_b(V) = [mu_c (1/r0 - 1/r_f) + mu_m (1/r_f - 1/R)] / (4 pi k)
with r_f from the injected volume V. The rate must be Q = (P - p_out) / (R_n + R_b(V)) within
3 % once the front has left the first layers of cells around the inlet (after 5 % of the
volume), and the syringe pressure (tip + cannula) must equal P in every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import measurements as measure
from sim.scenario import load_scenario

from .conftest import simulate

P_SYRINGE = 1.0e6  # Pa


def test_rate_follows_the_series_resistance(scenarios):
    sc = load_scenario(
        scenarios / "verification/sphere_newtonian.yaml",
        [
            "injection.needles.0.rate=null",
            f"injection.needles.0.syringe_pressure={P_SYRINGE} Pa",
            "injection.needles.0.volume=3 mL",
            "geometry.mesh.growth=0.25",
            "geometry.mesh.size_tip=0.3 mm",
        ],
    )
    needle = sc.injection.needles[0]
    mu_c, mu_m = sc.cement.rheology.viscosity, sc.marrow.viscosity
    k, phi, r0, big_r = sc.bone.permeability, sc.bone.porosity, needle.inner_radius, 0.05
    r_needle = 8 * mu_c * needle.cannula_length / (np.pi * r0**4)
    rows = []

    def each(pb):
        if pb.state.rates[0] > 0:
            rows.append(
                (
                    measure.injected(pb),
                    pb.state.rates[0],
                    pb.state.syringe_pressures[0],
                    measure.mass_balance_error(pb),
                )
            )

    _, pb = simulate(sc, [], lambda p: None, each)
    assert measure.injected(pb) == pytest.approx(3e-6, rel=1e-9)
    assert len(rows) > 10
    for volume, rate, syringe, mass in rows:
        r_f = (r0**3 + 3 * volume / (4 * np.pi * phi)) ** (1 / 3)
        r_bone = (mu_c * (1 / r0 - 1 / r_f) + mu_m * (1 / r_f - 1 / big_r)) / (4 * np.pi * k)
        expected = P_SYRINGE / (r_needle + r_bone)
        if volume >= 0.05 * 3e-6:
            assert rate == pytest.approx(expected, rel=0.03), (volume, rate, expected)
        assert syringe == pytest.approx(P_SYRINGE, rel=1e-9)
        assert mass <= 1e-10
