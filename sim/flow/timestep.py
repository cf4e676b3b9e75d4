"""The step size of the sequential scheme, decided here and nowhere else.

`StepController` adapts the size to the saturation change or the front's Courant number, to
the estimated time error of the readouts (sim.flow.time_error) and to the transport solver's
effort in the last step; `StepPolicy` applies the limits the components
contribute (`volume_limited`, `change_limited`) and lands steps on the stops. Times in s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sim.errors import RunFailed


class TimeStepError(RunFailed):
    """The step size fell below its minimum: the run cannot proceed."""


@dataclass
class StepController:
    """Step size (s) that keeps the largest saturation change per step near `target_change`
    and the front's Courant number near `front_courant` (each when given).

    The front's Courant number is dt x outflow / pore volume at the vertices whose saturation
    changed in the step: how many control volumes the cement front crossed. After an
    accepted step the size grows or shrinks by the smallest ratio of a target to what the
    step did (at most doubling; at most 0.7 times the last size after a step that took more
    than half the allowed transport iterations); after a failed transport solve it halves.
    With a time-error estimate (its ratio to the tolerance, `time_error`) the size also
    follows 0.9 / sqrt(ratio), as the local error of the implicit step grows with dt²; a step
    far above the tolerance is taken back and redone smaller (`redo`).
    """

    dt: float
    dt_min: float
    dt_max: float
    max_iterations: int
    front_courant: float | None
    target_change: float | None = None

    def accepted(
        self, max_change: float, iterations: int, courant: float, time_error: float | None = None
    ) -> None:
        factor = 2.0
        for target, done in ((self.front_courant, courant), (self.target_change, max_change)):
            if target is not None and done > 0:
                factor = min(factor, 0.9 * target / done)
        if time_error is not None and time_error > 0:
            factor = min(factor, 0.9 / time_error**0.5)
        if iterations > self.max_iterations // 2:
            factor = min(factor, 0.7)
        self.dt = min(self.dt_max, max(self.dt_min, self.dt * max(factor, 0.3)))

    def redo(self, dt: float, time_error: float) -> None:
        """A step of dt (s) is taken back for its time error (its ratio to the tolerance):
        the next try is 0.9 / sqrt(ratio) times as long, at least 0.3 times."""
        self.dt = dt * max(0.3, 0.9 / time_error**0.5)
        if self.dt < self.dt_min:
            raise TimeStepError(
                f"time step fell below {self.dt_min:.3g} s: the time error stays above "
                "numerics.time_tolerance (try a larger tolerance)"
            )

    def rejected(self) -> None:
        self.dt *= 0.5
        if self.dt < self.dt_min:
            raise TimeStepError(
                f"time step fell below {self.dt_min:.3g} s: the saturation update does not "
                "converge (try a finer mesh, or a smaller numerics.max_saturation_change or "
                "numerics.front_courant)"
            )


def volume_limited(dt: float, total_volume: float, rate: float, share: float | None) -> float:
    """dt (s) capped so that at most `share` of the total volume (m³) goes in at the total
    `rate` (m³/s); no cap for share None."""
    if share is None or rate <= 0:
        return dt
    return min(dt, share * total_volume / rate)


def change_limited(dt: float, factor: Callable[[float], float], limit: float) -> float:
    """dt (s) halved until factor(dt) / factor(0) - 1 is within +-limit: how far a quantity
    (a cure factor) may move in one step. A trial step far beyond the cement's working time
    (the controller's step grows while an injection pauses) may overflow an exponential
    factor: inf, which is halved like any other value too large, without a warning."""
    f0 = factor(0.0)
    with np.errstate(over="ignore"):
        while dt > 1e-9 and abs(factor(dt) / f0 - 1.0) > limit:
            dt *= 0.5
    return dt


@dataclass
class StepPolicy:
    """Every rule that sets the step size: the controller's size after the last step, then
    each limit in turn (the components' `max_step`), then landing exactly on the next stop
    (output times, the time limit, rate changes) without leaving a sliver before it."""

    controller: StepController
    fixed: Sequence[float]

    def size(
        self, t: float, limits: Sequence[Callable[[float], float]], stops: list[float]
    ) -> float:
        """The next step size (s) from time t (s)."""
        stops = [s for s in self.fixed if s > t * (1 + 1e-12)] + stops
        dt = self.controller.dt
        for limit in limits:
            dt = limit(dt)
        if stops:
            next_stop = min(stops)
            dt = min(dt, next_stop - t)
            if next_stop - (t + dt) < 0.25 * dt:  # no sliver before a stop
                dt = next_stop - t
        return dt
