"""ImplicitUpwindTransport (sim.flow.transport): backward-Euler upwind saturation transport.

Fixed flux fields from a linear pressure (flow along +x) on the unit cube (162 tetrahedra)
or a bar of 10 x 1 x 1 hexahedra (60 tetrahedra); checked serially and on 2 ranks:

- mass conservation: over one and several steps with cement injected through the inflow
  face and the mixture leaving through the outflow face, sum V (S - S^n) equals
  dt (sum q_in - sum f(S) q_out) to the solver's tolerance, with the ordered sweeps (one
  sweep a step in serial) and with Newton's method alone; S stays in [0, 1] and the reported
  largest change is the true one;
- no flux and no sources: S does not change (converged at iteration 0);
- a linear (diagonal) problem is solved in one sweep, or one Newton iteration, however large
  the change (Newton with no iteration allowed fails, returning S^n and converged=False);
  Newton's inflection-point stop costs one iteration;
- the front's Courant number: dt x outflow / pore volume, largest over the vertices whose
  saturation changed, not over the untouched ones upstream;
- upwinding: with injection in the middle of the bar, the vertices upstream stay exactly
  at 0 and the saturation decreases downstream;
- `carry`: a uniform property stays uniform, the cement-weighted amount V S c is conserved
  and c stays within the bounds of its initial and injected values.
"""

from __future__ import annotations

import numpy as np
import pytest
import ufl

from sim.flow.transport import MOVING, ImplicitUpwindTransport
from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import Corey

from .conftest import (
    COMM,
    MU_M,
    POROSITY,
    TOL,
    Flow,
    assemble_owned,
    bar,
    fluxes_of,
    global_max,
    global_min,
    global_sum,
    interpolate,
    isotropic,
    linear_flow,
    owned_x,
    p1,
    unit_cube,
)


def balance_error(flow: Flow, mobility, s_old, s_new, dt, mu_col, q_in=None) -> float:
    """|stored - dt (injected - leaked)| for one step (m³), over all ranks."""
    q_in = flow.q_in if q_in is None else q_in
    f_new = mobility.fractional(s_new, mu_col[: flow.fx.n_owned])
    stored = global_sum(flow.pore_volume * (s_new - s_old))
    exchanged = dt * (global_sum(q_in) - global_sum(f_new * flow.q_out))
    return abs(stored - exchanged)


@pytest.mark.parametrize("solver", ["sweeps", "newton"])
def test_mass_conservation_over_several_steps(solver):
    flow = linear_flow(unit_cube())
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    mu_col = flow.columns(np.full(flow.fx.n_owned, 10 * MU_M))
    q_total = global_sum(flow.q_in)
    assert q_total == pytest.approx(global_sum(flow.q_out), rel=1e-12) and q_total > 0
    total_pv = global_sum(flow.pore_volume)
    dt = 0.08 * total_pv / q_total  # 8 % of the pore volume per step
    transport = flow.transport(mobility, max_sweeps=0 if solver == "newton" else None)
    s = 0.2 + 0.5 * flow.x[:, 1]  # varies across the flow
    s_start = s.copy()
    leaked = 0.0
    for _ in range(4):
        s_new, result = transport.step(s, dt, flow.q_in, flow.q_out, mu_col)
        assert result.converged
        if solver == "newton":
            assert result.iterations >= 2  # nonlinear: more than one
        elif COMM.size == 1:
            assert result.iterations == 1  # in flow order: one sweep
        assert result.max_change == global_max(np.abs(s_new - s))
        assert balance_error(flow, mobility, s, s_new, dt, mu_col) <= 1e-10 * dt * q_total
        assert global_min(s_new) >= 0.0 and global_max(s_new) <= 1.0
        f_new = mobility.fractional(s_new, mu_col[: flow.fx.n_owned])
        leaked += dt * global_sum(f_new * flow.q_out)
        s = s_new
    stored = global_sum(flow.pore_volume * (s - s_start))
    assert stored > 0.1 * total_pv  # cement went in
    assert abs(stored - (4 * dt * q_total - leaked)) <= 1e-10 * 4 * dt * q_total
    transport.destroy()


