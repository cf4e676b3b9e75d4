"""Permeability tensor of a segmented micro-CT block by a pore-scale Stokes solve.

The block is a boolean voxel array (True = pore, i.e. marrow space; False = bone) with its
voxel size (m). For each direction j of the tensor:

1. The pore voxels that carry flow along j are kept: the face-connected (6-neighbour) pore
   clusters that touch both faces normal to j. Other pores hold stagnant fluid (they are
   counted in the porosity, not in the flow). No such cluster: `NoPercolationError`.
2. A hexahedral box mesh over the block, `cells_per_voxel` cells along each voxel edge, and
   its sub-mesh of the kept pore cells (`dolfinx.mesh.create_submesh`).
3. Steady Stokes flow, mu Δu = ∇p, ∇·u = 0, Taylor-Hood Q2/Q1, direct solve (MUMPS):
   pressure Δp on the inlet face x_j = 0 and 0 on the outlet face x_j = L_j, no slip on
   every bone surface. On those two end faces either `open` (default: the natural
   "do-nothing" condition mu ∂u/∂n − p n = −p_face n, exact for flow that is fully
   developed there) or `mirror` (also no tangential velocity, so that p = p_face there).
   On the four lateral faces either `slip` (default: u·n = 0, no shear: mirror planes,
   no wall drag added) or `no_slip` (a sealed sample holder, as in a permeameter).
   `mirror` ends with `slip` sides are the exact conditions of the block reflected across
   its faces into a periodic medium (the flow of that medium is symmetric about them), so
   they give its permeability exactly, for a structure that is itself mirror-symmetric
   (a lattice unit cell, or an eighth of it) that of the structure. That medium is
   orthotropic in x, y, z (its mean transverse velocity cancels between mirror images), so
   with `mirror` ends K is diagonal. With `open` ends the block is a sample in a
   permeameter: its off-diagonal terms are the lateral drift of the flow between inlet and
   outlet (∫ u_i dV = ∫ x_i u·n dS over the two end faces).
4. Darcy: column j of the tensor is k_ij = mu <u_i> / (Δp / L_j), <u_i> the superficial
   velocity, the integral of u_i over the pore space divided by the whole block volume
   (with `mirror` ends only k_jj: the mirrored medium's <u_i>, i ≠ j, is zero).

The three columns give K (m²); `PoreFlowResult.symmetric` is (K + Kᵀ)/2, the relative
asymmetry ‖K − Kᵀ‖ / ‖K‖ is reported (a pressure-driven block is not exactly reciprocal:
the inlet and outlet faces are not periodic). The solve is in voxel units (lengths in
units of the smallest voxel edge, mu = 1, unit pressure gradient) and scaled back, so K does
not depend on the viscosity or the pressure drop (Stokes flow is linear).

Verification (tests/verification/test_pore_flow.py): plane Poiseuille flow between plates
(exact: Q2 holds the parabola), a square duct against its series solution, flow along a
square array of cylinders against Drummond & Tahir (1984), and the eighth of a sphere-array
cell against the whole cell with `mirror` ends; errors and observed orders are in the
README.

Runs under MPI: every rank holds the whole voxel array (read-only) and its share of the
mesh; the results are the same on every rank.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sim.ct.volume import VOXEL_SIZE_RANGE, CTFileError, _vector3, read_ct

LateralFaces = Literal["slip", "no_slip"]
EndFaces = Literal["open", "mirror"]
AXES = "xyz"


class NoPercolationError(ValueError):
    """No pore path joins the two faces of the block normal to a direction."""


class UnboundedFlowError(ValueError):
    """A pore channel through the block touches no bone: with slip lateral faces nothing
    resists the flow in it (the mirrored block would have an infinite permeability)."""


@dataclass(frozen=True)
class DirectionSolve:
    """One pore-scale solve: pressure drop along `direction` (0, 1, 2 for x, y, z).

    mean_velocity: superficial velocity <u_i> over the block per unit gradient (mu = 1,
    Δp/L = 1), in m² (column `direction` of K, but for `mirror` ends, whose K keeps only
    the diagonal term); connected_porosity: volume fraction of the block
    in the pore clusters that join the two faces; n_cells: pore cells of the mesh;
    n_dofs: unknowns of the Stokes system; seconds: wall time of this solve.
    """

    direction: int
    mean_velocity: np.ndarray
    connected_porosity: float
    n_cells: int
    n_dofs: int
    seconds: float


@dataclass(frozen=True)
class PoreFlowResult:
    """Permeability of a voxel block.

    permeability: 3x3 (m²), column j from the solve along j (NaN for directions not
    solved); porosity: pore voxels / all voxels (BV/TV = 1 − porosity); voxel_size (3,) m;
    shape: voxels along x, y, z; cells_per_voxel: hexahedra along a voxel edge in x, y, z;
    lateral, ends: the face conditions.
    """

    permeability: np.ndarray
    porosity: float
    voxel_size: np.ndarray
    shape: tuple[int, int, int]
    cells_per_voxel: tuple[int, int, int]
    lateral: LateralFaces
    ends: EndFaces
    solves: list[DirectionSolve] = field(default_factory=list)

    @property
    def bone_volume_fraction(self) -> float:
        """BV/TV (-): bone voxels / all voxels."""
        return 1.0 - self.porosity

    @property
    def complete(self) -> bool:
        """True when all three directions were solved (a full tensor)."""
        return bool(np.all(np.isfinite(self.permeability)))

    @property
    def symmetric(self) -> np.ndarray:
        """(K + Kᵀ) / 2 (m²); needs the full tensor."""
        self._need_complete()
        return 0.5 * (self.permeability + self.permeability.T)

    @property
    def asymmetry(self) -> float:
        """‖K − Kᵀ‖ / ‖K‖ (Frobenius norms, -)."""
        self._need_complete()
        k = self.permeability
        return float(np.linalg.norm(k - k.T) / np.linalg.norm(k))

    def principal(self) -> tuple[np.ndarray, np.ndarray]:
        """Principal values (m², descending) and axes (columns) of the symmetric part."""
        values, vectors = np.linalg.eigh(self.symmetric)
        order = np.argsort(values)[::-1]
        return values[order], vectors[:, order]

    def _need_complete(self) -> None:
        if not self.complete:
            raise ValueError("the full tensor needs solves along x, y and z")

    def as_dict(self) -> dict[str, object]:
        """Everything as JSON-ready values (SI), with a `scenario` snippet for `bone`."""
        out: dict[str, object] = {
            "permeability_m2": _nan_to_none(self.permeability),
            "porosity": self.porosity,
            "bone_volume_fraction": self.bone_volume_fraction,
            "voxel_size_m": self.voxel_size.tolist(),
            "shape_xyz": list(self.shape),
            "cells_per_voxel": list(self.cells_per_voxel),
            "lateral_faces": self.lateral,
            "end_faces": self.ends,
            "directions": {
                AXES[s.direction]: {
                    "mean_velocity_per_gradient_m2": s.mean_velocity.tolist(),
                    "connected_porosity": s.connected_porosity,
                    "n_cells": s.n_cells,
                    "n_dofs": s.n_dofs,
                    "seconds": s.seconds,
                }
                for s in self.solves
            },
        }
        diagonal = [float(self.permeability[i, i]) for i in range(3)]
        if self.complete:
            values, axes = self.principal()
            out |= {
                "permeability_symmetric_m2": self.symmetric.tolist(),
                "asymmetry": self.asymmetry,
                "principal_values_m2": values.tolist(),
                "principal_axes": axes.T.tolist(),
                "off_diagonal_ratio": off_diagonal_ratio(self.symmetric),
            }
            diagonal = np.diag(self.symmetric).tolist()
        if all(np.isfinite(diagonal)):
            out["scenario"] = {"bone": {"porosity": self.porosity, "permeability": diagonal}}
        return out


def _nan_to_none(k: np.ndarray) -> list[list[float | None]]:
    return [[float(v) if np.isfinite(v) else None for v in row] for row in k]


def off_diagonal_ratio(k: np.ndarray) -> float:
    """Largest |k_ij| / sqrt(k_ii k_jj) over i ≠ j (-): 0 for a tensor aligned with x, y, z."""
    d = np.sqrt(np.abs(np.diag(k)))
    scaled = np.abs(k) / np.outer(d, d)
    np.fill_diagonal(scaled, 0.0)
    return float(scaled.max())


# ---------------------------------------------------------------- the voxel side


def percolating_pores(pore: np.ndarray, direction: int) -> np.ndarray:
    """The pore voxels in face-connected clusters touching both faces normal to `direction`.

    pore: boolean (nx, ny, nz), True = pore. Raises NoPercolationError if there are none.
    """
    labels, n = ndimage.label(pore)  # default structure: the 6 face neighbours in 3-D
    if n == 0:
        raise NoPercolationError("the block has no pore voxels")
    first = np.unique(np.take(labels, 0, axis=direction))
    last = np.unique(np.take(labels, -1, axis=direction))
    through = np.intersect1d(first[first > 0], last[last > 0])
    if through.size == 0:
        raise NoPercolationError(
            f"no connected pore path joins the two faces normal to {AXES[direction]} "
            "(face-connected pore voxels): the block is impermeable along that axis at this "
            "segmentation; check the threshold or the phase convention (pore = marrow space)"
        )
    return np.isin(labels, through)


def check_bounded(flowing: np.ndarray, pore: np.ndarray, direction: int) -> None:
    """Raise UnboundedFlowError if a flowing cluster has no bone voxel as face neighbour
    (with slip lateral faces its flow would meet no resistance)."""
    labels, n = ndimage.label(flowing)
    walled = np.unique(labels[flowing & ndimage.binary_dilation(~pore)])
    if np.setdiff1d(np.arange(1, n + 1), walled).size:
        raise UnboundedFlowError(
            f"a pore channel along {AXES[direction]} crosses the block without touching bone: "
            "with slip lateral faces (mirror planes) its permeability is unbounded; crop the "
            "block to bone on every side or use no-slip lateral faces (a sealed sample)"
        )


def segment(
    values: np.ndarray, threshold: float | None = None, segmented: bool = False
) -> np.ndarray:
    """Pore mask (True = pore) of a grey-value or label image.

    segmented: a binary (label) image, 0 = pore (marrow space), nonzero = bone; threshold:
    grey values >= threshold are bone (bright), below are pore. Exactly one of the two.
    """
    if segmented == (threshold is not None):
        raise ValueError("give either a threshold or segmented=True (not both, not neither)")
    if segmented:
        return np.asarray(values) == 0
    if not np.isfinite(threshold):
        raise ValueError(f"the threshold must be finite, got {threshold}")
    return np.asarray(values) < threshold


def load_pore_space(
    path: str | Path,
    voxel_size: npt.ArrayLike | None = None,
    axis_order: str | None = None,
    threshold: float | None = None,
    segmented: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Pore mask (nx, ny, nz) and voxel size (3,) (m) of a micro-CT block file.

    Reads what `sim.ct.volume.read_ct` reads (.npy, .nii/.nii.gz with nibabel, .h5, TIFF
    stacks, DICOM series);
    voxel_size (m, scalar or 3) is required for .npy and overrides the file's otherwise;
    axis_order as in read_ct (None: the format's own, "zyx" for a TIFF stack). A voxel size outside
    1 µm–10 mm is an error (a wrong unit). The volume's direction matrix is ignored: the
    tensor is in the frame of the voxel axes i, j, k.
    """
    path = Path(path)
    volume = read_ct(path, voxel_size=voxel_size, origin=np.zeros(3), axis_order=axis_order)
    vs = volume.voxel_size
    low, high = VOXEL_SIZE_RANGE
    if np.any(vs < low) or np.any(vs > high):
        raise CTFileError(
            f"{path}: voxel size {vs.tolist()} m is outside {low:g}-{high:g} m (1 um-10 mm); "
            "check its unit (e.g. '19.5 um')"
        )
    return segment(volume.values, threshold, segmented), vs


