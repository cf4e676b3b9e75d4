"""Scenario section `heat`: the exotherm of the cement, tissue temperature, thermal damage.

    heat:
      body_temperature: 37 degC            # initial temperature of bone and marrow
      boundary: {kind: temperature}        # outer surface held at body_temperature (default),
                                           # or {kind: bath, temperature: 37 degC,
                                           #     heat_transfer_coefficient: 500 W/(m^2*K)},
                                           # or {kind: insulated}
      perfusion: 0 1/s                     # Pennes blood perfusion rate (volume per volume)
      probes:                              # temperatures recorded: at points, or the
        centre: "[0, 0, 0] mm"             # highest on a named boundary
        canal: {boundary: posterior_wall}
      follow_up: 20 min                    # the run goes on this long after the injection
                                           # ends, without flow, while the cement sets
      max_temperature_change: 1.0          # K per step at most (step-size limit)
      damage:                              # models of thermal damage (defaults below)
        bone: {kind: cem43, threshold: 16 min}

Heat is off without this section. Material values default to the literature values in the
README (with sources); every value may be overridden. Temperatures in K (or with a unit),
all other values in SI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sim.physics.curing import GAS_CONSTANT
from sim.scenario.base import BY_NAME, NUMBER, Section
from sim.scenario.injection import Name
from sim.units import BodyTemperature, Density, Dimension, Point, Time, in_si

SPECIFIC_HEAT = Dimension(
    "a specific heat capacity", "[length]**2/[time]**2/[temperature]", "1450 J/(kg*K)"
)
CONDUCTIVITY = Dimension(
    "a thermal conductivity", "[mass]*[length]/[time]**3/[temperature]", "0.2 W/(m*K)"
)
SPECIFIC_ENERGY = Dimension("an energy per mass", "[length]**2/[time]**2", "110 J/g")
HEAT_TRANSFER = Dimension(
    "a heat transfer coefficient", "[mass]/[time]**3/[temperature]", "500 W/(m^2*K)"
)
RATE = Dimension("a rate (per time)", "1/[time]", "6e-4 1/s")
SpecificHeat = Annotated[float, in_si(SPECIFIC_HEAT), Field(gt=0)]
Conductivity = Annotated[float, in_si(CONDUCTIVITY), Field(gt=0)]
SpecificEnergy = Annotated[float, in_si(SPECIFIC_ENERGY), Field(ge=0)]
HeatTransfer = Annotated[float, in_si(HEAT_TRANSFER), Field(gt=0)]
PerTime = Annotated[float, in_si(RATE), Field(ge=0)]

if TYPE_CHECKING:
    from sim.scenario.geometry import GeometryKind

Kelvin = BodyTemperature

BODY_TEMPERATURE = 310.15  # K (37 C)
#: the longest thermal follow-up after the injection (s)
MAX_FOLLOW_UP = 24 * 3600.0
#: the largest heat of polymerisation (J/kg of cement)
MAX_REACTION_HEAT = 1e6
ROOM_TEMPERATURE = 295.15  # K (22 C)


class Material(Section):
    """Thermal properties of one constituent: density (kg/m³), specific heat (J/(kg K)),
    thermal conductivity (W/(m K))."""

    density: Density
    specific_heat: SpecificHeat
    conductivity: Conductivity

    @property
    def heat_capacity(self) -> float:
        """Volumetric heat capacity rho c (J/(m³ K))."""
        return self.density * self.specific_heat


class BoneTissue(Material):
    """The mineralised tissue of the trabeculae (IT'IS database, cortical bone)."""

    density: Density = 1908.0
    specific_heat: SpecificHeat = 1313.0
    conductivity: Conductivity = 0.32


class MarrowTissue(Material):
    """Red bone marrow (IT'IS database)."""

    density: Density = 1029.0
    specific_heat: SpecificHeat = 2666.0
    conductivity: Conductivity = 0.28


class CementHeat(Material):
    """Polymerised cement, and its total heat of polymerisation (J/kg of cement), released in
    proportion to the rise of the degree of cure of cure kinetics."""

    density: Density = 1100.0
    specific_heat: SpecificHeat = 1450.0
    conductivity: Conductivity = 0.17
    reaction_heat: SpecificEnergy = 1.0e5

    @field_validator("reaction_heat")
    @classmethod
    def _plausible_heat(cls, v: float) -> float:
        if v > MAX_REACTION_HEAT:
            raise ValueError(
                f"must be at most {MAX_REACTION_HEAT:g} J/kg of cement (ten times the default)"
            )
        return v


class Blood(Section):
    """Perfusing blood: density (kg/m³) and specific heat (J/(kg K))."""

    density: Density = 1050.0
    specific_heat: SpecificHeat = 3617.0


class TemperatureBoundary(Section):
    """The outer surface of the bone held at the body temperature."""

    kind: Literal["temperature"]


class BathBoundary(Section):
    """The outer surface exchanging heat with a bath: flux = h (T - T_bath)."""

    kind: Literal["bath"]
    temperature: Kelvin = BODY_TEMPERATURE
    heat_transfer_coefficient: HeatTransfer


class InsulatedBoundary(Section):
    """No heat crosses the outer surface."""

    kind: Literal["insulated"]


Boundary = Annotated[
    TemperatureBoundary | BathBoundary | InsulatedBoundary, Field(discriminator="kind")
]


class ArrheniusDamage(Section):
    """Damage integral Omega = int A exp(-E / (R T)) dt; tissue counts as necrotic at
    Omega >= 1. frequency_factor A (1/s), activation_energy E (J/mol)."""

    kind: Literal["arrhenius"]
    frequency_factor: Annotated[float, Field(gt=0)]
    activation_energy: Annotated[float, Field(gt=0)]


class DoseDamage(Section):
    """Thermal dose in cumulative equivalent minutes at 43 C (Sapareto & Dewey 1984):
    CEM43 = int R^(43 - T) dt, R = 0.5 at and above 43 C, 0.25 below; tissue counts as
    necrotic at CEM43 >= threshold (a time)."""

    kind: Literal["cem43"]
    threshold: Annotated[Time, Field(gt=0)]


Damage = Annotated[ArrheniusDamage | DoseDamage, Field(discriminator="kind")]


class SurfaceProbe(Section):
    """The highest temperature on a named boundary of the mesh (a foramen wall where a nerve
    root lies, the posterior wall facing the spinal canal)."""

    boundary: Name


Probe = Point | SurfaceProbe

DEFAULT_DAMAGE: dict[str, ArrheniusDamage | DoseDamage] = {
    "bone": DoseDamage(kind="cem43", threshold=16 * 60.0),
    "nerve": DoseDamage(kind="cem43", threshold=50 * 60.0),
    "bone_arrhenius": ArrheniusDamage(
        kind="arrhenius", frequency_factor=1e98, activation_energy=75000.0 * GAS_CONSTANT
    ),
}


class Heat(Section):
    """Heat of the cement's cure and tissue temperature (see the module docstring)."""

    body_temperature: Kelvin = BODY_TEMPERATURE
    cement_temperature: Kelvin | None = None
    boundary: Boundary = TemperatureBoundary(kind="temperature")
    perfusion: PerTime = 0.0
    arterial_temperature: Kelvin | None = None
    bone: BoneTissue = BoneTissue()
    marrow: MarrowTissue = MarrowTissue()
    cement: CementHeat = CementHeat()
    blood: Blood = Blood()
    damage: dict[Name, Damage] = DEFAULT_DAMAGE
    probes: dict[Name, Probe] = {}
    follow_up: Annotated[Time, Field(ge=0)] = 20 * 60.0
    max_temperature_change: Annotated[float, Field(gt=0)] = 1.0

    @field_validator("follow_up")
    @classmethod
    def _within_a_day(cls, v: float) -> float:
        if v > MAX_FOLLOW_UP:
            raise ValueError(f"must be at most {MAX_FOLLOW_UP / 3600:g} h")
        return v

    @model_validator(mode="after")
    def _damage(self) -> Heat:
        if not self.damage:
            raise ValueError("damage: give at least one model (or leave it out for the defaults)")
        return self

    def summary_entries(self) -> dict[str, Any]:
        """Largest temperature, dose and times above 45 and 50 °C per mesh region, necrosis
        volume per damage model, largest temperature per probe, the heat balance."""
        return {
            "temperature_max_k": BY_NAME,
            "thermal_dose_cem43_min": BY_NAME,
            "time_above_45c_s": BY_NAME,
            "time_above_50c_s": BY_NAME,
            "necrosis_volume_m3": dict.fromkeys(self.damage, NUMBER),
            "probe_temperature_max_k": dict.fromkeys(self.probes, NUMBER),
            "heat_balance_rel_error": NUMBER,
        }

    def check_geometry(self, geometry: GeometryKind, where: str) -> None:
        """Each probe's boundary exists, or its point lies in the bone."""
        boundaries = geometry.boundary_names()
        for name, probe in self.probes.items():
            if isinstance(probe, SurfaceProbe):
                if boundaries is not None and probe.boundary not in boundaries:
                    raise ValueError(
                        f"{where}.probes.{name}.boundary: '{probe.boundary}' is not a boundary "
                        f"of geometry '{geometry.kind}'; it has: {', '.join(sorted(boundaries))}"
                    )
            elif geometry.contains(probe, 0.0) is False:
                mm = ", ".join(f"{1e3 * c:g}" for c in probe)
                raise ValueError(
                    f"{where}.probes.{name}: the point [{mm}] mm is not in the bone of geometry "
                    f"'{geometry.kind}'"
                )

    def injected_temperature(self, syringe_temperature: float | None) -> float:
        """Temperature (K) of the cement entering the bone: cement_temperature, else the
        syringe temperature of cure kinetics, else room temperature (22 C)."""
        if self.cement_temperature is not None:
            return self.cement_temperature
        return syringe_temperature if syringe_temperature is not None else ROOM_TEMPERATURE
