"""Needles in the bone: inlet surfaces, the cannula's pressure drop, the syringe pressure.

The syringe pressure is the tip pressure (mean pressure on the inlet surface) plus the
pressure drop of the cement in the cannula, with the rheology of the cement in the syringe.
For a pressure-controlled needle the rate Q solves
    p_syringe = p_tip(Q) + dp_cannula(Q),
where p_tip is linear in the rates for a fixed mobility (superposition, see
sim.flow.pressure); dp_cannula is monotone in Q, so the root is bracketed and unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from sim.physics.cannula import cannula_pressure_drop
from sim.physics.rheology import Rheology
from sim.protocol import NeedleProtocol


@dataclass
class NeedleInlet:
    """A needle in the mesh: inlet kind ("cavity": the surface of a meshed cavity, "source":
    the boxes within the inner radius of the tip), cavity area (m², 0 for a source), inflow
    shares per owned vertex (sum 1 over all ranks), tip (m), cannula radius and length (m)."""

    name: str
    kind: str
    area: float
    weights: np.ndarray
    tip: np.ndarray
    radius: float
    length: float
    protocol: NeedleProtocol

    def cannula_pressure_drop(
        self, rate: float, law: Rheology, factor: float, cap: float | None
    ) -> float:
        """Pressure drop (Pa) of cement of rheology `law` x `factor` at `rate` (m³/s)."""
        if rate <= 0.0:
            return 0.0
        return cannula_pressure_drop(law, rate, self.length, self.radius, factor, cap)


def pressure_controlled_rate(
    syringe_pressure: float,
    tip_at_zero: float,
    tip_per_rate: float,
    cannula_drop: Callable[[float], float],
    max_rate: float | None,
) -> float:
    """Rate (m³/s) that holds `syringe_pressure` (Pa) for a tip pressure
    tip_at_zero + tip_per_rate * Q (Pa) and a cannula drop cannula_drop(Q) (Pa)."""

    def excess(q: float) -> float:
        return tip_at_zero + tip_per_rate * q + cannula_drop(q) - syringe_pressure

    if excess(0.0) >= 0.0:
        return 0.0
    if max_rate is not None and excess(max_rate) <= 0.0:
        return max_rate
    high = (syringe_pressure - tip_at_zero) / tip_per_rate
    if max_rate is not None:
        high = min(high, max_rate)
    return float(brentq(excess, 0.0, high, xtol=1e-20, rtol=1e-13))
