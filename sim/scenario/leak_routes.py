"""Scenario sections `leak_routes` and `targets`: where cement may leave, what it should fill."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from sim.scenario.base import Section
from sim.units import Conductance, Length, Pressure, between


def _names(v: object) -> object:
    return [v] if isinstance(v, str) else v


Names = Annotated[list[str], BeforeValidator(_names), Field(min_length=1)]
#: a gauge pressure outside an opening (Pa): not below a vacuum (-1 atm), at most 10 MPa (the
#: disc under load reaches about 2 MPa)
OutsidePressure = Annotated[Pressure, between(-101325.0, 1e7, "-101325 Pa (a vacuum) and 10 MPa")]


class Outlet(Section):
    """A boundary opening at fixed pressure (venous outlet, 0-2 kPa): marrow and cement leave.

    boundary: one or more boundary tag names; pressure: gauge pressure outside (Pa).
    """

    kind: Literal["outlet"]
    boundary: Names
    pressure: OutsidePressure = 0.0


class _Opening(Section):
    """An opening through which fluid leaves to the `pressure` outside (Pa). With an
    `opening_pressure` (Pa, >= 0) it is a threshold path (a cortical crack or fracture gap
    forced open by the pressure inside, a collapsed or valved vein): shut while the pressure
    inside exceeds the outside by less, then letting out flux per area = conductance x
    (p - pressure - opening_pressure)."""

    boundary: Names
    pressure: OutsidePressure = 0.0
    opening_pressure: Annotated[Pressure, between(0.0, 1e7, "0 and 10 MPa")] | None = None


class Resistive(_Opening):
    """A boundary opening with a hydraulic conductance: outflow per area = conductance x
    (p - pressure), whatever the fluid. conductance in m/(Pa·s) (flux density per pressure).
    """

    kind: Literal["resistive"]
    conductance: Annotated[Conductance, Field(gt=0)]


class Vein(_Opening):
    """Draining veins: `count` vessels of `diameter` and `length` leave through the boundary
    patch to a venous `pressure`. The flow through them is Poiseuille flow of the fluid that
    enters, Q = count pi d^4 / (128 L mu) dp, with mu the mixture viscosity at the opening
    (1 / total mobility), so viscous cement drains far less than marrow. Bounds: a diameter of
    at most 20 mm (the vena cava's is about 25 mm, a basivertebral vein's 1-3 mm), a length of
    0.1 mm to 1 m, at most 1000 vessels.
    """

    kind: Literal["vein"]
    diameter: Annotated[Length, Field(gt=0), between(0.0, 0.02, "0 and 20 mm")]
    length: Annotated[Length, between(1e-4, 1.0, "0.1 mm and 1 m")]
    count: Annotated[int, Field(ge=1, le=1000)] = 1


class LeakRegion(Section):
    """Tagged regions that count as leaked when cement enters them (disc, spinal canal, a vein
    plexus, soft tissue). They are part of the flow domain: give them their own porosity and
    permeability under bone.regions."""

    kind: Literal["region"]
    regions: Names


LeakRoute = Annotated[Outlet | Resistive | Vein | LeakRegion, Field(discriminator="kind")]
OPEN_ROUTES = (Outlet, Resistive, Vein)


class Target(Section):
    """A region the cement should fill: the union of tagged regions."""

    regions: Names
