"""PressureSolver, Robin and superpose (sim.flow.pressure) with BoxFluxes on the unit cube.

Anisotropic lambda K per cell; serially and on 2 ranks, to the solver tolerance:

- Dirichlet outlet (p = 100 Pa on x = 1) and a point source: p = 100 on the outlet, the box
  fluxes of the solution take out of each box exactly what the source puts in (Q at the
  source vertex, 0 at every other non-outlet vertex) and the outlet boxes receive Q in all;
- superposition: base (outlets only) + sum_k q_k unit_k equals the solve with the rates q,
  ghosts included, and on 2 ranks the superposed ghosts equal their owners to the last bit;
- lumped Robin openings on x = 1 with a conductance and outside pressure varying per vertex:
  the outflow of each opening vertex, minus the net box flux into its neighbours, equals
  g_i A_i (p_i - p_ext,i), A_i = int phi_i ds, and the openings let out Q in all;
- the operator and right-hand side assembled from the box fluxes' edge weights, with a
  mobility per cell, Dirichlet rows and the lifting of their columns, equal DOLFINx's
  finite-element assembly of lambda K with the same conditions (1e-12);
- the direct solve (MUMPS Cholesky) gives the multigrid pressure, with outlets and with
  openings; "auto" keeps it for a thin bar (little fill) and gives it up for a cube of
  12^3 hexahedra after the first solve, and either way answers as the other methods do.
"""

from __future__ import annotations

from collections.abc import Callable

import dolfinx
import dolfinx.fem.petsc as fem_petsc
import numpy as np
import pytest
import ufl
from dolfinx import fem
from petsc4py import PETSc

from sim.flow.box_flux import BoxFluxes
from sim.flow.pressure import PressureSolver, Robin, envelope_work, superpose

from .conftest import (
    COMM,
    anisotropic,
    assemble_owned,
    at_point,
    bar,
    face_facets,
    face_tags,
    fluxes_of,
    global_max,
    global_min,
    global_sum,
    n_cells_local,
    n_owned,
    p1,
    tensor_function,
    unit_cube,
)

SOURCE = (0.0, 1 / 3, 1 / 3)
SOURCE_2 = (1 / 3, 1.0, 2 / 3)
TOL = 1e-12  # residual (m³/s per box) / flow scale (1 m³/s)


def setup(
    dirichlet: bool = True,
    robin: Callable | None = None,
    p_out: float = 100.0,
    mesh=None,
    method: str = "multigrid",
    sources=(SOURCE, SOURCE_2),
):
    """The cube (or `mesh`) with an outlet on x = 1 (or none), inlets at two vertices
    (`sources`) and, if given, the Robin openings robin(V); the operator assembled."""
    mesh = unit_cube() if mesh is None else mesh
    V = p1(mesh)
    robin = None if robin is None else robin(V)
    tensor = anisotropic(mesh)
    p = fem.Function(V)
    outlet = fem.locate_dofs_topological(V, 2, face_facets(mesh, 0, 1.0))
    bcs = [fem.dirichletbc(fem.Constant(mesh, p_out), outlet, V)] if dirichlet else []
    inlets = [at_point(V, point).astype(float) for point in sources]
    solver = PressureSolver(
        p,
        BoxFluxes(V),
        tensor,
        inlets,
        bcs,
        TOL,
        1.0,
        robin=robin,
        method=method,
        prefix="unit_p_",
    )
    solver.assemble(np.ones(n_cells_local(mesh)))
    return V, p, tensor, inlets, outlet, solver


def test_dirichlet_outlet_and_source_conserved_by_the_box_fluxes():
    V, p, tensor, inlets, outlet, solver = setup()
    q = 2.0
    solver.solve([q, 0.0])
    n = n_owned(V)
    is_outlet = np.zeros(n, dtype=bool)
    is_outlet[outlet[outlet < n]] = True
    assert global_max(np.abs(p.x.array[:n][is_outlet] - 100.0)) <= 1e-10
    div = fluxes_of(p, tensor).divergence()
    expected = q * inlets[0]
    assert global_max(np.abs(div - expected)[~is_outlet]) <= 1e-10
    assert global_max(np.abs(p.x.array[:n]) - 100.0) > 1.0  # the source raises p
    assert global_sum(div[is_outlet]) == pytest.approx(-q, rel=1e-10)
    solver.destroy()


