"""The injection problem: set-up in one ordered pass, then the sequential time loop.

Each step: (1) pressure with the mobility of the current saturation and the cement viscosity
at the current age, (2) conservative box fluxes, (3) implicit upwind saturation transport over
dt, (4) bookkeeping of injected, stored and leaked cement. Units: SI throughout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from sim.bone import cell_properties
from sim.flow.box_flux import BoxFluxes
from sim.flow.pressure import PressureSolver
from sim.flow.timestep import StepController
from sim.flow.transport import ImplicitUpwindTransport
from sim.geometry.tagged_mesh import TaggedMesh
from sim.physics.curing import viscosity_of_age
from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import relative_permeability
from sim.scenario import Scenario
from sim.scenario.leak_routes import Outlet

log = logging.getLogger(__name__)


def _owned_sum(comm: MPI.Comm, values: np.ndarray) -> float:
    return comm.allreduce(float(np.sum(values)), op=MPI.SUM)


@dataclass
class Needle:
    """A needle's inlet: tag, rate (m³/s), inflow weights per owned vertex (sum 1), area (m²)."""

    name: str
    tag: int
    rate: float
    volume: float
    weights: np.ndarray
    area: float
    tip: np.ndarray
    flux_density: fem.Constant
    pressure_form: fem.Form
    injected: float = 0.0


@dataclass
class Route:
    """An outlet leak route: its owned Dirichlet vertices and the cement that left through it."""

    name: str
    dofs: np.ndarray
    leaked: float = 0.0
    marrow_out: float = 0.0


@dataclass
class Timings:
    """Wall time (s) spent in each phase of the time loop."""

    assembly_and_pressure: float = 0.0
    fluxes: float = 0.0
    transport: float = 0.0
    output: float = 0.0


