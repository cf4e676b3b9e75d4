"""The injection problem: set-up in one ordered pass, then the sequential time loop.

Each step: (1) needle rates (scheduled, or solved for pressure-controlled needles) and the
pressure with the mobility of the current saturation and the cement viscosity, iterated
(Picard) where the viscosity depends on the shear rate; (2) conservative box fluxes;
(3) implicit upwind saturation transport over dt, and the cement's degree of cure carried
with it when cure kinetics are on; (4) bookkeeping of injected, stored and leaked cement.
Units: SI throughout.
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
from sim.flow.openings import Openings
from sim.flow.pressure import PressureSolver, Robin, superpose
from sim.flow.timestep import StepController
from sim.flow.transport import ImplicitUpwindTransport
from sim.geometry.tagged_mesh import TaggedMesh
from sim.needles import NeedleInlet, pressure_controlled_rate
from sim.physics.cement import CementModel
from sim.physics.curing import CureKinetics
from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import relative_permeability
from sim.protocol import Injector
from sim.scenario import Scenario
from sim.scenario.leak_routes import OPEN_ROUTES, LeakRegion, Outlet, Vein

log = logging.getLogger(__name__)

#: largest share of the total volume injected in one step
_VOLUME_PER_STEP = 0.05


def _owned_sum(comm: MPI.Comm, values: np.ndarray) -> float:
    return comm.allreduce(float(np.sum(values)), op=MPI.SUM)


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


class Anderson:
    """Anderson acceleration of depth 1 for a fixed-point iteration x <- G(x) (secant
    extrapolation of the residual G(x) - x; Walker & Ni, SIAM J. Numer. Anal. 49:1715, 2011).
    Collective: the dot products are reduced over the communicator."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, x: np.ndarray, gx: np.ndarray) -> np.ndarray:
        f = gx - x
        if self.previous is None:
            self.previous = (gx, f)
            return gx
        g_old, f_old = self.previous
        df = f - f_old
        num = self.comm.allreduce(float(f @ df), op=MPI.SUM)
        den = self.comm.allreduce(float(df @ df), op=MPI.SUM)
        gamma = num / den if den > 0 else 0.0
        self.previous = (gx, f)
        return gx - gamma * (gx - g_old)


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
        """Spaces -> bone -> cement -> volumes -> needles -> routes -> solvers -> state."""
        self._spaces()
        self._bone()
        self._cement()
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
        self.n_cells = mesh.topology.index_map(3).size_local
        self.cell_dofs = self.V.dofmap.list
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
        self.mobility_k = fem.Function(self.W_tensor, name="mobility_permeability")

    def _cement(self) -> None:
        self.cement = CementModel(self.scenario.cement)
        self.viscosity = fem.Function(self.W, name="cement_viscosity")
        self.log_viscosity = fem.Function(self.W)
        self._log_mu_vertex = fem.form(self.log_viscosity * ufl.TestFunction(self.V) * ufl.dx)
        self.conversion = fem.Function(self.V, name="degree_of_cure")

    def _assemble_owned(self, form: ufl.Form | fem.Form) -> np.ndarray:
        vec = fem.assemble_vector(form if isinstance(form, fem.Form) else fem.form(form))
        vec.scatter_reverse(dolfinx.la.InsertMode.add)
        return vec.array[: self.n_owned].copy()

    def _volumes(self) -> None:
        v = ufl.TestFunction(self.V)
        self.pore_volume = self._assemble_owned(self.porosity * v * ufl.dx)
        self.bulk_volume = self._assemble_owned(v * ufl.dx)
        self.total_pore_volume = _owned_sum(self.comm, self.pore_volume)
        self.target_pore_volume: dict[str, np.ndarray] = {}
        self.target_bulk_volume: dict[str, np.ndarray] = {}
        for name, target in self.scenario.targets.items():
            tags = tuple(self.tagged.regions[r] for r in target.regions)
            self.target_pore_volume[name] = self._assemble_owned(self.porosity * v * self.dx(tags))
            self.target_bulk_volume[name] = self._assemble_owned(v * self.dx(tags))

    def _needles(self) -> None:
        """Needle inlets: the cavity surface named after the needle where the mesh has one,
        otherwise a source spread over the boxes within the needle's inner radius of its tip
        (imported meshes; DESIGN §3)."""
        self.injector = Injector(self.scenario.injection.needles)
        self.needles: list[NeedleInlet] = []
        for spec, protocol in zip(
            self.scenario.injection.needles, self.injector.protocols, strict=True
        ):
            if spec.name in self.tagged.boundaries:
                kind, weights, area = "cavity", *self._surface_inlet(spec.name)
                tip = (
                    np.asarray(spec.tip)
                    if spec.tip is not None
                    else self._centroid(self.tagged.facets(spec.name))
                )
            else:
                tip = np.asarray(spec.tip)
                kind, weights, area = "source", self._volume_inlet(tip, spec.inner_radius), 0.0
                log.info(
                    "needle '%s': no boundary of that name, injecting as a source within "
                    "%.2f mm of its tip",
                    spec.name,
                    1e3 * spec.inner_radius,
                )
            self.needles.append(
                NeedleInlet(
                    spec.name,
                    kind,
                    area,
                    weights,
                    tip,
                    spec.inner_radius,
                    spec.cannula_length,
                    protocol,
                )
            )

    def _surface_inlet(self, name: str) -> tuple[np.ndarray, float]:
        """Inflow shares of the owned vertices of a cavity surface, and its area (m²)."""
        tag = self.tagged.boundaries[name]
        area = self.comm.allreduce(
            fem.assemble_scalar(fem.form(1.0 * self.ds(tag, domain=self.mesh))), op=MPI.SUM
        )
        return self._assemble_owned(ufl.TestFunction(self.V) * self.ds(tag)) / area, area

    def _volume_inlet(self, tip: np.ndarray, radius: float) -> np.ndarray:
        """Inflow shares of the owned vertices within `radius` of `tip`, by box volume (the
        nearest vertex if none is that close)."""
        distance = np.linalg.norm(self.x_owned - tip, axis=1)
        reach = radius
        if self.comm.allreduce(int(np.sum(distance <= reach)), op=MPI.SUM) == 0:
            reach = self.comm.allreduce(float(distance.min(initial=np.inf)), op=MPI.MIN)
        weights = np.where(distance <= reach * (1 + 1e-12), self.bulk_volume, 0.0)
        return weights / _owned_sum(self.comm, weights)

    def _centroid(self, facets: np.ndarray) -> np.ndarray:
        """Mean of the midpoints of the owned facets among `facets`, over all ranks (m)."""
        owned = facets[facets < self.mesh.topology.index_map(2).size_local]
        mid = dolfinx.mesh.compute_midpoints(self.mesh, 2, owned.astype(np.int32))
        total = np.zeros(3)
        self.comm.Allreduce(mid.sum(axis=0), total, op=MPI.SUM)
        return total / max(self.comm.allreduce(len(owned), op=MPI.SUM), 1)

    def _routes(self) -> None:
        """Outlets (Dirichlet), resistive openings and veins (lumped Robin, sim.flow.openings);
        each vertex belongs to the first route that claims it."""
        self.routes: list[Route] = []
        self.bcs: list[fem.DirichletBC] = []
        n_local = self.n_owned + self.V.dofmap.index_map.num_ghosts
        robin_tags: list[int] = []
        veins: list[tuple[np.ndarray, float]] = []  # (local dofs, geometric factor m³)
        fixed, reference = np.zeros(n_local), np.zeros(n_local)
        thresholded = np.zeros(n_local, dtype=bool)
        claimed = np.zeros(n_local, dtype=bool)
        for name, spec in self.scenario.leak_routes.items():
            if not isinstance(spec, OPEN_ROUTES):
                continue
            facets = np.unique(np.concatenate([self.tagged.facets(b) for b in spec.boundary]))
            dofs = fem.locate_dofs_topological(self.V, 2, facets)
            dofs = dofs[~claimed[dofs]]
            claimed[dofs] = True
            self.routes.append(Route(name, dofs[dofs < self.n_owned]))
            if isinstance(spec, Outlet):
                bc = fem.dirichletbc(fem.Constant(self.mesh, spec.pressure), dofs, self.V)
                self.bcs.append(bc)
                continue
            tags = [self.tagged.boundaries[b] for b in spec.boundary]
            robin_tags += tags
            if isinstance(spec, Vein):
                area = self.comm.allreduce(
                    fem.assemble_scalar(fem.form(1.0 * self.ds(tuple(tags), domain=self.mesh))),
                    op=MPI.SUM,
                )
                veins.append(
                    (dofs, spec.count * np.pi * spec.diameter**4 / (128 * spec.length * area))
                )
            else:
                fixed[dofs] = spec.conductance
            reference[dofs] = spec.pressure + (spec.opening_pressure or 0.0)
            thresholded[dofs] = spec.opening_pressure is not None
        self.openings = None
        if robin_tags:
            area = self._assemble_owned(ufl.TestFunction(self.V) * self.ds(tuple(robin_tags)))
            robin = Robin(area, np.zeros(n_local), reference)
            self.openings = Openings(robin, fixed, veins, thresholded, np.ones(n_local, bool))
        self.is_outlet = claimed[: self.n_owned]
        v = ufl.TestFunction(self.V)
        for name, spec in self.scenario.leak_routes.items():
            if isinstance(spec, LeakRegion):
                tags = tuple(self.tagged.regions[r] for r in spec.regions)
                pv = self._assemble_owned(self.porosity * v * self.dx(tags))
                self.routes.append(Route(name, np.zeros(0, dtype=np.int32), region_pore_volume=pv))

    def _update_openings(self) -> None:
        """Conductances of the openings for the fluid now at them (1 / mu_mixture: the total
        mobility of the vertex)."""
        if self.openings is None:
            return
        n_local = self.n_owned + self.V.dofmap.index_map.num_ghosts
        self.openings.update(
            self.mobility.total(self.S.x.array[:n_local], self.mu_columns[:n_local])
        )

    def _flow_scale(self) -> float:
        """A typical injection rate (m³/s): the scale of the pressure solver's tolerance."""
        rates = []
        for n in self.scenario.injection.needles:
            rates += [s.rate for s in n.steps() if s.rate is not None]
            rates += [n.max_rate or n.total_volume / 60.0] if n.syringe_pressure else []
        return max(rates)

    def _solvers(self) -> None:
        num = self.scenario.numerics
        self.pressure = PressureSolver(
            self.p,
            self.mobility_k,
            [n.weights for n in self.needles],
            self.bcs,
            tolerance=num.pressure_tolerance,
            flow_scale=self._flow_scale(),
            robin=None if self.openings is None else self.openings.robin,
        )
        controlled = [n for n in self.needles if n.protocol.pressure_controlled]
        self._superposition = [self.p.x.petsc_vec.duplicate() for _ in range(len(controlled) + 1)]
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
        for route in self.routes:
            if route.region_pore_volume is not None:
                route.initial_cement = _owned_sum(
                    self.comm, route.region_pore_volume * self.S.x.array[: self.n_owned]
                )
        self.velocity = fem.Function(self.W_vector, name="darcy_velocity")
        self.step_count = 0
        self.rejected_steps = 0
        self.newton_iterations_total = 0
        self.last_newton_iterations = 0
        self.picard_iterations = 0
        self.picard_failures = 0
        self._first_leak: dict[str, float | None] = {r.name: None for r in self.routes}
        self.rates = [0.0 for _ in self.needles]
        self.syringe_pressures = [0.0 for _ in self.needles]
        if isinstance(self.cement.curing, CureKinetics):
            self.conversion.x.array[:] = self.cement.curing.syringe_conversion(self.age)
        self._shear_rate = np.ones(self.n_cells)  # first guess of the Picard iteration (1/s)
        self._set_viscosity(self._cell_viscosity())
        self._update_flow()

    # ---------------------------------------------------------------- physics of a step
    @property
    def age(self) -> float:
        """Cement age (s since mixing)."""
        return self.scenario.injection.start_after_mixing + self.t

    def _cell_factor(self) -> np.ndarray | float:
        """Cure factor of the cement in each owned cell (uniform for age-based laws)."""
        if not self.cement.kinetic:
            return self.cement.bone_factor(self.age)
        alpha = self.conversion.x.array[self.cell_dofs[: self.n_cells]].mean(axis=1)
        return self.cement.bone_factor(self.age, alpha)

    def _cell_viscosity(self) -> np.ndarray:
        """Apparent viscosity (Pa·s) per owned cell at the current shear rates."""
        return self.cement.viscosity(self._shear_rate, self._cell_factor(), self.age)

    def _set_viscosity(self, mu: np.ndarray) -> None:
        """Set the cell viscosities; derive the vertex viscosities used by the fractional flow
        (volume-weighted geometric mean of the cells around each vertex)."""
        n = self.n_cells
        self.viscosity.x.array[:n] = mu
        self.viscosity.x.scatter_forward()
        self.log_viscosity.x.array[:n] = np.log(mu)
        self.log_viscosity.x.scatter_forward()
        owned = np.exp(self._assemble_owned(self._log_mu_vertex) / self.bulk_volume)
        self.mu_columns = self.fluxes.to_columns(owned).copy()

    def _upwind_vertices(self) -> np.ndarray:
        """The vertex of highest pressure of each local cell (where the flow enters it)."""
        dofs = self.cell_dofs
        return dofs[np.arange(len(dofs)), np.argmax(self.p.x.array[dofs], axis=1)]

    def _set_mobility(self, upwind: np.ndarray) -> None:
        """lambda_t K per cell, lambda_t from the saturation of the cell's upstream vertex."""
        s_up = self.S.x.array[upwind]
        lam = self.mobility.total(s_up, self.viscosity.x.array)
        self.mobility_k.x.array[:] = (lam[:, None, None] * self.permeability).ravel()

    def tip_pressure_of(self, vec_local: np.ndarray, needle: NeedleInlet) -> float:
        """Mean of a P1 pressure (owned values) over a needle's inlet surface (Pa)."""
        return _owned_sum(self.comm, needle.weights * vec_local[: self.n_owned])

    def _cannula_drop(self, needle: NeedleInlet, rate: float) -> float:
        return needle.cannula_pressure_drop(
            rate,
            self.cement.law_at(self.age),
            self.cement.syringe_factor(self.age),
            self.cement.set_viscosity,
        )

    def _scheduled_rates(self) -> list[float]:
        """Rates of rate-driven needles over the next step (0 for pressure-controlled ones)."""
        return [n.protocol.scheduled_rate(self.t) for n in self.needles]

    def _pressure_and_rates(self, rates: list[float], controlled: list[int]) -> list[float]:
        """Solve for p with the given rates; the rates of the `controlled` needles are solved
        for (pressure control) by superposition."""
        rates = [0.0 if i in controlled else r for i, r in enumerate(rates)]
        if not controlled:
            self.pressure.solve(rates)
            return rates
        base, *units = self._superposition[: len(controlled) + 1]
        self.pressure.solve(rates, outlets=True, out=base)
        for k, unit in zip(controlled, units, strict=False):
            self.pressure.solve(
                [1.0 if i == k else 0.0 for i in range(len(rates))], outlets=False, out=unit
            )
        tip0 = [self.tip_pressure_of(base.array, self.needles[j]) for j in controlled]
        gain = [[self.tip_pressure_of(u.array, self.needles[j]) for u in units] for j in controlled]
        q = [0.0] * len(controlled)
        for _ in range(20 if len(controlled) > 1 else 1):  # Gauss-Seidel over the needles
            for a, j in enumerate(controlled):
                needle = self.needles[j]
                others = tip0[a] + sum(gain[a][b] * q[b] for b in range(len(q)) if b != a)
                q[a] = pressure_controlled_rate(
                    needle.protocol.spec.syringe_pressure,  # type: ignore[arg-type]
                    others,
                    gain[a][a],
                    lambda r, n=needle: self._cannula_drop(n, r),
                    needle.protocol.spec.max_rate,
                )
        for a, j in enumerate(controlled):
            rates[j] = q[a]
        superpose(self.p.x.petsc_vec, base, units, q)
        return rates

    def _update_flow(self) -> None:
        """Rates, pressure, fluxes and viscosities for the current state (Picard on the
        viscosity where it depends on the shear rate)."""
        num = self.scenario.numerics
        # once every needle has finished, the state keeps showing the last injection pressure
        finished = self.injector.finished()
        given = self.rates if finished else self._scheduled_rates()
        controlled = [
            i
            for i, (n, r) in enumerate(zip(self.needles, self.rates, strict=True))
            if n.protocol.pressure_controlled
            and (n.protocol.active(self.t) or (finished and r > 0))
        ]
        upwind = self._upwind_vertices()  # fixed within the step, so the iteration cannot cycle
        self._update_openings()
        accelerate = Anderson(self.comm)
        for iteration in range(1, num.picard_max_iterations + 1):
            t0 = time.perf_counter()
            self._set_mobility(upwind)
            self.pressure.assemble()
            rates = self._pressure_and_rates(given, controlled)
            self.p.x.scatter_forward()
            t1 = time.perf_counter()
            self.fluxes.compute(self.p, self.mobility_k.x.array.reshape(-1, 3, 3))
            self.timings.assembly_and_pressure += t1 - t0
            self.timings.fluxes += time.perf_counter() - t1
            reopened = self.openings is not None and self.openings.reopen(self.p.x.array, self.comm)
            if reopened:
                self._update_openings()
            if self.cement.newtonian:
                if reopened:
                    continue
                break
            self._shear_rate = self.cement.closure.shear_rate(
                self.fluxes.velocity,
                self.permeability[: self.n_cells],
                self.porosity.x.array[: self.n_cells],
                self.cement.law_at(self.age).flow_index,
            )
            log_old = np.log(self.viscosity.x.array[: self.n_cells])
            log_new = np.log(self._cell_viscosity())
            change = self.comm.allreduce(
                float(np.abs(log_new - log_old).max(initial=0.0)), op=MPI.MAX
            )
            self._set_viscosity(np.exp(accelerate(log_old, log_new)))
            log.debug("Picard %d: largest viscosity change %.2e", iteration, change)
            if change <= num.picard_tolerance and not reopened:
                break
        else:
            self.picard_failures += 1
            log.warning(
                "viscosity (Picard) and opening iteration did not converge in %d iterations at "
                "t = %.4g s",
                num.picard_max_iterations,
                self.t,
            )
        self.picard_iterations = iteration
        self.velocity.x.array[: 3 * self.n_cells] = self.fluxes.velocity.ravel()
        self.rates = rates
        self.syringe_pressures = [
            self.tip_pressure(n) + self._cannula_drop(n, r)
            for n, r in zip(self.needles, self.rates, strict=True)
        ]

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
        s_old = self.S.x.array[: self.n_owned].copy()
        s_new, result = self.transport.step(s_old, dt, q_in, q_out, self.mu_columns)
        self.last_newton_iterations = result.iterations
        self.last_change = result.max_change
        if not result.converged:
            self.timings.transport += time.perf_counter() - t0
            return False
        self.newton_iterations_total += result.iterations
        if isinstance(self.cement.curing, CureKinetics):
            self._cure(s_old, s_new, dt, q_in, q_out)
        self.timings.transport += time.perf_counter() - t0
        f_new = self.mobility.fractional(s_new, self.mu_columns[: self.n_owned])
        leaked_before = [route.leaked for route in self.routes]
        for route in self.routes:
            if route.region_pore_volume is not None:
                cement = _owned_sum(self.comm, route.region_pore_volume * s_new)
                route.leaked = cement - route.initial_cement
                continue
            route.leaked += dt * _owned_sum(self.comm, (q_out * f_new)[route.dofs])
            route.marrow_out += dt * _owned_sum(self.comm, (q_out * (1 - f_new))[route.dofs])
        self.S.x.array[: self.n_owned] = s_new
        self.S.x.scatter_forward()
        for needle, rate in zip(self.needles, self.rates, strict=True):
            needle.protocol.account(self.t + dt, rate, dt)
        self.t += dt
        self.step_count += 1
        threshold = self.scenario.output.leak_threshold
        for route, before in zip(self.routes, leaked_before, strict=True):
            if self._first_leak.get(route.name) is None and route.leaked >= threshold:
                # linear in time within the step, as the leaked volume of one step
                share = (threshold - before) / (route.leaked - before)
                self._first_leak[route.name] = self.t - dt + dt * min(max(share, 0.0), 1.0)
        self.injector.release(self.t)
        self._set_viscosity(self._cell_viscosity())
        self._update_flow()
        return True

    def _cure(
        self, s_old: np.ndarray, s_new: np.ndarray, dt: float, q_in: np.ndarray, q_out: np.ndarray
    ) -> None:
        """Carry the degree of cure with the cement, then let it cure at bone temperature."""
        curing: CureKinetics = self.cement.curing  # type: ignore[assignment]
        injected = curing.syringe_conversion(self.age + 0.5 * dt)
        carried = self.transport.carry(
            self.conversion.x.array[: self.n_owned],
            s_old,
            s_new,
            dt,
            q_in,
            q_out,
            self.mu_columns,
            injected,
        )
        self.conversion.x.array[: self.n_owned] = curing.advance(
            np.clip(carried, 0.0, 1.0), curing.bone_temperature, dt
        )
        self.conversion.x.scatter_forward()

    # ---------------------------------------------------------------- measurements
    def needle(self, name: str) -> NeedleInlet:
        return next(n for n in self.needles if n.name == name)

    def route(self, name: str) -> Route:
        return next(r for r in self.routes if r.name == name)

    def rate_of(self, name: str) -> float:
        """Injection rate (m³/s) of a needle over the step that follows the current state."""
        return self.rates[[n.name for n in self.needles].index(name)]

    def syringe_pressure_of(self, name: str) -> float:
        return self.syringe_pressures[[n.name for n in self.needles].index(name)]

    def syringe_viscosity(self, shear_rate: float = 1.0) -> float:
        """Apparent viscosity (Pa·s) of the cement still in the syringe at `shear_rate` (1/s)."""
        factor = self.cement.syringe_factor(self.age)
        return float(self.cement.viscosity(np.array([shear_rate]), factor, self.age)[0])

    def first_leak_times(self) -> dict[str, float | None]:
        """Time (s) at which each route's leaked volume first reached the leak threshold
        (None if it has not), interpolated linearly within the step that crossed it."""
        return dict(self._first_leak)

    def cement_in_bone(self) -> float:
        """Cement volume in the pores of the bone, leak regions excluded (m³)."""
        pv = self.pore_volume
        for route in self.routes:
            if route.region_pore_volume is not None:
                pv = pv - route.region_pore_volume
        return _owned_sum(self.comm, pv * self.S.x.array[: self.n_owned])

    def injected(self) -> float:
        return sum(n.protocol.injected for n in self.needles)

    def total_volume(self) -> float:
        """Volume all needles are to inject (m³)."""
        return sum(n.protocol.target_volume for n in self.needles)

    def leaked(self) -> float:
        return sum(r.leaked for r in self.routes)

    def mass_balance_error(self) -> float:
        """|injected - (stored - stored at t=0) - leaked| / injected (-); 0 before injection."""
        injected = self.injected()
        if injected <= 0.0:
            return 0.0
        stored = self.cement_in_bone() - self.stored_initial
        return abs(injected - stored - self.leaked()) / injected

    def tip_pressure(self, needle: NeedleInlet) -> float:
        """Mean pressure on the needle's inlet surface (Pa)."""
        return self.tip_pressure_of(self.p.x.array, needle)

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

    def cement_viscosity_range(self, threshold: float = 0.5) -> tuple[float, float]:
        """Smallest and largest apparent viscosity (Pa·s) in cells filled with cement (mean
        vertex saturation >= threshold); NaN while there are none."""
        s_cell = self.S.x.array[self.cell_dofs[: self.n_cells]].mean(axis=1)
        mu = self.viscosity.x.array[: self.n_cells][s_cell >= threshold]
        lo = self.comm.allreduce(float(mu.min(initial=np.inf)), op=MPI.MIN)
        hi = self.comm.allreduce(float(mu.max(initial=-np.inf)), op=MPI.MAX)
        return (lo, hi) if np.isfinite(lo) else (np.nan, np.nan)

    def outer_boundary_vertices(self) -> np.ndarray:
        """Owned vertices on the outer surface of the bone (needle cavities excluded)."""
        topology = self.mesh.topology
        facets = dolfinx.mesh.exterior_facet_indices(topology)
        cavities = [self.tagged.facets(n.name) for n in self.needles if n.kind == "cavity"]
        if cavities:
            facets = np.setdiff1d(facets, np.concatenate(cavities))
        dofs = fem.locate_dofs_topological(self.V, 2, facets)
        return dofs[dofs < self.n_owned]

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
    def initial_step(self) -> float:
        """Default first step: fill half of the smallest inlet control volume (s)."""
        ratio = np.inf
        for needle, rate in zip(self.needles, self.rates, strict=True):
            w = needle.weights > 0
            if rate > 0 and np.any(w):
                ratio = min(ratio, float(np.min(self.pore_volume[w] / (rate * needle.weights[w]))))
        ratio = self.comm.allreduce(ratio, op=MPI.MIN)
        return 0.5 * ratio if np.isfinite(ratio) else 1.0

    def stop_reason(self) -> str | None:
        """Why the injection ends now, or None while it goes on."""
        rules = self.scenario.injection.stop
        if self.injector.finished():
            return "volume_reached"
        if rules.time_limit is not None and self.t >= rules.time_limit * (1 - 1e-12):
            return "time_limit"
        if rules.max_syringe_pressure is not None:
            for n, p in zip(self.needles, self.syringe_pressures, strict=True):
                if p >= rules.max_syringe_pressure:
                    return f"syringe_pressure_limit:{n.name}"
        if rules.on_first_leak:
            threshold = self.scenario.output.leak_threshold
            for r in self.routes:
                if r.leaked >= threshold:
                    return f"first_leak:{r.name}"
        return None

    def run(
        self, on_step: Callable[[InjectionProblem], None], output_times: list[float] | None = None
    ) -> str:
        """Advance until a stop rule ends the injection; return the reason.

        `on_step` is called at t = 0 and after every step. Steps land exactly on
        `output_times`, on every change of a scheduled rate and on the time limit.
        """
        num = self.scenario.numerics
        rules = self.scenario.injection.stop
        fixed = sorted({*(output_times or []), *([rules.time_limit] if rules.time_limit else [])})
        control = StepController(
            dt=num.dt_initial or self.initial_step(),
            dt_min=1e-12 * (self.injector.planned_end() or rules.time_limit or 1e3),
            dt_max=num.dt_max or np.inf,
            target_change=num.max_saturation_change,
            max_iterations=num.newton_max_iterations,
        )
        on_step(self)
        while (reason := self.stop_reason()) is None:
            if self.step_count >= num.max_steps:
                raise RuntimeError(
                    f"numerics.max_steps = {num.max_steps} reached at t = {self.t:.4g} s"
                )
            dt = self._step_size(control.dt, fixed)
            if self.advance(dt):
                control.accepted(self.last_change, self.last_newton_iterations)
                on_step(self)
            else:
                log.debug("step of %.3g s rejected at t = %.4g s", dt, self.t)
                self.rejected_steps += 1
                control.rejected()
        return reason

    def _step_size(self, dt: float, fixed: list[float]) -> float:
        """dt limited by the next stop, the volume per step and the viscosity change."""
        stops = [s for s in fixed if s > self.t * (1 + 1e-12)]
        change = self.injector.next_change(self.t)
        if change is not None:
            stops.append(change)
        rate = sum(self.rates)
        for needle, r in zip(self.needles, self.rates, strict=True):
            if needle.protocol.pressure_controlled and r > 0:  # do not overshoot the volume
                stops.append(
                    self.t + (needle.protocol.target_volume - needle.protocol.injected) / r
                )
        if rate > 0:
            dt = min(dt, _VOLUME_PER_STEP * self.total_volume() / rate)
        dt = self._limit_viscosity_change(dt)
        if stops:
            next_stop = min(stops)
            dt = min(dt, next_stop - self.t)
            if next_stop - (self.t + dt) < 0.25 * dt:  # no sliver before a stop
                dt = next_stop - self.t
        return dt

    def _limit_viscosity_change(self, dt: float) -> float:
        """Halve dt until the cure factor of the most cured cement rises by at most
        numerics.max_viscosity_change over the step."""
        limit = self.scenario.numerics.max_viscosity_change
        curing = self.cement.curing
        if isinstance(curing, CureKinetics):
            alpha = self.comm.allreduce(
                float(self.conversion.x.array[: self.n_owned].max(initial=0.0)), op=MPI.MAX
            )
            T = curing.bone_temperature

            def factor(h: float) -> float:
                return float(curing.factor_of(curing.advance(np.array([alpha]), T, h)[0], T))
        else:

            def factor(h: float) -> float:
                return curing.factor(self.age + h)

        f0 = factor(0.0)
        while dt > 1e-9 and abs(factor(dt) / f0 - 1.0) > limit:
            dt *= 0.5
        return dt

    def destroy(self) -> None:
        self.pressure.destroy()
        self.transport.destroy()
        for vec in self._superposition:
            vec.destroy()
