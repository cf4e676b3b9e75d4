"""StepController and StepPolicy (sim.flow.timestep): the step-size policy of the time loop.

After an accepted step dt is scaled by the smallest 0.9 target / done over the front's
Courant number and (when asked for) the saturation change, at most 2 (also for no change),
at least 0.3, at most 0.7 when Newton needed more than half its iterations, at most
0.9 / sqrt(ratio) with a time-error estimate (its ratio to the tolerance), and clamped to
[dt_min, dt_max]; a rejected step halves dt and raises TimeStepError (naming
numerics.front_courant) once dt falls below dt_min. StepPolicy applies the limits in
turn, lands on the next stop and leaves no sliver (< dt / 4) before it; `volume_limited` and
`change_limited` are the limits the components contribute. Exact expected values.
"""

from __future__ import annotations

import warnings

import pytest

from sim.flow.timestep import (
    StepController,
    StepPolicy,
    TimeStepError,
    change_limited,
    volume_limited,
)
from sim.physics.curing import ExponentialCuring


def controller(dt: float = 1.0, change: float | None = None) -> StepController:
    return StepController(
        dt=dt, dt_min=0.25, dt_max=10.0, max_iterations=10, front_courant=1.0, target_change=change
    )


@pytest.mark.parametrize(
    ("courant", "iterations", "factor"),
    [
        (0.0, 1, 2.0),  # nothing moved: the largest growth
        (0.1, 1, 2.0),  # 0.9 * 1 / 0.1 = 9, capped at 2
        (0.45, 3, 2.0),  # exactly 2
        (0.9, 1, 1.0),  # on target (up to round-off)
        (1.8, 5, 0.5),  # 5 iterations is not more than 10 // 2
        (10.0, 1, 0.3),  # 0.09, floored at 0.3
        (0.0, 6, 0.7),  # more than half the iterations: at most 0.7
        (0.6, 6, 0.7),  # 1.5, capped at 0.7
        (1.8, 6, 0.5),  # below the cap: unchanged
        (10.0, 10, 0.3),  # the floor beats the cap
    ],
)
def test_accepted_step_factor(courant, iterations, factor):
    c = controller(2.0)
    c.accepted(0.5, iterations, courant)  # no saturation target: the change does not count
    assert c.dt == pytest.approx(2.0 * factor, rel=1e-15)


@pytest.mark.parametrize(
    ("change", "courant", "factor"),
    [(0.09, 0.45, 1.0), (0.045, 1.8, 0.5), (0.0, 0.9, 1.0), (0.18, 0.0, 0.5)],
)
def test_a_saturation_target_adds_a_limit(change, courant, factor):
    c = controller(2.0, change=0.1)
    c.accepted(change, 1, courant)
    assert c.dt == pytest.approx(2.0 * factor, rel=1e-15)


@pytest.mark.parametrize(
    ("time_error", "courant", "factor"),
    [(4.0, 0.45, 0.45), (0.81, 0.45, 1.0), (0.01, 0.45, 2.0), (1.0, 1.8, 0.5), (None, 0.9, 1.0)],
)
def test_a_time_error_estimate_adds_a_limit(time_error, courant, factor):
    # the local error grows with dt², so the size follows 0.9 / sqrt(error / tolerance)
    c = controller(2.0)
    c.accepted(0.0, 1, courant, time_error)
    assert c.dt == pytest.approx(2.0 * factor, rel=1e-15)


def test_a_step_redone_for_its_time_error_is_shorter():
    c = controller(5.0)
    c.redo(2.0, 4.0)  # the step taken, not the controller's size: 2 x 0.9 / sqrt(4)
    assert c.dt == pytest.approx(0.9, rel=1e-15)
    c.redo(2.0, 400.0)  # at least 0.3 times
    assert c.dt == pytest.approx(0.6, rel=1e-15)
    with pytest.raises(TimeStepError, match=r"numerics\.time_tolerance"):
        c.redo(0.5, 400.0)  # 0.15 < dt_min 0.25


