"""Leak routes: where cement can leave the bone, and how much has.

`leak_boundaries` turns the scenario's routes into what the flow needs (Dirichlet outlets,
lumped Robin openings and veins, which vertices let fluid out) and the routes' bookkeeping.
Each vertex belongs to the first route that claims it. `LeakAccounting` adds, after every
transport step, the cement that left through each opening (outflow times the fractional flow
of cement) or that entered each leak region, and records when each route's leaked volume
first reached the leak threshold. Volumes in m³, times in s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ufl
from dolfinx import fem

from sim.components.base import Component, StepData
from sim.discretisation import Discretisation
from sim.flow.openings import Openings
from sim.flow.pressure import Robin
from sim.medium import PorousMedium
from sim.scenario import Scenario
from sim.scenario.leak_routes import OPEN_ROUTES, LeakRegion, Outlet, Vein
from sim.state import State


@dataclass
class Route:
    """A leak route: an opening (its owned boundary vertices, what left through it, m³) or a
    leak region (the pore volume it owns per vertex; leaked = cement that entered it)."""

    name: str
    dofs: np.ndarray
    leaked: float = 0.0
    marrow_out: float = 0.0
    region_pore_volume: np.ndarray | None = None
    initial_cement: float = 0.0
    first_leak: float | None = None


@dataclass
class LeakBoundaries:
    """routes: every leak route in scenario order (openings first, then regions); bcs: the
    fixed-pressure outlets; openings: the Robin openings (None without any); is_outlet: owned
    vertices where the mixture can leave."""

    routes: list[Route]
    bcs: list[fem.DirichletBC] = field(default_factory=list)
    openings: Openings | None = None
    is_outlet: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def leak_boundaries(
    scenario: Scenario, disc: Discretisation, medium: PorousMedium
) -> LeakBoundaries:
    """The leak routes of a scenario on a discretisation (collective)."""
    routes: list[Route] = []
    bcs: list[fem.DirichletBC] = []
    n_local = disc.n_local
    robin_tags: list[int] = []
    veins: list[tuple[np.ndarray, float]] = []  # (local dofs, geometric factor m³)
    fixed, reference = np.zeros(n_local), np.zeros(n_local)
    thresholded = np.zeros(n_local, dtype=bool)
    claimed = np.zeros(n_local, dtype=bool)
    for name, spec in scenario.leak_routes.items():
        if not isinstance(spec, OPEN_ROUTES):
            continue
        facets = np.unique(np.concatenate([disc.tagged.facets(b) for b in spec.boundary]))
        dofs = disc.boundary_dofs(facets)
        dofs = dofs[~claimed[dofs]]
        claimed[dofs] = True
        routes.append(Route(name, dofs[dofs < disc.n_owned]))
        if isinstance(spec, Outlet):
            bcs.append(fem.dirichletbc(fem.Constant(disc.mesh, spec.pressure), dofs, disc.V))
            continue
        tags = [disc.tagged.boundaries[b] for b in spec.boundary]
        robin_tags += tags
        if isinstance(spec, Vein):
            area = disc.area(tuple(tags))
            veins.append((dofs, spec.count * np.pi * spec.diameter**4 / (128 * spec.length * area)))
        else:
            fixed[dofs] = spec.conductance
        reference[dofs] = spec.pressure + (spec.opening_pressure or 0.0)
        thresholded[dofs] = spec.opening_pressure is not None
    openings = None
    if robin_tags:
        area = disc.assemble_owned(ufl.TestFunction(disc.V) * disc.ds(tuple(robin_tags)))
        robin = Robin(area, np.zeros(n_local), reference)
        openings = Openings(robin, fixed, veins, thresholded, np.ones(n_local, bool))
    for name, spec in scenario.leak_routes.items():
        if isinstance(spec, LeakRegion):
            tags = tuple(disc.tagged.regions[r] for r in spec.regions)
            pv = disc.region_volumes(medium.porosity, tags)
            routes.append(Route(name, np.zeros(0, dtype=np.int32), region_pore_volume=pv))
    return LeakBoundaries(routes, bcs, openings, claimed[: disc.n_owned])


class LeakAccounting(Component):
    """Cement leaked per route and the time each route's leak first reached `threshold` (m³)."""

    def __init__(
        self, routes: list[Route], disc: Discretisation, medium: PorousMedium, threshold: float
    ) -> None:
        self.routes = routes
        self.disc = disc
        self.mobility = medium.mobility
        self.threshold = threshold

    def initialise(self, state: State) -> None:
        s = state.S.x.array[: self.disc.n_owned]
        for route in self.routes:
            if route.region_pore_volume is not None:
                route.initial_cement = self.disc.owned_sum(route.region_pore_volume * s)

    def after_transport(self, state: State, step: StepData) -> None:
        disc = self.disc
        f_new = self.mobility.fractional(step.s_new, step.mu_columns[: disc.n_owned])
        for route in self.routes:
            before = route.leaked
            if route.region_pore_volume is not None:
                cement = disc.owned_sum(route.region_pore_volume * step.s_new)
                route.leaked = cement - route.initial_cement
            else:
                out = step.q_out[route.dofs]
                route.leaked += step.dt * disc.owned_sum(out * f_new[route.dofs])
                route.marrow_out += step.dt * disc.owned_sum(out * (1 - f_new[route.dofs]))
            if route.first_leak is None and route.leaked >= self.threshold:
                # linear in time within the step, as the leaked volume of one step
                share = (self.threshold - before) / (route.leaked - before)
                route.first_leak = step.t + step.dt * min(max(share, 0.0), 1.0)

    def leaked(self) -> float:
        """Cement leaked through all routes (m³)."""
        return sum(r.leaked for r in self.routes)

    def first_leaked(self) -> Route | None:
        """The first route (in scenario order) whose leak has reached the threshold."""
        return next((r for r in self.routes if r.leaked >= self.threshold), None)
