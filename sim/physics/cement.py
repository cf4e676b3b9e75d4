"""The cement as the solver sees it: rheology law + curing + set point.

`CementModel` turns the scenario's cement into: the apparent viscosity for a shear rate and
a cure factor (capped at the set viscosity), the factor of cement still in the syringe at a
given age, and the factor of cement in the bone (uniform for age-based curing laws; per
point, from the transported degree of cure, for cure kinetics).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.physics.curing import CureKinetics, ExponentialCuring, NoCuring, TabulatedCuring
from sim.physics.rheology import (
    CarreauYasuda,
    Cross,
    HerschelBulkley,
    Newtonian,
    PowerLaw,
    Rheology,
)
from sim.physics.rheology.porous_closure import PorousClosure
from sim.scenario.cement import (
    BinghamRheology,
    CarreauYasudaRheology,
    Cement,
    CrossRheology,
    CureKineticsSpec,
    ExponentialCuringSpec,
    HerschelBulkleyRheology,
    NewtonianRheology,
    PowerLawRheology,
    TabulatedCuringSpec,
)

Curing = NoCuring | ExponentialCuring | TabulatedCuring | CureKinetics


def rheology_law(spec: object) -> Rheology:
    """The law a scenario's rheology section describes (at its reference state)."""
    if isinstance(spec, NewtonianRheology):
        return Newtonian(spec.viscosity)  # type: ignore[arg-type]
    if isinstance(spec, PowerLawRheology):
        return PowerLaw(spec.consistency, spec.n, spec.min_shear_rate)  # type: ignore[arg-type]
    if isinstance(spec, CarreauYasudaRheology):
        return CarreauYasuda(
            spec.viscosity,
            spec.n,
            spec.time_constant,
            spec.a,  # type: ignore[arg-type]
            spec.infinite_viscosity,
        )
    if isinstance(spec, CrossRheology):
        return Cross(spec.viscosity, spec.n, spec.time_constant, spec.infinite_viscosity)  # type: ignore[arg-type]
    if isinstance(spec, HerschelBulkleyRheology):
        return HerschelBulkley(
            spec.yield_stress,
            spec.consistency,
            spec.n,  # type: ignore[arg-type]
            spec.regularisation_rate,
        )
    if isinstance(spec, BinghamRheology):
        return HerschelBulkley(
            spec.yield_stress,
            spec.viscosity,
            1.0,  # type: ignore[arg-type]
            spec.regularisation_rate,
        )
    raise TypeError(f"unknown rheology {spec!r}")


def curing_law(spec: object) -> Curing:
    """The curing law a scenario's curing section describes."""
    if isinstance(spec, ExponentialCuringSpec):
        return ExponentialCuring(spec.reference_age, spec.time_constant)
    if isinstance(spec, TabulatedCuringSpec):
        table = np.array(spec.points)
        n = tuple(table[:, 2]) if table.shape[1] == 3 else None
        return TabulatedCuring(tuple(table[:, 0]), tuple(table[:, 1]), spec.reference_age, n)
    if isinstance(spec, CureKineticsSpec):
        return CureKinetics(**spec.model_dump(exclude={"law"}))
    return NoCuring()


class CementModel:
    """Apparent viscosity of the cement in the bone and in the syringe (Pa·s)."""

    def __init__(self, spec: Cement) -> None:
        self.spec = spec
        self.law = rheology_law(spec.rheology)
        self.curing = curing_law(spec.curing)
        self.set_viscosity = spec.set_viscosity
        self.closure = PorousClosure(
            getattr(spec.rheology, "closure", "christopher_middleman"),
            getattr(spec.rheology, "shift_factor", None),
        )

    @property
    def newtonian(self) -> bool:
        """True if the viscosity does not depend on the shear rate."""
        return isinstance(self.law, Newtonian)

    @property
    def kinetic(self) -> bool:
        """True if the cement's state depends on its temperature history (cure kinetics)."""
        return isinstance(self.curing, CureKinetics)

    def law_at(self, age: float) -> Rheology:
        """The rheology at `age` (a tabulated flow index replaces n)."""
        n = self.curing.flow_index(age) if not self.kinetic else None  # type: ignore[union-attr]
        return self.law if n is None else replace(self.law, n=n)  # type: ignore[type-var]

    def syringe_factor(self, age: float) -> float:
        """Cure factor of cement kept in the syringe until `age` (s)."""
        if isinstance(self.curing, CureKinetics):
            alpha = self.curing.syringe_conversion(age)
            return float(self.curing.factor_of(alpha, self.curing.syringe_temperature))
        return self.curing.factor(age)

    def bone_factor(self, age: float, conversion: np.ndarray | None = None) -> np.ndarray | float:
        """Cure factor of cement in the bone: uniform, or from the degree of cure per point."""
        if isinstance(self.curing, CureKinetics):
            assert conversion is not None
            return self.curing.factor_of(conversion, self.curing.bone_temperature)
        return self.curing.factor(age)

    def viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float, age: float
    ) -> np.ndarray:
        """Apparent viscosity (Pa·s), capped at the set viscosity."""
        mu = self.law_at(age).apparent_viscosity(shear_rate, factor)
        if self.set_viscosity is not None:
            mu = np.minimum(mu, self.set_viscosity)
        return mu