# ---------------------------------------------------------------- the Stokes solve


def permeability(
    pore: npt.ArrayLike,
    voxel_size: npt.ArrayLike,
    directions: Sequence[int] = (0, 1, 2),
    cells_per_voxel: int | Sequence[int] = 1,
    lateral: LateralFaces = "slip",
    ends: EndFaces = "open",
    comm: object | None = None,
) -> PoreFlowResult:
    """The permeability tensor (m²) of a voxel block by a Stokes solve per direction.

    pore: boolean (nx, ny, nz), True = pore (fluid); voxel_size: m, scalar or (3,) along
    x, y, z; directions: the columns of K to compute (0, 1, 2 = pressure drop along
    x, y, z); cells_per_voxel: hexahedra along each voxel edge (one value, or three along
    x, y, z: a problem uniform along one axis needs only one cell along it); lateral:
    `slip` (mirror planes) or `no_slip` (sealed) on the faces parallel to the flow; ends:
    `open` (do-nothing) or `mirror` (no tangential velocity) on the inlet and outlet;
    comm: MPI communicator (default COMM_WORLD). See the module docstring for the method.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    mask = np.asarray(pore)
    if mask.ndim != 3 or min(mask.shape) < 1:
        raise ValueError(f"the block must be a non-empty 3-D array, got shape {mask.shape}")
    if mask.dtype != np.bool_:
        raise ValueError(f"the pore mask must be boolean (True = pore), got {mask.dtype}")
    vs = _vector3(voxel_size, "voxel_size")
    if np.any(vs <= 0):
        raise ValueError(f"voxel_size must be > 0 m, got {vs.tolist()}")
    refine = np.broadcast_to(np.asarray(cells_per_voxel, dtype=int), (3,))
    if np.any(refine < 1):
        raise ValueError(f"cells_per_voxel must be >= 1, got {refine.tolist()}")
    if lateral not in ("slip", "no_slip"):
        raise ValueError(f"lateral must be 'slip' or 'no_slip', got {lateral!r}")
    if ends not in ("open", "mirror"):
        raise ValueError(f"ends must be 'open' or 'mirror', got {ends!r}")
    if not directions or any(d not in (0, 1, 2) for d in directions):
        raise ValueError(f"directions must be among 0, 1, 2, got {list(directions)}")
    scale = float(vs.min())
    k = np.full((3, 3), np.nan)
    solves = []
    for j in dict.fromkeys(directions):  # unique, in order
        flowing = percolating_pores(mask, j)
        if lateral == "slip":
            check_bounded(flowing, mask, j)
        solve = _solve_direction(comm, flowing, vs / scale, refine, j, lateral, ends)
        column = solve.mean_velocity * scale**2
        solves.append(replace(solve, mean_velocity=column))
        k[:, j] = column if ends == "open" else np.where(np.arange(3) == j, column, 0.0)
    return PoreFlowResult(
        k,
        float(mask.mean()),
        vs,
        mask.shape,  # type: ignore[arg-type]
        tuple(int(r) for r in refine),  # type: ignore[arg-type]
        lateral,
        ends,
        solves,
    )


def _solve_direction(
    comm: object,
    flowing: np.ndarray,
    voxel: np.ndarray,
    refine: np.ndarray,
    j: int,
    lateral: LateralFaces,
    ends: EndFaces,
) -> DirectionSolve:
    """Stokes with mu = 1 and a unit mean pressure gradient along j on the `flowing` voxels,
    in voxel units (lengths divided by the smallest voxel edge); mean_velocity per unit
    gradient in those units (multiply by the length scale squared for m²)."""
    import basix.ufl
    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem.petsc import LinearProblem
    from mpi4py import MPI

    start = time.perf_counter()
    shape = np.asarray(flowing.shape)
    length = shape * voxel
    box = mesh.create_box(
        comm,
        [np.zeros(3), length],
        (shape * refine).tolist(),
        cell_type=mesh.CellType.hexahedron,
        ghost_mode=mesh.GhostMode.none,
    )
    tdim = 3
    n_owned = box.topology.index_map(tdim).size_local
    owned = np.arange(n_owned, dtype=np.int32)
    index = np.floor(mesh.compute_midpoints(box, tdim, owned) / voxel).astype(int)
    index = np.clip(index, 0, shape - 1)
    pore_cells = owned[flowing[index[:, 0], index[:, 1], index[:, 2]]]
    domain = mesh.create_submesh(box, tdim, pore_cells)[0]

    fdim = tdim - 1
    domain.topology.create_connectivity(fdim, tdim)
    boundary = mesh.exterior_facet_indices(domain.topology)
    mid = mesh.compute_midpoints(domain, fdim, boundary)
    tol = 1e-8 * float(length.max())
    on_low = np.abs(mid) < tol
    on_high = np.abs(mid - length) < tol
    on_face = on_low | on_high
    inlet = boundary[on_low[:, j]]
    outlet = boundary[on_high[:, j]]
    walls = boundary[~on_face.any(axis=1)]
    sides = [boundary[on_face[:, i] & ~on_face[:, j]] for i in range(3)]

    cell = domain.basix_cell()
    velocity = basix.ufl.element("Lagrange", cell, 2, shape=(3,))
    pressure = basix.ufl.element("Lagrange", cell, 1)
    space = fem.functionspace(domain, basix.ufl.mixed_element([velocity, pressure]))
    u_space, _ = space.sub(0).collapse()
    zero = fem.Function(u_space)
    sealed = [sides[i] for i in range(3) if i != j] if lateral == "no_slip" else []
    no_slip = np.concatenate([walls, *sealed]).astype(np.int32)
    bcs = [
        fem.dirichletbc(
            zero,
            fem.locate_dofs_topological((space.sub(0), u_space), fdim, no_slip),
            space.sub(0),
        )
    ]
    for i in (i for i in range(3) if i != j):  # u_i = 0 on slip sides and mirror ends
        held = [sides[i]] if lateral == "slip" else []
        held += [inlet, outlet] if ends == "mirror" else []
        if held:
            sub = space.sub(0).sub(i)
            collapsed, _ = sub.collapse()
            facets_i = np.concatenate(held).astype(np.int32)
            dofs = fem.locate_dofs_topological((sub, collapsed), fdim, facets_i)
            bcs.append(fem.dirichletbc(fem.Function(collapsed), dofs, sub))

    facets = np.concatenate([inlet, outlet]).astype(np.int32)
    markers = np.concatenate([np.ones(inlet.size), np.full(outlet.size, 2)]).astype(np.int32)
    order = np.argsort(facets)
    tags = mesh.meshtags(domain, fdim, facets[order], markers[order])
    # the cells are boxes (constant Jacobian): 3 Gauss points per direction integrate the
    # Q2 x Q2 and Q2 x Q1 products exactly
    exact = {"quadrature_degree": 4}
    dx = ufl.Measure("dx", domain=domain, metadata=exact)
    ds = ufl.Measure("ds", domain=domain, subdomain_data=tags, metadata=exact)
    u, p = ufl.TrialFunctions(space)
    v, q = ufl.TestFunctions(space)
    n = ufl.FacetNormal(domain)
    drop = fem.Constant(domain, float(length[j]))  # unit mean gradient: Δp = L_j
    a = (ufl.inner(ufl.grad(u), ufl.grad(v)) - p * ufl.div(v) - q * ufl.div(u)) * dx
    rhs = -drop * ufl.dot(v, n) * ds(1)
    problem = LinearProblem(
        a,
        rhs,
        bcs=bcs,
        petsc_options_prefix=f"pore_flow_{j}_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
            "ksp_error_if_not_converged": True,
        },
    )
    solution = problem.solve()
    u_h = solution.sub(0)
    integrals = [
        domain.comm.allreduce(fem.assemble_scalar(fem.form(u_h[i] * dx)), op=MPI.SUM)
        for i in range(3)
    ]
    n_cells = domain.comm.allreduce(domain.topology.index_map(tdim).size_local, op=MPI.SUM)
    n_dofs = space.dofmap.index_map.size_global * space.dofmap.index_map_bs
    problem.solver.destroy()
    return DirectionSolve(
        j,
        np.asarray(integrals) / float(np.prod(length)),
        float(flowing.mean()),
        int(n_cells),
        int(n_dofs),
        time.perf_counter() - start,
    )