def solve_by_superposition(solver, p, rates):
    """base + sum rates_k unit_k (ghosts included), and the bare unit and base vectors."""
    base = p.x.petsc_vec.duplicate()
    units = [p.x.petsc_vec.duplicate() for _ in rates]
    solver.solve([0.0] * len(rates), outlets=True, out=base)
    for k, unit in enumerate(units):
        solver.solve([1.0 if j == k else 0.0 for j in range(len(rates))], outlets=False, out=unit)
    target = p.x.petsc_vec.duplicate()
    superpose(target, base, units, rates)
    with target.localForm() as t:
        combined = t.array.copy()
    base_values, unit_values = base.array.copy(), units[0].array.copy()
    for vec in (base, target, *units):
        vec.destroy()
    return combined, base_values, unit_values


def test_superposition_equals_the_combined_solve():
    V, p, _, _, outlet, solver = setup()
    rates = [1.5, -0.7]
    combined, base, unit = solve_by_superposition(solver, p, rates)
    solver.solve(rates)  # into p, ghosts updated
    scale = global_max(np.abs(p.x.array))
    assert scale > 100.0
    assert global_max(np.abs(combined - p.x.array)) <= 1e-10 * scale
    # the unit fields vanish on the outlet, the base field is the outlet pressure
    n = n_owned(V)
    assert global_max(np.abs(unit[outlet[outlet < n]])) <= 1e-10
    assert global_max(np.abs(base[:n] - 100.0)) <= 1e-10  # no source: uniform
    solver.destroy()


def test_superposition_with_robin_openings():
    V, p, _, _, _, solver = setup(dirichlet=False, robin=robin_on_x1)
    rates = [0.4, 2.0]
    combined, base, _ = solve_by_superposition(solver, p, rates)
    solver.solve(rates)
    scale = global_max(np.abs(p.x.array))
    assert global_max(np.abs(combined - p.x.array)) <= 1e-10 * scale
    # the base field: only the outside pressures 10 z drive it, in through the openings where
    # it is below them and out where above, as much in as out
    n = n_owned(V)
    robin = solver.robin
    assert 0.0 < global_min(base[:n]) and global_max(base[:n]) < 10.0
    exchange = robin.conductance[:n] * robin.area * (base[:n] - robin.pressure[:n])
    assert global_max(exchange) > 0.1 and global_min(exchange) < -0.1
    assert abs(global_sum(exchange)) <= 1e-10
    solver.destroy()


def robin_on_x1(V) -> Robin:
    """Openings on the face x = 1: g = 2 + y (m/(Pa·s)), p_ext = 10 z (Pa)."""
    mesh = V.mesh
    tags = face_tags(mesh, face_facets(mesh, 0, 1.0))
    area = assemble_owned(ufl.TestFunction(V) * ufl.ds(domain=mesh, subdomain_data=tags)(1))
    x = V.tabulate_dof_coordinates()  # local vertices, ghosts included
    return Robin(area, 2.0 + x[:, 1], 10.0 * x[:, 2])


def test_lumped_robin_outflow_per_vertex():
    V, p, tensor, inlets, _, solver = setup(dirichlet=False, robin=robin_on_x1)
    robin = solver.robin
    q = 3.0
    solver.solve([q, 0.0])
    n = n_owned(V)
    div = fluxes_of(p, tensor).divergence()
    opening = robin.area > 0
    assert COMM.allreduce(int(opening.sum())) == 16  # the 4 x 4 vertices of the face
    outflow = robin.conductance[:n] * robin.area * (p.x.array[:n] - robin.pressure[:n])
    assert global_max(np.abs(-div - outflow)[opening]) <= 1e-10
    assert global_max(np.abs(div - q * inlets[0])[~opening]) <= 1e-10
    assert global_sum(outflow[opening]) == pytest.approx(q, rel=1e-10)
    solver.destroy()


@pytest.mark.parametrize("robin", [None, robin_on_x1], ids=["outlet", "openings"])
def test_direct_solve_equals_multigrid(robin):
    pressures = []
    for method in ("direct", "multigrid"):
        _, p, _, _, _, solver = setup(dirichlet=robin is None, robin=robin, method=method)
        solver.solve([1.0, -0.4])
        assert solver.direct == (method == "direct")
        pressures.append(p.x.array.copy())
        solver.destroy()
    scale = global_max(np.abs(pressures[1]))
    assert scale > 1.0
    assert global_max(np.abs(pressures[0] - pressures[1])) <= 1e-9 * scale


