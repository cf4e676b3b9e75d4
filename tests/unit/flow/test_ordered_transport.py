"""Ordered sweeps (sim.flow.ordered_transport) and their compiled kernel (sim.flow.compiled).

- the kernel's fractional flow is the Mobility's, to round-off, for several Corey exponents
  and viscosity ratios;
- the ordering: on a small graph with a cycle, the cycle is one component and every edge
  goes from an earlier component to a later one; a cycle comes in reverse postorder with only
  its back edge backward; the components of random graphs are scipy's strongly connected
  ones; on the box fluxes of an anisotropic permeability (non-monotone fluxes) every positive
  flux between owned vertices goes from an earlier component to a later one;
- sweeps and Newton's method give the same saturation for a large step of a sharp front
  (viscosity ratio 100, Corey 2/2, a third of the pore volume in one step), serially in one
  sweep where Newton takes several iterations; with one sweep allowed, Newton finishes what
  the sweeps leave (under MPI) and the same saturation comes out;
- a cycle fed by a neighbour's value is settled loosely only after an exchange changed
  that value (the kernel on a hand-made layout with a ghost column);
- the kernel is built into the cache folder once, atomically, and found there afterwards;
  without a working C compiler the error says so and leaves nothing in the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from sim.flow.ordered_transport import OrderedSweeps
from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import Corey

from .conftest import COMM, MU_M, anisotropic, global_max, global_sum, linear_flow, unit_cube


def graph(edges: list[tuple[int, int]], n: int) -> tuple[SimpleNamespace, np.ndarray]:
    """A CSR layout of n vertices with an entry (i, i) and (i, j), (j, i) for each edge
    i -> j, and fluxes +1 on (i, j) and -1 on (j, i)."""
    entries: dict[int, dict[int, float]] = {i: {i: 0.0} for i in range(n)}
    for i, j in edges:
        entries[i][j] = 1.0
        entries[j][i] = -1.0
    rows = [sorted(entries[i].items()) for i in range(n)]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    cols = np.array([j for r in rows for j, _ in r], dtype=np.int32)
    flux = np.array([v for r in rows for _, v in r])
    layout = SimpleNamespace(n_owned=n, indptr=indptr, row_ptr=indptr, cols=cols, comm=COMM)
    return layout, flux


def component_of(order: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The component index of each vertex."""
    which = np.empty(len(order), dtype=int)
    for c in range(len(first) - 1):
        which[order[first[c] : first[c + 1]]] = c
    return which


@pytest.mark.serial
@pytest.mark.parametrize("a, b", [(1.0, 1.0), (2.0, 2.0), (3.0, 1.5)])
def test_the_kernel_fractional_flow_is_the_mobilitys(a, b):
    mobility = Mobility(Corey(a, b), MU_M)
    fake, _ = graph([], 1)
    sweeps = OrderedSweeps(fake, mobility)
    s = np.linspace(0.0, 1.0, 1001)
    for ratio in (1e-2, 1.0, 2500.0):
        mu_c = np.full_like(s, ratio * MU_M)
        expected = mobility.fractional(s, mu_c)
        assert np.max(np.abs(sweeps.fractional(s, 1.0 / mu_c) - expected)) <= 1e-15


#: a graph with a cycle 1 -> 2 -> 3 -> 1 and a separate branch 6 -> 5
EDGES = [(4, 0), (0, 1), (1, 2), (2, 3), (3, 1), (3, 5), (6, 5)]


@pytest.mark.serial
def test_a_cycle_is_one_component_and_edges_point_downstream():
    fake, flux = graph(EDGES, 7)
    order, first = OrderedSweeps(fake, Mobility(Corey(), MU_M)).components(flux)
    assert sorted(order) == list(range(7))
    assert sorted(np.diff(first)) == [1, 1, 1, 1, 3]
    which = component_of(order, first)
    assert which[1] == which[2] == which[3]
    assert all(which[i] < which[j] for i, j in EDGES if which[i] != which[j])


@pytest.mark.serial
def test_a_cycle_comes_in_reverse_postorder_with_only_its_back_edges_backward():
    # 0 -> 1 -> 3 and 0 -> 2 -> 3, closed by 3 -> 0: a depth-first search from 0 goes
    # 0, 1, 3 (back edge 3 -> 0), then 2; in the order of discovery 2 -> 3 would run backward
    # too, in reverse postorder (0, 2, 1, 3) only the back edge does
    edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 0)]
    fake, flux = graph(edges, 4)
    order, first = OrderedSweeps(fake, Mobility(Corey(), MU_M)).components(flux)
    assert first.tolist() == [0, 4]
    position = np.argsort(order)
    assert [(i, j) for i, j in edges if position[i] > position[j]] == [(3, 0)]


