"""Thermal damage of tissue from its temperature history.

- Thermal dose in cumulative equivalent minutes at 43 C (Sapareto SA, Dewey WC, Int J Radiat
  Oncol Biol Phys 10:787, 1984): CEM43 = int R^(43 - T) dt with T in C, R = 0.5 at and above
  43 C and 0.25 below; in minutes.
- Arrhenius damage integral (Henriques FC, Arch Pathol 43:489, 1947; Moritz AR, Henriques FC,
  Am J Pathol 23:695, 1947): Omega = int A exp(-E / (R T)) dt, Omega = 1 taken as necrosis.

Both are integrated over a step with the trapezoidal rule between the temperatures at its
ends. Temperatures in K, times in s.
"""

from __future__ import annotations

import numpy as np

from sim.physics.curing import GAS_CONSTANT

CELSIUS = 273.15  # K at 0 C


def cem43_rate(temperature: np.ndarray) -> np.ndarray:
    """d CEM43 / dt (min/s) at `temperature` (K)."""
    t_c = np.asarray(temperature) - CELSIUS
    r = np.where(t_c >= 43.0, 0.5, 0.25)
    return r ** (43.0 - t_c) / 60.0


def arrhenius_rate(
    temperature: np.ndarray, frequency_factor: float, activation_energy: float
) -> np.ndarray:
    """d Omega / dt (1/s) at `temperature` (K); A in 1/s, E in J/mol."""
    return frequency_factor * np.exp(-activation_energy / (GAS_CONSTANT * np.asarray(temperature)))


def trapezoid(rate_old: np.ndarray, rate_new: np.ndarray, dt: float) -> np.ndarray:
    """Increment over a step of `dt` (s) from the rates at its two ends."""
    return 0.5 * dt * (rate_old + rate_new)
