"""The order of operations of one step, the step-size policy and the stop rules.

A step of size dt from a state whose flow is solved: (1) the inflow at the needles and the
outflow at the outlets; (2) implicit upwind transport of the saturation over dt (rejected, and
retried smaller, when its solve fails); (3) every component after the transport (curing, leak
accounting, ...), in the order given; (4) the saturation, the needle volumes and the time
move on; (5) the flow for the new state (rates, pressure, viscosity), then every component
after the flow. Step sizes come from one `StepPolicy` (sim.flow.timestep). Units: SI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from sim.checkpoint import Saved
from sim.components.base import Component, OutputField, StepData
from sim.components.flow import Flow
from sim.components.leaks import LeakAccounting
from sim.errors import RunFailed
from sim.flow.time_error import (
    PRESSURE_FLOOR,
    REDO_RATIO,
    SPREAD_FLOOR,
    TimeErrorEstimate,
    spread,
)
from sim.flow.timestep import StepController, StepPolicy
from sim.flow.transport import ImplicitUpwindTransport
from sim.protocol import Injector
from sim.scenario.injection import StopRules
from sim.scenario.numerics import Numerics
from sim.state import State

log = logging.getLogger(__name__)

#: every part's evolving state (sim.checkpoint.local_copy)
Snapshot = dict[str, Saved]


class Stepper:
    """Advances a state with the flow, the saturation transport and the other components."""

    def __init__(
        self,
        state: State,
        flow: Flow,
        transport: ImplicitUpwindTransport,
        components: Sequence[Component],
        leaks: LeakAccounting,
        injector: Injector,
        numerics: Numerics,
        stop: StopRules,
    ) -> None:
        self.state = state
        self.flow = flow
        self.transport = transport
        self.components = list(components)
        self.leaks = leaks
        self.injector = injector
        self.numerics = numerics
        self.stop = stop
        self.reason: str | None = None  # why the injection ended, once it has
        self.end: float | None = None  # end of the follow-up (s), once the injection ended
        self.controller: StepController | None = None
        self._resumed_dt: float | None = None
        self.time_error: TimeErrorEstimate | None = None
        #: take a snapshot of the run / restore one: set by the problem to redo steps whose
        #: estimated time error is above REDO_RATIO times the tolerance
        self.rollback: tuple[Callable[[], Snapshot], Callable[[Snapshot], None]] | None = None
        if numerics.time_tolerance is not None:
            floors = [PRESSURE_FLOOR] * len(flow.needles)
            floors += [leaks.threshold] * len(leaks.routes) + [SPREAD_FLOOR]
            self.time_error = TimeErrorEstimate(numerics.time_tolerance, np.array(floors))

    def fields(self) -> list[OutputField]:
        """Every field to write: the saturation, then each component's."""
        out = [OutputField("saturation", self.state.S, "point")]
        for component in [self.flow, *self.components]:
            out += component.fields()
        return out

    def initialise(self) -> None:
        """Every component's initial state, then the flow of that state."""
        for component in [self.flow, *self.components]:
            component.initialise(self.state)
        self._solve_flow()

    def _solve_flow(self) -> None:
        self.flow.update(self.state)
        for component in self.components:
            component.after_flow(self.state)

    def advance(self, dt: float) -> bool:
        """Try one step of size dt (s); on success update the state and return True."""
        state, n = self.state, self.flow.disc.n_owned
        t0 = time.perf_counter()
        q_in, q_out = self.flow.boundary_exchange(state)
        s_old = state.S.x.array[:n].copy()
        mu = self.flow.mu_columns
        s_new, result = self.transport.step(s_old, dt, q_in, q_out, mu)
        state.counters.transport_last = result.iterations
        state.counters.saturation_change_last = result.max_change
        state.counters.courant_last = result.courant
        if not result.converged:
            self.flow.timings.transport += time.perf_counter() - t0
            return False
        state.counters.transport_total += result.iterations
        assert result.inflow is not None and result.outflow is not None  # converged: set
        step = StepData(state.t, dt, s_old, s_new, q_in, q_out, mu, result.inflow, result.outflow)
        for component in self.components:
            component.after_transport(state, step)
        self.flow.timings.transport += time.perf_counter() - t0
        state.S.x.array[:n] = s_new
        state.S.x.scatter_forward()
        self.flow.account(state, dt)
        state.t += dt
        state.counters.steps += 1
        self.injector.release(state.t)
        self._solve_flow()
        return True

    def checkpoint(self) -> Saved:
        """Why and until when the run goes on, the controller's next step size (s) and the
        time-error estimate's last points."""
        assert self.controller is not None, "checkpoints are taken while the stepper runs"
        estimate = self.time_error.checkpoint() if self.time_error else None
        return {
            "reason": self.reason,
            "end": self.end,
            "dt": self.controller.dt,
            "time_error": estimate,
        }

    def restore(self, saved: Saved) -> None:
        """Take up a `checkpoint()`: `run` then goes on from the restored state."""
        self.reason = saved["reason"]
        self.end = saved["end"]
        self._resumed_dt = saved["dt"]
        if self.time_error is not None:
            self.time_error.restore(saved["time_error"])

    def readouts(self) -> list[float]:
        """What the time-error estimate reads (sim.flow.time_error): the syringe pressures
        (Pa), the cement leaked per route (m³) and the cement's spread (m); collective."""
        disc, state = self.flow.disc, self.state
        s = state.S.x.array[: disc.n_owned]
        radius = spread(s, self.flow.medium.pore_volume, disc.x_owned, disc.comm)
        return [*state.syringe_pressures, *(r.leaked for r in self.leaks.routes), radius]

    def regime(self) -> tuple[tuple[bool, float], ...]:
        """Which needles inject, and at which scheduled rates (m³/s), from the present time."""
        t = self.state.t
        return tuple((p.active(t), p.scheduled_rate(t)) for p in self.injector.protocols)

    def _estimable(self, regime: tuple[tuple[bool, float], ...]) -> bool:
        """Whether the step from now, under `regime`, gets a time-error estimate (only then
        is a snapshot worth taking)."""
        return self.time_error is not None and self.state.flowing and self.time_error.ready(regime)

    def _estimate(self, regime: tuple[tuple[bool, float], ...]) -> float | None:
        """The time-error estimate of the step just taken under `regime` (None: no estimate,
        no tolerance given, or no flow)."""
        if self.time_error is None:
            return None
        if not self.state.flowing:
            self.time_error.restart()
            return None
        return self.time_error.record(self.state.t, self.readouts(), regime)

    def stop_reason(self) -> str | None:
        """Why the injection ends now, or None while it goes on."""
        state, rules = self.state, self.stop
        if self.injector.finished():
            return "volume_reached"
        if rules.time_limit is not None and state.t >= rules.time_limit * (1 - 1e-12):
            return "time_limit"
        if rules.max_syringe_pressure is not None:
            for needle, p in zip(self.flow.needles, state.syringe_pressures, strict=True):
                if p >= rules.max_syringe_pressure:
                    return f"syringe_pressure_limit:{needle.name}"
        if rules.on_first_leak and (route := self.leaks.first_leaked()) is not None:
            return f"first_leak:{route.name}"
        return None

    def policy(self, output_times: list[float] | None) -> StepPolicy:
        """The step policy of a run that lands on `output_times` and the time limit."""
        num, rules = self.numerics, self.stop
        fixed = sorted({*(output_times or []), *([rules.time_limit] if rules.time_limit else [])})
        controller = StepController(
            dt=min(num.dt_initial or self.flow.initial_step(self.state), num.dt_max or np.inf),
            dt_min=1e-12 * (self.injector.planned_end() or rules.time_limit or 1e3),
            dt_max=num.dt_max or np.inf,
            max_iterations=num.newton_max_iterations,
            front_courant=num.front_courant,
            target_change=num.saturation_target(),
        )
        return StepPolicy(controller, fixed)

    def run(self, on_step: Callable[[], None], output_times: list[float] | None = None) -> str:
        """Advance until a stop rule ends the injection, then for the components' follow-up
        time without flow; return the reason the injection ended.

        `on_step` is called at t = 0 (not when resuming a restored run) and after every step.
        Steps land exactly on `output_times`, on every change of a scheduled rate, on the time
        limit and on the end of the follow-up.
        """
        state, num = self.state, self.numerics
        policy = self.policy(output_times)
        self.controller = policy.controller
        limits = [self.flow, *self.components]
        redone = False  # the step from here was taken back once already
        if self._resumed_dt is None:
            on_step()
        else:
            policy.controller.dt = self._resumed_dt
        while True:
            if self.reason is None and (reason := self.stop_reason()) is not None:
                self.reason = reason
                follow = max((c.follow_up() for c in self.components), default=0.0)
                self.end = state.t + follow
                if self.end > state.t:
                    log.info(
                        "injection ended (%s): following the setting until t = %.1f s",
                        reason,
                        self.end,
                    )
                    self.flow.stop(state)
            if self.reason is not None and (self.end is None or state.t >= self.end * (1 - 1e-12)):
                return self.reason
            if state.counters.steps >= num.max_steps:
                raise RunFailed(
                    f"numerics.max_steps = {num.max_steps} reached at t = {state.t:.4g} s "
                    f"(steps of about {policy.controller.dt:.3g} s); allow more steps or larger "
                    "ones (numerics.dt_max)"
                )
            stops = self.flow.stops(state) if state.flowing else [self.end]
            dt = policy.size(state.t, [lambda h, c=c: c.max_step(state, h) for c in limits], stops)
            regime = self.regime() if self.time_error is not None else ()
            rollback = self.rollback if self._estimable(regime) else None
            before = rollback[0]() if rollback is not None else None
            if self.advance(dt):
                ratio = self._estimate(regime)
                too_far = ratio is not None and ratio > REDO_RATIO
                if rollback is not None and before is not None and too_far and not redone:
                    log.debug("step of %.3g s redone: time error %.2g x tolerance", dt, ratio)
                    rollback[1](before)
                    state.counters.rejected += 1
                    policy.controller.redo(dt, ratio)
                    redone = True
                    continue
                redone = False
                state.counters.time_error_last = ratio or 0.0
                policy.controller.accepted(
                    state.counters.saturation_change_last,
                    state.counters.transport_last,
                    state.counters.courant_last,
                    ratio,
                )
                on_step()
            else:
                log.debug("step of %.3g s rejected at t = %.4g s", dt, state.t)
                state.counters.rejected += 1
                policy.controller.rejected()
