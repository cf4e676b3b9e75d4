"""Phase mobilities and the fractional flow of cement, for a cement viscosity per point.

lambda_c = k_rc(S) / mu_c, lambda_m = k_rm(S) / mu_m, lambda_t = lambda_c + lambda_m,
f = lambda_c / lambda_t. Units: mobility 1/(Pa·s), viscosity Pa·s, f dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.physics.relative_permeability import Corey


@dataclass
class Mobility:
    """Two-phase mobilities with relative permeabilities `kr` and marrow viscosity `mu_m` (Pa·s)."""

    kr: Corey
    mu_m: float

    def total(self, s: np.ndarray, mu_c: np.ndarray | float) -> np.ndarray:
        """Total mobility lambda_t (1/(Pa·s))."""
        return self.kr.cement(s) / mu_c + self.kr.marrow(s) / self.mu_m

    def fractional(self, s: np.ndarray, mu_c: np.ndarray | float) -> np.ndarray:
        """Fractional flow of cement f(S) (-)."""
        lc = self.kr.cement(s) / mu_c
        return lc / (lc + self.kr.marrow(s) / self.mu_m)

    def d_fractional(self, s: np.ndarray, mu_c: np.ndarray | float) -> np.ndarray:
        """df/dS (-)."""
        lc, lm = self.kr.cement(s) / mu_c, self.kr.marrow(s) / self.mu_m
        dlc, dlm = self.kr.d_cement(s) / mu_c, self.kr.d_marrow(s) / self.mu_m
        return (dlc * lm - lc * dlm) / (lc + lm) ** 2

    def inflection(self, mu_c: np.ndarray | float) -> np.ndarray:
        """Saturation of the inflection point of f(S) for each viscosity (NaN where f has none).

        Tabulated over the viscosity ratio M = mu_c / mu_m (f depends on S and M only), once
        per process for each relative permeability and marrow viscosity.
        """
        log_m, s_infl = _inflection_table(self.kr, self.mu_m)
        return np.interp(np.log10(np.asarray(mu_c) / self.mu_m), log_m, s_infl)


@lru_cache(maxsize=32)
def _inflection_table(kr: Corey, mu_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The inflection saturation of f(S) against log10 M on -6..10 (NaN where f has none),
    from the sign changes of the second differences of f on 20001 saturations (read only)."""
    mobility = Mobility(kr, mu_m)
    log_m = np.linspace(-6.0, 10.0, 321)
    s = np.linspace(1e-4, 1.0 - 1e-4, 20001)
    out = np.full(log_m.shape, np.nan)
    for k, lm in enumerate(log_m):
        f = mobility.fractional(s, mu_m * 10.0**lm)
        d2 = np.diff(f, 2)
        scale = np.abs(d2).max()
        # ignore round-off (|d2| ~ 1e-16 where f is linear) and compare the signs of
        # consecutive significant values, so that a flip across small values is found
        keep = np.nonzero(np.abs(d2) > max(1e-9 * scale, 1e-13))[0]
        flips = np.nonzero(np.sign(d2[keep[:-1]]) * np.sign(d2[keep[1:]]) < 0)[0]
        if len(flips):
            i, j = keep[flips[0]], keep[flips[0] + 1]
            out[k] = 0.5 * (s[i + 1] + s[j + 1])  # d2[i] is centred at s[i + 1]
    log_m.flags.writeable = False
    out.flags.writeable = False
    return log_m, out
