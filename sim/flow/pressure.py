"""The pressure equation of the sequential scheme: -div(lambda_t K grad p) = 0.

P1 finite elements with a cell-wise total mobility lambda_t and permeability K (given together
as the tensor lambda_t K per cell). Needle inlets are Neumann boundaries with a uniform inflow
density Q / A (A the discrete inlet area, so the inflow sums to Q exactly); outlets are
Dirichlet boundaries; every other boundary is a wall (no flow). The matrix is symmetric
positive definite: CG with algebraic multigrid (GAMG, Jacobi-Chebyshev smoothing), and a
direct solve (MUMPS) if CG ever fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dolfinx.fem.petsc as fem_petsc
import ufl
from dolfinx import fem
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


class PressureSolveError(RuntimeError):
    """Neither the iterative nor the direct pressure solve converged."""


class PressureSolver:
    """Assemble and solve the pressure system for the current mobility.

    mobility_k: DG0 tensor function lambda_t K (m²/(Pa·s)); inflow: (facet tag value, flux
    density constant in m/s) per inlet; bcs: fixed-pressure outlets.
    """

    def __init__(
        self,
        p: fem.Function,
        mobility_k: fem.Function,
        ds: ufl.Measure,
        inflow: Sequence[tuple[int, fem.Constant]],
        bcs: Sequence[fem.DirichletBC],
        tolerance: float,
        prefix: str = "cementsim_pressure_",
    ) -> None:
        V = p.function_space
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.p = p
        self.bcs = list(bcs)
        self.a = fem.form(ufl.inner(mobility_k * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.L = fem.form(sum(g * v * ds(tag) for tag, g in inflow))
        self.A = fem_petsc.create_matrix(self.a)
        self.b = fem_petsc.create_vector(V)
        self._diag_scale: float | None = None
        self.tolerance = tolerance
        self.iterations = 0
        opts = PETSc.Options()
        for key, value in _GAMG_OPTIONS.items():
            opts.setValue(prefix + key, value)
        self.ksp = PETSc.KSP().create(V.mesh.comm)
        self.ksp.setOptionsPrefix(prefix)
        self.ksp.setFromOptions()
        self.ksp.setTolerances(rtol=1e-14, atol=0.0, max_it=500)
        self._direct: PETSc.KSP | None = None

    def _assemble(self) -> None:
        # Dirichlet rows get a diagonal of the size of the others (mean of the unconstrained
        # operator's diagonal at the first solve) to keep the system well scaled.
        if self._diag_scale is None:
            self.A.zeroEntries()
            fem_petsc.assemble_matrix(self.A, self.a)
            self.A.assemble()
            diag = self.A.getDiagonal()
            self._diag_scale = float(diag.norm(PETSc.NormType.NORM_1) / diag.getSize())
            diag.destroy()
        self._assemble_with(self._diag_scale)

    def _assemble_with(self, diag: float) -> None:
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.bcs, diag=diag)
        self.A.assemble()
        with self.b.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self.b, self.L)
        fem_petsc.apply_lifting(self.b, [self.a], bcs=[self.bcs], alpha=1.0)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs, alpha=diag)

    def solve(self, total_inflow: float) -> fem.Function:
        """Solve for p (Pa) with the current mobility and inflow; ghosts are updated.

        Converged when the 2-norm of the residual (m³/s per box) is below `tolerance` times
        the total inflow (m³/s): this bounds the divergence error of the fluxes that the
        transport sees, relative to what is injected.
        """
        self._assemble()
        x = self.p.x.petsc_vec
        self.ksp.setTolerances(rtol=1e-14, atol=self.tolerance * total_inflow, max_it=500)
        self.ksp.setOperators(self.A)
        self.ksp.solve(self.b, x)
        self.iterations = self.ksp.getIterationNumber()
        if self.ksp.getConvergedReason() < 0:
            log.warning(
                "pressure: CG+GAMG did not converge (reason %d after %d iterations); "
                "solving directly with MUMPS",
                self.ksp.getConvergedReason(),
                self.iterations,
            )
            self._solve_direct(x)
        self.p.x.scatter_forward()
        return self.p

    def _solve_direct(self, x: PETSc.Vec) -> None:
        if self._direct is None:
            self._direct = PETSc.KSP().create(self.A.getComm())
            self._direct.setType("preonly")
            pc = self._direct.getPC()
            pc.setType("lu")
            pc.setFactorSolverType("mumps")
        self._direct.setOperators(self.A)
        self._direct.solve(self.b, x)
        if self._direct.getConvergedReason() < 0:
            raise PressureSolveError(
                f"pressure: direct solve failed (reason {self._direct.getConvergedReason()})"
            )

    def destroy(self) -> None:
        for obj in (self.ksp, self._direct, self.A, self.b):
            if obj is not None:
                obj.destroy()