# a thin bar factorises with little fill, a 3-D cube does not: "auto" solves the first
# directly and the second by multigrid, with the same answer as the other methods
@pytest.mark.parametrize(
    ("mesh", "sources", "direct"),
    [
        (lambda: bar(n=600), [(0.0, 0.0, 0.0), (0.0, 0.2, 0.2)], True),
        (lambda: unit_cube(8), [(0.0, 0.375, 0.375), (0.375, 1.0, 0.625)], False),
    ],
    ids=["bar", "cube"],
)
def test_auto_solves_directly_only_where_factorising_is_cheap(mesh, sources, direct):
    shape = mesh()
    answers = {}
    for method in ("auto", "direct", "multigrid"):
        _, p, _, _, _, solver = setup(mesh=shape, method=method, sources=sources)
        solver.solve([1.0, 0.5])
        if method == "auto":
            assert solver.direct == direct
            assert (solver.iterations == 1) == direct
        answers[method] = p.x.array.copy()
        solver.destroy()
    scale = global_max(np.abs(answers["direct"]))
    assert scale > 1.0
    for method in ("auto", "multigrid"):
        assert global_max(np.abs(answers[method] - answers["direct"])) <= 1e-9 * scale


def test_envelope_work_of_a_column_and_of_a_cube():
    """A column one hexahedron across: RCM orders it by layers of 4 vertices, each row of the
    factor reaches at most 7 back; the cube of 8^3 hexahedra: a layer of 81 vertices."""
    works = []
    for shape in (bar(n=400), unit_cube(8)):
        _, _, _, _, _, solver = setup(mesh=shape, method="multigrid", sources=[])
        works.append(envelope_work(solver.fx))
        solver.destroy()
    assert 1.0 < works[0] < 7.0**2 / 14
    assert works[1] > 81.0**2 / 27


def test_operator_equals_the_finite_element_assembly():
    mesh = unit_cube(4)
    V = p1(mesh)
    tensor = anisotropic(mesh)
    mobility = 1.0 + np.random.default_rng(COMM.rank).random(n_cells_local(mesh))
    p = fem.Function(V)
    outlet = fem.locate_dofs_topological(V, 2, face_facets(mesh, 0, 1.0))
    bcs = [fem.dirichletbc(fem.Constant(mesh, 100.0), outlet, V)]
    solver = PressureSolver(p, BoxFluxes(V), tensor, [], bcs, TOL, 1.0)
    solver.assemble(mobility)
    # the same by DOLFINx: the form of lambda K, rows and columns of the outlet eliminated
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    form = fem.form(
        ufl.inner(
            tensor_function(mesh, mobility[:, None, None] * tensor) * ufl.grad(u), ufl.grad(v)
        )
        * ufl.dx
    )
    reference = fem_petsc.assemble_matrix(form, bcs=bcs, diag=solver._diag_scale)
    reference.assemble()
    difference = solver.A.copy()
    difference.axpy(-1.0, reference, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
    assert difference.norm() <= 1e-12 * reference.norm()
    rhs = fem_petsc.create_vector(V)
    with rhs.localForm() as local:
        local.set(0.0)
    fem_petsc.apply_lifting(rhs, [form], bcs=[bcs])
    rhs.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(rhs, bcs, alpha=solver._diag_scale)
    scale = global_max(np.abs(rhs.array))
    assert scale > 1.0
    assert global_max(np.abs(solver._outlet_rhs.array - rhs.array)) <= 1e-12 * scale
    for obj in (difference, reference, rhs):
        obj.destroy()
    solver.destroy()


@pytest.mark.skipif(COMM.size == 1, reason="ghosts exist under MPI only")
def test_superposed_ghosts_are_their_owners_values_to_the_last_bit():
    # summed on each rank, a ghost could differ from its owner in the last bit (PETSc's axpy
    # rounds by where an entry sits in memory): dozens of the 12^3 cube's did, and the fluxes
    # and the upwinding read the ghosts
    mesh = dolfinx.mesh.create_unit_cube(COMM, 12, 12, 12)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    n = V.dofmap.index_map.size_local
    rng = np.random.default_rng(COMM.rank)
    base, unit, target = fem.Function(V), fem.Function(V), fem.Function(V)
    for f in (base, unit):
        f.x.array[:n] = rng.standard_normal(n) * 1e4
        f.x.scatter_forward()
    for rate in (3.7e5, 2.9e8, 6.1e6):
        superpose(target.x.petsc_vec, base.x.petsc_vec, [unit.x.petsc_vec], [rate])
        summed = target.x.array.copy()
        target.x.scatter_forward()
        assert np.array_equal(summed, target.x.array)
        expected = base.x.array[:n] + rate * unit.x.array[:n]
        assert np.allclose(summed[:n], expected, rtol=1e-14, atol=0.0)
