"""Scenario sections `leak_routes` and `targets`: where cement may leave, what it should fill."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from sim.scenario.base import Section
from sim.units import Pressure


def _names(v: object) -> object:
    return [v] if isinstance(v, str) else v


Names = Annotated[list[str], BeforeValidator(_names), Field(min_length=1)]


class Outlet(Section):
    """A boundary opening at fixed pressure (venous outlet, 0-2 kPa): marrow and cement leave.

    boundary: one or more boundary tag names; pressure: gauge pressure outside (Pa).
    """

    kind: Literal["outlet"]
    boundary: Names
    pressure: Pressure = 0.0


LeakRoute = Annotated[Outlet, Field(discriminator="kind")]


class Target(Section):
    """A region the cement should fill: the union of tagged regions."""

    regions: Names
