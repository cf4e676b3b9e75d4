"""Scenario sections `bone`, `cement` and `marrow`: the porous medium and the two fluids."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from sim.scenario.base import Section
from sim.units import PERMEABILITY, TIME, VISCOSITY, Time, Viscosity, to_si

Porosity = Annotated[float, Field(gt=0, lt=1)]
Saturation = Annotated[float, Field(ge=0, le=1)]


def _permeability(value: object) -> float | tuple[float, float, float]:
    """A scalar permeability or three principal values along x, y, z (m²)."""
    if isinstance(value, list | tuple):
        if len(value) != 3:
            raise ValueError(
                "permeability is one value or three principal values [kx, ky, kz]; "
                f"got {len(value)} values"
            )
        return tuple(to_si(v, PERMEABILITY) for v in value)  # type: ignore[return-value]
    return to_si(value, PERMEABILITY)


PermeabilitySpec = Annotated[float | tuple[float, float, float], BeforeValidator(_permeability)]


def _check_positive_permeability(k: float | tuple[float, ...]) -> float | tuple[float, ...]:
    if isinstance(k, tuple):
        bad = [f"k{axis} = {v:g} m^2" for axis, v in zip("xyz", k, strict=True) if v <= 0]
        if bad:
            raise ValueError(f"every principal value must be > 0 m^2, got {', '.join(bad)}")
    elif k <= 0:
        raise ValueError("must be > 0 m^2")
    return k


class LinearRelativePermeability(Section):
    """k_rc = S, k_rm = 1 - S."""

    model: Literal["linear"]


class CoreyRelativePermeability(Section):
    """k_rc = S^a, k_rm = (1 - S)^b (Corey); no residual saturations, no capillarity."""

    model: Literal["corey"]
    cement_exponent: Annotated[float, Field(ge=1, le=6)] = 2.0
    marrow_exponent: Annotated[float, Field(ge=1, le=6)] = 2.0


RelativePermeability = Annotated[
    LinearRelativePermeability | CoreyRelativePermeability, Field(discriminator="model")
]


class RegionProperties(Section):
    """Bone properties that replace the defaults inside one tagged region."""

    porosity: Porosity | None = None
    permeability: PermeabilitySpec | None = None

    @field_validator("permeability")
    @classmethod
    def _positive(cls, v: float | tuple[float, ...] | None) -> float | tuple[float, ...] | None:
        return v if v is None else _check_positive_permeability(v)


class Bone(Section):
    """Trabecular bone as a rigid porous medium.

    porosity: pore volume fraction (-); permeability: intrinsic permeability (m²), a scalar or
    the principal values along x, y, z; regions: overrides per tagged region;
    initial_saturation: cement saturation at t = 0 (0: marrow-filled pores).
    Vertebral cancellous permeability 4.45 ± 1.72e-8 m² cranio-caudal (Baroud 2004);
    osteoporotic porosity 0.85-0.95.
    """

    porosity: Porosity
    permeability: PermeabilitySpec
    relative_permeability: RelativePermeability = LinearRelativePermeability(model="linear")
    regions: dict[str, RegionProperties] = {}
    initial_saturation: Saturation = 0.0

    @field_validator("permeability")
    @classmethod
    def _positive(cls, v: float | tuple[float, ...]) -> float | tuple[float, ...]:
        return _check_positive_permeability(v)


class ConstantViscosity(Section):
    """Newtonian cement of fixed viscosity (Pa·s)."""

    law: Literal["constant"]
    viscosity: Viscosity


class ExponentialViscosity(Section):
    """Curing cement: mu(t) = viscosity * exp((t - reference_age) / time_constant), capped.

    viscosity: value at `reference_age` (time since mixing); time_constant: e-folding time of
    the rise; set_viscosity: optional cap where the cement is considered set (Nicholas 2007:
    about 75e3 Pa·s). Viscosity in Pa·s, times in s.
    """

    law: Literal["exponential"]
    viscosity: Viscosity
    reference_age: Annotated[Time, Field(ge=0)]
    time_constant: Annotated[Time, Field(gt=0)]
    set_viscosity: Viscosity | None = None

    @model_validator(mode="after")
    def _cap_above(self) -> ExponentialViscosity:
        if self.set_viscosity is not None and self.set_viscosity <= self.viscosity:
            raise ValueError(
                f"set_viscosity ({self.set_viscosity:g} Pa*s) must exceed viscosity "
                f"({self.viscosity:g} Pa*s)"
            )
        return self


def _read_viscosity_csv(path: Path) -> list[tuple[float, float]]:
    """Rows of a CSV with a header naming units, e.g. ``age_s,viscosity_pa_s``."""
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    if len(rows) < 3:
        raise ValueError(f"{path}: need a header and at least two rows")
    header = [h.strip().lower() for h in rows[0]]
    if header != ["age_s", "viscosity_pa_s"]:
        raise ValueError(
            f"{path}: header must be 'age_s,viscosity_pa_s' (SI units), got {','.join(rows[0])!r}"
        )
    try:
        return [(float(a), float(b)) for a, b in rows[1:]]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class TabulatedViscosity(Section):
    """Viscosity against cement age from rheometry, interpolated linearly in log(viscosity).

    points: pairs [age, viscosity] with units (e.g. ["4 min", "100 Pa*s"]), or file: a CSV with
    header ``age_s,viscosity_pa_s``. Ages must increase strictly, viscosities be > 0 and
    non-decreasing (curing cement does not thin with age). Outside the table the end values
    are held.
    """

    law: Literal["table"]
    points: list[tuple[Time, Viscosity]] | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _load_file(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("file") is not None and data.get("points") is None:
            path = Path(data["file"])
            if not path.is_file():
                raise ValueError(f"viscosity table file {str(path)!r} does not exist")
            return {**data, "points": _read_viscosity_csv(path)}
        return data

    @field_validator("points", mode="before")
    @classmethod
    def _pairs(cls, v: object) -> object:
        if isinstance(v, list):
            return [
                (to_si(p[0], TIME), to_si(p[1], VISCOSITY))
                if isinstance(p, list | tuple) and len(p) == 2
                else p
                for p in v
            ]
        return v

    @model_validator(mode="after")
    def _table(self) -> TabulatedViscosity:
        if not self.points or len(self.points) < 2:
            raise ValueError("a viscosity table needs at least two [age, viscosity] points")
        ages = np.array([p[0] for p in self.points])
        mus = np.array([p[1] for p in self.points])
        if np.any(np.diff(ages) <= 0):
            raise ValueError(f"table ages must increase strictly, got {ages.tolist()} s")
        if np.any(np.diff(mus) < 0):
            raise ValueError(
                f"table viscosities must not decrease with age (curing), got {mus.tolist()} Pa*s"
            )
        return self


ViscosityLaw = Annotated[
    ConstantViscosity | ExponentialViscosity | TabulatedViscosity, Field(discriminator="law")
]


class Cement(Section):
    """PMMA bone cement: apparent viscosity as a function of age since mixing."""

    viscosity: ViscosityLaw


class Marrow(Section):
    """Bone marrow: Newtonian, 0.04-0.14 Pa·s (Bryant 1989; Zhong & Akkus 2011)."""

    viscosity: Viscosity


__all__ = [
    "Bone",
    "Cement",
    "ConstantViscosity",
    "CoreyRelativePermeability",
    "ExponentialViscosity",
    "LinearRelativePermeability",
    "Marrow",
    "RegionProperties",
    "TabulatedViscosity",
]