@pytest.mark.serial
def test_the_components_are_the_strongly_connected_ones_of_a_random_graph():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(3)
    n = 400
    pairs = {(int(i), int(j)) for i, j in rng.integers(0, n, (900, 2)) if i != j}
    edges = [(i, j) for i, j in sorted(pairs) if (j, i) not in pairs or i < j]
    fake, flux = graph(edges, n)
    order, first = OrderedSweeps(fake, Mobility(Corey(), MU_M)).components(flux)
    assert sorted(order) == list(range(n))
    which = component_of(order, first)
    rows, cols = zip(*edges, strict=True)
    adjacency = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))
    count, label = connected_components(adjacency, directed=True, connection="strong")
    assert len(first) - 1 == count > 1 and max(np.diff(first)) > 10  # a large cycle too
    # the same partition: each of ours is one of scipy's, and as many
    assert len({(a, b) for a, b in zip(which, label, strict=True)}) == count
    assert all(which[i] < which[j] for i, j in edges if which[i] != which[j])


def weighted(edges: list[tuple[int, int]], n: int, flux: list[float]) -> SimpleNamespace:
    """The layout of `graph` with the flux `flux[e]` (m³/s) along each edge e, serial."""
    fake, sign = graph(edges, n)
    fake.flux = np.zeros(len(sign))
    rows = np.repeat(np.arange(n), np.diff(fake.indptr))
    for (i, j), value in zip(edges, flux, strict=True):
        fake.flux[(rows == i) & (fake.cols == j)] += value
        fake.flux[(rows == j) & (fake.cols == i)] -= value
    fake.to_columns = lambda owned: owned
    return fake


def swept(
    fake: SimpleNamespace,
    mobility: Mobility,
    outlet: np.ndarray,
    accumulation: np.ndarray,
    q_in: np.ndarray,
    s_old: np.ndarray,
    mu_c: np.ndarray,
    tolerance: float,
    max_sweeps: int,
) -> tuple[bool, int, np.ndarray, np.ndarray]:
    """Sweep the balance on a fake layout (outflow of the mixture through `outlet`, m³/s per
    vertex): converged, sweeps, S, and each balance's residual over its accumulation as
    computed here in NumPy."""
    n = fake.n_owned
    inflow = np.minimum(fake.flux, 0.0)
    rows = np.repeat(np.arange(n), np.diff(fake.indptr))
    out = np.bincount(rows, np.maximum(fake.flux, 0.0), n) + outlet
    s = s_old.copy()
    converged, count = OrderedSweeps(fake, mobility).solve(
        s, s_old, inflow, out, accumulation, q_in, mu_c, tolerance, max_sweeps
    )
    f = mobility.fractional(s, mu_c)
    inflows = np.bincount(rows, inflow * f[fake.cols], n)
    residual = accumulation * (s - s_old) + f * out + inflows - q_in
    return converged, count, s, residual / accumulation


@pytest.mark.serial
def test_one_sweep_solves_every_vertex_balance_through_a_cycle():
    """Cement enters at vertices 4 and 6, the mixture leaves at 5: after one sweep every
    balance R_i = 0 to round-off, those of the cycle 1 -> 2 -> 3 -> 1 included."""
    fake = weighted(EDGES, 7, list(1e-3 * np.linspace(1.0, 2.0, len(EDGES))))  # unequal
    outlet = np.zeros(7)
    outlet[5] = 2e-3
    q_in = np.zeros(7)
    q_in[[4, 6]] = 3e-3, 1e-3
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    converged, count, _, residual = swept(
        fake, mobility, outlet, np.full(7, 4e-3), q_in, np.linspace(0.0, 0.3, 7),
        np.full(7, 50 * MU_M), 1e-13, 5,
    )  # fmt: skip
    assert converged and count == 1
    assert np.max(np.abs(residual)) <= 1e-14


@pytest.mark.serial
def test_a_cycle_that_does_not_settle_in_one_sweep_is_swept_again():
    """A ring 0 -> 1 -> 2 -> 0 carrying a thousand times the flow through it (1e-3 in at 0,
    out at 2): Gauss-Seidel over the ring needs more than one sweep's passes. It used to stop
    after the second sweep, which looked at no vertex (no inflow had changed) and so moved
    nothing, and to report the saturations converged with residuals of 5e-3 (1.5 % of the
    injected cement lost)."""
    fake = weighted([(0, 1), (1, 2), (2, 0)], 3, [1.0 + 1e-3, 1.0 + 1e-3, 1.0])
    converged, count, _, residual = swept(
        fake, Mobility(Corey(2.0, 2.0), MU_M), np.array([0.0, 0.0, 1e-3]), np.full(3, 3e-3),
        np.array([1e-3, 0.0, 0.0]), np.zeros(3), np.full(3, MU_M), 1e-10, 50,
    )  # fmt: skip
    assert converged and count > 2
    assert np.max(np.abs(residual)) <= 1e-10


