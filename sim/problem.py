"""The injection problem: a scenario on a mesh, assembled from its parts.

`initialise()` builds, in order: the discretisation (sim.discretisation), the porous bone
(sim.medium), the cement, the needle inlets and leak routes, the shared box fluxes and the
saturation transport, the components (curing, leak accounting, flow) and the stepper
(sim.stepper) that owns the order of operations and the step-size policy; then the initial
state and its flow. `run()` advances until a stop rule ends the injection; `checkpoint()`
and `restore()` save and take up everything that evolves (sim.checkpoint). What the outputs
read of a run is in sim.measurements. Units: SI throughout.
"""

from __future__ import annotations

from collections.abc import Callable

from dolfinx import fem

from sim.checkpoint import Saved, local_copy
from sim.components.base import Component
from sim.components.curing import Curing, curing_component
from sim.components.flow import Flow, Timings
from sim.components.heat import heat_component
from sim.components.inlets import needle_inlets
from sim.components.leaks import LeakAccounting, Route, leak_boundaries
from sim.discretisation import Discretisation, discretise
from sim.flow.box_flux import BoxFluxes
from sim.flow.transport import ImplicitUpwindTransport
from sim.geometry.tagged_mesh import TaggedMesh
from sim.measurements import cement_in_bone
from sim.medium import PorousMedium, porous_medium
from sim.needles import NeedleInlet
from sim.physics.cement import CementModel
from sim.protocol import Injector
from sim.scenario import Scenario
from sim.state import State
from sim.stepper import Stepper

#: components a scenario section switches on, by section name, in the order they act after
#: the curing and before the leak accounting
OPTIONAL_COMPONENTS: dict[str, Callable[[InjectionProblem], Component]] = {
    "heat": heat_component,
}


class InjectionProblem:
    """Cement injection into a porous bone: build with `initialise()`, advance with `run()`.

    After `initialise()`: disc, medium, cement, injector, needles, routes, state, flow,
    curing, leaks, transport, stepper, and the optional components the scenario switches on
    (`optional`, e.g. heat); `stored_initial` is the cement in the bone at t = 0 (m³).
    """

    disc: Discretisation
    medium: PorousMedium
    cement: CementModel
    injector: Injector
    needles: list[NeedleInlet]
    routes: list[Route]
    state: State
    flow: Flow
    curing: Curing
    leaks: LeakAccounting
    optional: list[Component]
    transport: ImplicitUpwindTransport
    stepper: Stepper
    stored_initial: float

    def __init__(self, scenario: Scenario, tagged: TaggedMesh) -> None:
        self.scenario = scenario
        self.tagged = tagged
        self.comm = tagged.comm
        self.timings = Timings()

    def initialise(self) -> None:
        """Build every part (collective), set the initial state and solve its flow."""
        sc, num = self.scenario, self.scenario.numerics
        disc = self.disc = discretise(self.tagged)
        medium = self.medium = porous_medium(sc, disc)
        self.cement = CementModel(sc.cement)
        self.injector = Injector(sc.injection.needles)
        self.needles = needle_inlets(sc, disc, self.injector)
        boundaries = leak_boundaries(sc, disc, medium)
        self.routes = boundaries.routes
        self.state = State(
            S=fem.Function(disc.V, name="saturation"),
            p=fem.Function(disc.V, name="pressure"),
            start_age=sc.injection.start_after_mixing,
        )
        self.state.S.x.array[:] = sc.bone.initial_saturation
        fluxes = BoxFluxes(disc.V)
        self.transport = ImplicitUpwindTransport(
            fluxes,
            medium.pore_volume,
            medium.mobility,
            tolerance=num.newton_tolerance,
            max_iterations=num.newton_max_iterations,
        )
        self.curing = curing_component(
            self.cement, disc, medium, self.transport, num.max_viscosity_change
        )
        self.leaks = LeakAccounting(self.routes, disc, medium, sc.output.leak_threshold)
        self.flow = Flow(
            disc,
            medium,
            self.cement,
            self.curing,
            self.needles,
            self.injector,
            boundaries,
            num,
            self.state.p,
            fluxes,
            self.timings,
        )
        self.optional = [
            build(self) for name, build in OPTIONAL_COMPONENTS.items() if getattr(sc, name)
        ]
        self.stepper = Stepper(
            self.state,
            self.flow,
            self.transport,
            [self.curing, *self.optional, self.leaks],
            self.leaks,
            self.injector,
            num,
            sc.injection.stop,
        )
        self.stored_initial = cement_in_bone(self)
        if num.time_tolerance is not None:  # a step far above it is redone
            self.stepper.rollback = (self.snapshot, self.restore)
        self.stepper.initialise()

    def run(
        self, on_step: Callable[[InjectionProblem], None], output_times: list[float] | None = None
    ) -> str:
        """Advance until a stop rule ends the injection; return the reason.

        `on_step` is called at t = 0 and after every step. Steps land exactly on
        `output_times`, on every change of a scheduled rate and on the time limit.
        """
        return self.stepper.run(lambda: on_step(self), output_times)

    def checkpoint(self) -> dict[str, Saved]:
        """The evolving state of every part, by part (sim.checkpoint; not collective), taken
        after a step while `run` goes on."""
        parts: dict[str, Saved] = {
            "state": self.state.checkpoint(),
            "problem": {"stored_initial": self.stored_initial},
            "stepper": self.stepper.checkpoint(),
            "injector": self.injector.checkpoint(),
            "flow": self.flow.checkpoint(),
        }
        for key, component in self._components().items():
            parts[key] = component.checkpoint()
        return parts

    def restore(self, parts: dict[str, Saved]) -> None:
        """Take up a `checkpoint()` after `initialise()`; `run` then goes on from it."""
        self.state.restore(parts["state"])
        self.stored_initial = parts["problem"]["stored_initial"]
        self.stepper.restore(parts["stepper"])
        self.injector.restore(parts["injector"])
        self.flow.restore(self.state, parts["flow"])
        for key, component in self._components().items():
            component.restore(self.state, parts[key])

    def snapshot(self) -> dict[str, Saved]:
        """Everything that evolves, as it is now, for a `restore()` later in this run (a step
        taken back; collective)."""
        return local_copy(self.checkpoint(), self.disc)

    def _components(self) -> dict[str, Component]:
        """The stepper's components by a checkpoint key: position and class."""
        return {
            f"component{i}.{type(c).__name__}": c for i, c in enumerate(self.stepper.components)
        }

    def destroy(self) -> None:
        self.flow.destroy()
        self.transport.destroy()
        for component in self.optional:
            component.destroy()
