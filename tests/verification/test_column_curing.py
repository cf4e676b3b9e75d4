"""Verification case E (DESIGN §5): constant-rate core infiltration with curing cement.

A column full of cement (S = 1) is fed at constant rate Q; the pressure drop follows the
viscosity: dp(t) = mu(t) Q L / (k A). Checked at every step, for the exponential law and for
a tabulated rheometer curve, to 1 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import measurements as measure
from sim.physics.cement import CementModel
from sim.scenario import load_scenario

from .conftest import simulate

TABLE = (
    'cement.curing={law: table, reference_age: 3 min, points: [["2 min", "20 Pa*s"], '
    '["3 min", "50 Pa*s"], ["3.5 min", "120 Pa*s"], ["4 min", "400 Pa*s"], ["5 min", "3000 Pa*s"]]}'
)


@pytest.mark.parametrize("overrides", [[], [TABLE]], ids=["exponential", "table"])
def test_pressure_drop_follows_viscosity(scenarios, overrides):
    sc = load_scenario(scenarios / "verification/column_curing.yaml", overrides)
    needle, geo = sc.injection.needles[0], sc.geometry
    cement = CementModel(sc.cement)

    def mu(age: float) -> float:
        return float(cement.viscosity(np.zeros(1), cement.syringe_factor(age), age)[0])

    rows = []

    def record(pb):
        rows.append(
            (
                pb.state.age,
                measure.tip_pressure(pb, pb.needles[0].name),
                measure.mass_balance_error(pb),
            )
        )

    simulate(sc, [], lambda pb: None, every_step=record)
    ages, dp, mass = (np.array(c) for c in zip(*rows, strict=True))
    expected = (
        np.array([mu(t) for t in ages])
        * needle.rate
        * geo.length
        / (sc.bone.permeability * geo.width**2)
    )
    assert len(rows) > 10
    assert expected[-1] > 2 * expected[0]  # the viscosity really rises during the run
    np.testing.assert_allclose(dp, expected, rtol=0.01)
    assert mass.max() <= 1e-10
