"""Conservative fluxes between the median-dual (box) control volumes of a P1 pressure field.

Inside a tetrahedron e the Darcy velocity of a P1 pressure is constant,
u_e = -lambda_e K_e grad p_e. The part of the median-dual face between vertices a and b that
lies in e has the area vector N_ab = |e| (grad phi_b - grad phi_a) / 4 (pointing from a to b),
so the volumetric flux from the box of a to the box of b through it is u_e . N_ab (m³/s).
Summed over the cells around an edge, F_ab = -F_ba, and the sum of F_ab over the neighbours
b of a equals the P1 finite-element residual row of a: the fluxes are locally conservative on
the boxes, which is what keeps injected = stored + leaked to round-off in the transport.
(This is the vertex-centred "box" method of DuMux.)

In parallel, a process computes the contributions of its own cells; contributions to rows
owned by another process are summed there (DOLFINx MatrixCSR reverse scatter). Columns use an
index map that extends the vertex map with every neighbour of an owned vertex. The loop over
the cells (gradient, velocity, the six face fluxes), the sums of the edge values per entry,
the row sums, the split of the fluxes into inflows and outflows and each cell's upwind vertex
are compiled C (box_flux.c, built as sim.flow.compiled builds kernels): three NumPy einsums
and two bincounts took about 7 ms a step on the benchmark cube's 56 000 cells per rank.
"""

from __future__ import annotations

from functools import cached_property

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from petsc4py import PETSc

from sim.flow.compiled import kernel

#: local vertex pairs (a, b) of the six edges of a tetrahedron
EDGE_A = np.array([0, 0, 0, 1, 1, 2])
EDGE_B = np.array([1, 2, 3, 2, 3, 3])

#: the functions of box_flux.c
DECLARATIONS = """
void cell_fluxes(int64_t n_cells, const int32_t *dofs, const double *grad_phi,
                 const double *p, const double *mobility_k, const double *normals,
                 double *velocity, double *edge_flux);
void edge_sums(int64_t n_edges, const int64_t *pos_ab, const int64_t *pos_ba,
               const double *edge, const double *scale, int64_t size, int antisymmetric,
               double *ab, double *ba, double *entry);
void row_sums(int64_t n, const int64_t *indptr, const double *values, double *sums);
void split_fluxes(int64_t n, const int64_t *indptr, const double *flux, const double *extra,
                  double *inflow, double *outflow);
void upwind_vertices(int64_t n_cells, const int32_t *dofs, const double *p, double tie,
                     int32_t *vertex, uint8_t *near);
"""


