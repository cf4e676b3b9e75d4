"""Closures for a generalised-Newtonian cement in a porous medium: the effective shear rate.

A closure turns the Darcy velocity u of a cell into an effective shear rate

    gamma_eff = alpha(n) |u| / sqrt(k_u phi),

with k_u = u.K.u / |u|^2 the permeability along the flow and phi the porosity; the cement's
apparent viscosity in Darcy's law is then its rheology law at that rate, mu(gamma_eff). For
a power-law cement (mu = K gamma^(n-1)) this is u = (k / mu_D) |grad p| with
mu_D = K alpha^(n-1) (|u| / sqrt(k phi))^(n-1). The closures differ in alpha(n):

``christopher_middleman``
    alpha = (12 / sqrt(150)) ((3n + 1) / (4n))^(n / (n - 1)). Reproduces exactly the
    Blake-Kozeny-Carman power-law law of Christopher & Middleman (1965),
    u^n = (k / H) |grad p|, H = (K / 12) (9 + 3/n)^n (150 k phi)^((1 - n) / 2)
    (Christopher RH, Middleman S, Ind. Eng. Chem. Fundam. 4:422, 1965; as written in Sochi T,
    "Non-Newtonian flow in porous media", Polymer 51:5007, 2010, eqs. 11-12). The default.
``capillary_bundle``
    alpha = sqrt(2) ((3n + 1) / (4n))^(n / (n - 1)). A bundle of straight capillaries of
    radius R = sqrt(8 k / phi) carrying pore velocity u / phi: the Darcy law is exactly the
    power-law Hagen-Poiseuille (Rabinowitsch-Mooney) flow of the tubes. It differs from
    Christopher-Middleman only by the tortuosity (25/12) that Blake-Kozeny builds in.
``shift_factor``
    alpha = the given shift factor, the same for every n (Sochi 2010, section 3.1: an
    empirical factor, reported between about 1 and 15, calibrated to one medium).

Both named closures are of the shift-factor form with an alpha that follows n as it changes
with cure; a fixed shift factor reproduces them for one n only. The n/(n - 1) power tends to
exp(-1/4) at n = 1 (a Newtonian cement does not depend on the shear rate at all). For laws
other than the power law (Cross, Carreau-Yasuda, Herschel-Bulkley) the law's flow index n is
used in alpha(n), an approximation outside the power-law range.

The total Darcy velocity is used (not the cement phase flux), so that the cement arriving in
a marrow-filled pore shears at the local flow rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: 12 / sqrt(150): Blake-Kozeny (Christopher & Middleman 1965)
BLAKE_KOZENY = 12.0 / np.sqrt(150.0)
#: sqrt(2): straight capillaries of radius sqrt(8 k / phi)
STRAIGHT_CAPILLARIES = float(np.sqrt(2.0))
CLOSURES = ("christopher_middleman", "capillary_bundle", "shift_factor")


def rabinowitsch_shift(n: float) -> float:
    """((3n + 1) / (4n))^(n / (n - 1)) (-): the power-law tube-flow factor of the shift
    factor, exp(-1/4) in the Newtonian limit n -> 1."""
    if abs(n - 1.0) < 1e-9:
        return float(np.exp(-0.25))
    return float(((3 * n + 1) / (4 * n)) ** (n / (n - 1)))


@dataclass(frozen=True)
class PorousClosure:
    """A porous-media shear-rate closure: `name` one of CLOSURES; `shift_factor` (-) is the
    fixed alpha of the ``shift_factor`` closure (ignored by the others)."""

    name: str = "christopher_middleman"
    shift_factor: float | None = None

    def __post_init__(self) -> None:
        if self.name not in CLOSURES:
            raise ValueError(f"unknown closure {self.name!r}; expected one of {CLOSURES}")
        if self.name == "shift_factor" and not (self.shift_factor or 0.0) > 0.0:
            raise ValueError("the shift_factor closure needs a shift factor > 0")

    def alpha(self, n: float) -> float:
        """Shift factor alpha (-) for flow index n."""
        if self.name == "christopher_middleman":
            return BLAKE_KOZENY * rabinowitsch_shift(n)
        if self.name == "capillary_bundle":
            return STRAIGHT_CAPILLARIES * rabinowitsch_shift(n)
        return float(self.shift_factor)  # type: ignore[arg-type]

    def shear_rate(
        self,
        velocity: np.ndarray,
        permeability: np.ndarray,
        porosity: np.ndarray,
        flow_index: float,
    ) -> np.ndarray:
        """Effective shear rate (1/s) per cell from Darcy velocity (cells, 3) in m/s,
        permeability tensors (cells, 3, 3) in m², porosity (cells,)."""
        speed2 = np.einsum("ci,ci->c", velocity, velocity)
        k_along = np.einsum("ci,cij,cj->c", velocity, permeability, velocity)
        k_mean = np.trace(permeability, axis1=1, axis2=2) / 3.0
        k_u = np.where(speed2 > 0.0, k_along / np.where(speed2 > 0.0, speed2, 1.0), k_mean)
        return self.alpha(flow_index) * np.sqrt(speed2) / np.sqrt(k_u * porosity)
