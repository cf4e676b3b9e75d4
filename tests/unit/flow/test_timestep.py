"""StepController (sim.flow.timestep): the step-size policy of the time loop.

After an accepted step dt is scaled by 0.9 target / change, at most 2 (also for no change),
at least 0.3, at most 0.7 when Newton needed more than half its iterations, and clamped to
[dt_min, dt_max]; a rejected step halves dt and raises TimeStepError (naming
numerics.max_saturation_change) once dt falls below dt_min. Exact expected values.
"""

from __future__ import annotations

import pytest

from sim.flow.timestep import StepController, TimeStepError


def controller(dt: float = 1.0) -> StepController:
    return StepController(dt=dt, dt_min=0.25, dt_max=10.0, target_change=0.1, max_iterations=10)


@pytest.mark.parametrize(
    ("change", "iterations", "factor"),
    [
        (0.0, 1, 2.0),  # no change: the largest growth
        (0.01, 1, 2.0),  # 0.9 * 0.1 / 0.01 = 9, capped at 2
        (0.045, 3, 2.0),  # exactly 2
        (0.09, 1, 1.0),  # on target (up to round-off)
        (0.18, 5, 0.5),  # 5 iterations is not more than 10 // 2
        (1.0, 1, 0.3),  # 0.09, floored at 0.3
        (0.0, 6, 0.7),  # more than half the iterations: at most 0.7
        (0.06, 6, 0.7),  # 1.5, capped at 0.7
        (0.18, 6, 0.5),  # below the cap: unchanged
        (1.0, 10, 0.3),  # the floor beats the cap
    ],
)
def test_accepted_step_factor(change, iterations, factor):
    c = controller(2.0)
    c.accepted(change, iterations)
    assert c.dt == pytest.approx(2.0 * factor, rel=1e-15)


def test_accepted_step_clamped_to_dt_max_and_dt_min():
    c = controller(8.0)
    c.accepted(0.0, 1)
    assert c.dt == 10.0
    c.accepted(0.0, 1)
    assert c.dt == 10.0
    c = controller(0.5)
    c.accepted(1.0, 1)  # 0.15 -> dt_min
    assert c.dt == 0.25


def test_accepted_steps_compound():
    c = controller(1.0)
    for change, iterations in [(0.0, 1), (0.0, 1), (0.9, 1), (0.045, 7)]:
        c.accepted(change, iterations)
    assert c.dt == pytest.approx(1.0 * 2 * 2 * 0.3 * 0.7, rel=1e-15)


def test_rejection_halves_until_below_dt_min():
    c = controller(1.0)
    c.rejected()
    assert c.dt == 0.5
    c.rejected()
    assert c.dt == 0.25  # equal to dt_min: still allowed
    with pytest.raises(TimeStepError, match=r"numerics\.max_saturation_change") as info:
        c.rejected()
    assert "0.25 s" in str(info.value)
    assert isinstance(info.value, RuntimeError)
