"""Helpers of the verification tests: run a scenario in-process and sample it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.geometry import build_mesh
from sim.problem import InjectionProblem
from sim.scenario import Scenario


def simulate(
    scenario: Scenario,
    at_times: Sequence[float],
    measure: Callable[[InjectionProblem], Any],
    every_step: Callable[[InjectionProblem], None] | None = None,
) -> tuple[list[Any], InjectionProblem]:
    """Run `scenario` and return `measure(problem)` at each of `at_times` (s)."""
    tagged = build_mesh(scenario, MPI.COMM_WORLD)
    problem = InjectionProblem(scenario, tagged)
    problem.initialise()
    samples: list[Any] = []
    pending = sorted(at_times)

    def on_step(pb: InjectionProblem) -> None:
        if every_step is not None:
            every_step(pb)
        while pending and pb.state.t >= pending[0] * (1 - 1e-12):
            pending.pop(0)
            samples.append(measure(pb))

    problem.run(on_step, output_times=list(at_times))
    assert not pending, f"times {pending} were never reached"
    return samples, problem


class Extremes:
    """Worst mass-balance error and saturation range over every step of a run (pass as
    `every_step` to `simulate`)."""

    def __init__(self) -> None:
        self.mass_balance = 0.0
        self.s_min, self.s_max = 1.0, 0.0

    def __call__(self, pb: InjectionProblem) -> None:
        self.mass_balance = max(self.mass_balance, measure.mass_balance_error(pb))
        lo, hi = measure.saturation_range(pb)
        self.s_min, self.s_max = min(self.s_min, lo), max(self.s_max, hi)

    def assert_conservative(self) -> None:
        """Mass balance to 1e-10 and 0 <= S <= 1 at every step."""
        assert self.mass_balance <= 1e-10, self.mass_balance
        assert self.s_min >= 0.0 and self.s_max <= 1.0, (self.s_min, self.s_max)


def run_conservative(scenario: Scenario) -> InjectionProblem:
    """Run `scenario` to its end, asserting mass balance and 0 <= S <= 1 at every step."""
    extremes = Extremes()
    _, problem = simulate(scenario, [], lambda pb: None, extremes)
    extremes.assert_conservative()
    return problem


@pytest.fixture
def run_scenario_sampled() -> Callable[..., tuple[list[Any], InjectionProblem]]:
    return simulate
