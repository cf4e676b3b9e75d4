"""Scenario sections `bone` and `marrow`: the porous medium and the displaced fluid."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from sim.scenario.base import Section
from sim.units import PERMEABILITY, Viscosity, to_si

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


class Marrow(Section):
    """Bone marrow: Newtonian, 0.04-0.14 Pa·s (Bryant 1989; Zhong & Akkus 2011)."""

    viscosity: Viscosity


__all__ = [
    "Bone",
    "CoreyRelativePermeability",
    "LinearRelativePermeability",
    "Marrow",
    "RegionProperties",
]
