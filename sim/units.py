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
from pint.pint_eval import tokenizer
from pint.util import string_preprocessor
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
    "in_si",
    "quantity",
    "to_si",
]


@cache
def registry() -> pint.UnitRegistry:
    """The one pint registry of the package (created on first use)."""
    return pint.UnitRegistry()


#: the longest text read as a quantity (a value with a unit is a few dozen characters)
MAX_QUANTITY_TEXT = 100
#: the largest exponent (in magnitude) in a quantity: 10^-30 covers every physical value
MAX_EXPONENT = 30


_POWER_OF_POWER = (
    "a power of a power is not read: write each exponent as one number of at most "
    f"{MAX_EXPONENT}, e.g. 'm^2'"
)


def _exponent(tokens: list[str], i: int) -> int:
    """The index after the exponent that starts at ``tokens[i]`` (right after ``**``): a
    signed number, or a signed number or fraction in parentheses (pint writes ``m⁻²`` as
    ``m**(-2)``). ValueError if it is anything else or larger than MAX_EXPONENT."""
    if tokens[i : i + 1] == ["("]:
        end = tokens.index(")", i) + 1 if ")" in tokens[i:] else len(tokens)
        text = "".join(tokens[i + 1 : end - 1])
    else:
        end = min(i + (2 if tokens[i : i + 1] in (["-"], ["+"]) else 1), len(tokens))
        text = "".join(tokens[i:end])
    numerator, _, denominator = text.partition("/")
    try:
        value = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not abs(value) <= MAX_EXPONENT:
        raise ValueError(
            f"an exponent must be a number of at most {MAX_EXPONENT} in magnitude, such as "
            f"the 2 of 'm^2'; got '{text}'"
        )
    return end


def _check_bounded(text: str) -> None:
    """ValueError unless pint can evaluate `text` quickly: at most MAX_QUANTITY_TEXT
    characters, exponents that are numbers of at most MAX_EXPONENT, and no power of a power.

    pint evaluates the text as arithmetic, with integer powers computed exactly: ``9**9**9``
    would not end. The tokens are pint's own, after its own rewriting (``m²`` is ``m**(2)``).
    """
    if len(text) > MAX_QUANTITY_TEXT:
        raise ValueError(f"longer than {MAX_QUANTITY_TEXT} characters ({len(text)})")
    try:
        tokens = [t.string for t in tokenizer(string_preprocessor(text)) if t.string]
    except Exception as exc:  # tokenize errors of unbalanced text
        raise ValueError(str(exc)) from None
    powered = [False]  # per open parenthesis: whether the group holds a power
    closed_powered = False  # the group just closed held a power
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "**":
            if i and tokens[i - 1] == ")" and closed_powered:
                raise ValueError(_POWER_OF_POWER)
            i = _exponent(tokens, i + 1)
            if tokens[i : i + 1] == ["**"]:
                raise ValueError(_POWER_OF_POWER)
            powered[-1] = True
            continue
        if token == "(":
            powered.append(False)
        elif token == ")" and len(powered) > 1:
            closed_powered = powered.pop()
            powered[-1] = powered[-1] or closed_powered
        i += 1


def quantity(text: str) -> Any:
    """pint's reading of `text`: a Quantity, or a plain number when it has no unit.

    ValueError saying what is wrong when it cannot be read, including text that pint could not
    evaluate quickly (too long, large exponents or powers of powers: see _check_bounded).
    """
    _check_bounded(text)
    try:
        return registry().Quantity(text.strip())
    except Exception as exc:  # pint also lets TokenError, ZeroDivisionError, OverflowError out
        raise ValueError(str(exc)) from None


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
#: permeabilities of porous media a pressure solve in double precision handles (m²)
PERMEABILITY_LIMITS = (1e-18, 1e-3)
PERMEABILITY_SPAN = (
    f"{PERMEABILITY_LIMITS[0]:g} and {PERMEABILITY_LIMITS[1]:g} m^2 "
    "(trabecular bone: 1e-11 to 1e-7 m^2)"
)
PERMEABILITY_RANGE = f"must lie between {PERMEABILITY_SPAN}"


def in_permeability_range(k: float) -> bool:
    """Whether k (m²) lies within PERMEABILITY_LIMITS."""
    return PERMEABILITY_LIMITS[0] <= k <= PERMEABILITY_LIMITS[1]


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
        raise ValueError(
            f"{value!r} is not a finite number; expected {dim.name} (e.g. '{dim.example}')"
        )
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
    try:
        q = quantity(value)
    except ValueError as exc:
        raise ValueError(
            f"cannot read {value!r} as {dim.name} (e.g. '{dim.example}'): {exc}"
        ) from None
    if not isinstance(q, pint.Quantity):
        return _finite(q, value, dim)
    expected = registry().get_dimensionality(dim.pint_dim)
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


def in_si(dim: Dimension) -> BeforeValidator:
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


Length = Annotated[float, in_si(LENGTH)]
Volume = Annotated[float, in_si(VOLUME)]
Time = Annotated[float, in_si(TIME)]
Pressure = Annotated[float, in_si(PRESSURE)]
Viscosity = Annotated[float, in_si(VISCOSITY), Field(gt=0)]
Permeability = Annotated[float, in_si(PERMEABILITY), Field(gt=0)]
FlowRate = Annotated[float, in_si(FLOW_RATE)]
Conductance = Annotated[float, in_si(CONDUCTANCE)]
Temperature = Annotated[float, in_si(TEMPERATURE)]


def between(low: float, high: float, shown: str) -> AfterValidator:
    """A check that an SI value lies in [low, high]; the error names the range as `shown`
    (e.g. "0.1 mm and 1 m"; the loader adds the value as written)."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must lie between {shown}")
        return value

    return AfterValidator(check)


#: temperatures of a patient, a bench or curing cement (K)
TEMPERATURE_LIMITS = (200.0, 600.0)
#: a temperature (K) in TEMPERATURE_LIMITS
BodyTemperature = Annotated[
    Temperature,
    between(
        *TEMPERATURE_LIMITS,
        f"{TEMPERATURE_LIMITS[0]:g} and {TEMPERATURE_LIMITS[1]:g} K "
        f"({TEMPERATURE_LIMITS[0] - 273.15:g} to {TEMPERATURE_LIMITS[1] - 273.15:g} degC)",
    ),
]


#: an angle in radians; written with a unit ("40 deg") or as a plain number in radians
Angle = Annotated[float, in_si(ANGLE)]
Dimensionless = Annotated[float, in_si(DIMENSIONLESS)]
Point = Annotated[tuple[float, float, float], BeforeValidator(point_to_si)]
Density = Annotated[float, in_si(DENSITY), Field(gt=0)]


def metres_per(unit: str) -> float:
    """Metres in one `unit` of length ("mm" -> 1e-3); ValueError naming a unit that is not
    a length."""
    return to_si(f"1 {unit}", LENGTH)


def _length_unit(unit: str) -> str:
    metres_per(unit)
    return unit


#: the name of a length unit (coordinates of a file): checked, kept as written
LengthUnit = Annotated[str, AfterValidator(_length_unit)]
