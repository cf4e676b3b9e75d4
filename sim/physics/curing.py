"""Curing: how the cement's consistency rises with its age since mixing.

Every law gives a dimensionless factor F >= 0 that multiplies the consistency parameters of
the rheology (viscosity, consistency, yield stress); F = 1 at the reference state.

- `NoCuring`: F = 1.
- `ExponentialCuring`: F = exp((age - reference_age) / time_constant).
- `TabulatedCuring`: F(age) = v(age) / v(reference_age), v a rheometer curve of viscosity (or
  power-law consistency) against age, interpolated linearly in log v, held beyond its ends;
  optionally the flow index n(age) too.
- `CureKinetics`: degree of cure alpha from autocatalytic Kamal-Sourour kinetics with
  Arrhenius rate constants, d alpha/dt = (k1 + k2 alpha^m)(1 - alpha)^p,
  k_i = A_i exp(-E_i / (R T)), and a Castro-Macosko viscosity rise with a temperature shift,
  F = exp(E_eta / R (1/T - 1/T_ref)) (alpha_g / (alpha_g - alpha))^(C1 + C2 alpha).
  (Kamal MR, Sourour S, Polym. Eng. Sci. 13:59, 1973; Castro JM, Macosko CW, AIChE J.
  28:250, 1982.) The cement cures at the syringe temperature until it is injected and at the
  bone temperature afterwards, so its state depends on where it is: the problem transports
  alpha with the cement.

Ages and times in s, temperatures in K, energies in J/mol.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

GAS_CONSTANT = 8.314462618  # J/(mol K)
#: the most RK4 substeps of one cure update
MAX_SUBSTEPS = 1000


class AgeCuring:
    """A law of the cement's age alone: the same factor in the syringe and in the bone."""

    def factor(self, age: float) -> float:
        raise NotImplementedError

    def syringe_factor(self, age: float) -> float:
        """Cure factor of cement kept in the syringe until `age` (s)."""
        return self.factor(age)

    def flow_index(self, age: float) -> float | None:
        """The flow index n at `age` (s) where the law changes it, else None."""
        return None


@dataclass(frozen=True)
class NoCuring(AgeCuring):
    """The cement does not change during the injection."""

    def factor(self, age: float) -> float:
        return 1.0


@dataclass(frozen=True)
class ExponentialCuring(AgeCuring):
    """F = exp((age - reference_age) / time_constant); ages and time constant in s."""

    reference_age: float
    time_constant: float

    def factor(self, age: float) -> float:
        return float(np.exp((age - self.reference_age) / self.time_constant))


@dataclass(frozen=True)
class TabulatedCuring(AgeCuring):
    """Rheometer curve: values (Pa·s or Pa·s^n) at ages (s); F = v(age) / v(reference_age)."""

    ages: tuple[float, ...]
    values: tuple[float, ...]
    reference_age: float
    flow_indices: tuple[float, ...] | None = None

    def value(self, age: float) -> float:
        return float(np.exp(np.interp(age, self.ages, np.log(self.values))))

    def factor(self, age: float) -> float:
        return self.value(age) / self.value(self.reference_age)

    def flow_index(self, age: float) -> float | None:
        if self.flow_indices is None:
            return None
        return float(np.interp(age, self.ages, self.flow_indices))


