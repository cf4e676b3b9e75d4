"""Scenario section `injection`: needles, their protocols, the cement's age, stop rules.

A needle injects by one protocol:

- constant rate (pump): ``rate`` and ``volume``;
- a schedule: ``schedule: [{rate, volume}, {pause}, ...]`` (aliquots with waits), or the
  shorthand ``aliquots: {volume, count, rate, pause}``;
- pressure control (by hand): ``syringe_pressure`` held at the syringe, the flow follows
  from the needle and bone resistances, capped by ``max_rate``, until ``volume`` is in.

``start`` delays a needle (s); ``after: other`` starts it when needle `other` has finished
(bipedicular, one after the other). Stop rules end the injection early: the first leak
through any route, a syringe pressure limit, or a time limit.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from sim.needle import inner_diameter_of_gauge
from sim.scenario.base import Section
from sim.units import FlowRate, Length, Point, Pressure, Time, Volume, between

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]
PositiveRate = Annotated[FlowRate, Field(gt=0)]
PositiveVolume = Annotated[Volume, Field(gt=0)]


class Aliquot(Section):
    """One entry of a schedule: inject `volume` at `rate`, or wait `pause` (s)."""

    rate: PositiveRate | None = None
    volume: PositiveVolume | None = None
    pause: Annotated[Time, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Aliquot:
        injecting = self.rate is not None and self.volume is not None
        if injecting == (self.pause is not None) or (self.rate is None) != (self.volume is None):
            raise ValueError("a schedule entry is either {rate, volume} or {pause}")
        return self


class Aliquots(Section):
    """`count` aliquots of `volume` at `rate` separated by `pause`."""

    volume: PositiveVolume
    count: Annotated[int, Field(ge=1, le=1000)]
    rate: PositiveRate
    pause: Annotated[Time, Field(ge=0)]

    def schedule(self) -> list[Aliquot]:
        out: list[Aliquot] = []
        for k in range(self.count):
            if k and self.pause > 0:
                out.append(Aliquot(pause=self.pause))
            out.append(Aliquot(rate=self.rate, volume=self.volume))
        return out


class Needle(Section):
    """One cannula: where its tip is, how wide and long it is, and how it injects.

    tip: needle-tip position (m) in the geometry's frame (not used by the column, whose inlet
    is a face); entry: where the needle enters the bone (generated anatomy checks the path);
    gauge or inner_diameter: cannula bore (the inlet cavity radius is half of it);
    cannula_length: for the pressure drop in the cannula (m, default 12 cm; 10-15 cm in use; at
    most 1 m).
    """

    name: Name = "needle"
    tip: Point | None = None
    entry: Point | None = None
    gauge: int | None = None
    inner_diameter: Annotated[Length, Field(gt=0)] | None = None
    cannula_length: Annotated[Length, Field(gt=0), between(0.0, 1.0, "0 and 1 m")] = 0.12
    rate: PositiveRate | None = None
    volume: PositiveVolume | None = None
    schedule: Annotated[list[Aliquot], Field(min_length=1)] | None = None
    aliquots: Aliquots | None = None
    syringe_pressure: Annotated[Pressure, Field(gt=0)] | None = None
    max_rate: PositiveRate | None = None
    start: Annotated[Time, Field(ge=0)] = 0.0
    after: Name | None = None

    @model_validator(mode="after")
    def _bore_and_protocol(self) -> Needle:
        if (self.gauge is None) == (self.inner_diameter is None):
            raise ValueError("give exactly one of 'gauge' (e.g. 11) and 'inner_diameter'")
        if self.gauge is not None:
            inner_diameter_of_gauge(self.gauge)
        kinds = [
            name
            for name, given in (
                ("rate", self.rate is not None),
                ("schedule", self.schedule is not None),
                ("aliquots", self.aliquots is not None),
                ("syringe_pressure", self.syringe_pressure is not None),
            )
            if given
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one protocol: 'rate' (with 'volume'), 'schedule', 'aliquots' or "
                f"'syringe_pressure' (with 'volume'); got {kinds or 'none'}"
            )
        needs_volume = kinds[0] in ("rate", "syringe_pressure")
        if needs_volume != (self.volume is not None):
            raise ValueError(
                "'volume' goes with 'rate' or 'syringe_pressure'; a schedule states its volumes"
            )
        if self.max_rate is not None and self.syringe_pressure is None:
            raise ValueError("'max_rate' applies to pressure-controlled injection only")
        if self.after is not None and self.start != 0.0:
            raise ValueError("give 'start' or 'after', not both")
        return self

    @property
    def inner_radius(self) -> float:
        """Inner radius of the cannula (m): the radius of the inlet cavity at the tip."""
        d = self.inner_diameter
        return 0.5 * (d if d is not None else inner_diameter_of_gauge(self.gauge))  # type: ignore[arg-type]

    def steps(self) -> list[Aliquot]:
        """The rate-driven protocol as a schedule (constant rate: one entry)."""
        if self.schedule is not None:
            return list(self.schedule)
        if self.aliquots is not None:
            return self.aliquots.schedule()
        if self.rate is not None:
            return [Aliquot(rate=self.rate, volume=self.volume)]
        return []

    @property
    def total_volume(self) -> float:
        """Volume this needle is to inject (m³)."""
        if self.syringe_pressure is not None:
            return float(self.volume)  # type: ignore[arg-type]
        return sum(s.volume for s in self.steps() if s.volume is not None)


class StopRules(Section):
    """End the injection early: at the first leak through any route (as a clinician stops on
    seeing cement near the cortex), at a syringe pressure, or at a time (s)."""

    on_first_leak: bool = False
    max_syringe_pressure: Annotated[Pressure, Field(gt=0)] | None = None
    time_limit: Annotated[Time, Field(gt=0)] | None = None


class Injection(Section):
    """start_after_mixing: cement age (s since mixing) when injection starts; needles: one or
    two (bipedicular); stop: rules that end the injection early."""

    start_after_mixing: Annotated[Time, Field(ge=0)] = 0.0
    needles: Annotated[list[Needle], Field(min_length=1, max_length=4)]
    stop: StopRules = StopRules()

    @model_validator(mode="after")
    def _names_and_order(self) -> Injection:
        names = [n.name for n in self.needles]
        if len(set(names)) != len(names):
            raise ValueError(f"needle names must be unique, got {names}")
        for n in self.needles:
            if n.after is not None and n.after not in names:
                raise ValueError(f"needle '{n.name}': after '{n.after}' is not a needle")
            if n.after == n.name:
                raise ValueError(f"needle '{n.name}' cannot start after itself")
        # no cycles
        follows = {n.name: n.after for n in self.needles}
        for name in names:
            seen, current = {name}, follows[name]
            while current is not None:
                if current in seen:
                    raise ValueError(f"needles start after each other in a cycle: {sorted(seen)}")
                seen.add(current)
                current = follows[current]
        return self
