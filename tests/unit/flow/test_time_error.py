"""The time-error estimate (sim.flow.time_error) against exact solutions, and its bookkeeping.

The estimate of a backward Euler step's local error, half the miss of the line through the
two earlier values, converges to the true local error (the step's result minus the exact
solution from the step's start) at first order in the step, for equal and unequal steps and
for a linear and a nonlinear equation. `TimeErrorEstimate` measures it against each readout's
scale (at least its floor) and the tolerance, needs two earlier points of the same injection
regime, and resumes from its checkpoint to the same value. `spread` is the radius of gyration
of the cement volume about its centroid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mpi4py import MPI

from sim.flow.time_error import TimeErrorEstimate, local_error, spread

#: y' = -y and y' = -y²: the backward Euler step from y over h, and the exact solution
EQUATIONS = {
    "linear": (lambda y, h: y / (1 + h), lambda y, h: y * np.exp(-h)),
    "quadratic": (
        lambda y, h: (np.sqrt(1 + 4 * h * y) - 1) / (2 * h),
        lambda y, h: y / (1 + h * y),
    ),
}


def estimate_over_true(equation: str, h: float, previous: float) -> float:
    """The estimated local error of the second of two backward Euler steps (previous, h) from
    y(0) = 1, over its true local error."""
    step, exact = EQUATIONS[equation]
    y1 = step(1.0, previous)
    y2 = step(y1, h)
    estimate = local_error((0.0, previous, previous + h), np.array([[1.0], [y1], [y2]]))[0]
    return estimate / abs(y2 - exact(y1, h))


@pytest.mark.parametrize("equation", EQUATIONS)
@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])  # h_prev / h
def test_the_estimate_converges_to_the_true_local_error_at_first_order(equation, ratio):
    steps = [0.04, 0.02, 0.01, 0.005]
    misses = [abs(estimate_over_true(equation, h, ratio * h) - 1) for h in steps]
    orders = np.log2(np.array(misses[:-1]) / np.array(misses[1:]))
    assert orders == pytest.approx(1.0, abs=0.06)
    assert misses[-1] < 0.008


def test_the_ratio_is_the_largest_error_over_its_scale_and_the_tolerance():
    # readouts 1 and 2 curve (second differences 0.3 and 1e-9), readout 3 is a line
    estimate = TimeErrorEstimate(0.01, floors=np.array([1.0, 1e-6, 1.0]))
    assert estimate.record(0.0, [10.0, 0.0, 0.0], "a") is None
    assert estimate.record(1.0, [11.0, 0.0, 5.0], "a") is None
    ratio = estimate.record(2.0, [12.3, 1e-9, 10.0], "a")
    # readout 1: |12.3 - 12| / 2 / 12.3; readout 2: 0.5e-9 against its floor 1e-6
    assert ratio == pytest.approx(max(0.15 / 12.3, 0.5e-9 / 1e-6) / 0.01, rel=1e-12)


def test_another_regime_starts_the_estimate_over():
    estimate = TimeErrorEstimate(0.01, floors=np.array([1.0]))
    for t, q in [(0.0, 1.0), (1.0, 2.0)]:
        assert not estimate.ready("a")  # fewer than two points
        estimate.record(t, [q], "a")
    assert estimate.ready("a") and not estimate.ready("b")
    assert estimate.record(2.0, [5.0], "b") is None  # the rate changed over this step
    assert estimate.record(3.0, [8.0], "b") == pytest.approx(0.0, abs=1e-14)  # a line again
    estimate.restart()
    assert estimate.record(4.0, [9.0], "b") is None


def test_a_restored_estimate_gives_the_same_ratio():
    regime = ((True, 1e-7), (False, 0.0))
    estimate = TimeErrorEstimate(0.01, floors=np.array([1.0]))
    for t, q in [(0.0, 1.0), (0.5, 2.0)]:
        estimate.record(t, [q], regime)
    saved = json.loads(json.dumps(estimate.checkpoint()))  # as the checkpoint file holds it
    restored = TimeErrorEstimate(0.01, floors=np.array([1.0]))
    restored.restore(saved)
    assert restored.record(1.0, [3.5], regime) == estimate.record(1.0, [3.5], regime)
    assert restored.history == estimate.history


def test_the_spread_is_the_radius_of_gyration_of_the_cement():
    comm = MPI.COMM_WORLD
    # two equal volumes 2 mm apart and an empty vertex far away: radius 1 mm about the middle
    x = np.array([[0.01, 0.0, 0.0], [0.012, 0.0, 0.0], [0.5, 0.5, 0.5]])
    s = np.array([1.0, 0.5, 0.0])
    pore_volume = np.array([1e-9, 2e-9, 1e-9])
    mine = slice(None) if comm.rank == 0 else slice(0)  # all vertices on rank 0
    assert spread(s[mine], pore_volume[mine], x[mine], comm) == pytest.approx(1e-3, rel=1e-10)
    assert spread(np.zeros(3)[mine], pore_volume[mine], x[mine], comm) == 0.0