@pytest.mark.serial
def test_a_cycle_is_settled_loosely_only_after_its_neighbours_value_changed():
    """The kernel's sweep on two owned vertices in a cycle (0 <-> 1) fed by a ghost column 2,
    as a rank sees them under MPI. After an exchange that changed the ghost's value the cycle
    is `exposed` and its passes stop at `settled`; after one that did not, it is settled to
    round-off (it used to stay exposed through its own members' flags of the sweep before)."""
    from sim.flow.compiled import kernel
    from sim.flow.ordered_transport import DECLARATIONS

    module = kernel("ordered_transport.c", DECLARATIONS)
    ffi, lib = module.ffi, module.lib
    arrays = {
        "indptr": np.array([0, 3, 5], dtype=np.int64),
        "cols": np.array([0, 1, 2, 0, 1], dtype=np.int32),
        "inflow": np.array([0.0, -0.9, -0.3, -0.9, 0.0]),  # 0 <- 1, 0 <- ghost, 1 <- 0
        "out": np.ones(2), "acc": np.ones(2), "s_old": np.full(2, 0.2), "q_in": np.zeros(2),
        "inv_mu_c": np.ones(3), "s": np.full(2, 0.3), "f_col": np.empty(3),
        "first": np.array([0, 2], dtype=np.int64), "order": np.array([0, 1], dtype=np.int64),
        "exposed": np.zeros(2, np.uint8), "above": np.zeros(2, np.uint8),
        "changed": np.zeros(3, np.uint8),
    }  # fmt: skip
    types = {"float64": "double", "int64": "int64_t", "int32": "int32_t", "uint8": "uint8_t"}
    c = {k: ffi.from_buffer(f"{types[v.dtype.name]}[]", v) for k, v in arrays.items()}
    s_col = np.array([0.3, 0.3, 0.9])
    s_ptr = ffi.from_buffer("double[]", s_col)
    lib.ordered_fractional(3, s_ptr, c["inv_mu_c"], 1.0, 2.0, 2.0, c["f_col"])
    balance = [c[k] for k in ("indptr", "cols", "inflow", "out", "acc", "s_old", "q_in")]

    def residual() -> float:
        return lib.ordered_residual(2, *balance, c["s"], c["f_col"], 1e-13, c["above"])

    def sweep(first: bool, settled: float, ghost_changed: int) -> float:
        arrays["changed"][:] = 0, 0, ghost_changed
        return lib.ordered_sweep(
            2, 1, c["first"], c["order"], *balance, c["inv_mu_c"], 1.0, 2.0, 2.0, 100,
            settled, int(first), c["exposed"], c["above"], c["changed"], c["s"], c["f_col"],
        )  # fmt: skip

    sweep(True, np.inf, 0)  # the first sweep: nothing exposed, settled to round-off
    assert arrays["exposed"].tolist() == [0, 0] and residual() <= 1e-15
    arrays["f_col"][2] *= 0.5  # the exchange brings a new ghost value
    residual()
    change = sweep(False, 0.5, 1)
    assert arrays["exposed"].tolist() == [1, 1] and residual() > 1e-3  # passes stopped early
    residual()
    sweep(False, 0.1 * change, 0)  # the ghost did not change again
    assert arrays["exposed"].tolist() == [0, 0] and residual() <= 1e-15


@pytest.mark.serial
@pytest.mark.parametrize(("a", "b"), [(1.0, 3.0), (2.0, 3.0)])
def test_every_vertex_equation_is_solved_where_newton_bounces(a, b):
    """2000 random pairs of boxes (one with marrow and a trace of cement flowing into one full
    of cement, viscosity ratios 1e2-1e5): where f is S-shaped the vertex's Newton iteration
    bounced between the ends of its bracket and stopped at its iteration cap far from the
    root (22 pairs in 10 000 for Corey 1/3: residuals up to 0.23 of the accumulation)."""
    rng = np.random.default_rng(7)
    pairs = 2000
    fake = weighted(
        [(2 * k, 2 * k + 1) for k in range(pairs)], 2 * pairs, list(rng.uniform(1e-3, 1.0, pairs))
    )
    outlet = np.zeros(2 * pairs)
    outlet[1::2] = fake.flux[fake.flux > 0.0]  # each pair's flow leaves its second box
    accumulation = rng.uniform(1e-3, 1.0, 2 * pairs)
    q_in = np.zeros(2 * pairs)
    q_in[::2] = rng.uniform(0.0, 1e-6, pairs)
    s_old = np.zeros(2 * pairs)
    s_old[1::2] = 1.0 - 10.0 ** rng.uniform(-10, -2, pairs)
    mu_c = MU_M * np.repeat(10.0 ** rng.uniform(2, 5, pairs), 2)
    converged, count, s, residual = swept(
        fake, Mobility(Corey(a, b), MU_M), outlet, accumulation, q_in, s_old, mu_c, 1e-13, 5
    )
    assert converged and count == 1
    assert np.max(np.abs(residual)) <= 1e-13
    assert 0.0 <= s.min() and s.max() <= 1.0