def test_accepted_step_clamped_to_dt_max_and_dt_min():
    c = controller(8.0)
    c.accepted(0.0, 1, 0.0)
    assert c.dt == 10.0
    c.accepted(0.0, 1, 0.0)
    assert c.dt == 10.0
    c = controller(0.5)
    c.accepted(0.0, 1, 10.0)  # 0.15 -> dt_min
    assert c.dt == 0.25


def test_accepted_steps_compound():
    c = controller(1.0)
    for courant, iterations in [(0.0, 1), (0.0, 1), (9.0, 1), (0.45, 7)]:
        c.accepted(0.0, iterations, courant)
    assert c.dt == pytest.approx(1.0 * 2 * 2 * 0.3 * 0.7, rel=1e-15)


def test_rejection_halves_until_below_dt_min():
    c = controller(1.0)
    c.rejected()
    assert c.dt == 0.5
    c.rejected()
    assert c.dt == 0.25  # equal to dt_min: still allowed
    with pytest.raises(TimeStepError, match=r"numerics\.front_courant") as info:
        c.rejected()
    assert "0.25 s" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def policy(dt: float = 1.0, fixed: tuple[float, ...] = ()) -> StepPolicy:
    return StepPolicy(controller(dt), fixed)


def test_policy_applies_the_limits_in_turn():
    seen = []

    def first(dt):
        seen.append(("first", dt))
        return 0.6 * dt

    def second(dt):
        seen.append(("second", dt))
        return dt - 0.1

    assert policy(2.0).size(0.0, [first, second], []) == pytest.approx(1.1, rel=1e-15)
    assert seen == [("first", 2.0), ("second", pytest.approx(1.2, rel=1e-15))]


@pytest.mark.parametrize(
    ("t", "fixed", "stops", "expected"),
    [
        (0.0, (), [], 1.0),  # nothing ahead
        (0.0, (0.5,), [], 0.5),  # lands on an output time
        (0.0, (1.2,), [], 1.2),  # 0.2 < 1 / 4 would be a sliver: one longer step
        (0.0, (1.3,), [], 1.0),  # 0.3 is not a sliver
        (0.0, (3.0,), [0.4], 0.4),  # the nearest of the fixed times and the stops
        (2.0, (2.0, 2.5), [], 0.5),  # a fixed time already reached does not count
        (2.0, (2.0 * (1 + 1e-13),), [], 1.0),  # nor one within 1e-12 of t
    ],
)
def test_policy_lands_on_the_next_stop(t, fixed, stops, expected):
    assert policy(1.0, fixed).size(t, [], stops) == pytest.approx(expected, rel=1e-12)


def test_volume_limit():
    assert volume_limited(20.0, 2e-6, 1e-8, 0.05) == pytest.approx(10.0, rel=1e-15)
    assert volume_limited(20.0, 2e-6, 1e-8, 0.02) == pytest.approx(4.0, rel=1e-15)
    assert volume_limited(1.0, 2e-6, 1e-8, 0.05) == 1.0  # already below
    assert volume_limited(10.0, 2e-6, 0.0, 0.05) == 10.0  # no injection: no limit
    assert volume_limited(500.0, 2e-6, 1e-8, None) == 500.0  # switched off


def test_change_limit_halves_until_the_factor_moves_by_at_most_the_limit():
    def factor(h):
        return 1.0 + h  # rises by h over a step of h

    assert change_limited(1.0, factor, 0.1) == 0.0625  # 1 -> 0.5 -> ... -> 1/16 <= 0.1
    assert change_limited(0.05, factor, 0.1) == 0.05
    assert change_limited(1.0, lambda h: 2.0, 0.1) == 1.0  # constant factor


def test_a_trial_step_that_overflows_the_cure_factor_is_halved_without_a_warning():
    """While an injection pauses the controller's step grows far beyond the cement's working
    time, and exp(age / 60 s) overflows at a trial step of 1e6 s: halved to 1e6 / 2^18, the
    first below 60 s ln 1.1 = 5.72 s, and no RuntimeWarning reaches the user."""
    law = ExponentialCuring(reference_age=0.0, time_constant=60.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert change_limited(1e6, law.factor, 0.1) == 1e6 / 2**18