def test_no_flux_no_sources_leaves_saturation_unchanged():
    mesh = unit_cube()
    V = p1(mesh)
    fx = fluxes_of(interpolate(V, lambda x: 0.0 * x[0]), isotropic(mesh, 1.0))
    assert global_max(np.abs(fx.flux)) == 0.0
    x = owned_x(V)
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    transport = ImplicitUpwindTransport(fx, np.full(len(x), 1e-3), mobility, TOL, 10)
    s_old = 0.5 + 0.4 * np.sin(5 * x[:, 0] + x[:, 2])
    zero = np.zeros(len(x))
    s_new, result = transport.step(s_old, 1.0, zero, zero, fx.to_columns(zero + MU_M).copy())
    assert result.converged and result.iterations == 0 and result.max_change == 0.0
    assert global_max(np.abs(s_new - s_old)) == 0.0
    transport.destroy()


def diagonal_problem(changes: dict[tuple[float, float, float], float]):
    """No flux; q_in at the vertices at the given points raises S there by the given amount
    in one step of dt = 1 s (a linear, diagonal system: R = V (S - S^n) / dt - q_in)."""
    mesh = unit_cube()
    V = p1(mesh)
    fx = fluxes_of(interpolate(V, lambda x: 0.0 * x[0]), isotropic(mesh, 1.0))
    x = owned_x(V)
    pore_volume = POROSITY * assemble_owned(ufl.TestFunction(V) * ufl.dx)
    expected = np.zeros(len(x))
    for point, change in changes.items():
        expected[np.all(np.abs(x - point) < 1e-9, axis=1)] = change
    assert COMM.allreduce(int(np.count_nonzero(expected))) == len(changes)
    return fx, pore_volume, pore_volume * expected, expected


def test_a_linear_problem_takes_one_newton_iteration_or_one_sweep():
    changes = {(0.0, 0.0, 0.0): 0.5, (1 / 3, 2 / 3, 1.0): 0.1, (1.0, 1.0, 1 / 3): -0.25}
    fx, pore_volume, q_in, expected = diagonal_problem(changes)
    mobility = Mobility(Corey(1.0, 1.0), MU_M)
    mu_col = fx.to_columns(np.full(fx.n_owned, MU_M)).copy()
    s_old = np.full(fx.n_owned, 0.4)
    q_out = np.zeros(fx.n_owned)
    none = ImplicitUpwindTransport(fx, pore_volume, mobility, TOL, 0, max_sweeps=0)
    s_new, result = none.step(s_old, 1.0, q_in, q_out, mu_col)
    assert not result.converged and result.iterations == 0
    assert np.isnan(result.max_change)
    assert global_max(np.abs(s_new - s_old)) == 0.0  # the old state back
    one = ImplicitUpwindTransport(fx, pore_volume, mobility, TOL, 1, max_sweeps=0)
    swept = ImplicitUpwindTransport(fx, pore_volume, mobility, TOL, 1)
    for transport in (one, swept):  # one Newton iteration, or one sweep
        s_new, result = transport.step(s_old, 1.0, q_in, q_out, mu_col)
        assert result.converged and result.iterations == 1
        assert global_max(np.abs(s_new - (s_old + expected))) <= 1e-12
        assert result.max_change == pytest.approx(0.5, rel=1e-12)
        transport.destroy()
    assert (one.newton_count, swept.sweep_count, swept.newton_count) == (1, 1, 0)
    none.destroy()


