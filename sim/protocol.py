"""Injection protocols in time: which needle injects at what rate, and when each finishes.

Rate-driven needles (constant rate, schedules, aliquots) follow piecewise-constant segments
from their start; the time loop lands on every segment boundary, so each segment injects
exactly rate x duration = its volume. Pressure-controlled needles get their rate from the
needle-bone coupling each step (the problem solves it) and finish when their volume is in.
A needle with `after` starts when that needle has finished. Times in s, rates in m³/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.scenario.injection import Needle

_EPS = 1e-12


@dataclass
class Segment:
    """Rate (m³/s) from `begin` to `end`, in s since the needle started."""

    begin: float
    end: float
    rate: float


@dataclass
class NeedleProtocol:
    """The time course of one needle's injection."""

    spec: Needle
    segments: list[Segment] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    injected: float = 0.0

    def __post_init__(self) -> None:
        t = 0.0
        for step in self.spec.steps():
            if step.pause is not None:
                t += step.pause
                continue
            duration = step.volume / step.rate  # type: ignore[operator]
            self.segments.append(Segment(t, t + duration, step.rate))  # type: ignore[arg-type]
            t += duration
        if self.spec.after is None:
            self.started_at = self.spec.start

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pressure_controlled(self) -> bool:
        return self.spec.syringe_pressure is not None

    @property
    def target_volume(self) -> float:
        return self.spec.total_volume

    def active(self, t: float) -> bool:
        """Started and not finished at time t."""
        return (
            self.started_at is not None
            and t >= self.started_at * (1 - _EPS) - _EPS
            and self.finished_at is None
        )

    def scheduled_rate(self, t: float) -> float:
        """Rate of a rate-driven needle over the step starting at t (0 outside segments)."""
        if not self.active(t) or self.pressure_controlled:
            return 0.0
        elapsed = t - self.started_at  # type: ignore[operator]
        for seg in self.segments:
            if seg.begin - _EPS * max(1.0, seg.end) <= elapsed < seg.end - _EPS * max(1.0, seg.end):
                return seg.rate
        return 0.0

    def next_change(self, t: float) -> float | None:
        """The next time after t at which this needle's scheduled rate changes."""
        if self.started_at is None or self.finished_at is not None:
            return None
        times = [self.started_at] + [
            self.started_at + x for seg in self.segments for x in (seg.begin, seg.end)
        ]
        later = [s for s in times if s > t * (1 + _EPS) + _EPS]
        return min(later) if later else None

    def account(self, t_end: float, rate: float, dt: float) -> None:
        """Add rate x dt; mark finished at t_end when the protocol is complete."""
        self.injected += rate * dt
        if self.finished_at is not None or self.started_at is None:
            return
        if self.pressure_controlled:
            done = self.injected >= self.target_volume * (1 - _EPS)
        else:
            total = self.segments[-1].end if self.segments else 0.0
            done = t_end - self.started_at >= total * (1 - _EPS)
        if done:
            self.finished_at = t_end


class Injector:
    """All needles of a scenario, with their start-after dependencies."""

    def __init__(self, needles: list[Needle]) -> None:
        self.protocols = [NeedleProtocol(n) for n in needles]

    def by_name(self, name: str) -> NeedleProtocol:
        return next(p for p in self.protocols if p.name == name)

    def release(self, t: float) -> None:
        """Start needles whose predecessor has finished (at its finishing time)."""
        for p in self.protocols:
            if p.started_at is None and p.spec.after is not None:
                before = self.by_name(p.spec.after)
                if before.finished_at is not None:
                    p.started_at = before.finished_at

    def finished(self) -> bool:
        return all(p.finished_at is not None for p in self.protocols)

    def checkpoint(self) -> dict[str, list[float | None]]:
        """Per needle: start and finish times (s) and volume injected (m³)."""
        return {
            "started_at": [p.started_at for p in self.protocols],
            "finished_at": [p.finished_at for p in self.protocols],
            "injected": [p.injected for p in self.protocols],
        }

    def restore(self, saved: dict[str, list[float | None]]) -> None:
        """Take up a `checkpoint()`."""
        for i, p in enumerate(self.protocols):
            p.started_at = saved["started_at"][i]
            p.finished_at = saved["finished_at"][i]
            p.injected = float(saved["injected"][i])  # type: ignore[arg-type]

    def next_change(self, t: float) -> float | None:
        times = [c for p in self.protocols if (c := p.next_change(t)) is not None]
        return min(times) if times else None

    def planned_end(self) -> float | None:
        """End time if every needle is rate-driven and starts at a known time, else None."""
        end = 0.0
        finish: dict[str, float] = {}
        pending = list(self.protocols)
        while pending:
            progressed = False
            for p in list(pending):
                if p.pressure_controlled:
                    return None
                if p.spec.after is None:
                    start = p.spec.start
                elif p.spec.after in finish:
                    start = finish[p.spec.after]
                else:
                    continue
                finish[p.name] = start + (p.segments[-1].end if p.segments else 0.0)
                end = max(end, finish[p.name])
                pending.remove(p)
                progressed = True
            if not progressed:
                return None
        return end