class InjectionProblem:
    """Cement injection into a porous bone: build with `initialise()`, advance with `run()`."""

    def __init__(self, scenario: Scenario, tagged: TaggedMesh) -> None:
        self.scenario = scenario
        self.tagged = tagged
        self.mesh = tagged.mesh
        self.comm: MPI.Comm = tagged.comm
        self.timings = Timings()

    # ---------------------------------------------------------------- set-up, in order
    def initialise(self) -> None:
        """Spaces -> bone properties -> volumes -> needles -> routes -> solvers -> state."""
        self._spaces()
        self._bone()
        self._volumes()
        self._needles()
        self._routes()
        self._solvers()
        self._initial_state()

    def _spaces(self) -> None:
        mesh = self.mesh
        mesh.topology.create_connectivity(2, 3)
        mesh.topology.create_connectivity(2, 0)
        self.V = fem.functionspace(mesh, ("Lagrange", 1))
        self.W = fem.functionspace(mesh, ("DG", 0))
        self.W_tensor = fem.functionspace(mesh, ("DG", 0, (3, 3)))
        self.W_vector = fem.functionspace(mesh, ("DG", 0, (3,)))
        self.n_owned = self.V.dofmap.index_map.size_local
        self.ds = ufl.Measure("ds", domain=mesh, subdomain_data=self.tagged.facet_tags)
        self.dx = ufl.Measure("dx", domain=mesh, subdomain_data=self.tagged.cell_tags)
        self.x_owned = self.V.tabulate_dof_coordinates()[: self.n_owned]
        self.p = fem.Function(self.V, name="pressure")

    def _bone(self) -> None:
        sc = self.scenario
        self.porosity = fem.Function(self.W, name="porosity")
        phi, self.permeability = cell_properties(sc.bone, self.tagged)
        self.porosity.x.array[:] = phi
        self.mobility = Mobility(
            relative_permeability(sc.bone.relative_permeability), sc.marrow.viscosity
        )
        self.viscosity_of_age = viscosity_of_age(sc.cement.viscosity)
        self.mobility_k = fem.Function(self.W_tensor, name="mobility_permeability")

    def _assemble_owned(self, form: ufl.Form) -> np.ndarray:
        vec = fem.assemble_vector(fem.form(form))
        vec.scatter_reverse(dolfinx.la.InsertMode.add)
        return vec.array[: self.n_owned].copy()

    def _volumes(self) -> None:
        v = ufl.TestFunction(self.V)
        self.pore_volume = self._assemble_owned(self.porosity * v * ufl.dx)
        self.bulk_volume = self._assemble_owned(v * ufl.dx)
        self.total_pore_volume = _owned_sum(self.comm, self.pore_volume)
        self.target_pore_volume: dict[str, np.ndarray] = {}
        for name, target in self.scenario.targets.items():
            tags = tuple(self.tagged.regions[r] for r in target.regions)
            self.target_pore_volume[name] = self._assemble_owned(self.porosity * v * self.dx(tags))

    def _needles(self) -> None:
        v = ufl.TestFunction(self.V)
        self.needles: list[Needle] = []
        for spec in self.scenario.injection.needles:
            tag = self.tagged.boundaries[spec.name]
            area = self.comm.allreduce(
                fem.assemble_scalar(fem.form(1.0 * self.ds(tag, domain=self.mesh))), op=MPI.SUM
            )
            weights = self._assemble_owned(v * self.ds(tag)) / area
            facets = self.tagged.facets(spec.name)
            tip = np.asarray(spec.tip) if spec.tip is not None else self._centroid(facets)
            g = fem.Constant(self.mesh, 0.0)
            self.needles.append(
                Needle(
                    spec.name,
                    tag,
                    spec.rate,
                    spec.volume,
                    weights,
                    area,
                    tip,
                    g,
                    fem.form(self.p * self.ds(tag)),
                )
            )

    def _centroid(self, facets: np.ndarray) -> np.ndarray:
        """Mean of the midpoints of the owned facets among `facets`, over all ranks (m)."""
        owned = facets[facets < self.mesh.topology.index_map(2).size_local]
        mid = dolfinx.mesh.compute_midpoints(self.mesh, 2, owned.astype(np.int32))
        total = np.zeros(3)
        self.comm.Allreduce(mid.sum(axis=0), total, op=MPI.SUM)
        return total / max(self.comm.allreduce(len(owned), op=MPI.SUM), 1)

    def _routes(self) -> None:
        self.routes: list[Route] = []
        self.bcs: list[fem.DirichletBC] = []
        claimed = np.zeros(self.n_owned + self.V.dofmap.index_map.num_ghosts, dtype=bool)
        for name, spec in self.scenario.leak_routes.items():
            if not isinstance(spec, Outlet):
                continue
            facets = np.unique(np.concatenate([self.tagged.facets(b) for b in spec.boundary]))
            dofs = fem.locate_dofs_topological(self.V, 2, facets)
            dofs = dofs[~claimed[dofs]]
            claimed[dofs] = True
            self.bcs.append(fem.dirichletbc(fem.Constant(self.mesh, spec.pressure), dofs, self.V))
            self.routes.append(Route(name, dofs[dofs < self.n_owned]))
        self.is_outlet = claimed[: self.n_owned]

    def _solvers(self) -> None:
        num = self.scenario.numerics
        self.pressure = PressureSolver(
            self.p,
            self.mobility_k,
            self.ds,
            [(n.tag, n.flux_density) for n in self.needles],
            self.bcs,
            tolerance=num.pressure_tolerance,
        )
        self.fluxes = BoxFluxes(self.V)
        self.transport = ImplicitUpwindTransport(
            self.fluxes,
            self.pore_volume,
            self.mobility,
            tolerance=num.newton_tolerance,
            max_iterations=num.newton_max_iterations,
        )

    def _initial_state(self) -> None:
        self.S = fem.Function(self.V, name="saturation")
        self.S.x.array[:] = self.scenario.bone.initial_saturation
        self.t = 0.0
        self.stored_initial = self.cement_in_bone()
        self.viscosity = fem.Function(self.W, name="cement_viscosity")
        self.velocity = fem.Function(self.W_vector, name="darcy_velocity")
        self.step_count = 0
        self.rejected_steps = 0
        self.newton_iterations_total = 0
        self.rates = [0.0 for _ in self.needles]
        self.last_newton_iterations = 0
        self._update_flow()

    # ---------------------------------------------------------------- physics of a step
    @property
    def age(self) -> float:
        """Cement age (s since mixing)."""
        return self.scenario.injection.start_after_mixing + self.t

    def _next_rates(self) -> list[float]:
        """Injection rate (m³/s) of each needle over the next step: constant until its volume
        is in. Once every needle has finished, the last rates are kept so that the final
        state shows the pressure at the end of injection."""
        rates = [n.rate if n.injected < n.volume * (1 - 1e-12) else 0.0 for n in self.needles]
        return rates if any(rates) else self.rates

    def _update_flow(self) -> None:
        """Pressure and fluxes for the current saturation, viscosity and rates."""
        t0 = time.perf_counter()
        self.rates = self._next_rates()
        mu_c = self.viscosity_of_age(self.age)
        self.viscosity.x.array[:] = mu_c
        for needle, rate in zip(self.needles, self.rates, strict=True):
            needle.flux_density.value = rate / needle.area
        cell_dofs = self.V.dofmap.list
        upwind = np.argmax(self.p.x.array[cell_dofs], axis=1)
        s_up = self.S.x.array[cell_dofs[np.arange(len(cell_dofs)), upwind]]
        lam = self.mobility.total(s_up, self.viscosity.x.array)
        self.mobility_k.x.array[:] = (lam[:, None, None] * self.permeability).ravel()
        self.pressure.solve(total_inflow=sum(self.rates))
        t1 = time.perf_counter()
        self.fluxes.compute(self.p, self.mobility_k.x.array.reshape(-1, 3, 3))
        n_cells = self.fluxes.n_cells
        self.velocity.x.array[: 3 * n_cells] = self.fluxes.velocity.ravel()
        self.timings.assembly_and_pressure += t1 - t0
        self.timings.fluxes += time.perf_counter() - t1

    def _boundary_exchange(self) -> tuple[np.ndarray, np.ndarray]:
        """Cement inflow at inlets and mixture outflow at outlets (m³/s, owned vertices)."""
        q_in = np.zeros(self.n_owned)
        for needle, rate in zip(self.needles, self.rates, strict=True):
            q_in += rate * needle.weights
        net_out_to_interior = self.fluxes.divergence()
        q_out = np.where(self.is_outlet, np.maximum(0.0, -net_out_to_interior), 0.0)
        return q_in, q_out

    def advance(self, dt: float) -> bool:
        """Try one step of size dt (s); on success update the state and return True."""
        t0 = time.perf_counter()
        q_in, q_out = self._boundary_exchange()
        mu_col = np.full(
            self.fluxes.column_map.size_local + self.fluxes.column_map.num_ghosts,
            self.viscosity_of_age(self.age),
        )
        s_old = self.S.x.array[: self.n_owned].copy()
        s_new, result = self.transport.step(s_old, dt, q_in, q_out, mu_col)
        self.timings.transport += time.perf_counter() - t0
        self.last_newton_iterations = result.iterations
        self.newton_iterations_total += result.iterations
        self.last_change = result.max_change
        if not result.converged:
            return False
        f_new = self.mobility.fractional(s_new, mu_col[: self.n_owned])
        for route in self.routes:
            route.leaked += dt * _owned_sum(self.comm, (q_out * f_new)[route.dofs])
            route.marrow_out += dt * _owned_sum(self.comm, (q_out * (1 - f_new))[route.dofs])
        for needle, rate in zip(self.needles, self.rates, strict=True):
            needle.injected += rate * dt
        self.S.x.array[: self.n_owned] = s_new
        self.S.x.scatter_forward()
        self.t += dt
        self.step_count += 1
        self._update_flow()
        return True

    # ---------------------------------------------------------------- measurements
    def needle(self, name: str) -> Needle:
        return next(n for n in self.needles if n.name == name)

    def route(self, name: str) -> Route:
        return next(r for r in self.routes if r.name == name)

    def rate_of(self, name: str) -> float:
        """Injection rate (m³/s) of a needle over the step that follows the current state."""
        return self.rates[[n.name for n in self.needles].index(name)]

    def cement_in_bone(self) -> float:
        """Cement volume in the pores (m³)."""
        return _owned_sum(self.comm, self.pore_volume * self.S.x.array[: self.n_owned])

    def injected(self) -> float:
        return sum(n.injected for n in self.needles)

    def leaked(self) -> float:
        return sum(r.leaked for r in self.routes)

    def mass_balance_error(self) -> float:
        """|injected - (stored - stored at t=0) - leaked| / injected (-); 0 before injection."""
        injected = self.injected()
        if injected <= 0.0:
            return 0.0
        stored = self.cement_in_bone() - self.stored_initial
        return abs(injected - stored - self.leaked()) / injected

    def tip_pressure(self, needle: Needle) -> float:
        """Mean pressure on the needle's inlet surface (Pa)."""
        return self.comm.allreduce(fem.assemble_scalar(needle.pressure_form), op=MPI.SUM) / (
            needle.area
        )

    def fill_fraction(self, target: str) -> float:
        """Cement volume / pore volume in a target region (-)."""
        pv = self.target_pore_volume[target]
        cement = _owned_sum(self.comm, pv * self.S.x.array[: self.n_owned])
        return cement / _owned_sum(self.comm, pv)

    def saturation_range(self) -> tuple[float, float]:
        s = self.S.x.array[: self.n_owned]
        return (
            self.comm.allreduce(float(s.min(initial=np.inf)), op=MPI.MIN),
            self.comm.allreduce(float(s.max(initial=-np.inf)), op=MPI.MAX),
        )

    def cloud(self, threshold: float = 0.5) -> tuple[float, float]:
        """Bone volume where S >= threshold (m³) and its largest distance from a needle tip (m)."""
        inside = self.S.x.array[: self.n_owned] >= threshold
        volume = _owned_sum(self.comm, self.bulk_volume[inside])
        tips = np.array([n.tip for n in self.needles])
        x = self.x_owned[inside]
        if len(x):
            dist = np.linalg.norm(x[:, None, :] - tips[None, :, :], axis=2).min(axis=1).max()
        else:
            dist = 0.0
        return volume, self.comm.allreduce(float(dist), op=MPI.MAX)

    # ---------------------------------------------------------------- the time loop
    def end_time(self) -> float:
        """Time (s) at which every needle has injected its volume."""
        return max(n.volume / n.rate for n in self.needles)

    def initial_step(self) -> float:
        """Default first step: fill half of the smallest inlet control volume (s)."""
        ratio = np.inf
        for n in self.needles:
            w = n.weights > 0
            if np.any(w):
                ratio = min(ratio, float(np.min(self.pore_volume[w] / (n.rate * n.weights[w]))))
        return 0.5 * self.comm.allreduce(ratio, op=MPI.MIN)

    def run(
        self, on_step: Callable[[InjectionProblem], None], output_times: list[float] | None = None
    ) -> None:
        """Advance to the end of injection, calling `on_step` at t = 0 and after every step.

        Steps are shortened to land exactly on `output_times` and on the end time.
        """
        num = self.scenario.numerics
        t_end = self.end_time()
        dt0 = num.dt_initial or self.initial_step()
        control = StepController(
            dt=dt0,
            dt_min=1e-9 * t_end,
            dt_max=num.dt_max or t_end / 20,
            target_change=num.max_saturation_change,
            max_iterations=num.newton_max_iterations,
        )
        stops = sorted({*(output_times or []), t_end})
        on_step(self)
        while self.t < t_end * (1 - 1e-12):
            if self.step_count >= num.max_steps:
                raise RuntimeError(
                    f"numerics.max_steps = {num.max_steps} reached at t = {self.t:.4g} s"
                )
            next_stop = next(s for s in stops if s > self.t * (1 + 1e-12))
            dt = self._limit_viscosity_change(min(control.dt, next_stop - self.t))
            if next_stop - (self.t + dt) < 0.25 * dt:  # do not leave a sliver before a stop
                dt = next_stop - self.t
            if self.advance(dt):
                control.accepted(self.last_change, self.last_newton_iterations)
                on_step(self)
            else:
                log.debug("step of %.3g s rejected at t = %.4g s", dt, self.t)
                self.rejected_steps += 1
                control.rejected()

    def _limit_viscosity_change(self, dt: float) -> float:
        limit = self.scenario.numerics.max_viscosity_change
        mu0 = self.viscosity_of_age(self.age)
        while dt > 0 and abs(self.viscosity_of_age(self.age + dt) / mu0 - 1.0) > limit:
            dt *= 0.5
        return dt

    def destroy(self) -> None:
        self.pressure.destroy()
        self.transport.destroy()
