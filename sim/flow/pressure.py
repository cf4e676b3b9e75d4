"""The pressure equation of the sequential scheme: -div(lambda_t K grad p) = 0.

P1 finite elements with a cell-wise total mobility lambda_t and permeability tensor K. The
operator is assembled in NumPy on the layout of the box fluxes: the edge weights
|e| grad phi_a . K_e grad phi_b of every cell are computed once, and each assembly scales them
by the cell mobilities and sums them into the owned rows (rows sum to zero, so the diagonal is
minus the rest): a fifth of the time of a finite-element assembly of the tensor lambda_t K
(113k cells: 11 ms against 55 ms). Needle inlets are Neumann boundaries with a uniform inflow
density Q / A (A the discrete inlet area, so the inflow sums to Q exactly); outlets are
Dirichlet boundaries; resistive openings and veins are Robin boundaries whose outflow is
lumped on the vertices: vertex i of an opening lets out g_i A_i (p_i - p_ext,i), with g_i its
conductance per area and A_i = int phi_i ds its share of the opening's area. The lumped
(diagonal) form keeps each vertex's outflow a function of its own pressure and conductance:
the consistent boundary mass matrix couples neighbouring vertices with positive off-diagonal
entries, and where a vein's conductance jumps by the viscosity ratio between a cement-filled
and a marrow-filled vertex it pulled the pressure of the first below the venous pressure
(a discrete maximum-principle violation). Every other boundary is a wall (no flow). The matrix
is symmetric positive definite. Thin domains are factorised (MUMPS Cholesky: the symbolic
factorisation is kept, each step refactorises numerically); 3-D bodies use CG with algebraic
multigrid (GAMG, Jacobi-Chebyshev smoothing) and fall back on the direct solve if CG ever fails.
The multigrid set-up for an operator that changes every step (the mobility moves with the
front) costs several times the factorisation of a small system: on the 1-D benchmark column
(4004 unknowns) 10 ms per step against 2 ms; reusing the set-up for later operators took 2.5 to
9 times more CG iterations there (`benchmarks/pressure_solvers.py` prints the crossover).

Reproducibility: the GMRES eigenvalue estimates of GAMG (prolongator smoothing, at the first
set-up) and of the Chebyshev smoothers (again at every set-up for a new operator) orthogonalise
with modified Gram-Schmidt. PETSc's default, classical Gram-Schmidt, takes its dot products in
one BLAS gemv (VecMDot), and OpenBLAS's gemv sums in an order that depends on how the vectors
happen to sit in memory (their address modulo 64 bytes), so the estimates, and with them the
pressure, differed in the last digits from one run of the same case to the next; modified
Gram-Schmidt takes one dot product (BLAS dot) per vector, which does not. For the same reason
the Dirichlet diagonal scale sums with NumPy rather than PETSc's 1-norm (BLAS asum).

For a fixed mobility the pressure is linear in the needle rates: p = p_D + sum_k Q_k p_k, with
p_D the field of the outlet pressures alone and p_k that of needle k at unit rate. The
pressure-controlled protocol uses this superposition to find the rates that hold the syringe
pressures; `solve(rates)` does a single solve when the rates are known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from sim.errors import RunFailed
from sim.flow.box_flux import BoxFluxes
from sim.scenario.numerics import PressureSolverName

log = logging.getLogger(__name__)

_GAMG_OPTIONS = {
    "ksp_type": "cg",
    "ksp_norm_type": "unpreconditioned",
    "pc_type": "gamg",
    "pc_gamg_threshold": 0.0,
    "mg_levels_ksp_type": "chebyshev",
    "mg_levels_pc_type": "jacobi",
    "mg_levels_ksp_chebyshev_esteig_steps": 20,
}
# reproducible to the last digit (see the module docstring); read only when GAMG or a
# smoother estimates eigenvalues with GMRES, which a single solve may never do
_REPRODUCIBLE_OPTIONS = {
    "pc_gamg_esteig_ksp_gmres_modifiedgramschmidt": True,
    "mg_levels_esteig_ksp_gmres_modifiedgramschmidt": True,
}


@dataclass
class Robin:
    """Resistive openings and veins, lumped on their vertices: area A_i = int phi_i ds over
    the openings (m², owned vertices), conductance g_i per area (m/(Pa·s)) and outside
    pressure p_ext,i (Pa) per local vertex (owned first; updated in place by the caller)."""

    area: np.ndarray
    conductance: np.ndarray
    pressure: np.ndarray


#: "auto" solves directly on at most this many unknowns ...
DIRECT_UNKNOWNS = 100_000
#: ... where a Cholesky factorisation in reverse Cuthill-McKee order costs at most this many
#: flops per matrix nonzero (`envelope_work`: 2 on a column one hexahedron across, 330 on a
#: cube of 8^3 hexahedra, 2900 on 15^3, 700 on a slab one cell thick). A thin domain
#: factorises with little fill (1-D column, 4004 unknowns: MUMPS 2 ms a step against 10 ms of
#: CG + GAMG, whose set-up dominates and which needs 57 iterations there); a 3-D body does not
#: (default scenario, 3919 unknowns: 11 ms against 8.5 ms; cube of 4096: 19 against 4.5 ms).
DIRECT_ENVELOPE_WORK = 100.0
#: the methods of numerics.pressure_solver
METHODS = get_args(PressureSolverName)


def envelope_work(fx: BoxFluxes) -> float:
    """Flops per nonzero of a Cholesky factorisation of a matrix on the P1 vertex graph (the
    box-flux layout) in reverse Cuthill-McKee order, sum_i w_i^2 / nnz with w_i the envelope
    width of row i: from each rank's block of owned vertices (the couplings between ranks left
    out), summed over the ranks."""
    n = fx.n_owned
    own = fx.cols < n
    rows, columns = fx.rows[own], fx.cols[own]
    graph = csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n, n))
    position = np.empty(n, dtype=np.int64)
    position[reverse_cuthill_mckee(graph, symmetric_mode=True)] = np.arange(n)
    row_of, column_of = position[rows], position[columns]
    leftmost = np.arange(n)
    np.minimum.at(leftmost, row_of, column_of)
    width = (np.arange(n) - leftmost).astype(float)
    totals = np.array([np.sum(width**2), float(len(rows))])
    fx.comm.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
    return float(totals[0] / max(totals[1], 1.0))


class PressureSolveError(RunFailed):
    """Neither the iterative nor the direct pressure solve converged."""


class PressureSolver:
    """Assemble and solve the pressure system for the current mobility.

    fluxes: the box-flux layout (owned rows of the P1 vertex graph); permeability: K per local
    cell (cells, 3, 3; m²); inlets: per needle, the share of its inflow entering each owned
    vertex's box (sums to 1 over all ranks); bcs: fixed-pressure outlets (P1 Dirichlet
    conditions); tolerance: largest residual (m³/s per box) of the iterative solve as a
    fraction of `flow_scale` (m³/s, a typical injection rate); method: "direct" (MUMPS
    Cholesky every step), "multigrid" (CG + GAMG) or "auto": direct on at most
    DIRECT_UNKNOWNS unknowns whose factorisation is cheap (DIRECT_ENVELOPE_WORK), multigrid
    otherwise.
    """

    def __init__(
        self,
        p: fem.Function,
        fluxes: BoxFluxes,
        permeability: np.ndarray,
        inlets: Sequence[np.ndarray],
        bcs: Sequence[fem.DirichletBC],
        tolerance: float,
        flow_scale: float,
        robin: Robin | None = None,
        method: str = "multigrid",
        prefix: str = "cementsim_pressure_",
    ) -> None:
        """robin: the resistive openings and veins (lumped Robin boundaries)."""
        if method not in METHODS:
            raise ValueError(f"pressure solver method {method!r}: one of {', '.join(METHODS)}")
        self.p = p
        self.fx = fx = fluxes
        self.robin = robin
        self._weights = fx.edge_weights(permeability)
        n, n_global = fx.n_owned, fx.column_map.size_global
        self.A = fx.matrix()
        self.A.setOption(PETSc.Mat.Option.SYMMETRIC, True)
        fixed, value = self._dirichlet(p.function_space, bcs)
        self._fixed = fixed  # owned vertices of fixed pressure
        self._fixed_value = value[:n]  # their pressure (Pa)
        fixed_column = fx.to_columns(fixed.astype(float))[fx.cols] > 0.5
        self._column_value = np.where(fixed_column, fx.to_columns(value[:n])[fx.cols], 0.0)
        self._fixed_entry = fixed[fx.rows] | fixed_column  # entries eliminated
        self._unit_rhs = [self._unit_inflow(weights) for weights in inlets]
        self._rhs = self.A.createVecLeft()
        self._outlet_rhs = self.A.createVecLeft()
        self._diag_scale: float | None = None
        self.atol = tolerance * flow_scale
        self.iterations = 0
        self.solver_seconds = 0.0  # wall time in PETSc's solves (set-up included)
        self._prefix = prefix
        #: factorise every step (else CG + GAMG)
        self.direct = method == "direct" or (
            method == "auto"
            and n_global <= DIRECT_UNKNOWNS
            and envelope_work(fx) <= DIRECT_ENVELOPE_WORK
        )
        log.info("pressure: %s", "MUMPS Cholesky" if self.direct else "CG + GAMG")
        self.ksp = self._factorising() if self.direct else self._multigrid()
        self._direct: PETSc.KSP | None = None  # CG's fall-back

    @staticmethod
    def _dirichlet(
        V: fem.FunctionSpace, bcs: Sequence[fem.DirichletBC]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which owned vertices the conditions fix, and the fixed values on the local
        vertices (0 elsewhere)."""
        n = V.dofmap.index_map.size_local
        value = np.zeros(n + V.dofmap.index_map.num_ghosts)
        fixed = np.zeros(n, dtype=bool)
        for bc in bcs:
            bc.set(value)
            dofs = bc.dof_indices()[0]
            fixed[dofs[dofs < n]] = True
        return fixed, value

    def _multigrid(self) -> PETSc.KSP:
        """A KSP that solves with CG preconditioned by GAMG (reproducible options)."""
        opts = PETSc.Options()
        for key, value in (_GAMG_OPTIONS | _REPRODUCIBLE_OPTIONS).items():
            opts.setValue(self._prefix + key, value)
        ksp = PETSc.KSP().create(self.A.getComm())
        ksp.setOptionsPrefix(self._prefix)
        ksp.setFromOptions()
        for key in _REPRODUCIBLE_OPTIONS:  # looked up: not reported as unused if never read
            opts.hasName(self._prefix + key)
        return ksp

    def _factorising(self) -> PETSc.KSP:
        """A KSP that solves with a MUMPS Cholesky factorisation of the operator."""
        ksp = PETSc.KSP().create(self.A.getComm())
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("cholesky")
        pc.setFactorSolverType("mumps")
        return ksp

    def _unit_inflow(self, weights: np.ndarray) -> PETSc.Vec:
        b = self.A.createVecLeft()
        b.array[:] = np.where(self._fixed, 0.0, weights)  # outlets carry no inflow
        return b

    def assemble(self, mobility: np.ndarray) -> None:
        """Assemble the operator for the total mobility lambda_t per local cell (1/(Pa·s));
        call before `solve`.

        Fixed-pressure rows become a diagonal of the size of the others (the mean diagonal of
        the unconstrained operator at the first assembly, which keeps the system well scaled)
        and their columns move to the right-hand side (symmetric elimination)."""
        fx = self.fx
        values = fx.stiffness(mobility, self._weights)
        if self._diag_scale is None:
            # NumPy's sum, not BLAS asum (NORM_1), whose result depends on the alignment
            total = fx.comm.allreduce(float(np.abs(values[fx.diagonal]).sum()), op=MPI.SUM)
            self._diag_scale = total / self.A.getSize()[0]
        b = self._outlet_rhs.array
        b[:] = -fx.row_sums(values * self._column_value)  # lifting
        values[self._fixed_entry] = 0.0
        if self.robin is not None:
            n = fx.n_owned
            gain = np.where(self._fixed, 0.0, self.robin.conductance[:n] * self.robin.area)
            values[fx.diagonal] += gain
            b += gain * self.robin.pressure[:n]
        values[fx.diagonal[self._fixed]] = self._diag_scale
        b[self._fixed] = self._diag_scale * self._fixed_value[self._fixed]
        fx.set_matrix(self.A, values)
        self.ksp.setOperators(self.A)

    def solve(
        self,
        rates: Sequence[float],
        outlets: bool = True,
        out: PETSc.Vec | None = None,
        ghosts: bool = True,
    ) -> PETSc.Vec:
        """Pressure (Pa) for needle `rates` (m³/s) into `out` (default: the function p).

        outlets=False solves with zero outlet pressures (the unit fields of superposition).
        Ghost values are updated unless `ghosts` is False (fields read on owned vertices only,
        such as those `superpose` sums, which updates its target's ghosts).
        """
        x = self.p.x.petsc_vec if out is None else out
        b = self._rhs
        b.set(0.0)
        for rate, unit in zip(rates, self._unit_rhs, strict=True):
            if rate != 0.0:
                b.axpy(rate, unit)
        if outlets:
            b.axpy(1.0, self._outlet_rhs)
        start = time.perf_counter()
        if self.direct:
            self._solve_direct(self.ksp, b, x)
            self.iterations = 1
        else:
            self.ksp.setTolerances(rtol=1e-14, atol=self.atol, max_it=500)
            try:
                self.ksp.solve(b, x)
            except PETSc.Error as exc:  # e.g. GAMG's set-up on an operator of zero norm
                raise PressureSolveError(
                    f"pressure: CG + GAMG failed (PETSc error {exc.ierr}): the pressure system "
                    "is singular or out of the range of double precision; check the bone's "
                    "permeability and the viscosities"
                ) from None
            self.iterations = self.ksp.getIterationNumber()
            if self.ksp.getConvergedReason() < 0:
                log.warning(
                    "pressure: CG+GAMG did not converge (reason %d after %d iterations); "
                    "solving directly with MUMPS",
                    self.ksp.getConvergedReason(),
                    self.iterations,
                )
                if self._direct is None:
                    self._direct = self._factorising()
                self._direct.setOperators(self.A)
                self._solve_direct(self._direct, b, x)
        self.solver_seconds += time.perf_counter() - start
        if ghosts:
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return x

    @staticmethod
    def _solve_direct(ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec) -> None:
        ksp.solve(b, x)
        if ksp.getConvergedReason() < 0:
            raise PressureSolveError(
                f"pressure: direct solve failed (reason {ksp.getConvergedReason()})"
            )

    def destroy(self) -> None:
        objects = (self.ksp, self._direct, self.A, self._rhs, self._outlet_rhs, *self._unit_rhs)
        for obj in objects:
            if obj is not None:
                obj.destroy()


def superpose(
    target: PETSc.Vec, base: PETSc.Vec, units: Sequence[PETSc.Vec], rates: Sequence[float]
) -> None:
    """target = base + sum rates_k units_k (ghosted vectors); the ghosts take their owners'
    values (summed on each rank, they could differ in the last bit: PETSc's axpy rounds by
    where an entry sits in memory, and the fluxes and the upwinding read the ghosts)."""
    with target.localForm() as t, base.localForm() as b:
        b.copy(t)
        for rate, unit in zip(rates, units, strict=True):
            with unit.localForm() as u:
                t.axpy(rate, u)
    target.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)


__all__ = [
    "METHODS",
    "PressureSolveError",
    "PressureSolver",
    "Robin",
    "envelope_work",
    "superpose",
]
