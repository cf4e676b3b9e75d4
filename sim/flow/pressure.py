"""The pressure equation of the sequential scheme: -div(lambda_t K grad p) = 0.

P1 finite elements with a cell-wise total mobility lambda_t and permeability K (given together
as the tensor lambda_t K per cell). Needle inlets are Neumann boundaries with a uniform inflow
density Q / A (A the discrete inlet area, so the inflow sums to Q exactly); outlets are
Dirichlet boundaries; resistive openings and veins are Robin boundaries whose outflow is
lumped on the vertices: vertex i of an opening lets out g_i A_i (p_i - p_ext,i), with g_i its
conductance per area and A_i = int phi_i ds its share of the opening's area. The lumped
(diagonal) form keeps each vertex's outflow a function of its own pressure and conductance:
the consistent boundary mass matrix couples neighbouring vertices with positive off-diagonal
entries, and where a vein's conductance jumps by the viscosity ratio between a cement-filled
and a marrow-filled vertex it pulled the pressure of the first below the venous pressure
(a discrete maximum-principle violation). Every other boundary is a wall (no flow). The matrix
is symmetric positive definite. Small systems are factorised (MUMPS Cholesky: the symbolic
factorisation is kept, each step refactorises numerically); large ones use CG with algebraic
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

import dolfinx.fem.petsc as fem_petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

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
METHODS = ("auto", "direct", "multigrid")


def envelope_work(A: PETSc.Mat) -> float:
    """Flops per nonzero of a Cholesky factorisation of the assembled matrix A in reverse
    Cuthill-McKee order, sum_i w_i^2 / nnz with w_i the envelope width of row i: from each
    rank's diagonal block (the couplings between ranks left out), summed over the ranks."""
    indptr, columns, _ = A.getValuesCSR()
    first, end = A.getOwnershipRange()
    n = end - first
    rows = np.repeat(np.arange(n), np.diff(indptr))
    own = (columns >= first) & (columns < end)
    rows, columns = rows[own], columns[own] - first
    graph = csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(n, n))
    position = np.empty(n, dtype=np.int64)
    position[reverse_cuthill_mckee(graph, symmetric_mode=True)] = np.arange(n)
    row_of, column_of = position[rows], position[columns]
    leftmost = np.arange(n)
    np.minimum.at(leftmost, row_of, column_of)
    width = (np.arange(n) - leftmost).astype(float)
    totals = np.array([np.sum(width**2), float(len(rows))])
    A.getComm().tompi4py().Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
    return float(totals[0] / max(totals[1], 1.0))


class PressureSolveError(RuntimeError):
    """Neither the iterative nor the direct pressure solve converged."""


