"""Ordered nonlinear Gauss-Seidel sweeps for the implicit upwind saturation balance.

The balance of box i (sim.flow.transport) depends on its own saturation and, through the
inflows, on the saturations of the boxes upstream of it. Solved vertex by vertex from upstream
to downstream, each equation is one scalar monotone equation with the upstream values already
final: one sweep in flow order solves the whole system exactly when the flux graph has no
cycles (Natvig & Lie 2008, J. Comput. Phys. 227:10108; Kwok & Tchelepi 2007, J. Comput. Phys.
227:706). The order: the strongly connected components of the graph of positive fluxes
(Tarjan's algorithm), upstream first. The box method's fluxes on tetrahedra are not all
downhill, so the graph has a few cycles (170 of up to 263 vertices among 26 589 cells of the
sphere scenario); the vertices of a cycle, in reverse postorder of the depth-first search
(only its back edges run backward), are solved by Gauss-Seidel until nothing moves, which
converges because each balance is increasing in its own saturation and
non-increasing in the others (an M-function; Ortega & Rheinboldt 1970, 13.5). Under MPI each
rank sweeps its own vertices with its neighbours' last values (block Gauss-Seidel) and
exchanges them after every sweep, until the residual is below the tolerance. A cycle
downstream of a neighbour's value that changed in the last exchange is then settled only to a
tenth of the last sweep's change, as the neighbours' values are off by about that; the others
are settled to round-off, and so is every cycle in the first sweep: where the flow into a
rank's cycle comes from its own vertices (most of them, with sim.geometry.partition), one
sweep makes it final.
How many sweeps a step takes is set by how often the moving front crosses the ranks'
boundaries back and forth: sim.geometry.partition orders the cells along the flow.

Newton's method needs one iteration per layer of vertices the front advances in a step,
because f'(S) ~ 0 ahead of the front; a sweep moves the front through every layer at once.
The sweeps run in compiled C (sim/flow/ordered_transport.c), built once per machine
(sim.flow.compiled).
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from sim.flow.box_flux import BoxFluxes
from sim.flow.compiled import kernel
from sim.physics.mobility import Mobility

DECLARATIONS = """
void ordered_fractional(int64_t n, const double *s, const double *inv_mu_c, double inv_mu_m,
                        double a, double b, double *f);
int64_t ordered_components(int64_t n, const int64_t *indptr, const int32_t *cols,
                           const double *flux, int64_t *order, int64_t *first, int64_t *work);
double ordered_sweep(int64_t n, int64_t count, const int64_t *first, const int64_t *order,
                     const int64_t *indptr, const int32_t *cols, const double *inflow,
                     const double *out, const double *acc, const double *s_old,
                     const double *q_in, const double *inv_mu_c, double inv_mu_m, double a,
                     double b, int64_t max_passes, double settled, int all,
                     uint8_t *exposed, const uint8_t *above, uint8_t *changed, double *s,
                     double *f_col);
double ordered_residual(int64_t n, const int64_t *indptr, const int32_t *cols,
                        const double *inflow, const double *out, const double *acc,
                        const double *s_old, const double *q_in, const double *s,
                        const double *f_col, double tolerance, uint8_t *above);
