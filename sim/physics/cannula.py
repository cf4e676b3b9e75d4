"""Pressure drop of cement flowing through the cannula (steady laminar tube flow).

`cannula_pressure_drop` picks, by the type of the law, a closed form (Newtonian, power law)
or the numerical integral for any other law.

Power law (Newtonian for n = 1, K = mu), from the Rabinowitsch-Mooney relation:

    dp = (2 K L / R) [((3n + 1) / n) Q / (pi R^3)]^n

For any generalised-Newtonian law the wall shear stress tau_w solves
Q = (pi R^3 / tau_w^3) int_0^tau_w tau^2 gamma_dot(tau) d tau, and dp = 2 tau_w L / R;
`tube_pressure_drop` does that numerically (Gauss-Legendre quadrature, bisection).
Units: Q m³/s, L and R m, dp Pa.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from sim.physics.rheology import Newtonian, PowerLaw, Rheology


def power_law_pressure_drop(
    rate: float, length: float, radius: float, consistency: float, n: float
) -> float:
    """Closed-form pressure drop (Pa) of a power-law fluid (n = 1: Newtonian, K = mu)."""
    if rate <= 0.0:
        return 0.0
    wall_rate = (3 * n + 1) / n * rate / (np.pi * radius**3)
    return 2 * consistency * length / radius * wall_rate**n


def _shear_rate_of_stress(
    stress_of_rate: Callable[[np.ndarray], np.ndarray], stress: np.ndarray
) -> np.ndarray:
    """Invert the monotone flow curve tau(gamma_dot) by bisection in log(gamma_dot)."""
    lo = np.full(stress.shape, -30.0)
    hi = np.full(stress.shape, 30.0)
    for _ in range(72):
        mid = 0.5 * (lo + hi)
        below = stress_of_rate(np.exp(mid)) < stress
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.exp(0.5 * (lo + hi))


def tube_pressure_drop(
    rate: float, length: float, radius: float, law: Rheology, factor: float = 1.0
) -> float:
    """Pressure drop (Pa) of any generalised-Newtonian law in a tube, by Rabinowitsch-Mooney."""
    if rate <= 0.0:
        return 0.0
    nodes, weights = np.polynomial.legendre.leggauss(64)

    def stress_of_rate(g: np.ndarray) -> np.ndarray:
        return law.apparent_viscosity(g, factor) * g

    def flow(tau_w: float) -> float:
        tau = 0.5 * tau_w * (nodes + 1.0)
        gamma = _shear_rate_of_stress(stress_of_rate, tau)
        integral = 0.5 * tau_w * np.sum(weights * tau**2 * gamma)
        return np.pi * radius**3 / tau_w**3 * integral

    lo, hi = -10.0, 12.0  # log10 of the wall stress (Pa)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        if flow(10.0**mid) < rate:
            lo = mid
        else:
            hi = mid
    return 2.0 * 10.0 ** (0.5 * (lo + hi)) * length / radius


@dataclass(frozen=True)
class _Capped:
    """A law whose apparent viscosity is capped at `cap` (Pa·s)."""

    law: Rheology
    cap: float

    @property
    def flow_index(self) -> float:
        return self.law.flow_index

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        return np.minimum(self.law.apparent_viscosity(shear_rate, factor), self.cap)


@singledispatch
def cannula_pressure_drop(
    law: Rheology, rate: float, length: float, radius: float, factor: float, cap: float | None
) -> float:
    """Pressure drop (Pa) of cement of rheology `law` with consistency x `factor` and apparent
    viscosity capped at `cap` (Pa·s, None: no cap) at `rate` (m³/s) through a tube of `length`
    and `radius` (m). Any law: the numerical integral; closed forms are registered below."""
    effective = law if cap is None else _Capped(law, cap)
    return tube_pressure_drop(rate, length, radius, effective, factor)


@cannula_pressure_drop.register
def _(
    law: Newtonian, rate: float, length: float, radius: float, factor: float, cap: float | None
) -> float:
    mu = law.viscosity * factor
    mu = mu if cap is None else min(mu, cap)
    return power_law_pressure_drop(rate, length, radius, mu, 1.0)


@cannula_pressure_drop.register
def _(
    law: PowerLaw, rate: float, length: float, radius: float, factor: float, cap: float | None
) -> float:
    # the cap acts only near the axis, where the shear rate vanishes; when it starts below a
    # thousandth of the wall shear rate its effect on the drop is negligible
    wall = (3 * law.n + 1) / law.n * rate / (np.pi * radius**3)
    if cap is None or law.apparent_viscosity(np.array([1e-3 * wall]), factor)[0] < cap:
        return power_law_pressure_drop(rate, length, radius, law.consistency * factor, law.n)
    return tube_pressure_drop(rate, length, radius, _Capped(law, cap), factor)
