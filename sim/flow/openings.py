"""Openings of the bone: resistive patches and veins as lumped Robin boundaries, optionally
shut below an opening pressure.

Vertex i of an opening lets out q_i = g_i A_i (p_i - p_ref,i) (m³/s), A_i = int phi_i ds its
share of the opening's area (m²) and g_i its conductance per area (m/(Pa·s)):

- resistive: g = the route's conductance, p_ref = the pressure outside;
- vein: Poiseuille flow of the fluid at the opening, g = G lambda_t(S_i, mu_c,i) with
  G = count pi d^4 / (128 L A_route) (m³) and lambda_t the total mobility (1/(Pa·s)).

With an `opening_pressure` dp_open the route is a threshold path (a cortical crack or
fracture gap that the pressure forces open, a valved or collapsed vein): q_i = g_i A_i
max(0, p_i - p_out - dp_open). Such a vertex is shut (g_i = 0) while p_i <= p_ref,i =
p_out + dp_open. The outflow law is continuous and monotone in p, so the set of open
vertices is unique; `reopen` updates it from a pressure field and reports whether it
changed, and the caller solves again until it does not (a primal-dual active-set
iteration). Every vertex starts open, so that the first solve is never one without an exit
(a singular system); later steps start from the previous step's set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from sim.flow.pressure import Robin


@dataclass
class Openings:
    """The Robin openings of a mesh: `robin` is what the pressure solver reads (conductance
    of open vertices, reference pressures); `fixed` the conductance of resistive vertices,
    `veins` (local vertices, G in m³) of each vein route, `thresholded` the vertices of routes
    with an opening pressure, `is_open` which vertices let fluid out (all per local vertex)."""

    robin: Robin
    fixed: np.ndarray
    veins: list[tuple[np.ndarray, float]]
    thresholded: np.ndarray
    is_open: np.ndarray

    def update(self, total_mobility: np.ndarray) -> None:
        """Conductances for the fluid now at the openings (total mobility per local vertex,
        1/(Pa·s)), zero where shut."""
        g = self.fixed.copy()
        for dofs, geometric in self.veins:
            g[dofs] = geometric * total_mobility[dofs]
        self.robin.conductance[:] = np.where(self.is_open, g, 0.0)

    def reopen(self, pressure: np.ndarray, comm: MPI.Comm) -> bool:
        """Open the threshold vertices whose pressure (Pa, per local vertex, ghosts up to date)
        exceeds their reference, shut the others; True if any vertex changed (collective)."""
        new = ~self.thresholded | (pressure > self.robin.pressure)
        changed = bool(np.any(new != self.is_open))
        self.is_open[:] = new
        return comm.allreduce(changed, op=MPI.LOR)
