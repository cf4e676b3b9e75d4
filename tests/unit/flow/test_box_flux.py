"""BoxFluxes (sim.flow.box_flux): median-dual edge fluxes of a P1 pressure.

Checked on the unit cube of 162 tetrahedra, serially and on 2 ranks:

- layout: rows are the owned vertices, the column map extends the vertex map, and
  `to_columns` brings each neighbour's owned value to its column;
- antisymmetry F_ab = -F_ba over every edge of the mesh (gathered by global index), zero on
  the diagonal, for a nonlinear pressure and an anisotropic tensor per cell;
- a linear pressure p = g.x with lambda K = k I: every cell velocity is -k g; the net flux of
  each box into its neighbours is minus what crosses its share of the boundary,
  -int (u.n) phi_a ds (zero for interior boxes), and the sum over all boxes equals the net
  boundary outflow int u.n ds (zero: u is divergence-free);
- the sum over b of F_ab is the P1 finite-element residual row a of
  int lambda K grad p . grad v dx (quadratic pressure, anisotropic tensor per cell);
- the compiled cell loop computes the products its docstring names (against NumPy einsums);
- the upwind vertex of each cell is its highest (np.argmax) and ties within a tolerance are
  flagged;
- the compiled sums (stiffness matrix, inflows and outflows, divergence) equal NumPy's to
  the last bit.
"""

from __future__ import annotations

import dolfinx
import numpy as np
import pytest
import ufl
from dolfinx import fem

from .conftest import (
    COMM,
    anisotropic,
    assemble_owned,
    flux_table,
    fluxes_of,
    global_max,
    global_sum,
    interpolate,
    isotropic,
    n_owned,
    p1,
    tensor_function,
    unit_cube,
)

G = np.array([1.0, -2.0, 0.5])  # pressure gradient (Pa/m)
K = 3.7  # lambda K (m²/(Pa·s))


def quadratic(x: np.ndarray) -> np.ndarray:
    return 1.0 + x[0] ** 2 - 2.0 * x[0] * x[1] + 0.5 * x[2] ** 2 + x[1] * x[2] - 0.3 * x[2]


def test_layout_rows_columns_and_ghost_exchange():
    V = p1(unit_cube())
    fx = fluxes_of(interpolate(V, quadratic), anisotropic(V.mesh))
    vertex_map = V.dofmap.index_map
    n = n_owned(V)
    assert fx.n_owned == n
    assert fx.column_map.local_range == vertex_map.local_range
    assert fx.column_map.size_global == vertex_map.size_global
    assert np.array_equal(np.unique(fx.rows), np.arange(n))
    assert np.array_equal(fx.rows[fx.diagonal], np.arange(n))  # one diagonal entry per row
    # to_columns: owned global indices arrive at every column, ghosts included
    owned_global = vertex_map.local_to_global(np.arange(n, dtype=np.int32)).astype(float)
    cols = fx.to_columns(owned_global)
    n_cols = fx.column_map.size_local + fx.column_map.num_ghosts
    expected = fx.column_map.local_to_global(np.arange(n_cols, dtype=np.int32))
    assert global_max(np.abs(cols[:n_cols] - expected)) == 0.0
    # the columns of a row are exactly the row vertex and its edge neighbours
    assert len(fx.cols) == len(fx.rows) == fx.n_entries == len(fx.flux)


def test_antisymmetric_fluxes_on_every_edge():
    V = p1(unit_cube())
    fx = fluxes_of(interpolate(V, quadratic), anisotropic(V.mesh))
    assert global_max(np.abs(fx.flux[fx.diagonal])) == 0.0
    table = flux_table(fx, V)
    scale = max(abs(f) for f in table.values())
    assert scale > 0.0
    missing = [key for key in table if (key[1], key[0]) not in table]
    assert missing == []
    worst = max(abs(table[a, b] + table[b, a]) for a, b in table)
    assert worst <= 1e-13 * scale
    # both ranks see the whole table: every global vertex is a row
    n_global = V.dofmap.index_map.size_global
    assert {a for a, _ in table} == set(range(n_global))


