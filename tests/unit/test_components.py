"""The component interface and the stepper (sim.components, sim.stepper) on a small column.

A component added to the stepper is called in the documented order: `initialise` before the
first flow solve, `after_transport` once per accepted step with the step's start time and
size, `after_flow` after the flow of every new state; its `max_step` caps every step; the
fields it lists are what the problem writes. Cure kinetics add the degree of cure as a field
and age laws do not. Runs serially and under mpirun -n 2.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.components.base import Component, StepData
from sim.geometry import build_mesh
from sim.problem import InjectionProblem
from sim.scenario import validate_scenario
from sim.state import State

from .scenario_support import small_column

VOLUME = 2e-8  # m³


def column(cement: dict | None = None) -> InjectionProblem:
    sc = validate_scenario(small_column(VOLUME, cement=cement))
    return InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))


class Recorder(Component):
    """Records the calls it receives; caps every step at `cap` (s)."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.calls: list[tuple[str, float]] = []

    def initialise(self, state: State) -> None:
        self.calls.append(("initialise", state.t))

    def max_step(self, state: State, dt: float) -> float:
        return min(dt, self.cap)

    def after_transport(self, state: State, step: StepData) -> None:
        assert step.t == state.t  # the time has not moved on yet
        assert np.all(step.s_new >= step.s_old - 1e-12)  # cement only comes in here
        self.calls.append(("after_transport", step.dt))

    def after_flow(self, state: State) -> None:
        self.calls.append(("after_flow", state.t))


def test_a_new_component_is_called_in_order_and_caps_the_steps():
    pb = column()
    pb.initialise()
    recorder = Recorder(cap=0.7)
    pb.stepper.components.append(recorder)
    recorder.initialise(pb.state)
    times = []
    reason = pb.run(lambda p: times.append(p.state.t))
    assert reason == "volume_reached"
    steps = np.diff(times)
    assert steps.max() <= 0.7 * (1 + 1e-12)
    kinds = [c[0] for c in recorder.calls]
    assert kinds[0] == "initialise"
    # then one after_transport and one after_flow per accepted step, in that order
    assert kinds[1:] == ["after_transport", "after_flow"] * pb.state.counters.steps
    np.testing.assert_allclose([c[1] for c in recorder.calls[1::2]], steps, rtol=1e-12)
    np.testing.assert_allclose([c[1] for c in recorder.calls[2::2]], times[1:], rtol=1e-15)
    assert measure.injected(pb) == pytest.approx(VOLUME, rel=1e-12)
    pb.destroy()


def test_fields_are_those_the_components_list():
    age = column()
    age.initialise()
    assert [f.name for f in age.stepper.fields()] == [
        "saturation",
        "pressure",
        "darcy_velocity",
        "cement_viscosity",
    ]
    kinetic = column({"preset": "vertebroplasty_low_viscosity"})
    kinetic.initialise()
    fields = {f.name: f for f in kinetic.stepper.fields()}
    assert list(fields)[-1] == "degree_of_cure"
    assert fields["degree_of_cure"].location == "point"
    law = kinetic.cement.curing
    start = kinetic.scenario.injection.start_after_mixing
    owned = fields["degree_of_cure"].function.x.array[: kinetic.disc.n_owned]
    np.testing.assert_array_equal(owned, law.syringe_conversion(start))
    for pb in (age, kinetic):
        pb.destroy()


def test_heat_probes_read_a_vertex_and_the_hottest_point_of_a_boundary():
    pb = column()
    sc = validate_scenario(
        {
            **pb.scenario.model_dump(exclude={"heat"}),
            "heat": {
                "cement_temperature": 333.15,
                "boundary": {"kind": "insulated"},
                "follow_up": 0.0,
                "probes": {"vertex": "[2, 0, 0] mm", "outlet": {"boundary": "outlet"}},
            },
        }
    )
    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    pb.run(lambda p: None)
    heat = pb.optional[0]
    t = heat.temperature.x.array
    probes = heat.probe_temperatures()
    x = pb.disc.x_owned
    at_vertex = np.nonzero(np.linalg.norm(x - [0.002, 0.0, 0.0], axis=1) < 1e-12)[0]
    found = MPI.COMM_WORLD.allgather([float(t[i]) for i in at_vertex])
    assert probes["vertex"] == pytest.approx(next(v for part in found for v in part), rel=1e-14)
    outlet = pb.disc.boundary_dofs(pb.tagged.facets("outlet"))
    outlet = outlet[outlet < pb.disc.n_owned]
    hottest = MPI.COMM_WORLD.allreduce(float(t[outlet].max(initial=-np.inf)), op=MPI.MAX)
    assert probes["outlet"] == hottest
    inlet_side = MPI.COMM_WORLD.allreduce(float(t[: pb.disc.n_owned].max()), op=MPI.MAX)
    assert inlet_side > probes["vertex"] > sc.heat.body_temperature + 1.0 > probes["outlet"]
    pb.destroy()


@pytest.mark.parametrize("share", [0.1, None])
def test_the_volume_per_step_caps_the_steps_unless_switched_off(share):
    raw = small_column(VOLUME)
    raw["numerics"] = {"front_courant": 8, "volume_per_step": share}
    sc = validate_scenario(raw)
    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    times = []
    assert pb.run(lambda p: times.append(p.state.t)) == "volume_reached"
    longest = np.diff(times).max()
    cap = 0.1 * VOLUME / 1e-9  # 0.1 of the volume at 1e-9 m³/s (s)
    if share is None:  # the front alone: fewer, longer steps
        assert longest > 1.5 * cap and pb.state.counters.steps < 10
    else:
        assert longest == pytest.approx(cap, rel=1e-12) and pb.state.counters.steps >= 10
    assert measure.injected(pb) == pytest.approx(VOLUME, rel=1e-12)
    pb.destroy()


def test_vertex_viscosities_are_recomputed_only_when_a_cell_viscosity_changes(monkeypatch):
    """The vertex means of the cell viscosities (an assembly) are derived again only when some
    rank's cell viscosities changed, and then on every rank (the assembly is collective)."""
    pb = column()
    pb.initialise()
    flow, comm = pb.flow, pb.comm
    assemblies = []
    assemble = type(flow.disc).assemble_owned

    def counted(disc, form):
        assemblies.append(1)
        return assemble(disc, form)

    monkeypatch.setattr(type(flow.disc), "assemble_owned", counted)
    mu = flow.viscosity.x.array[: flow.disc.n_cells].copy()
    before = flow.mu_vertex.copy()
    flow.set_viscosity(mu.copy())
    assert assemblies == []
    changed = mu.copy()
    if comm.rank == comm.size - 1:  # a change on one rank only
        changed[:1] *= 2.0
    flow.set_viscosity(changed)
    assert assemblies == [1]
    moved = comm.allreduce(float(np.abs(flow.mu_vertex - before).max(initial=0.0)), op=MPI.MAX)
    assert moved > 0.0
