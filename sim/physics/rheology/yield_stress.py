"""Herschel-Bulkley (Bingham for n = 1) cement, regularised after Papanastasiou (1987).

tau = tau_y + K gamma_dot^n above the yield stress, no flow below. The regularised apparent
viscosity mu = tau_y (1 - exp(-gamma_dot / gamma_r)) / gamma_dot + K gamma_dot^(n-1) is smooth
and tends to tau_y / gamma_r + ... at rest, so the solver sees a very viscous fluid where the
pressure gradient is below the threshold instead of a singular one.
(Papanastasiou TC, J. Rheol. 31:385, 1987.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HerschelBulkley:
    """yield_stress tau_y: Pa; consistency K: Pa·s^n; regularisation_rate gamma_r: 1/s."""

    yield_stress: float
    consistency: float
    n: float = 1.0
    regularisation_rate: float = 1e-3
    min_shear_rate: float = 1e-6

    @property
    def flow_index(self) -> float:
        return self.n

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        f = np.asarray(factor, dtype=float)
        rate = np.maximum(np.asarray(shear_rate, dtype=float), self.min_shear_rate)
        plastic = -np.expm1(-rate / self.regularisation_rate) / rate
        return f * (self.yield_stress * plastic + self.consistency * rate ** (self.n - 1.0))
