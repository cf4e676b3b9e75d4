"""Implicit upwind transport of cement saturation on the box control volumes.

For each owned vertex i, with pore volume V_i (m³), the backward-Euler upwind balance is

    R_i = V_i (S_i - S_i^n) / dt + f(S_i) (P_i + q_out,i) + sum_j N_ij f(S_j) - q_in,i = 0,

P_i = sum_j max(F_ij, 0) the flux out of box i, N_ij = min(F_ij, 0) the flux into it from j,
q_out,i the outflow through an outlet (carrying f(S_i)), q_in,i the cement inflow through a
needle inlet (m³/s). Because F_ij = -F_ji, the sum of R_i over all boxes is
d(stored)/dt - injected + leaked: the scheme conserves cement to the solver's tolerance.

Ordered nonlinear Gauss-Seidel sweeps (sim.flow.ordered_transport) solve R(S) = 0 on [0, 1]
vertex by vertex in flow order: one sweep in serial, a few under MPI. Measured on the 1-D
benchmark (front_courant 8, 153 steps): 153 sweeps instead of 1894 Newton iterations, the
same front and inlet pressure. Newton's method finishes from where they stopped if they
do not converge within `max_sweeps`. Its updates are limited as for
fractional-flow transport (Jenny, Tchelepi & Lee 2009, J. Comput. Phys. 228:7497): no
crossing of the inflection point of f in one iteration (a cap of 0.2 per iteration besides,
as before stop 20, took 4779 Newton iterations instead of 2852 for the 300 steps of the 1-D
benchmark, with the same answer). A vertex at a bound whose residual pushes outwards (only
the pressure solver's divergence error can do that) is held there and left out of the Newton
system (reduced-space active-set method, as PETSc's SNESVINEWTONRSLS); what it leaves
unbalanced is of the size of that divergence error and shows in the reported mass balance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc
from scipy.sparse import csr_matrix

from sim.flow.box_flux import BoxFluxes
from sim.flow.ordered_transport import ROUND_OFF, OrderedSweeps
from sim.physics.mobility import Mobility

#: a vertex whose saturation changes by more than this in a step is on the moving front
MOVING = 0.01


@dataclass
class TransportResult:
    """Outcome of one implicit step: converged, iterations (sweeps plus Newton iterations),
    largest |S - S^n| and the front's Courant number: dt x outflow / pore volume, largest
    over the vertices whose saturation changed by more than MOVING (the control volumes the
    front crossed); the step's fluxes split into the inflow per entry and the outflow per
    owned vertex (BoxFluxes.split: m³/s), for what is carried with the cement."""

    converged: bool
    iterations: int
    max_change: float
    courant: float = np.nan
    inflow: np.ndarray | None = None
    outflow: np.ndarray | None = None


class ImplicitUpwindTransport:
    """Backward-Euler upwind saturation update with a fixed flux field."""

    def __init__(
        self,
        fluxes: BoxFluxes,
        pore_volume: np.ndarray,
        mobility: Mobility,
        tolerance: float,
        max_iterations: int,
        max_sweeps: int | None = None,
    ) -> None:
        self.fx = fluxes
        self.comm: MPI.Comm = fluxes.comm
        self.pore_volume = pore_volume
        self.mobility = mobility
        self.tolerance = tolerance
        self.max_iterations = max_iterations
        self.max_sweeps = max_iterations if max_sweeps is None else max_sweeps
        self.jacobian = fluxes.matrix()
        self.ksp = PETSc.KSP().create(self.comm)
        self.ksp.setOptionsPrefix("cementsim_transport_")
        self.ksp.setType("gmres")
        self.ksp.getPC().setType("bjacobi")
        self.ksp.setTolerances(rtol=1e-10, atol=0.0, max_it=400)
        self.ksp.setFromOptions()
        self._rhs = self.jacobian.createVecLeft()
        self._update = self.jacobian.createVecRight()
        self._max = np.zeros(1)  # the buffer of `_global_max`
        self.solver_seconds = 0.0  # wall time in PETSc's solves (set-up included)
        self.sweeps = OrderedSweeps(fluxes, mobility)
        self.sweep_count = 0  # ordered sweeps, all steps
        self.newton_count = 0  # Newton iterations, all steps

    def step(
        self,
        s_old: np.ndarray,
        dt: float,
        q_in: np.ndarray,
        q_out: np.ndarray,
        mu_c: np.ndarray,
    ) -> tuple[np.ndarray, TransportResult]:
        """Saturation after `dt` (s) from `s_old` on owned vertices: ordered sweeps, then
        Newton's method from where they stopped if they did not converge.

        q_in: cement inflow (m³/s) per owned vertex; q_out: outflow of the mixture (m³/s) per
        owned vertex; mu_c: cement viscosity (Pa·s) per vertex in the column layout.
        """
        inflow, out_sum = self.fx.split(q_out)
        accumulation = self.pore_volume / dt
        s = s_old.copy()
        converged, sweeps = self.sweeps.solve(
            s, s_old, inflow, out_sum, accumulation, q_in, mu_c, self.tolerance,
            self.max_sweeps,
        )  # fmt: skip
        self.sweep_count += sweeps
        iterations = 0
        if not converged:
            converged, iterations = self._newton(
                s, s_old, inflow, out_sum, accumulation, q_in, mu_c
            )
            self.newton_count += iterations
        if not converged:
            return s_old.copy(), TransportResult(False, sweeps + iterations, np.nan)
        moved = np.abs(s - s_old)
        through = np.where(moved > MOVING, out_sum / self.pore_volume, 0.0)
        local = np.array([moved.max(initial=0.0), through.max(initial=0.0)])
        self.comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)  # one reduction
        change, rate = local
        return s, TransportResult(
            True, sweeps + iterations, float(change), dt * float(rate), inflow, out_sum
        )

    def _newton(
        self,
        s: np.ndarray,
        s_old: np.ndarray,
        inflow: np.ndarray,
        out_sum: np.ndarray,
        accumulation: np.ndarray,
        q_in: np.ndarray,
        mu_c: np.ndarray,
    ) -> tuple[bool, int]:
        """Newton's method on the balance from the saturations `s` (updated in place);
        (converged, iterations). `inflow`, `out_sum` from BoxFluxes.split, `accumulation` V / dt."""
        fx = self.fx
        # sum_j N_ij f(S_j) as a product with the CSR matrix of the inflows (one pass in C,
        # the same sums in the same order as a bincount over the entries)
        inflow_matrix = csr_matrix((inflow, fx.cols, fx.indptr), shape=(fx.n_owned, len(mu_c)))
        entry_scale = 1.0 / accumulation[fx.rows]  # the Jacobian's rows divided by V / dt
        s_infl = self.mobility.inflection(mu_c[: fx.n_owned])
        last_update = np.inf
        for iteration in range(self.max_iterations + 1):
            s_col = fx.to_columns(s)
            f_col = self.mobility.fractional(s_col, mu_c)
            residual = (
                accumulation * (s - s_old)
                + f_col[: fx.n_owned] * out_sum
                + inflow_matrix @ f_col
                - q_in
            )
            at_bound = ((s >= 1.0) & (residual < 0.0)) | ((s <= 0.0) & (residual > 0.0))
            # the residual of the free vertices in units of saturation: the convergence
            # measure and the right-hand side of the Newton system
            free = np.where(at_bound, 0.0, residual) / accumulation
            error = self._global_max(np.abs(free))
            if error <= self.tolerance or last_update <= ROUND_OFF:
                return True, iteration
            if iteration == self.max_iterations:
                break
            df_col = self.mobility.d_fractional(s_col, mu_c)
            values = inflow * np.take(df_col, fx.cols)  # np.take: 1.6x a fancy index
            values[fx.diagonal] += accumulation + df_col[: fx.n_owned] * out_sum
            if at_bound.any():  # held vertices: identity rows, zero update
                values[at_bound[fx.rows]] = 0.0
                values[fx.diagonal[at_bound]] = accumulation[at_bound]
            update = self._solve(values * entry_scale, free)
            if update is None:
                break
            s_next = self._limited(s, -update, s_infl)
            last_update = self._global_max(np.abs(s_next - s))
            s[:] = s_next
        return False, self.max_iterations

    def carry(
        self,
        c_old: np.ndarray,
        s_old: np.ndarray,
        s_new: np.ndarray,
        dt: float,
        q_in: np.ndarray,
        inflow: np.ndarray,
        out_sum: np.ndarray,
        mu_c: np.ndarray,
        c_in: float,
    ) -> np.ndarray:
        """A property c of the cement (e.g. its degree of cure) carried with it over the step.

        Backward-Euler upwind balance of the cement-weighted amount V S c with the fluxes and
        saturations of the step just taken (`inflow`, `out_sum`: its fluxes split as
        BoxFluxes.split splits them); injected cement brings `c_in`. Where there is no
        cement c relaxes to c_in (a vanishing regularisation, weighted by the marrow's share
        1 - S so that a box full of cement keeps exactly its own c, keeps the system regular).
        """
        fx = self.fx
        f_col = self.mobility.fractional(fx.to_columns(s_new), mu_c)
        accumulation = self.pore_volume / dt
        eps = 1e-9 * accumulation * (1.0 - s_new)
        values = inflow * f_col[fx.cols]
        values[fx.diagonal] += accumulation * s_new + f_col[: fx.n_owned] * out_sum + eps
        rhs = accumulation * s_old * c_old + q_in * c_in + eps * c_in
        c = self._solve(values / accumulation[fx.rows], rhs / accumulation)
        if c is None:
            raise RuntimeError("transport of the degree of cure: the linear solve failed")
        return c

    def _global_max(self, values: np.ndarray) -> float:
        """Largest of `values` over all ranks (0 for none)."""
        self._max[0] = values.max(initial=0.0)
        self.comm.Allreduce(MPI.IN_PLACE, self._max, op=MPI.MAX)
        return float(self._max[0])

    def _solve(self, values: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
        """Solve the system with CSR `values` and right-hand side `rhs`, both with their rows
        divided by V / dt (m³/s) by the caller so that the matrix is O(1) (factorisations use
        absolute pivot tolerances). None if the iterative solve fails."""
        fx = self.fx
        fx.set_matrix(self.jacobian, values)
        self._rhs.array[:] = rhs
        self.ksp.setOperators(self.jacobian)
        start = time.perf_counter()
        self.ksp.solve(self._rhs, self._update)
        self.solver_seconds += time.perf_counter() - start
        if self.ksp.getConvergedReason() < 0:
            return None
        return self._update.array.copy()

    def _limited(self, s: np.ndarray, ds: np.ndarray, s_infl: np.ndarray) -> np.ndarray:
        """Newton update stopped at the inflection point, in [0, 1]."""
        new = s + ds
        crosses = np.isfinite(s_infl) & ((s - s_infl) * (new - s_infl) < 0.0)
        new = np.where(crosses, s_infl, new)
        return np.clip(new, 0.0, 1.0)

    def destroy(self) -> None:
        for obj in (self.ksp, self.jacobian, self._rhs, self._update):
            obj.destroy()