def test_linear_pressure_gives_exact_velocity():
    V = p1(unit_cube())
    p = interpolate(V, lambda x: G @ x)
    fx = fluxes_of(p, isotropic(V.mesh, K))
    assert fx.velocity.shape == (V.mesh.topology.index_map(3).size_local, 3)
    error = np.abs(fx.velocity - (-K * G)).max(initial=0.0)
    assert global_max(np.array([error])) <= 1e-12 * K * np.linalg.norm(G)


def test_linear_pressure_box_balance_matches_boundary_outflow():
    mesh = unit_cube()
    V = p1(mesh)
    fx = fluxes_of(interpolate(V, lambda x: G @ x), isotropic(mesh, K))
    div = fx.divergence()
    u = ufl.as_vector(-K * G)
    n = ufl.FacetNormal(mesh)
    v = ufl.TestFunction(V)
    boundary_share = assemble_owned(ufl.dot(u, n) * v * ufl.ds)  # flux out through box a's face
    scale = K * np.linalg.norm(G) / 9.0  # a box face area (1/3)^2 times |u|
    # each box: net out to neighbours + out through the boundary = 0 (u constant)
    assert global_max(np.abs(div + boundary_share)) <= 1e-12 * scale
    # interior boxes balance on their own
    interior = boundary_share == 0.0
    x = V.tabulate_dof_coordinates()[: n_owned(V)]
    inside = np.all((x > 1e-12) & (x < 1 - 1e-12), axis=1)
    assert np.array_equal(interior & inside, inside)
    assert COMM.allreduce(int(inside.sum())) == 8  # the 2^3 interior vertices
    assert global_max(np.abs(div[inside])) <= 1e-12 * scale
    # boxes on the inflow/outflow faces do exchange flux (the check above is not vacuous)
    assert global_max(np.abs(div)) > 0.1 * scale
    # sum over all boxes = net boundary outflow, computed independently with ufl
    outflow = COMM.allreduce(fem.assemble_scalar(fem.form(ufl.dot(u, n) * ufl.ds)))
    assert abs(global_sum(div) - (-outflow)) <= 1e-12 * scale


def test_box_divergence_equals_finite_element_residual():
    mesh = unit_cube()
    V = p1(mesh)
    p = interpolate(V, quadratic)
    tensor = anisotropic(mesh)
    fx = fluxes_of(p, tensor)
    lam_k = tensor_function(mesh, tensor)
    v = ufl.TestFunction(V)
    residual = assemble_owned(ufl.inner(lam_k * ufl.grad(p), ufl.grad(v)) * ufl.dx)
    div = fx.divergence()
    row_scale = np.bincount(fx.rows, np.abs(fx.flux), fx.n_owned)
    assert global_max(row_scale) > 0.0
    assert global_max(np.abs(div - residual) / row_scale) <= 1e-10
    # the residual is not trivially zero (nonlinear p, varying tensor)
    assert global_max(np.abs(residual) / row_scale) > 1e-3


def test_the_compiled_cell_loop_computes_the_documented_products():
    # grad p = sum_k grad phi_k p_k, u = -(lambda K) grad p, edge flux u . N_e per cell; the
    # einsums these were before the loop was compiled (to round-off of the summation order)
    V = p1(unit_cube())
    p = interpolate(V, quadratic)
    tensor = anisotropic(V.mesh)
    fx = fluxes_of(p, tensor)
    grad_p = np.einsum("ckd,ck->cd", fx.grad_phi, p.x.array[fx.cell_dofs])
    velocity = -np.einsum("cij,cj->ci", tensor[: fx.n_cells], grad_p)
    edge = np.einsum("ced,cd->ce", fx._dual_normals, velocity).ravel()
    scale = global_max(np.abs(velocity))
    assert global_max(np.abs(fx.velocity - velocity)) <= 1e-15 * scale
    expected = fx._summed(edge, antisymmetric=True)
    assert global_max(np.abs(fx.flux - expected)) <= 1e-15 * global_max(np.abs(expected))


