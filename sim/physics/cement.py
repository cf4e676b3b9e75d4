"""The cement as the solver sees it: rheology law + curing law + set point.

`CementModel` turns the scenario's cement into: the apparent viscosity for a shear rate and
a cure factor (capped at the set viscosity), the rheology at a given age (a tabulated flow
index replaces n) and the cure factor of cement still in the syringe. The factor of cement in
the bone comes from the curing component (sim.components.curing): uniform for laws of the
age, per point from the transported degree of cure for cure kinetics.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.physics.curing import AgeCuring, CureKinetics
from sim.physics.rheology import Newtonian, Rheology
from sim.physics.rheology.porous_closure import PorousClosure
from sim.scenario.cement import Cement

Curing = AgeCuring | CureKinetics


class CementModel:
    """Apparent viscosity of the cement in the bone and in the syringe (Pa·s)."""

    def __init__(self, spec: Cement) -> None:
        self.spec = spec
        self.law: Rheology = spec.rheology.build()
        self.curing: Curing = spec.curing.build()
        self.set_viscosity = spec.set_viscosity
        self.closure = PorousClosure(
            getattr(spec.rheology, "closure", "christopher_middleman"),
            getattr(spec.rheology, "shift_factor", None),
        )

    @property
    def newtonian(self) -> bool:
        """True if the viscosity does not depend on the shear rate."""
        return isinstance(self.law, Newtonian)

    def law_at(self, age: float) -> Rheology:
        """The rheology at `age` (a tabulated flow index replaces n)."""
        n = self.curing.flow_index(age)
        return self.law if n is None else replace(self.law, n=n)  # type: ignore[type-var]

    def syringe_factor(self, age: float) -> float:
        """Cure factor of cement kept in the syringe until `age` (s)."""
        return self.curing.syringe_factor(age)

    def viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float, age: float
    ) -> np.ndarray:
        """Apparent viscosity (Pa·s), capped at the set viscosity."""
        mu = self.law_at(age).apparent_viscosity(shear_rate, factor)
        if self.set_viscosity is not None:
            mu = np.minimum(mu, self.set_viscosity)
        return mu
