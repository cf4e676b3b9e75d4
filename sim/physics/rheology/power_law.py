"""Power-law (Ostwald-de Waele) cement: mu = K gamma_dot^(n - 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    """consistency K: Pa·s^n; n: flow index (n < 1 shear-thinning); min_shear_rate: 1/s.

    Below `min_shear_rate` the viscosity is held (the power law diverges at rest).
    """

    consistency: float
    n: float
    min_shear_rate: float = 1e-3

    @property
    def flow_index(self) -> float:
        return self.n

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        rate = np.maximum(np.asarray(shear_rate, dtype=float), self.min_shear_rate)
        return np.asarray(factor, dtype=float) * self.consistency * rate ** (self.n - 1.0)
