"""Carreau-Yasuda cement: mu = mu_inf + (mu_0 - mu_inf) (1 + (lambda gamma_dot)^a)^((n-1)/a).

a = 2 is the Carreau model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CarreauYasuda:
    """viscosity mu_0, infinite_viscosity mu_inf: Pa·s; time_constant lambda: s; a, n: -."""

    viscosity: float
    n: float
    time_constant: float
    a: float = 2.0
    infinite_viscosity: float = 0.0

    @property
    def flow_index(self) -> float:
        return self.n

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        f = np.asarray(factor, dtype=float)
        x = (self.time_constant * np.asarray(shear_rate, dtype=float)) ** self.a
        shape = (1.0 + x) ** ((self.n - 1.0) / self.a)
        return f * (self.infinite_viscosity + (self.viscosity - self.infinite_viscosity) * shape)
