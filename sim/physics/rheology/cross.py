"""Cross cement: mu = mu_inf + (mu_0 - mu_inf) / (1 + (lambda gamma_dot)^(1 - n))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cross:
    """viscosity mu_0 (zero shear), infinite_viscosity mu_inf: Pa·s; time_constant lambda: s."""

    viscosity: float
    n: float
    time_constant: float
    infinite_viscosity: float = 0.0

    @property
    def flow_index(self) -> float:
        return self.n

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        f = np.asarray(factor, dtype=float)
        x = (self.time_constant * np.asarray(shear_rate, dtype=float)) ** (1.0 - self.n)
        return f * (self.infinite_viscosity + (self.viscosity - self.infinite_viscosity) / (1 + x))
