"""Anderson acceleration of a fixed-point iteration (the Picard loop on the viscosity)."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI


class Anderson:
    """Anderson acceleration of depth 1 for a fixed-point iteration x <- G(x) (secant
    extrapolation of the residual G(x) - x; Walker & Ni, SIAM J. Numer. Anal. 49:1715, 2011).
    Collective: the dot products are reduced over the communicator."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, x: np.ndarray, gx: np.ndarray) -> np.ndarray:
        f = gx - x
        if self.previous is None:
            self.previous = (gx, f)
            return gx
        g_old, f_old = self.previous
        df = f - f_old
        num = self.comm.allreduce(float(f @ df), op=MPI.SUM)
        den = self.comm.allreduce(float(df @ df), op=MPI.SUM)
        gamma = num / den if den > 0 else 0.0
        self.previous = (gx, f)
        return gx - gamma * (gx - g_old)
