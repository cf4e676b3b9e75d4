"""Scenario section `bone.heterogeneity`: spatially correlated random porosity and permeability.

    bone:
      heterogeneity:
        seed: 7                          # required: one realisation per seed
        covariance: exponential          # exponential | gaussian | matern
        smoothness: 1.5                  # Matern nu (matern only)
        correlation_length: 3 mm         # or {along_axis: 4 mm, across: 2.5 mm, axis: [0, 0, 1]}
        bone_volume_fraction_cv: 0.3     # CV of BV/TV = 1 - porosity (log-normal)
        permeability: {law: kozeny_carman}   # or {law: power_law, exponent: 3}
        permeability_log_std: 0.0        # independent log-normal scatter of k
        trend: [{axis: [1, 0, 0], change: -0.2}]   # regional BV/TV variation
        regions: [anterior]              # where it applies (default: everywhere)
        porosity_limits: [0.05, 0.98]

BV/TV(x) = BV/TV_base(x) trend(x) exp(sigma g(x) - sigma²/2), sigma² = ln(1 + cv²), g a
unit-variance Gaussian random field (gstools); porosity = clip(1 - BV/TV); the permeability
tensor is scaled by law(phi) / law(phi_base) exp(s h(x) - s²/2) (sim.heterogeneity).

The defaults of `correlation_length` (3 mm) and `bone_volume_fraction_cv` (0.3) are
ESTIMATES: no published micro-CT variogram of vertebral cancellous bone was available to us.
3 mm is a few trabecular spacings (Tb.Sp about 0.7-1 mm in osteoporotic vertebrae). Anchors
for choosing values: Banse et al. 2001 (posterior vertebral cancellous density about 20 %
higher than anterior; the lower half 15-25 % less dense than the upper half: a `trend`);
Nauman, Fong & Keaveny 1999, Ann Biomed Eng 27:517 (vertebral permeability 2.68e-11 to
2.00e-8 m², longitudinal/transverse ratio 2.05); Baroud et al. 2004, J Biomech 37:189 (SI
4.45 ± 1.72e-8 m², AP 3.44 ± 1.26e-8 m²: a CV of about 0.4 between cores).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim.ct.density import DEFAULT_POROSITY_MAX, DEFAULT_POROSITY_MIN
from sim.scenario.base import Section
from sim.units import LENGTH, Length, to_si

#: Default correlation length (m): an estimate, a few trabecular spacings.
DEFAULT_CORRELATION_LENGTH = 3e-3
#: Default coefficient of variation of BV/TV: an estimate.
DEFAULT_BONE_VOLUME_FRACTION_CV = 0.3
#: Matern smoothness nu when none is given, and gstools' bounds of nu.
DEFAULT_SMOOTHNESS = 1.5
#: the largest standard deviation of ln k of the independent scatter
MAX_LOG_STD = 5.0
SMOOTHNESS_BOUNDS = (0.2, 30.0)


def _unit_vector(v: tuple[float, float, float]) -> tuple[float, float, float]:
    norm = float(np.linalg.norm(v))
    if not (math.isfinite(norm) and norm > 0):
        raise ValueError(f"the axis must be a finite nonzero vector, got {list(v)}")
    return tuple(float(c) / norm for c in v)  # type: ignore[return-value]


Direction = Annotated[tuple[float, float, float], AfterValidator(_unit_vector)]
PositiveLength = Annotated[Length, Field(gt=0)]


class AxialCorrelation(Section):
    """Transversely isotropic correlation: `along_axis` along `axis`, `across` it (m)."""

    along_axis: PositiveLength
    across: PositiveLength
    axis: Direction = (0.0, 0.0, 1.0)


def _correlation_length(value: object) -> object:
    """One correlation length (m), or {along_axis, across, axis}."""
    if isinstance(value, dict):
        return AxialCorrelation.model_validate(value)
    return to_si(value, LENGTH)


CorrelationLength = Annotated[float | AxialCorrelation, BeforeValidator(_correlation_length)]


class KozenyCarmanScaling(Section):
    """k follows porosity by Kozeny-Carman: k / k_base = KC(phi) / KC(phi_base),
    KC = phi³ / (1 - phi)² (the specific surface and Kozeny constant cancel)."""

    law: Literal["kozeny_carman"]


class PowerLawScaling(Section):
    """k follows porosity by a power law: k / k_base = (phi / phi_base)^exponent."""

    law: Literal["power_law"]
    exponent: Annotated[float, Field(ge=-20, le=20)]


PermeabilityScaling = Annotated[KozenyCarmanScaling | PowerLawScaling, Field(discriminator="law")]


class Trend(Section):
    """A linear regional variation of BV/TV: the factor goes from 1 - change/2 at the -axis
    end to 1 + change/2 at the +axis end of the heterogeneity regions' extent (mean 1).
    Banse 2001 (posterior denser than anterior by about 20 %): axis [1, 0, 0], change -0.2."""

    axis: Direction
    change: Annotated[float, Field(gt=-2, lt=2)]


class Heterogeneity(Section):
    """Spatially correlated random BV/TV and permeability, applied on top of the uniform or
    CT-derived properties where `regions` say (everywhere by default).

    seed: integer >= 0, one realisation per seed, the same on any number of MPI ranks;
    covariance: of the Gaussian field g (exponential, gaussian or matern with `smoothness`,
    the Matern nu); correlation_length: the integral scale of the correlation function
    (∫ rho(r) dr over r from 0 to ∞, m): rho(L) = e^-1 for the exponential model, e^(-pi/4)
    for the gaussian; one value, or {along_axis, across, axis}; bone_volume_fraction_cv:
    coefficient of variation of the log-normal BV/TV factor (-); permeability: how k follows
    the porosity; permeability_log_std: standard deviation of ln k of an independent scatter
    (-); trend: regional linear variations of BV/TV; regions: where it applies;
    porosity_limits: the porosity is clipped to them (-).
    """

    seed: Annotated[int, Field(ge=0)]
    covariance: Literal["exponential", "gaussian", "matern"] = "exponential"
    smoothness: Annotated[float, Field(ge=SMOOTHNESS_BOUNDS[0], le=SMOOTHNESS_BOUNDS[1])] | None = (
        None
    )
    correlation_length: CorrelationLength = DEFAULT_CORRELATION_LENGTH
    bone_volume_fraction_cv: float = DEFAULT_BONE_VOLUME_FRACTION_CV
    permeability: PermeabilityScaling = KozenyCarmanScaling(law="kozeny_carman")
    permeability_log_std: float = 0.0
    trend: list[Trend] = []
    regions: Annotated[list[str], Field(min_length=1)] | None = None
    porosity_limits: tuple[float, float] = (DEFAULT_POROSITY_MIN, DEFAULT_POROSITY_MAX)

    @model_validator(mode="before")
    @classmethod
    def _default_smoothness(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("covariance") == "matern":
            if data.get("smoothness") is None:
                return {**data, "smoothness": DEFAULT_SMOOTHNESS}
        return data

    @field_validator("bone_volume_fraction_cv", "permeability_log_std")
    @classmethod
    def _variance(cls, v: float, info: ValidationInfo) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(
                "must be a finite number >= 0 (it sets a variance: no negative variance, no NaN)"
            )
        if info.field_name == "permeability_log_std" and v > MAX_LOG_STD:
            raise ValueError(
                f"must be at most {MAX_LOG_STD:g} (a factor e^{MAX_LOG_STD:g} = "
                f"{math.exp(MAX_LOG_STD):.0f} in k per standard deviation)"
            )
        return v

    @field_validator("correlation_length")
    @classmethod
    def _positive(cls, v: float | AxialCorrelation) -> float | AxialCorrelation:
        if isinstance(v, float) and not v > 0:
            raise ValueError("must be > 0 m")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Heterogeneity:
        if self.smoothness is not None and self.covariance != "matern":
            raise ValueError(
                f"smoothness ({self.smoothness:g}) is the Matern nu: it applies only with "
                f"covariance: matern, not with covariance: {self.covariance}"
            )
        lo, hi = self.porosity_limits
        if not 0 < lo < hi < 1:
            raise ValueError(f"porosity_limits must satisfy 0 < min < max < 1, got {[lo, hi]}")
        return self

    @property
    def shortest_correlation_length(self) -> float:
        """The smallest correlation length in any direction (m)."""
        c = self.correlation_length
        return min(c.along_axis, c.across) if isinstance(c, AxialCorrelation) else c

    def resolution_problem(self, cell_sizes: tuple[float, float] | None) -> str | None:
        """An error message if the field is shorter than the finest cells (it would be
        aliased), None otherwise; cell_sizes: (finest, coarsest) cell size (m) or None."""
        length = self.shortest_correlation_length
        if cell_sizes is None or length >= cell_sizes[0]:
            return None
        return (
            f"bone.heterogeneity.correlation_length: {length * 1e3:.4g} mm is shorter than "
            f"the finest cells of the mesh ({cell_sizes[0] * 1e3:.4g} mm: geometry.mesh.size_tip "
            "or a column's cell spacing), so the random field would be aliased; use a longer "
            "correlation length or a finer mesh"
        )

    def resolution_warning(self, cell_sizes: tuple[float, float] | None) -> str | None:
        """A warning if the field is shorter than the coarsest cells (m), None otherwise."""
        length = self.shortest_correlation_length
        if cell_sizes is None or length >= cell_sizes[1]:
            return None
        return (
            f"bone.heterogeneity.correlation_length: {length * 1e3:.4g} mm is shorter than "
            f"the coarsest cells of the mesh ({cell_sizes[1] * 1e3:.4g} mm, size_max): there "
            "the random field is not resolved and varies from cell to cell"
        )


__all__ = [
    "AxialCorrelation",
    "Heterogeneity",
    "KozenyCarmanScaling",
    "PowerLawScaling",
    "Trend",
]
