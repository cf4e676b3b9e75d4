"""Effective shear rate of cement in a porous medium from its Darcy velocity.

    gamma_dot = alpha * (3n + 1) / (4n) * |u| / sqrt(k_u phi)

with k_u = u.K.u / |u|^2 the permeability along the flow. This is the capillary-bundle
(Christopher-Middleman family) closure: for a bundle of straight tubes of radius
R = sqrt(8 k / phi) it is the wall shear rate of power-law tube flow with alpha = sqrt(2);
tortuous media need a larger shift factor alpha (reported 1-15). References: Christopher RH,
Middleman S, Ind. Eng. Chem. Fundam. 4:422 (1965); Sochi T, "Non-Newtonian flow in porous
media", Polymer 51:5007 (2010), section on the shift factor.

The total Darcy velocity is used (not the cement phase flux), so that the cement arriving in a
marrow-filled pore shears at the local flow rate.
"""

from __future__ import annotations

import numpy as np

CAPILLARY_BUNDLE_SHIFT = float(np.sqrt(2.0))


def porous_shear_rate(
    velocity: np.ndarray,
    permeability: np.ndarray,
    porosity: np.ndarray,
    flow_index: float,
    shift_factor: float = CAPILLARY_BUNDLE_SHIFT,
) -> np.ndarray:
    """Shear rate (1/s) per cell from Darcy velocity (cells, 3) in m/s, permeability tensors
    (cells, 3, 3) in m², porosity (cells,)."""
    speed2 = np.einsum("ci,ci->c", velocity, velocity)
    k_along = np.einsum("ci,cij,cj->c", velocity, permeability, velocity)
    k_mean = np.trace(permeability, axis1=1, axis2=2) / 3.0
    k_u = np.where(speed2 > 0.0, k_along / np.where(speed2 > 0.0, speed2, 1.0), k_mean)
    n = flow_index
    return shift_factor * (3 * n + 1) / (4 * n) * np.sqrt(speed2) / np.sqrt(k_u * porosity)