@dataclass(frozen=True)
class CureKinetics:
    """Autocatalytic cure with a Castro-Macosko viscosity rise (see module docstring)."""

    k1_prefactor: float
    k1_activation_energy: float
    k2_prefactor: float
    k2_activation_energy: float
    m: float
    p: float
    gel_conversion: float
    c1: float
    c2: float
    viscosity_activation_energy: float
    reference_temperature: float
    syringe_temperature: float
    bone_temperature: float
    initial_conversion: float = 0.0

    def rate_constants(self, temperature: float | np.ndarray) -> tuple[float, float]:
        """k1, k2 (1/s) at `temperature` (K)."""
        rt = GAS_CONSTANT * temperature
        return (
            self.k1_prefactor * np.exp(-self.k1_activation_energy / rt),
            self.k2_prefactor * np.exp(-self.k2_activation_energy / rt),
        )

    def cure_rate(self, alpha: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
        """d alpha / dt (1/s)."""
        k1, k2 = self.rate_constants(temperature)
        a = np.clip(alpha, 0.0, 1.0)
        return (k1 + k2 * a**self.m) * (1.0 - a) ** self.p

    def advance(self, alpha: np.ndarray, temperature: float | np.ndarray, dt: float) -> np.ndarray:
        """Degree of cure after `dt` (s) at constant `temperature` (K, one value or one per
        point; RK4, substeps of at most 0.005 in alpha where the cure is fastest, at most
        MAX_SUBSTEPS of them: where the cure would need more it is complete within a small
        part of the step, and alpha, kept in [0, 1], reaches 1 in a few substeps)."""
        a = np.array(alpha, dtype=float, copy=True)
        if dt <= 0.0:
            return a
        k1, k2 = self.rate_constants(temperature)
        max_rate = np.max((k1 + k2) * 1.0)  # bound of the rate on [0, 1] for m, p >= 0
        steps = int(np.clip(np.ceil(dt * max_rate / 0.005), 1, MAX_SUBSTEPS))
        h = dt / steps
        for _ in range(steps):
            r1 = self.cure_rate(a, temperature)
            r2 = self.cure_rate(a + 0.5 * h * r1, temperature)
            r3 = self.cure_rate(a + 0.5 * h * r2, temperature)
            r4 = self.cure_rate(a + h * r3, temperature)
            a = np.clip(a + h / 6.0 * (r1 + 2 * r2 + 2 * r3 + r4), 0.0, 1.0)
        return a

    def factor_of(self, alpha: np.ndarray | float, temperature: float | np.ndarray) -> np.ndarray:
        """Castro-Macosko factor with the Arrhenius temperature shift (inf at and past gel)."""
        a = np.asarray(alpha, dtype=float)
        shift = np.exp(
            self.viscosity_activation_energy
            / GAS_CONSTANT
            * (1.0 / temperature - 1.0 / self.reference_temperature)
        )
        gap = self.gel_conversion - a
        with np.errstate(divide="ignore", invalid="ignore"):
            rise = np.where(
                gap > 0.0,
                (self.gel_conversion / np.where(gap > 0, gap, 1.0)) ** (self.c1 + self.c2 * a),
                np.inf,
            )
        return shift * rise

    def syringe_conversion(self, age: float) -> float:
        """Degree of cure of cement kept in the syringe until `age` (s since mixing)."""
        return _syringe_conversion(self, age)

    def syringe_factor(self, age: float) -> float:
        """Cure factor of cement kept in the syringe (at the syringe temperature) until `age`."""
        alpha = self.syringe_conversion(age)
        return float(self.factor_of(alpha, self.syringe_temperature))

    def flow_index(self, age: float) -> float | None:
        """None: the kinetics scale the consistency only."""
        return None

    def isothermal_set_time(
        self, reference_value: float, set_value: float, temperature: float, t_max: float = 3600.0
    ) -> float:
        """Age (s) at which reference_value * F reaches set_value at constant temperature."""
        t, dt = 0.0, 1.0
        alpha = np.array([self.initial_conversion])
        while t < t_max:
            nxt = self.advance(alpha, temperature, dt)
            if reference_value * self.factor_of(nxt[0], temperature) >= set_value:
                lo, hi, a_lo = t, t + dt, alpha
                for _ in range(50):  # bisection within the step
                    mid = 0.5 * (lo + hi)
                    a_mid = self.advance(a_lo, temperature, mid - lo)
                    if reference_value * self.factor_of(a_mid[0], temperature) >= set_value:
                        hi = mid
                    else:
                        lo, a_lo = mid, a_mid
                return 0.5 * (lo + hi)
            t, alpha = t + dt, nxt
        raise ValueError(f"the cement does not set within {t_max:g} s at {temperature:g} K")


#: the cure in the syringe is integrated once from grid point to grid point of this spacing (s)
SYRINGE_GRID = 1.0


@lru_cache(maxsize=16)
def _syringe_grid(kinetics: CureKinetics) -> list[float]:
    """Degree of cure in the syringe at ages 0, SYRINGE_GRID, 2 SYRINGE_GRID, ... as far as
    asked for so far (extended in place by `_syringe_conversion`)."""
    return [kinetics.initial_conversion]


@lru_cache(maxsize=256)
def _syringe_conversion(kinetics: CureKinetics, age: float) -> float:
    """From the grid point at or below `age` (s): each call integrates less than one grid
    step, whatever the age (integrating from mixing took a quarter of the stepping time of a
    thermal run), and the value does not depend on which ages were asked before. Cached: the
    time loop asks for the same ages many times per step."""
    grid = _syringe_grid(kinetics)
    k = int(max(age, 0.0) // SYRINGE_GRID)
    while len(grid) <= k:
        grid.append(
            kinetics.advance(np.array([grid[-1]]), kinetics.syringe_temperature, SYRINGE_GRID)[0]
        )
    rest = max(age, 0.0) - k * SYRINGE_GRID
    return float(kinetics.advance(np.array([grid[k]]), kinetics.syringe_temperature, rest)[0])
