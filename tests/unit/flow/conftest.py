"""Tiny meshes, fixed flux fields and MPI-safe helpers shared by the unit tests of the flow core
(sim.flow).

Every helper that reduces over vertices or cells sums or maximises over owned entries only
and reduces over the communicator, so that each rank reaches the same verdict (an assertion
that fails on one rank only would leave the other waiting in the next collective).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import ufl
from dolfinx import fem

from sim.flow.box_flux import BoxFluxes
from sim.flow.transport import ImplicitUpwindTransport
from sim.physics.mobility import Mobility

COMM = MPI.COMM_WORLD
MU_M = 0.01  # marrow viscosity (Pa·s)
POROSITY = 0.3
TOL = 1e-12  # the transport's residual tolerance


def unit_cube(n: int = 3) -> dolfinx.mesh.Mesh:
    """The unit cube in n^3 hexahedra of 6 tetrahedra each (162 cells for n = 3)."""
    return dolfinx.mesh.create_unit_cube(COMM, n, n, n)


def bar(length: float = 1.0, width: float = 0.2, n: int = 10) -> dolfinx.mesh.Mesh:
    """A 1-D-like bar [0, length] x [0, width]^2 of n x 1 x 1 hexahedra (6n tetrahedra)."""
    corners = [np.zeros(3), np.array([length, width, width])]
    return dolfinx.mesh.create_box(COMM, corners, [n, 1, 1])


def p1(mesh: dolfinx.mesh.Mesh) -> fem.FunctionSpace:
    mesh.topology.create_connectivity(2, 3)
    return fem.functionspace(mesh, ("Lagrange", 1))


def n_owned(V: fem.FunctionSpace) -> int:
    return V.dofmap.index_map.size_local


def n_cells_local(mesh: dolfinx.mesh.Mesh) -> int:
    """Owned plus ghost cells."""
    cells = mesh.topology.index_map(3)
    return cells.size_local + cells.num_ghosts


def owned_x(V: fem.FunctionSpace) -> np.ndarray:
    """Coordinates of the owned vertices."""
    return V.tabulate_dof_coordinates()[: n_owned(V)]


def interpolate(V: fem.FunctionSpace, f: Callable[[np.ndarray], np.ndarray]) -> fem.Function:
    """P1 interpolant of f(x) (x of shape (3, points)), ghosts included."""
    u = fem.Function(V)
    u.interpolate(f)
    u.x.scatter_forward()
    return u


def cell_midpoints(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    cells = np.arange(n_cells_local(mesh), dtype=np.int32)
    return dolfinx.mesh.compute_midpoints(mesh, 3, cells)


def isotropic(mesh: dolfinx.mesh.Mesh, k: float) -> np.ndarray:
    """lambda K = k I on every local cell, shape (cells, 3, 3)."""
    return np.broadcast_to(k * np.eye(3), (n_cells_local(mesh), 3, 3)).copy()


def anisotropic(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """A symmetric positive definite tensor per local cell, a function of the cell midpoint
    only (so the same on any partition): I + a a^T + diag(1, 2, 3) / 2, a = a(x_mid)."""
    x = cell_midpoints(mesh)
    a = np.stack([np.sin(3 * x[:, 0] + 1), np.cos(2 * x[:, 1] - x[:, 2]), x[:, 0] * x[:, 2]], 1)
    return np.eye(3) + np.einsum("ci,cj->cij", a, a) + np.diag([0.5, 1.0, 1.5])


def tensor_function(mesh: dolfinx.mesh.Mesh, values: np.ndarray) -> fem.Function:
    """DG0 tensor function with `values` (cells, 3, 3) placed through the dofmap."""
    W = fem.functionspace(mesh, ("DG", 0, (3, 3)))
    K = fem.Function(W)
    dofs = W.dofmap.list[:, 0]
    K.x.array.reshape(-1, 9)[dofs] = values.reshape(-1, 9)
    K.x.scatter_forward()
    return K


def assemble_owned(form: ufl.Form) -> np.ndarray:
    """Assembled vector of a linear form on P1, owned entries (ghost contributions added)."""
    vec = fem.assemble_vector(fem.form(form))
    vec.scatter_reverse(dolfinx.la.InsertMode.add)
    return vec.array[: vec.index_map.size_local].copy()


def fluxes_of(p: fem.Function, mobility_k: np.ndarray) -> BoxFluxes:
    fx = BoxFluxes(p.function_space)
    fx.compute(p, mobility_k)
    return fx


def global_max(values: np.ndarray) -> float:
    """Largest value over all ranks (-inf if there is none)."""
    return COMM.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)


def global_min(values: np.ndarray) -> float:
    """Smallest value over all ranks (inf if there is none)."""
    return COMM.allreduce(float(np.min(values, initial=np.inf)), op=MPI.MIN)


def global_sum(values: np.ndarray) -> float:
    return COMM.allreduce(float(np.sum(values)), op=MPI.SUM)


def flux_table(fx: BoxFluxes, V: fem.FunctionSpace) -> dict[tuple[int, int], float]:
    """Every edge flux of the mesh keyed by (global row, global column), gathered from all
    ranks (each row is owned, so computed, by exactly one rank)."""
    rows = V.dofmap.index_map.local_to_global(fx.rows)
    cols = fx.column_map.local_to_global(fx.cols)
    local = {(int(a), int(b)): float(f) for a, b, f in zip(rows, cols, fx.flux, strict=True)}
    table: dict[tuple[int, int], float] = {}
    for part in COMM.allgather(local):
        table.update(part)
    return table


def at_point(V: fem.FunctionSpace, point: tuple[float, float, float]) -> np.ndarray:
    """Mask of the owned vertex at `point` (true on exactly one rank)."""
    mask = np.all(np.abs(owned_x(V) - np.asarray(point)) < 1e-9, axis=1)
    assert COMM.allreduce(int(mask.sum())) == 1
    return mask


def face_facets(mesh: dolfinx.mesh.Mesh, axis: int, value: float) -> np.ndarray:
    """Boundary facets on the plane x[axis] = value."""
    return dolfinx.mesh.locate_entities_boundary(mesh, 2, lambda x: np.isclose(x[axis], value))


def face_tags(mesh: dolfinx.mesh.Mesh, facets: np.ndarray) -> dolfinx.mesh.MeshTags:
    """Facet tags: value 1 on `facets`."""
    facets = np.sort(facets).astype(np.int32)
    return dolfinx.mesh.meshtags(mesh, 2, facets, np.ones(len(facets), dtype=np.int32))


def with_ghosts(V: fem.FunctionSpace, mask: np.ndarray) -> np.ndarray:
    """A boolean on the owned vertices extended to the ghost vertices (as their owner has it)."""
    u = fem.Function(V)
    n = n_owned(V)
    u.x.array[:n] = mask[:n]
    u.x.scatter_forward()
    return u.x.array > 0.5


@dataclass
class Flow:
    """A fixed flux field with its boundary exchange: q_in (cement) where the flow enters,
    q_out (mixture) where it leaves, as the stepper does at needles and outlets."""

    fx: BoxFluxes
    x: np.ndarray
    pore_volume: np.ndarray
    q_in: np.ndarray
    q_out: np.ndarray

    def transport(
        self, mobility: Mobility, max_iterations: int = 50, max_sweeps: int | None = None
    ) -> ImplicitUpwindTransport:
        return ImplicitUpwindTransport(
            self.fx, self.pore_volume, mobility, TOL, max_iterations, max_sweeps
        )

    def columns(self, owned: np.ndarray) -> np.ndarray:
        # a copy: to_columns returns BoxFluxes' own buffer, which step() overwrites
        return self.fx.to_columns(owned).copy()


def linear_flow(mesh, k: float = 1.0, tensor: np.ndarray | None = None) -> Flow:
    """p = -x with lambda K = k I (or the given tensor per cell): flow along +x; inflow face
    x = 0, outflow face x = max."""
    V = p1(mesh)
    fx = fluxes_of(
        interpolate(V, lambda x: -x[0]), isotropic(mesh, k) if tensor is None else tensor
    )
    pore_volume = POROSITY * assemble_owned(ufl.TestFunction(V) * ufl.dx)
    div = fx.divergence()
    x = owned_x(V)
    x_max = COMM.allreduce(float(x[:, 0].max(initial=0.0)), op=MPI.MAX)
    q_in = np.where(x[:, 0] < 1e-12, np.maximum(div, 0.0), 0.0)
    q_out = np.where(x[:, 0] > x_max - 1e-12, np.maximum(-div, 0.0), 0.0)
    return Flow(fx, x, pore_volume, q_in, q_out)