class BoxFluxes:
    """Edge fluxes F_ij (m³/s) on the owned rows of the P1 vertex graph, and cell velocities.

    After `compute`, `flux[k]` is the flux from owned vertex `rows[k]` to column `cols[k]`
    (a local index in `column_map`, which extends the vertex index map), and `velocity` the
    Darcy velocity (m/s) of each owned cell.
    """

    def __init__(self, V: fem.FunctionSpace) -> None:
        mesh = V.mesh
        self.comm = mesh.comm
        self.n_cells = mesh.topology.index_map(3).size_local
        self.cell_dofs = np.ascontiguousarray(V.dofmap.list[: self.n_cells], dtype=np.int32)
        x = V.tabulate_dof_coordinates()[self.cell_dofs]  # (cells, 4, 3)
        jac = np.stack([x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]], axis=2)
        inv = np.linalg.inv(jac)
        self.grad_phi = np.empty((self.n_cells, 4, 3))
        self.grad_phi[:, 1:, :] = inv
        self.grad_phi[:, 0, :] = -inv.sum(axis=1)
        self.cell_volume = np.abs(np.linalg.det(jac)) / 6.0
        self._dual_normals = np.ascontiguousarray(
            self.cell_volume[:, None, None]
            * (self.grad_phi[:, EDGE_B] - self.grad_phi[:, EDGE_A])
            / 4.0
        )

        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self._csr = fem.create_matrix(fem.form(u * v * ufl.dx))
        self.column_map = self._csr.index_map(1)
        self.n_owned = V.dofmap.index_map.size_local
        n_cols = self.column_map.size_local + self.column_map.num_ghosts
        indptr = self._csr.indptr
        self.indptr = np.asarray(indptr[: self.n_owned + 1], dtype=PETSc.IntType)
        self.n_entries = int(self.indptr[-1])
        self.cols = np.asarray(self._csr.indices[: self.n_entries], dtype=np.int32)
        self.rows = np.repeat(np.arange(self.n_owned, dtype=np.int32), np.diff(self.indptr))
        self.diagonal = np.nonzero(self.rows == self.cols)[0]
        all_rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        keys = all_rows * n_cols + self._csr.indices
        order = np.argsort(keys)
        a = self.cell_dofs[:, EDGE_A].astype(np.int64)
        b = self.cell_dofs[:, EDGE_B].astype(np.int64)
        self._pos_ab = np.ascontiguousarray(
            order[np.searchsorted(keys[order], (a * n_cols + b).ravel())], dtype=np.int64
        )
        self._pos_ba = np.ascontiguousarray(
            order[np.searchsorted(keys[order], (b * n_cols + a).ravel())], dtype=np.int64
        )
        self.row_ptr = np.ascontiguousarray(self.indptr, dtype=np.int64)  # for compiled code
        self._ab, self._ba = np.empty(len(self._csr.data)), np.empty(len(self._csr.data))
        self._edge_flux = np.empty(6 * self.n_cells)  # compute's work array
        self.global_cols = self.column_map.local_to_global(self.cols).astype(PETSc.IntType)
        self._column_vector = dolfinx.la.vector(self.column_map)
        self.flux = np.zeros(self.n_entries)
        self.velocity = np.zeros((self.n_cells, 3))
        module = kernel("box_flux.c", DECLARATIONS)
        self._ffi, self._lib = module.ffi, module.lib

    def compute(self, p: fem.Function, mobility_k: np.ndarray) -> None:
        """Fluxes for pressure `p` (Pa, ghosts up to date) and lambda K per local cell
        (cells, 3, 3); ghost cells, if the mesh has any, are ignored."""
        mobility_k = np.ascontiguousarray(mobility_k[: self.n_cells], dtype=float)
        pressure = np.ascontiguousarray(p.x.array, dtype=float)
        self.velocity = np.empty((self.n_cells, 3))
        edge_flux = self._edge_flux
        ptr = self._ffi.from_buffer
        self._lib.cell_fluxes(
            self.n_cells,
            ptr("int32_t[]", self.cell_dofs),
            ptr("double[]", self.grad_phi),
            ptr("double[]", pressure),
            ptr("double[]", mobility_k),
            ptr("double[]", self._dual_normals),
            ptr("double[]", self.velocity),
            ptr("double[]", edge_flux),
        )
        self.flux = self._summed(edge_flux, antisymmetric=True)

    def upwind(
        self, cell_dofs: np.ndarray, p: np.ndarray, tie: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per cell of `cell_dofs` (cells x 4 vertex dofs, int32; owned and ghost cells alike),
        its vertex of highest `p` (Pa, local values; the first of equal ones) and which of its
        vertices lie within `tie` (Pa) of it, the highest included: bit k of a byte per cell."""
        dofs = np.ascontiguousarray(cell_dofs, dtype=np.int32)
        pressure = np.ascontiguousarray(p, dtype=float)
        vertex = np.empty(len(dofs), dtype=np.int32)
        near = np.empty(len(dofs), dtype=np.uint8)
        ptr = self._ffi.from_buffer
        self._lib.upwind_vertices(
            len(dofs), ptr("int32_t[]", dofs), ptr("double[]", pressure), tie,
            ptr("int32_t[]", vertex), ptr("uint8_t[]", near),
        )  # fmt: skip
        return vertex, near

    def edge_weights(self, tensor: np.ndarray | None = None) -> np.ndarray:
        """|e| grad phi_a . T_e grad phi_b for the six edges (a, b) of each owned cell e
        (cells, 6), T a symmetric tensor per cell (cells, 3, 3; the identity if None): the
        entries of the P1 stiffness matrix of T that cell e adds to rows a and b."""
        g = self.grad_phi
        if tensor is None:
            dots = np.einsum("ced,ced->ce", g[:, EDGE_A], g[:, EDGE_B])
        else:
            dots = np.einsum("ced,cdf,cef->ce", g[:, EDGE_A], tensor[: self.n_cells], g[:, EDGE_B])
        return self.cell_volume[:, None] * dots

    @cached_property
    def _identity_weights(self) -> np.ndarray:
        """`edge_weights` of the identity, computed at the first use."""
        return self.edge_weights()

    def stiffness(self, coefficient: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Values (owned rows, this CSR layout) of the P1 stiffness matrix of a cellwise
        coefficient c: A_ab = sum_e c_e |e| grad phi_a . T_e grad phi_b, with the edge
        `weights` of T (`edge_weights`; by default of the identity). The box method's
        diffusion operator: A T is the diffusive flux out of each box (W for a thermal
        conductivity in W/(m K) and T in K; m³/s for a mobility lambda in 1/(Pa s), T the
        permeability K in m² and a pressure in Pa). Rows sum to zero."""
        if weights is None:
            weights = self._identity_weights
        scale = _sized(coefficient[: self.n_cells], self.n_cells, "a coefficient per cell")
        values = self._summed(weights.ravel(), antisymmetric=False, scale=scale)
        values[self.diagonal] = 0.0
        values[self.diagonal] = -self.row_sums(values)
        return values

    def _summed(
        self, edge: np.ndarray, antisymmetric: bool, scale: np.ndarray | None = None
    ) -> np.ndarray:
        """Values per entry of the owned rows from values per cell edge (cells x 6, flat),
        each times `scale` of its cell if given: edge (a, b) of a cell adds its value to entry
        (a, b) and, negated if `antisymmetric`, to (b, a); contributions to rows another rank
        owns are summed there."""
        ptr = self._ffi.from_buffer
        edge = _sized(edge, len(self._pos_ab), "a value per cell edge")
        self._lib.edge_sums(
            len(edge),
            ptr("int64_t[]", self._pos_ab),
            ptr("int64_t[]", self._pos_ba),
            ptr("double[]", edge),
            self._ffi.NULL if scale is None else ptr("double[]", scale),
            len(self._ab),
            int(antisymmetric),
            ptr("double[]", self._ab),
            ptr("double[]", self._ba),
            ptr("double[]", self._csr.data),
        )
        self._csr.scatter_reverse()
        return self._csr.data[: self.n_entries].copy()

    def row_sums(self, values: np.ndarray) -> np.ndarray:
        """The sum of each owned row of values per entry of this layout (in entry order)."""
        values = _sized(values, self.n_entries, "a value per entry")
        sums = np.empty(self.n_owned)
        ptr = self._ffi.from_buffer
        self._lib.row_sums(
            self.n_owned, ptr("int64_t[]", self.row_ptr), ptr("double[]", values),
            ptr("double[]", sums),
        )  # fmt: skip
        return sums

    def split(self, q_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fluxes into each owned box (the negative entries, N_ij; m³/s) and the flow out
        of it, the sum of its positive entries plus `q_out` (m³/s per owned vertex)."""
        q_out = _sized(q_out, self.n_owned, "an outflow per owned vertex")
        inflow, outflow = np.empty(self.n_entries), np.empty(self.n_owned)
        ptr = self._ffi.from_buffer
        self._lib.split_fluxes(
            self.n_owned, ptr("int64_t[]", self.row_ptr), ptr("double[]", self.flux),
            ptr("double[]", q_out), ptr("double[]", inflow), ptr("double[]", outflow),
        )  # fmt: skip
        return inflow, outflow

    def divergence(self) -> np.ndarray:
        """Net flux out of each owned box into its neighbours (m³/s)."""
        return self.row_sums(self.flux)

    def matrix(self) -> PETSc.Mat:
        """A PETSc AIJ matrix with the nonzeros of this layout (owned rows, global columns),
        preallocated for `set_matrix`."""
        n, n_global = self.n_owned, self.column_map.size_global
        mat = PETSc.Mat().create(comm=self.comm)
        mat.setSizes(((n, n_global), (n, n_global)))
        mat.setType(PETSc.Mat.Type.AIJ)
        first = self.column_map.local_range[0]
        mat.setPreallocationCOO(
            (self.rows + first).astype(PETSc.IntType), self.global_cols.astype(PETSc.IntType)
        )
        return mat

    @staticmethod
    def set_matrix(mat: PETSc.Mat, values: np.ndarray) -> None:
        """Set (and assemble) the values of a `matrix()`, one per entry of this layout in its
        order (PETSc's coordinate interface: no search for where each entry goes, about five
        times faster than setting the CSR rows)."""
        mat.setValuesCOO(values, addv=PETSc.InsertMode.INSERT_VALUES)

    def to_columns(self, owned: np.ndarray) -> np.ndarray:
        """Values on owned vertices extended to the column layout (owned + all neighbours).

        Returns a view of one internal buffer that the next call overwrites: copy it to keep
        it (the transport calls this for the saturation inside each Newton iteration)."""
        vec = self._column_vector
        vec.array[: self.n_owned] = owned
        vec.scatter_forward()
        return vec.array


def _sized(values: np.ndarray, size: int, what: str) -> np.ndarray:
    """`values` as a contiguous float64 array of `size` entries for a compiled kernel, which
    would read past a shorter one; ValueError if it has another size."""
    array = np.ascontiguousarray(values, dtype=float)
    if array.shape != (size,):
        raise ValueError(f"{what}: expected {size} values, got an array of shape {array.shape}")
    return array
