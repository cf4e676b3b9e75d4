"""Cement viscosity as a function of age since mixing (curing), for Newtonian cement."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.scenario.materials import ConstantViscosity, ExponentialViscosity, TabulatedViscosity

ViscosityOfAge = Callable[[float], float]


def viscosity_of_age(
    law: ConstantViscosity | ExponentialViscosity | TabulatedViscosity,
) -> ViscosityOfAge:
    """mu_c(age): viscosity (Pa·s) at `age` (s since mixing) for the scenario's law."""
    if isinstance(law, ConstantViscosity):
        mu = law.viscosity
        return lambda age: mu
    if isinstance(law, ExponentialViscosity):

        def exponential(age: float) -> float:
            mu = law.viscosity * np.exp((age - law.reference_age) / law.time_constant)
            return float(mu if law.set_viscosity is None else min(mu, law.set_viscosity))

        return exponential
    assert law.points is not None
    ages = np.array([p[0] for p in law.points])
    log_mu = np.log(np.array([p[1] for p in law.points]))
    return lambda age: float(np.exp(np.interp(age, ages, log_mu)))
