"""Newtonian cement: mu = viscosity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Newtonian:
    """viscosity: Pa·s."""

    viscosity: float

    @property
    def flow_index(self) -> float:
        return 1.0

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        return np.broadcast_to(
            self.viscosity * np.asarray(factor, dtype=float), np.shape(shear_rate)
        ).copy()