"""

#: Gauss-Seidel passes over a cycle of the flux graph within one sweep, at most
_CYCLE_PASSES = 100
#: under MPI, the passes over a cycle end once they change no saturation by more than this
#: fraction of the largest change of the last sweep (all ranks) if a neighbour's changed value
#: is upstream of them. Stop 27, on the graph partition, when this rule held for every cycle:
#: the cube of benchmarks/two_phase_benchmark.py to 100 s on 2 ranks, 331 sweeps in
#: 0.38-0.42 s against 322 in 0.51-0.54 s when every cycle was settled to round-off
_SETTLED = 0.1
#: a sweep (or Newton update) that moves no saturation by more than this has reached the
#: round-off of the equations: where f' is large (1e5 at S = 1 for a cement 1e5 times as
#: viscous as the marrow with linear relative permeabilities) one unit in the last place of
#: S leaves a residual far above the tolerance
ROUND_OFF = 1e-14


class OrderedSweeps:
    """Nonlinear Gauss-Seidel sweeps in flow order over the owned vertices of `fluxes`, for
    the fractional flow of `mobility` (Corey exponents a, b >= 1)."""

    def __init__(self, fluxes: BoxFluxes, mobility: Mobility) -> None:
        module = kernel("ordered_transport.c", DECLARATIONS)
        self._ffi, self._lib = module.ffi, module.lib
        self.fx = fluxes
        self.mobility = mobility
        self._cols = np.ascontiguousarray(fluxes.cols, dtype=np.int32)
        self._max = np.zeros(2)  # the largest residual and change, reduced over the ranks
        self.seconds = 0.0  # wall time of `solve` (compiled code, but for the exchanges)

    def _p(self, array: np.ndarray, kind: str) -> object:
        """A C pointer to a contiguous array (kept alive by the caller)."""
        return self._ffi.from_buffer(f"{kind}[]", array)

    def fractional(self, s: np.ndarray, inv_mu_c: np.ndarray) -> np.ndarray:
        """f(S) computed as the sweeps compute it."""
        s = np.ascontiguousarray(s, dtype=float)
        inv_mu_c = np.ascontiguousarray(inv_mu_c, dtype=float)
        f = np.empty_like(s)
        kr = self.mobility.kr
        self._lib.ordered_fractional(
            len(s), self._p(s, "double"), self._p(inv_mu_c, "double"),
            1.0 / self.mobility.mu_m, kr.a, kr.b, self._p(f, "double"),
        )  # fmt: skip
        return f

    def components(self, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The owned vertices upstream first, grouped into the strongly connected components
        of the graph of positive fluxes (m³/s per entry of the layout) between owned vertices:
        (order, first), component c being order[first[c]:first[c + 1]]."""
        n, p = self.fx.n_owned, self._p
        flux = np.ascontiguousarray(flux, dtype=float)
        order, first = np.empty(n, dtype=np.int64), np.empty(n + 1, dtype=np.int64)
        work = np.empty(6 * n, dtype=np.int64)
        count = self._lib.ordered_components(
            n, p(self.fx.row_ptr, "int64_t"), p(self._cols, "int32_t"), p(flux, "double"),
            p(order, "int64_t"), p(first, "int64_t"), p(work, "int64_t"),
        )  # fmt: skip
        return order, first[: count + 1]

    def solve(
        self,
        s: np.ndarray,
        s_old: np.ndarray,
        inflow: np.ndarray,
        out: np.ndarray,
        accumulation: np.ndarray,
        q_in: np.ndarray,
        mu_c: np.ndarray,
        tolerance: float,
        max_sweeps: int,
    ) -> tuple[bool, int]:
        """Sweep `s` (owned saturations, float64, updated in place from its values) until
        the largest residual |R_i| / accumulation_i over all ranks is at most `tolerance`, at
        most `max_sweeps` times, or until a sweep changes no saturation by more than ROUND_OFF;
        (converged, sweeps done: 0 if `s` already solves it).

        inflow: N_ij per entry of the flux layout (m³/s, <= 0); out: outflow per owned vertex
        (m³/s); accumulation: pore volume / dt (m³/s); q_in: inflow through needles (m³/s);
        mu_c: cement viscosity per column (Pa·s).
        """
        start = time.perf_counter()
        fx, lib, p = self.fx, self._lib, self._p
        n = fx.n_owned
        kr, inv_mu_m = self.mobility.kr, 1.0 / self.mobility.mu_m
        order, first = self.components(fx.flux)
        inv_mu_c = np.ascontiguousarray(1.0 / mu_c)
        arrays = [np.ascontiguousarray(a, dtype=float) for a in (inflow, out, accumulation)]
        inflow, out, accumulation = arrays
        s_old = np.ascontiguousarray(s_old)
        q_in = np.ascontiguousarray(q_in, dtype=float)
        s_col = fx.to_columns(s)
        f_col = self.fractional(s_col, inv_mu_c)
        s_ghost = s_col[n:].copy()
        changed = np.zeros(len(f_col), dtype=np.uint8)  # per column: see ordered_sweep
        above = np.zeros(n, dtype=np.uint8)  # per owned vertex: see ordered_residual
        graph = (p(self.fx.row_ptr, "int64_t"), p(self._cols, "int32_t"))
        balance = (p(inflow, "double"), p(out, "double"), p(accumulation, "double"),
                   p(s_old, "double"), p(q_in, "double"))  # fmt: skip
        exposed = np.zeros(n, dtype=np.uint8)  # per owned vertex: see ordered_sweep
        sweep, change = 0, np.inf
        while True:
            residual = lib.ordered_residual(
                n, *graph, *balance, p(s, "double"), p(f_col, "double"), tolerance,
                p(above, "uint8_t"),
            )  # fmt: skip
            self._max[:] = residual, change
            fx.comm.Allreduce(MPI.IN_PLACE, self._max, op=MPI.MAX)
            converged = self._max[0] <= tolerance or self._max[1] <= ROUND_OFF
            if converged or sweep == max_sweeps:
                break
            changed[:n] = 0
            # under MPI the neighbours' values are off by about the last sweep's change: a
            # cycle downstream of them settled far below it is settled again after the exchange
            settled = _SETTLED * change if fx.comm.size > 1 else 0.0
            change = lib.ordered_sweep(
                n, len(first) - 1, p(first, "int64_t"), p(order, "int64_t"), *graph, *balance,
                p(inv_mu_c, "double"), inv_mu_m, kr.a, kr.b, _CYCLE_PASSES, settled,
                int(sweep == 0), p(exposed, "uint8_t"), p(above, "uint8_t"),
                p(changed, "uint8_t"), p(s, "double"), p(f_col, "double"),
            )  # fmt: skip
            sweep += 1
            if fx.comm.size > 1:  # the neighbours' new values, and which of them changed
                ghosts = fx.to_columns(s)[n:]
                changed[n:] = ghosts != s_ghost
                s_ghost[:] = ghosts
                f_col[n:] = self.fractional(s_ghost, inv_mu_c[n:])
        self.seconds += time.perf_counter() - start
        return bool(converged), sweep
