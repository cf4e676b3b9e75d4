"""Adaptive time-step control of the sequential scheme."""

from __future__ import annotations

from dataclasses import dataclass


class TimeStepError(RuntimeError):
    """The step size fell below its minimum: the run cannot proceed."""


@dataclass
class StepController:
    """Step size (s) that keeps the saturation change per step near `target_change`.

    After an accepted step the size grows or shrinks by the ratio of the target to the
    observed change (at most doubling); after a failed Newton solve it halves.
    """

    dt: float
    dt_min: float
    dt_max: float
    target_change: float
    max_iterations: int

    def accepted(self, max_change: float, iterations: int) -> None:
        factor = 2.0 if max_change <= 0 else min(2.0, 0.9 * self.target_change / max_change)
        if iterations > self.max_iterations // 2:
            factor = min(factor, 0.7)
        self.dt = min(self.dt_max, max(self.dt_min, self.dt * max(factor, 0.3)))

    def rejected(self) -> None:
        self.dt *= 0.5
        if self.dt < self.dt_min:
            raise TimeStepError(
                f"time step fell below {self.dt_min:.3g} s: the saturation update does not "
                "converge (try a finer mesh or a smaller numerics.max_saturation_change)"
            )