def test_the_upwind_vertex_is_the_highest_and_ties_are_found():
    # per local cell (a refined mesh has ghost cells under MPI: all of them) the first vertex
    # of highest pressure (as np.argmax), and whether another is within the tie tolerance:
    # pressures rounded to a coarse grid make many exact ties
    coarse = unit_cube()
    coarse.topology.create_entities(1)
    mesh, _, _ = dolfinx.mesh.refine(coarse)
    V = p1(mesh)
    fx = fluxes_of(interpolate(V, quadratic), isotropic(V.mesh, K))
    rng = np.random.default_rng(7)
    vertices = V.dofmap.index_map
    p = np.round(rng.uniform(0.0, 4.0, vertices.size_local + vertices.num_ghosts))
    p[::5] += 1e-9  # within a tie tolerance of 1e-8 of a rounded value, not equal to it
    cell_dofs = V.dofmap.list
    vertex, bits = fx.upwind(cell_dofs, p, tie=1e-8)
    at_cell = p[cell_dofs]
    assert np.array_equal(vertex, cell_dofs[np.arange(len(cell_dofs)), np.argmax(at_cell, axis=1)])
    near = at_cell >= at_cell.max(axis=1, keepdims=True) - 1e-8
    assert np.array_equal((bits[:, None] >> np.arange(4)) & 1 == 1, near)
    tied = near.sum(axis=1) > 1
    assert 0 < tied.sum() < len(cell_dofs)  # both kinds occur
    exact = at_cell == at_cell.max(axis=1, keepdims=True)
    assert np.any(near.sum(axis=1) > exact.sum(axis=1))  # and ties only within the tolerance


def test_the_compiled_sums_per_row_and_entry_are_numpys():
    # the stiffness matrix, the split into inflows and outflows and the divergence, each
    # compiled, give NumPy's sums in NumPy's order: equal to the last bit
    V = p1(unit_cube())
    tensor = anisotropic(V.mesh)
    fx = fluxes_of(interpolate(V, quadratic), tensor)
    coefficient = np.linspace(1.0, 3.0, fx.n_cells) ** 2 / 7.0
    weights = fx.edge_weights(tensor)
    values = fx._summed((coefficient[:, None] * weights).ravel(), antisymmetric=False)
    values[fx.diagonal] = 0.0
    values[fx.diagonal] = -np.bincount(fx.rows, values, fx.n_owned)
    assert np.array_equal(fx.stiffness(coefficient, weights), values)
    q_out = np.linspace(0.0, 1e-9, fx.n_owned)
    inflow, outflow = fx.split(q_out)
    positive = np.where(fx.flux > 0.0, fx.flux, 0.0)
    assert np.array_equal(inflow, fx.flux - positive)
    assert np.array_equal(outflow, np.bincount(fx.rows, positive, fx.n_owned) + q_out)
    assert np.array_equal(fx.divergence(), np.bincount(fx.rows, fx.flux, fx.n_owned))
    assert global_max(inflow) == 0.0 and global_max(-inflow) > 0.0  # both signs occur


def test_the_compiled_sums_refuse_arrays_of_another_size():
    # a kernel would read past a shorter array
    V = p1(unit_cube())
    fx = fluxes_of(interpolate(V, quadratic), anisotropic(V.mesh))
    with pytest.raises(ValueError, match=f"a coefficient per cell: expected {fx.n_cells} values"):
        fx.stiffness(np.ones(fx.n_cells - 1))
    with pytest.raises(ValueError, match="an outflow per owned vertex: expected"):
        fx.split(0.0)
    with pytest.raises(ValueError, match="a value per entry: expected"):
        fx.row_sums(fx.flux[:-1])
