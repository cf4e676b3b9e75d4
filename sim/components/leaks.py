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
from functools import singledispatch

import numpy as np
import ufl
from dolfinx import fem

from sim.checkpoint import Saved
from sim.components.base import Component, StepData
from sim.discretisation import Discretisation
from sim.flow.openings import Openings
from sim.flow.pressure import Robin
from sim.medium import PorousMedium
from sim.scenario import Scenario
from sim.scenario.leak_routes import LeakRegion, LeakRoute, Outlet, Resistive, Vein
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


class _Assembly:
    """What the routes of a scenario contribute to the flow, gathered route by route: fixed-
    pressure outlets, per local vertex the Robin conductance, reference pressure and whether
    a threshold applies, each vein's (local vertices, geometric factor G in m³), and which
    vertices a route has claimed (the first route wins)."""

    def __init__(self, disc: Discretisation, medium: PorousMedium) -> None:
        n_local = disc.n_local
        self.disc = disc
        self.medium = medium
        self.bcs: list[fem.DirichletBC] = []
        self.robin_tags: list[int] = []
        self.veins: list[tuple[np.ndarray, float]] = []
        self.fixed, self.reference = np.zeros(n_local), np.zeros(n_local)
        self.thresholded = np.zeros(n_local, dtype=bool)
        self.claimed = np.zeros(n_local, dtype=bool)

    def claim(self, name: str, boundary: list[str]) -> tuple[Route, np.ndarray]:
        """The route through the named boundaries and its local vertices not claimed before."""
        disc = self.disc
        facets = np.unique(np.concatenate([disc.tagged.facets(b) for b in boundary]))
        dofs = disc.boundary_dofs(facets)
        dofs = dofs[~self.claimed[dofs]]
        self.claimed[dofs] = True
        return Route(name, dofs[dofs < disc.n_owned]), dofs

    def robin(self, spec: Resistive | Vein, dofs: np.ndarray) -> list[int]:
        """Mark `dofs` as an opening of `spec` to its outside pressure; its boundary tags."""
        tags = [self.disc.tagged.boundaries[b] for b in spec.boundary]
        self.robin_tags += tags
        self.reference[dofs] = spec.pressure + (spec.opening_pressure or 0.0)
        self.thresholded[dofs] = spec.opening_pressure is not None
        return tags

    def openings(self) -> Openings | None:
        """The Robin openings of every route gathered (None without any; collective)."""
        if not self.robin_tags:
            return None
        disc = self.disc
        area = disc.assemble_owned(ufl.TestFunction(disc.V) * disc.ds(tuple(self.robin_tags)))
        robin = Robin(area, np.zeros(disc.n_local), self.reference)
        is_open = np.ones(disc.n_local, bool)
        return Openings(robin, self.fixed, self.veins, self.thresholded, is_open)


@singledispatch
def _add_route(spec: LeakRoute, name: str, parts: _Assembly) -> Route:
    """Add a leak route of the scenario to `parts` and return its bookkeeping (collective).
    One implementation per kind of route, registered below."""
    raise TypeError(f"no leak route of kind {type(spec).__name__}")


@_add_route.register
def _(spec: Outlet, name: str, parts: _Assembly) -> Route:
    route, dofs = parts.claim(name, spec.boundary)
    disc = parts.disc
    parts.bcs.append(fem.dirichletbc(fem.Constant(disc.mesh, spec.pressure), dofs, disc.V))
    return route


@_add_route.register
def _(spec: Resistive, name: str, parts: _Assembly) -> Route:
    route, dofs = parts.claim(name, spec.boundary)
    parts.robin(spec, dofs)
    parts.fixed[dofs] = spec.conductance
    return route


@_add_route.register
def _(spec: Vein, name: str, parts: _Assembly) -> Route:
    route, dofs = parts.claim(name, spec.boundary)
    area = parts.disc.area(tuple(parts.robin(spec, dofs)))
    parts.veins.append((dofs, spec.count * np.pi * spec.diameter**4 / (128 * spec.length * area)))
    return route


@_add_route.register
def _(spec: LeakRegion, name: str, parts: _Assembly) -> Route:
    disc = parts.disc
    tags = tuple(disc.tagged.regions[r] for r in spec.regions)
    pv = disc.region_volumes(parts.medium.porosity, tags)
    return Route(name, np.zeros(0, dtype=np.int32), region_pore_volume=pv)


def leak_boundaries(
    scenario: Scenario, disc: Discretisation, medium: PorousMedium
) -> LeakBoundaries:
    """The leak routes of a scenario on a discretisation (collective). Boundary routes claim
    their vertices in scenario order; the routes list has the openings first, then regions."""
    parts = _Assembly(disc, medium)
    routes = [_add_route(spec, name, parts) for name, spec in scenario.leak_routes.items()]
    routes.sort(key=lambda r: r.region_pore_volume is not None)  # stable: openings first
    return LeakBoundaries(routes, parts.bcs, parts.openings(), parts.claimed[: disc.n_owned])


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

    def checkpoint(self) -> Saved:
        """Per route: cement and marrow out (m³), the cement in a leak region at the start
        (m³) and the first-leak time (s)."""
        return {
            name: [getattr(r, name) for r in self.routes]
            for name in ("leaked", "marrow_out", "initial_cement", "first_leak")
        }

    def restore(self, state: State, saved: Saved) -> None:
        for i, route in enumerate(self.routes):
            route.leaked = saved["leaked"][i]
            route.marrow_out = saved["marrow_out"][i]
            route.initial_cement = saved["initial_cement"][i]
            route.first_leak = saved["first_leak"][i]

    def leaked(self) -> float:
        """Cement leaked through all routes (m³)."""
        return sum(r.leaked for r in self.routes)

    def first_leaked(self) -> Route | None:
        """The first route (in scenario order) whose leak has reached the threshold."""
        return next((r for r in self.routes if r.leaked >= self.threshold), None)