class Recording(ImplicitUpwindTransport):
    """Records each Newton update: the proposed change and the applied one."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proposed: list[float] = []
        self.applied: list[float] = []

    def _limited(self, s, ds, s_infl):
        new = super()._limited(s, ds, s_infl)
        self.proposed.append(global_max(np.abs(ds)))
        self.applied.append(global_max(np.abs(new - s)))
        return new


def test_update_stops_at_the_inflection_point():
    """Corey 2/2 with equal viscosities: f = S² / (S² + (1 - S)²), inflection at S = 1/2. A
    linear step from 0.3 to 0.7 is stopped at the inflection point first, so it takes two
    iterations."""
    fx, pore_volume, q_in, expected = diagonal_problem({(0.0, 1.0, 0.0): 0.4})
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    assert float(mobility.inflection(MU_M)) == pytest.approx(0.5, abs=1e-3)
    mu_col = fx.to_columns(np.full(fx.n_owned, MU_M)).copy()
    s_old = np.full(fx.n_owned, 0.3)
    q_out = np.zeros(fx.n_owned)
    transport = Recording(fx, pore_volume, mobility, TOL, 5, max_sweeps=0)
    s_new, result = transport.step(s_old, 1.0, q_in, q_out, mu_col)
    assert result.converged and result.iterations == 2
    assert transport.applied[0] == pytest.approx(0.2, abs=1e-3)  # 0.3 -> 1/2 only
    assert global_max(np.abs(s_new - (s_old + expected))) <= 1e-12
    transport.destroy()
    one = ImplicitUpwindTransport(fx, pore_volume, mobility, TOL, 1, max_sweeps=0)
    assert not one.step(s_old, 1.0, q_in, q_out, mu_col)[1].converged
    one.destroy()


def test_upwinding_leaves_upstream_vertices_untouched():
    mesh = bar()
    flow = linear_flow(mesh)
    fx, x = flow.fx, flow.x
    # precondition: on this mesh no edge flux points upstream
    x_col = fx.to_columns(x[:, 0]).copy()
    upstream = x_col[fx.cols] < x_col[fx.rows] - 1e-12
    assert global_max(np.where(upstream, fx.flux, 0.0)) <= 0.0
    inlet = np.abs(x[:, 0] - 0.5) < 1e-9
    assert COMM.allreduce(int(inlet.sum())) == 4
    pv_total = global_sum(flow.pore_volume)
    dt = 0.1 * POROSITY  # the marrow moves 0.1 (a tenth of the bar) per step
    q_in = np.where(inlet, 0.05 * pv_total / dt / 4, 0.0)  # 5 % of the pore volume per step
    mobility = Mobility(Corey(1.0, 1.0), MU_M)
    mu_col = flow.columns(np.full(fx.n_owned, MU_M))
    transport = flow.transport(mobility)
    s = np.zeros(fx.n_owned)
    outflow = np.bincount(fx.rows, np.maximum(fx.flux, 0.0), fx.n_owned) + flow.q_out
    through = dt * outflow / flow.pore_volume
    for _ in range(3):
        s_new, result = transport.step(s, dt, q_in, flow.q_out, mu_col)
        assert result.converged
        moved = np.abs(s_new - s) > MOVING
        assert result.courant == pytest.approx(global_max(np.where(moved, through, 0.0)))
        assert global_max(np.where(moved, 0.0, through)) > result.courant  # upstream
        error = balance_error(flow, mobility, s, s_new, dt, mu_col, q_in)
        assert error <= 1e-10 * pv_total
        s = s_new
    assert global_max(s[x[:, 0] < 0.5 - 1e-9]) == 0.0  # exactly: no cement upstream
    # mean saturation of each plane x = const: positive from the inlet on, decreasing
    planes = np.round(x[:, 0] * 10).astype(int)
    mean = np.array(
        [global_sum(s[planes == i]) / COMM.allreduce(int(np.sum(planes == i))) for i in range(11)]
    )
    assert np.all(mean[5:] > 0.0)
    assert np.all(np.diff(mean[5:]) < 0.0)
    transport.destroy()


def test_carry_keeps_uniform_values_and_conserves_the_carried_amount():
    flow = linear_flow(unit_cube())
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    mu_col = flow.columns(np.full(flow.fx.n_owned, 10 * MU_M))
    dt = 0.1 * global_sum(flow.pore_volume) / global_sum(flow.q_in)
    transport = flow.transport(mobility)
    s_old = 0.2 + 0.5 * flow.x[:, 1]
    s_new, result = transport.step(s_old, dt, flow.q_in, flow.q_out, mu_col)
    assert result.converged
    uniform = np.full(flow.fx.n_owned, 0.35)
    split = (result.inflow, result.outflow)  # the step's fluxes, split
    c = transport.carry(uniform, s_old, s_new, dt, flow.q_in, *split, mu_col, 0.35)
    assert global_max(np.abs(c - 0.35)) <= 1e-9
    c_old = flow.x[:, 2] * 0.5  # in [0, 0.5]; injected cement brings 1
    c = transport.carry(c_old, s_old, s_new, dt, flow.q_in, *split, mu_col, 1.0)
    assert global_min(c) >= -1e-12 and global_max(c) <= 1.0 + 1e-12
    f_new = mobility.fractional(s_new, mu_col[: flow.fx.n_owned])
    eps = 1e-9 * flow.pore_volume * (1.0 - s_new)  # the regularisation, times dt
    change = global_sum(flow.pore_volume * (s_new * c - s_old * c_old))
    exchanged = dt * (global_sum(flow.q_in) - global_sum(f_new * flow.q_out * c))
    assert abs(change - exchanged - global_sum(eps * (1.0 - c))) <= 1e-9 * abs(change)
    assert change > 0.0
    transport.destroy()
