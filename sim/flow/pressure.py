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
is symmetric positive definite: CG with algebraic multigrid (GAMG, Jacobi-Chebyshev smoothing),
and a direct solve (MUMPS) if CG ever fails.

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
from collections.abc import Sequence
from dataclasses import dataclass

import dolfinx.fem.petsc as fem_petsc
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

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


class PressureSolveError(RuntimeError):
    """Neither the iterative nor the direct pressure solve converged."""


class PressureSolver:
    """Assemble and solve the pressure system for the current mobility.

    mobility_k: DG0 tensor function lambda_t K (m²/(Pa·s)); inlets: per needle, the share of
    its inflow entering each owned vertex's box (sums to 1 over all ranks); bcs: fixed-pressure
    outlets; tolerance: largest residual (m³/s per box) as a fraction of `flow_scale` (m³/s, a
    typical injection rate).
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
        prefix: str = "cementsim_pressure_",
    ) -> None:
        """robin: the resistive openings and veins (lumped Robin boundaries)."""
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
        opts = PETSc.Options()
        for key, value in (_GAMG_OPTIONS | _REPRODUCIBLE_OPTIONS).items():
            opts.setValue(prefix + key, value)
        self.ksp = PETSc.KSP().create(V.mesh.comm)
        self.ksp.setOptionsPrefix(prefix)
        self.ksp.setFromOptions()
        for key in _REPRODUCIBLE_OPTIONS:  # looked up: not reported as unused if never read
            opts.hasName(prefix + key)
        self._direct: PETSc.KSP | None = None

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
        self.ksp.setTolerances(rtol=1e-14, atol=self.atol, max_it=500)
        self.ksp.solve(b, x)
        self.iterations = self.ksp.getIterationNumber()
        if self.ksp.getConvergedReason() < 0:
            log.warning(
                "pressure: CG+GAMG did not converge (reason %d after %d iterations); "
                "solving directly with MUMPS",
                self.ksp.getConvergedReason(),
                self.iterations,
            )
            self._solve_direct(b, x)
        x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        return x

    def _solve_direct(self, b: PETSc.Vec, x: PETSc.Vec) -> None:
        if self._direct is None:
            self._direct = PETSc.KSP().create(self.A.getComm())
            self._direct.setType("preonly")
            pc = self._direct.getPC()
            pc.setType("lu")
            pc.setFactorSolverType("mumps")
        self._direct.setOperators(self.A)
        self._direct.solve(b, x)
        if self._direct.getConvergedReason() < 0:
            raise PressureSolveError(
                f"pressure: direct solve failed (reason {self._direct.getConvergedReason()})"
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


__all__ = ["PressureSolveError", "PressureSolver", "Robin", "superpose"]