def test_box_fluxes_point_from_earlier_to_later_components():
    mesh = unit_cube(4)
    x = mesh.geometry.x  # distorted, so that some fluxes run against the pressure gradient
    x[:, 0] += 0.32 * np.sin(5 * x[:, 1] + 2 * x[:, 2]) * x[:, 0] * (1 - x[:, 0])
    x[:, 1] += 0.32 * np.sin(7 * x[:, 0] + 3 * x[:, 2]) * x[:, 1] * (1 - x[:, 1])
    flow = linear_flow(mesh, tensor=anisotropic(mesh))
    fx = flow.fx
    sweeps = OrderedSweeps(fx, Mobility(Corey(), MU_M))
    order, first = sweeps.components(fx.flux)
    which = component_of(order, first)
    owned = fx.cols < fx.n_owned
    rows, cols = fx.rows[owned], fx.cols[owned]
    forward = fx.flux[owned] > 0.0
    assert np.all(which[rows[forward]] <= which[cols[forward]])
    # some fluxes run uphill (p = -x): an order by pressure would not be upstream first
    x_col = fx.to_columns(flow.x[:, 0]).copy()
    uphill = forward & (x_col[cols] < x_col[rows] - 1e-12)
    assert COMM.allreduce(int(uphill.sum())) > 0


@pytest.mark.parametrize("max_sweeps", [None, 1])
def test_sweeps_and_newton_give_the_same_saturation(max_sweeps):
    mesh = unit_cube(4)
    flow = linear_flow(mesh, tensor=anisotropic(mesh))
    mobility = Mobility(Corey(2.0, 2.0), MU_M)
    mu_col = flow.columns(np.full(flow.fx.n_owned, 100 * MU_M))
    dt = 0.3 * global_sum(flow.pore_volume) / global_sum(flow.q_in)
    s_old = np.zeros(flow.fx.n_owned)
    newton = flow.transport(mobility, max_iterations=200, max_sweeps=0)
    swept = flow.transport(mobility, max_iterations=200, max_sweeps=max_sweeps)
    s_newton, by_newton = newton.step(s_old, dt, flow.q_in, flow.q_out, mu_col)
    s_swept, by_sweeps = swept.step(s_old, dt, flow.q_in, flow.q_out, mu_col)
    assert by_newton.converged and by_sweeps.converged
    assert global_max(np.abs(s_swept - s_newton)) <= 1e-9
    assert global_max(s_swept) > 0.5  # a front went through
    assert by_sweeps.iterations == swept.sweep_count + swept.newton_count
    if COMM.size == 1:
        assert (swept.sweep_count, swept.newton_count) == (1, 0)
        assert by_newton.iterations >= 4
    newton.destroy()
    swept.destroy()


@pytest.mark.serial
def test_the_kernel_is_built_once_into_the_cache(tmp_path):
    script = (
        "from sim.flow.compiled import kernel\n"
        "from sim.flow.ordered_transport import DECLARATIONS\n"
        "print(kernel('ordered_transport.c', DECLARATIONS).__file__)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}

    def built() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        return run.stdout.strip()

    first = built()
    folder = tmp_path / "cementsim" / "kernels"
    assert os.path.dirname(first) == str(folder)
    stamp = os.stat(first).st_mtime_ns
    assert [p.name for p in folder.iterdir()] == [os.path.basename(first)]  # no build left
    assert built() == first and os.stat(first).st_mtime_ns == stamp  # found, not rebuilt
    # without a working compiler: a clear error, and nothing left in the cache
    elsewhere = {**env, "XDG_CACHE_HOME": str(tmp_path / "other"), "CC": "/nonexistent/cc"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=elsewhere, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    assert "cementsim needs the C compiler that DOLFINx compiles its forms with" in run.stderr
    assert list((tmp_path / "other" / "cementsim" / "kernels").iterdir()) == []
