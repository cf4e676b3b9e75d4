"""Openings (sim.flow.openings): conductances of resistive and vein openings, and the active
set of thresholded openings.

- update: resistive vertices get their fixed conductance, vein vertices G lambda_t, shut
  vertices 0;
- reopen: a thresholded vertex opens iff its pressure exceeds its reference (equal: shut),
  unthresholded vertices stay open whatever the pressure, the result says whether anything
  changed, and it is collective (a change on one rank is reported on all);
- with the pressure solver on the unit cube (outlet on x = 1, thresholded openings on
  y = 0), iterating solve / reopen / update stops after a few passes at a set with open
  and shut vertices that satisfies complementarity: open vertices have p > p_ref and let
  out g A (p - p_ref) > 0 (the box flux balance), shut ones have p <= p_ref and no flow.
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem

from sim.flow.box_flux import BoxFluxes
from sim.flow.openings import Openings
from sim.flow.pressure import PressureSolver, Robin

from .conftest import (
    COMM,
    anisotropic,
    assemble_owned,
    at_point,
    face_facets,
    face_tags,
    fluxes_of,
    global_max,
    global_sum,
    n_cells_local,
    n_owned,
    p1,
    unit_cube,
    with_ghosts,
)


def openings(n: int = 6) -> Openings:
    """Six local vertices: 0-1 resistive (g = 3), 2-3 a vein (G = 0.5), 4-5 not openings;
    vertices 1 and 3 thresholded with reference 10, the others reference 0."""
    robin = Robin(np.ones(n), np.zeros(n), np.array([0.0, 10.0, 0.0, 10.0, 0.0, 0.0]))
    fixed = np.array([3.0, 3.0, 0.0, 0.0, 0.0, 0.0])
    thresholded = np.array([False, True, False, True, False, False])
    return Openings(robin, fixed, [(np.array([2, 3]), 0.5)], thresholded, np.ones(n, bool))


def test_update_sets_resistive_and_vein_conductances():
    o = openings()
    mobility = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    o.update(mobility)
    assert o.robin.conductance.tolist() == [3.0, 3.0, 2.0, 4.0, 0.0, 0.0]
    o.is_open[[1, 3]] = False
    o.update(mobility)
    assert o.robin.conductance.tolist() == [3.0, 0.0, 2.0, 0.0, 0.0, 0.0]


def test_reopen_shuts_below_and_opens_above_the_reference():
    o = openings()
    pressure = np.array([-5.0, 10.0, -5.0, 12.0, 0.0, 0.0])  # vertex 1 at its reference
    assert o.reopen(pressure, COMM)  # vertex 1 shuts
    assert o.is_open.tolist() == [True, False, True, True, True, True]
    assert not o.reopen(pressure, COMM)  # nothing changes
    pressure[[1, 3]] = [10.5, 9.0]
    assert o.reopen(pressure, COMM)
    assert o.is_open.tolist() == [True, True, True, False, True, True]
    o.update(np.ones(6))
    assert o.robin.conductance.tolist() == [3.0, 3.0, 0.5, 0.0, 0.0, 0.0]


def test_reopen_reports_a_change_on_any_rank():
    o = openings()
    pressure = np.full(6, 20.0)
    if COMM.rank == COMM.size - 1:
        pressure[3] = 0.0  # only the last rank changes
    assert o.reopen(pressure, COMM)
    assert not o.reopen(pressure, COMM)


def test_active_set_iteration_reaches_complementarity():
    mesh = unit_cube()
    V = p1(mesh)
    n = n_owned(V)
    tensor = anisotropic(mesh)
    x = V.tabulate_dof_coordinates()  # local vertices, ghosts included
    outlet = fem.locate_dofs_topological(V, 2, face_facets(mesh, 0, 1.0))
    bc = fem.dirichletbc(fem.Constant(mesh, 0.0), outlet, V)
    tags = face_tags(mesh, face_facets(mesh, 1, 0.0))
    area = assemble_owned(ufl.TestFunction(V) * ufl.ds(domain=mesh, subdomain_data=tags)(1))
    area[np.isclose(x[:n, 0], 1.0)] = 0.0  # vertices of the outlet belong to the outlet
    on_face = np.zeros(len(x), dtype=bool)
    on_face[:n] = area > 0
    on_face = with_ghosts(V, on_face)
    fixed = np.where(on_face, 5.0, 0.0)
    robin = Robin(area, np.zeros(len(x)), np.zeros(len(x)))
    o = Openings(robin, fixed, [], on_face.copy(), np.ones(len(x), bool))
    p = fem.Function(V)
    source = [at_point(V, (0.0, 1 / 3, 1 / 3)).astype(float)]
    solver = PressureSolver(p, BoxFluxes(V), tensor, source, [bc], 1e-12, 1.0, robin)

    def solve() -> None:
        o.update(np.ones(len(x)))
        solver.assemble(np.ones(n_cells_local(mesh)))
        solver.solve([1.0])

    solve()  # all open: take the median opening pressure as the threshold
    values = np.concatenate(COMM.allgather(p.x.array[:n][area > 0]))
    robin.pressure[:] = np.where(on_face, float(np.median(values)), 0.0)
    passes = 0
    while o.reopen(p.x.array, COMM):
        solve()
        passes += 1
        assert passes < 10
    open_ = o.is_open[:n] & (area > 0)
    shut = ~o.is_open[:n] & (area > 0)
    assert COMM.allreduce(int(open_.sum())) > 0 and COMM.allreduce(int(shut.sum())) > 0
    dp = p.x.array[:n] - robin.pressure[:n]
    assert np.all(dp[open_] > 0) and np.all(dp[shut] <= 0)
    div = fluxes_of(p, tensor).divergence()
    outflow = 5.0 * area * dp
    assert global_max(np.abs(-div - outflow)[open_]) <= 1e-10
    assert global_max(np.abs(div)[shut]) <= 1e-10
    assert global_sum(outflow[open_]) > 0.01  # a real share of the unit injection
    solver.destroy()
