"""Scenario sections `bone` and `marrow`: the porous medium and the displaced fluid."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BeforeValidator, Field, field_validator, model_validator

from sim.scenario.base import Section
from sim.scenario.bone_ct import CTSection
from sim.scenario.bone_heterogeneity import Heterogeneity
from sim.units import (
    PERMEABILITY,
    PERMEABILITY_LIMITS,
    PERMEABILITY_RANGE,
    PERMEABILITY_SPAN,
    Viscosity,
    between,
    in_permeability_range,
    to_si,
)

Porosity = Annotated[float, Field(gt=0, lt=1)]
Saturation = Annotated[float, Field(ge=0, le=1)]


class AnisotropicPermeability(Section):
    """Transversely isotropic permeability: `along_axis` (m²) along the principal `axis`
    (cranio-caudal by default), ratio x along_axis across it (Baroud 2004: AP/SI about 0.78).
    """

    along_axis: Annotated[
        float,
        BeforeValidator(lambda v: to_si(v, PERMEABILITY)),
        Field(gt=0),
        between(*PERMEABILITY_LIMITS, PERMEABILITY_SPAN),
    ]
    ratio: Annotated[float, Field(gt=0, le=10)] = 0.78
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)

    @field_validator("axis")
    @classmethod
    def _unit(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        norm = float(np.linalg.norm(v))
        if not norm > 0:
            raise ValueError(f"the axis must be a nonzero vector, got {list(v)}")
        return tuple(float(c) / norm for c in v)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _across_in_range(self) -> AnisotropicPermeability:
        across = self.ratio * self.along_axis
        if not in_permeability_range(across):
            raise ValueError(
                f"the value across the axis, ratio x along_axis = {across:g} m^2, "
                f"{PERMEABILITY_RANGE}"
            )
        return self


def _permeability(value: object) -> object:
    """A scalar permeability, three principal values along x, y, z (m²), or an anisotropic
    specification {along_axis, ratio, axis}."""
    if isinstance(value, dict):
        return AnisotropicPermeability.model_validate(value)
    if isinstance(value, list | tuple):
        if len(value) != 3:
            raise ValueError(
                "permeability is one value or three principal values [kx, ky, kz]; "
                f"got {len(value)} values"
            )
        return tuple(to_si(v, PERMEABILITY) for v in value)  # type: ignore[return-value]
    return to_si(value, PERMEABILITY)


PermeabilitySpec = Annotated[
    float | tuple[float, float, float] | AnisotropicPermeability, BeforeValidator(_permeability)
]


def _check_permeability_range(k: object) -> object:
    if isinstance(k, AnisotropicPermeability):  # checked by its own validators
        return k
    if isinstance(k, tuple):
        bad = [
            f"k{axis} = {v:g} m^2"
            for axis, v in zip("xyz", k, strict=True)
            if not in_permeability_range(v)
        ]
        if bad:
            raise ValueError(f"every principal value {PERMEABILITY_RANGE}, got {', '.join(bad)}")
    elif not in_permeability_range(k):  # type: ignore[arg-type]
        raise ValueError(PERMEABILITY_RANGE)
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
        return v if v is None else _check_permeability_range(v)


class Bone(Section):
    """Trabecular bone as a rigid porous medium.

    porosity: pore volume fraction (-); permeability: intrinsic permeability (m²), a scalar,
    the principal values along x, y, z, or {along_axis, ratio, axis}; ct: properties mapped
    from a CT volume (where it applies; porosity and permeability elsewhere or as fallback);
    heterogeneity: spatially correlated random variation on top of those (where it applies);
    regions: overrides per tagged region, applied last; initial_saturation: cement saturation
    at t = 0 (0: marrow-filled pores).
    Vertebral cancellous permeability 4.45 ± 1.72e-8 m² cranio-caudal (Baroud 2004);
    osteoporotic porosity 0.85-0.95.
    """

    porosity: Porosity
    permeability: PermeabilitySpec
    relative_permeability: RelativePermeability = LinearRelativePermeability(model="linear")
    regions: dict[str, RegionProperties] = {}
    initial_saturation: Saturation = 0.0
    ct: CTSection | None = None
    heterogeneity: Heterogeneity | None = None

    @field_validator("permeability")
    @classmethod
    def _positive(cls, v: float | tuple[float, ...]) -> float | tuple[float, ...]:
        return _check_permeability_range(v)


class Marrow(Section):
    """Bone marrow: Newtonian, 0.04-0.14 Pa·s (Bryant 1989; Zhong & Akkus 2011); any pore
    fluid between water and 1e5 Pa·s (Habib et al. 2010's bench needed 160 Pa·s)."""

    viscosity: Annotated[
        Viscosity, between(1e-4, 1e5, "1e-4 and 1e5 Pa*s (marrow: 0.04-0.14 Pa*s)")
    ]


__all__ = [
    "Bone",
    "CoreyRelativePermeability",
    "LinearRelativePermeability",
    "Marrow",
    "RegionProperties",
]
