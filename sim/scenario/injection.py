"""Scenario section `injection`: needles, their rates and volumes, and the cement's age."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from sim.needle import inner_diameter_of_gauge
from sim.scenario.base import Section
from sim.units import FlowRate, Length, Point, Time, Volume

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]


class Needle(Section):
    """One cannula: where its tip is, how wide it is, and what it injects.

    tip: needle-tip position (m) in the geometry's frame (not used by the column, whose inlet
    is a face); gauge or inner_diameter: cannula bore (the inlet cavity radius is half of it);
    rate: constant injection rate (m³/s); volume: volume to inject (m³).
    """

    name: Name = "needle"
    tip: Point | None = None
    gauge: int | None = None
    inner_diameter: Annotated[Length, Field(gt=0)] | None = None
    rate: Annotated[FlowRate, Field(gt=0)]
    volume: Annotated[Volume, Field(gt=0)]

    @model_validator(mode="after")
    def _bore(self) -> Needle:
        if (self.gauge is None) == (self.inner_diameter is None):
            raise ValueError("give exactly one of 'gauge' (e.g. 11) and 'inner_diameter'")
        if self.gauge is not None:
            inner_diameter_of_gauge(self.gauge)
        return self

    @property
    def inner_radius(self) -> float:
        """Inner radius of the cannula (m): the radius of the inlet cavity at the tip."""
        d = (
            self.inner_diameter
            if self.inner_diameter is not None
            else inner_diameter_of_gauge(
                self.gauge  # type: ignore[arg-type]
            )
        )
        return 0.5 * d

    @property
    def duration(self) -> float:
        """Time (s) to inject `volume` at `rate`."""
        return self.volume / self.rate


class Injection(Section):
    """start_after_mixing: cement age (s since mixing) when injection starts; needles."""

    start_after_mixing: Annotated[Time, Field(ge=0)] = 0.0
    needles: Annotated[list[Needle], Field(min_length=1, max_length=1)]

    @model_validator(mode="after")
    def _unique_names(self) -> Injection:
        names = [n.name for n in self.needles]
        if len(set(names)) != len(names):
            raise ValueError(f"needle names must be unique, got {names}")
        return self
