"""Cement rheology: apparent viscosity as a pure function of shear rate and a cure factor.

Each law gives apparent_viscosity(gamma_dot, factor) in Pa·s for shear rates gamma_dot in
1/s; `factor` (>= 0, from curing) multiplies the law's consistency parameters (viscosity,
consistency, yield stress). In the porous bone the shear rate comes from the Darcy velocity
through the closure in :mod:`sim.physics.rheology.porous_closure`; in the cannula from tube
flow (:mod:`sim.physics.cannula`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sim.physics.rheology.carreau_yasuda import CarreauYasuda
from sim.physics.rheology.cross import Cross
from sim.physics.rheology.newtonian import Newtonian
from sim.physics.rheology.power_law import PowerLaw
from sim.physics.rheology.yield_stress import HerschelBulkley


class Rheology(Protocol):
    """A generalised-Newtonian law."""

    @property
    def flow_index(self) -> float:
        """Power-law index n used by the shear-rate closures (1 for Newtonian)."""
        ...

    def apparent_viscosity(
        self, shear_rate: np.ndarray, factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """Apparent viscosity (Pa·s) at `shear_rate` (1/s) with consistency scaled by `factor`."""
        ...


__all__ = ["CarreauYasuda", "Cross", "HerschelBulkley", "Newtonian", "PowerLaw", "Rheology"]
