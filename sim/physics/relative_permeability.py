"""Relative permeabilities of cement (wetting order irrelevant: no capillarity) and marrow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.scenario.materials import CoreyRelativePermeability, LinearRelativePermeability


@dataclass(frozen=True)
class Corey:
    """k_rc = S^a, k_rm = (1 - S)^b; a = b = 1 is the linear model."""

    a: float = 1.0
    b: float = 1.0

    def cement(self, s: np.ndarray) -> np.ndarray:
        return s**self.a

    def marrow(self, s: np.ndarray) -> np.ndarray:
        return (1.0 - s) ** self.b

    def d_cement(self, s: np.ndarray) -> np.ndarray:
        return self.a * s ** (self.a - 1.0)

    def d_marrow(self, s: np.ndarray) -> np.ndarray:
        return -self.b * (1.0 - s) ** (self.b - 1.0)


def relative_permeability(spec: LinearRelativePermeability | CoreyRelativePermeability) -> Corey:
    """The law a scenario asks for."""
    if isinstance(spec, CoreyRelativePermeability):
        return Corey(spec.cement_exponent, spec.marrow_exponent)
    return Corey(1.0, 1.0)
