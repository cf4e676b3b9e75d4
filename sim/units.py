"""Units at the edges: quantities in scenario files may carry units, everything inside is SI.

A scenario value is either a plain number, taken to be in SI units, or a string with a unit
that pint understands (``"3 mL"``, ``"3 mL/min"``, ``"100 Pa*s"``, ``"2 min"``,
``"1e-9 m^2"``). Each field declares the physical dimension it expects; a value with another
dimension is rejected with a message naming the expected dimension and an example.

Points may be written as a list of three values (numbers in metres or strings with units) or
as one string with a common unit: ``"[4, -6, 0] mm"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import pint
from pydantic import AfterValidator, BeforeValidator, Field

__all__ = [
    "Angle",
    "Conductance",
    "Dimension",
    "Dimensionless",
    "FlowRate",
    "Length",
    "Permeability",
    "Point",
    "Pressure",
    "Temperature",
    "Time",
    "Viscosity",
    "Volume",
    "quantity",
    "to_si",
]


@cache
def registry() -> pint.UnitRegistry:
    """The one pint registry of the package (created on first use)."""
    return pint.UnitRegistry()


@dataclass(frozen=True)
class Dimension:
    """A physical dimension a scenario field expects.

    name: how the dimension is called in messages; pint_dim: pint dimensionality string;
    example: a valid value to show in messages.
    """

    name: str
    pint_dim: str
    example: str


LENGTH = Dimension("a length", "[length]", "12 mm")
VOLUME = Dimension("a volume", "[length]**3", "3 mL")
TIME = Dimension("a time", "[time]", "2 min")
PRESSURE = Dimension("a pressure", "[mass]/[length]/[time]**2", "1 kPa")
VISCOSITY = Dimension("a dynamic viscosity", "[mass]/[length]/[time]", "100 Pa*s")
PERMEABILITY = Dimension("a permeability (an area)", "[length]**2", "1e-9 m^2")
FLOW_RATE = Dimension("a volumetric flow rate", "[length]**3/[time]", "3 mL/min")
CONDUCTANCE = Dimension(
    "a hydraulic conductance per area (flow rate per area per pressure)",
    "[length]**2*[time]/[mass]",
    "1e-9 m/(Pa*s)",
)
TEMPERATURE = Dimension("a temperature", "[temperature]", "37 degC")
ANGLE = Dimension("an angle", "[]", "40 deg")
DIMENSIONLESS = Dimension("a dimensionless number", "[]", "0.9")
DENSITY = Dimension("a density", "[mass]/[length]**3", "1100 kg/m^3")


def _canonical(x: float) -> float:
    """Round to 15 significant digits so that '3 mL' and 3e-6 give the same float."""
    return float(f"{x:.15g}")


def _finite(x: Any, value: Any, dim: Dimension) -> float:
    """`x` as a canonical float; ValueError if it is infinite, NaN or too large for a float."""
    try:
        f = float(x)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ValueError(f"{value!r} is not finite; expected {dim.name} (e.g. '{dim.example}')")
    return _canonical(f)


def to_si(value: Any, dim: Dimension) -> float:
    """Convert a scenario value to a float in SI units of dimension ``dim``.

    Numbers are taken as SI already. Strings are parsed by pint. Raises ValueError with a
    message naming the expected dimension when the value has another one or cannot be parsed.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {dim.name} such as '{dim.example}', got a boolean")
    if isinstance(value, int | float):
        return _finite(value, value, dim)
    if not isinstance(value, str):
        raise ValueError(f"expected {dim.name} such as '{dim.example}', got {value!r}")
    try:  # a bare number written as a string (PyYAML reads 1e-9 as a string): SI
        number = float(value.strip())
    except ValueError:
        pass
    else:
        return _finite(number, value, dim)
    ureg = registry()
    try:
        q = ureg.Quantity(value.strip())
    except Exception as exc:  # pint also lets TokenError, ZeroDivisionError, OverflowError out
        raise ValueError(
            f"cannot read {value!r} as {dim.name} (e.g. '{dim.example}'): {exc}"
        ) from None
    if not isinstance(q, pint.Quantity):
        return _finite(q, value, dim)
    expected = ureg.get_dimensionality(dim.pint_dim)
    if q.dimensionality != expected:
        got = "dimensionless" if q.dimensionless else str(q.dimensionality)
        raise ValueError(
            f"{value!r} has the dimension {got}, expected {dim.name} (e.g. '{dim.example}')"
        )
    try:
        magnitude = q.to_base_units().magnitude
    except OverflowError:
        magnitude = math.inf
    return _finite(magnitude, value, dim)


def quantity(dim: Dimension) -> BeforeValidator:
    """The validator that reads a number (SI) or a string with units of `dim` into SI."""
    return BeforeValidator(lambda v: to_si(v, dim))


_POINT_RE = re.compile(r"^\s*[\[(](?P<body>[^\])]*)[\])]\s*(?P<unit>.*)$")


def point_to_si(value: Any) -> tuple[float, float, float]:
    """Convert ``[x, y, z]`` (numbers in m or strings with units) or ``"[x, y, z] mm"`` to SI."""
    if isinstance(value, str):
        m = _POINT_RE.match(value)
        if m is None:
            raise ValueError(f"cannot read {value!r} as a point; write e.g. '[4, -6, 0] mm'")
        parts = [p for p in m.group("body").replace(",", " ").split() if p]
        unit = m.group("unit").strip()
        value = [f"{p} {unit}" if unit else p for p in parts]
        value = [v if unit else float(v) for v in value]
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"a point needs three coordinates, e.g. '[4, -6, 0] mm'; got {value!r}")
    x, y, z = (to_si(v, LENGTH) for v in value)
    return (x, y, z)


Length = Annotated[float, quantity(LENGTH)]
Volume = Annotated[float, quantity(VOLUME)]
Time = Annotated[float, quantity(TIME)]
Pressure = Annotated[float, quantity(PRESSURE)]
Viscosity = Annotated[float, quantity(VISCOSITY), Field(gt=0)]
Permeability = Annotated[float, quantity(PERMEABILITY), Field(gt=0)]
FlowRate = Annotated[float, quantity(FLOW_RATE)]
Conductance = Annotated[float, quantity(CONDUCTANCE)]
Temperature = Annotated[float, quantity(TEMPERATURE)]
#: an angle in radians; written with a unit ("40 deg") or as a plain number in radians
Angle = Annotated[float, quantity(ANGLE)]
Dimensionless = Annotated[float, quantity(DIMENSIONLESS)]
Point = Annotated[tuple[float, float, float], BeforeValidator(point_to_si)]
Density = Annotated[float, quantity(DENSITY), Field(gt=0)]


def metres_per(unit: str) -> float:
    """Metres in one `unit` of length ("mm" -> 1e-3); ValueError naming a unit that is not
    a length."""
    return to_si(f"1 {unit}", LENGTH)


def _length_unit(unit: str) -> str:
    metres_per(unit)
    return unit


#: the name of a length unit (coordinates of a file): checked, kept as written
LengthUnit = Annotated[str, AfterValidator(_length_unit)]