class PressureSolver:
    """Assemble and solve the pressure system for the current mobility.

    mobility_k: DG0 tensor function lambda_t K (m²/(Pa·s)); inlets: per needle, the share of
    its inflow entering each owned vertex's box (sums to 1 over all ranks); bcs: fixed-pressure
    outlets; tolerance: largest residual (m³/s per box) of the iterative solve as a fraction of
    `flow_scale` (m³/s, a typical injection rate); method: "direct" (MUMPS Cholesky every
    step), "multigrid" (CG + GAMG) or "auto": direct on at most DIRECT_UNKNOWNS unknowns whose
    factorisation is cheap (DIRECT_ENVELOPE_WORK), multigrid otherwise, decided at the first
    assembly.
    """

    def __init__(
        self,
        p: fem.Function,
        mobility_k: fem.Function,
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
        V = p.function_space
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.p = p
        self.bcs = list(bcs)
        self.robin = robin
        self.a = fem.form(ufl.inner(mobility_k * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.A = fem_petsc.create_matrix(self.a)
        self._robin_diagonal = self.A.createVecLeft()
        self._unit_rhs = [self._unit_inflow(weights) for weights in inlets]
        self._rhs = self._unit_rhs[0].duplicate() if self._unit_rhs else None
        self._outlet_rhs = fem_petsc.create_vector(V)
        self._diag_scale: float | None = None
        self.atol = tolerance * flow_scale
        self.iterations = 0
        self.solver_seconds = 0.0  # wall time in PETSc's solves (set-up included)
        self._prefix = prefix
        self._method = method
        self.direct = method == "direct"  # factorise every step (else CG + GAMG)
        self.ksp: PETSc.KSP | None = None  # made at the first assembly
        self._direct: PETSc.KSP | None = None  # CG's fall-back

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
        b = fem_petsc.create_vector(self.p.function_space)
        with b.localForm() as local:
            local.set(0.0)
        b.array[:] = weights
        fem_petsc.set_bc(b, self.bcs, alpha=0.0)  # outlets carry no inflow
        return b

    def assemble(self) -> None:
        """Assemble the operator for the current mobility (call before `solve`)."""
        # Dirichlet rows get a diagonal of the size of the others (mean of the unconstrained
        # operator's diagonal at the first assembly) to keep the system well scaled.
        if self._diag_scale is None:
            self.A.zeroEntries()
            fem_petsc.assemble_matrix(self.A, self.a)
            self.A.assemble()
            diag = self.A.getDiagonal()
            # NumPy's sum, not BLAS asum (NORM_1), whose result depends on the alignment
            total = self.A.getComm().tompi4py().allreduce(np.abs(diag.array).sum(), op=MPI.SUM)
            self._diag_scale = float(total / diag.getSize())
            diag.destroy()
            if self._method == "auto" and self.A.getSize()[0] <= DIRECT_UNKNOWNS:
                work = envelope_work(self.A)
                self.direct = work <= DIRECT_ENVELOPE_WORK
                log.info("pressure: %.0f flops per nonzero to factorise", work)
            log.info("pressure: %s", "MUMPS Cholesky" if self.direct else "CG + GAMG")
            self.ksp = self._factorising() if self.direct else self._multigrid()
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.bcs, diag=self._diag_scale)
        self.A.assemble()
        b = self._outlet_rhs
        with b.localForm() as local:
            local.set(0.0)
        if self.robin is not None:
            n = len(self.robin.area)
            gain = self.robin.conductance[:n] * self.robin.area
            self._robin_diagonal.array[:] = gain
            self.A.setDiagonal(self._robin_diagonal, addv=PETSc.InsertMode.ADD_VALUES)
            b.array[:n] = gain * self.robin.pressure[:n]
        fem_petsc.apply_lifting(b, [self.a], bcs=[self.bcs], alpha=1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(b, self.bcs, alpha=self._diag_scale)
        self.ksp.setOperators(self.A)

    def solve(
        self, rates: Sequence[float], outlets: bool = True, out: PETSc.Vec | None = None
    ) -> PETSc.Vec:
        """Pressure (Pa) for needle `rates` (m³/s) into `out` (default: the function p).

        outlets=False solves with zero outlet pressures (the unit fields of superposition).
        Ghost values of p are updated.
        """
        x = self.p.x.petsc_vec if out is None else out
        b = self._rhs
        with b.localForm() as local:
            local.set(0.0)
        for rate, unit in zip(rates, self._unit_rhs, strict=True):
            if rate != 0.0:
                b.axpy(rate, unit)
        if outlets:
            b.axpy(1.0, self._outlet_rhs)
        start = time.perf_counter()
        if self.direct:
            self._solve_direct(self.ksp, b, x)
            self.iterations = 1
            self.solver_seconds += time.perf_counter() - start
            x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
            return x
        self.ksp.setTolerances(rtol=1e-14, atol=self.atol, max_it=500)
        self.ksp.solve(b, x)
        self.iterations = self.ksp.getIterationNumber()
        self.solver_seconds += time.perf_counter() - start
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
        for obj in (*objects, self._robin_diagonal):
            if obj is not None:
                obj.destroy()


def superpose(
    target: PETSc.Vec, base: PETSc.Vec, units: Sequence[PETSc.Vec], rates: Sequence[float]
) -> None:
    """target = base + sum rates_k units_k (ghosted vectors, ghosts included)."""
    with target.localForm() as t, base.localForm() as b:
        b.copy(t)
        for rate, unit in zip(rates, units, strict=True):
            with unit.localForm() as u:
                t.axpy(rate, u)


__all__ = [
    "METHODS",
    "PressureSolveError",
    "PressureSolver",
    "Robin",
    "envelope_work",
    "superpose",
]
