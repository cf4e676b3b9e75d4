"""The flow: needle rates, pressure, Darcy fluxes and the cement viscosity of a state.

For the current saturation, the pressure solves the Darcy problem with the total mobility of
each cell's upstream vertex; the rates of pressure-controlled needles are solved for by
superposition; where the cement viscosity depends on the shear rate, viscosity and pressure
are iterated (Picard with Anderson acceleration) together with the active set of threshold
openings. Units: SI (Pa, m³/s, Pa·s).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from sim.checkpoint import CellValues, Saved, VertexValues
from sim.components.base import Component, OutputField
from sim.components.curing import Curing
from sim.components.leaks import LeakBoundaries
from sim.discretisation import Discretisation
from sim.flow.anderson import Anderson
from sim.flow.box_flux import BoxFluxes
from sim.flow.pressure import PressureSolver, superpose
from sim.flow.timestep import volume_limited
from sim.medium import PorousMedium
from sim.needles import NeedleInlet, pressure_controlled_rate
from sim.physics.cement import CementModel
from sim.protocol import Injector
from sim.scenario.numerics import Numerics
from sim.state import State

log = logging.getLogger(__name__)

#: vertices of a cell whose pressures differ by less than this times the largest |p| are tied
#: for upstream: their difference is the pressure solve's error, not a flow (during a pause
#: the pressure is uniform to 1e-13; along a layer of the Buckley-Leverett column to
#: round-off; three vertices of an outlet are exactly equal where the pressure inside falls
#: below the outlet's), and the choice among them would depend on the partition and the
#: numbering. At 1e-9 and 1e-7 the posterior-defect scenario's small leak moved by 0.3 and
#: 0.9 % (real, slow flows taken for ties); from 0 to 1e-11 it did not
TIE = 1e-11


@dataclass
class Upwind:
    """Where the flow enters each local cell: `vertex`, a vertex (dof) of highest pressure;
    `tied`, the cells with several (their mobility is the mean over them), and `top`, which of
    their vertices (rows of Discretisation.cell_dofs) are tied at the highest."""

    vertex: np.ndarray
    tied: np.ndarray
    top: np.ndarray


@dataclass
class Timings:
    """Wall time (s) spent in each phase of the time loop."""

    assembly_and_pressure: float = 0.0
    fluxes: float = 0.0
    transport: float = 0.0
    output: float = 0.0


class Flow(Component):
    """Pressure, rates, fluxes and viscosity for the state (`update`), and what the transport
    needs of them (`boundary_exchange`, `mu_columns`)."""

    def __init__(
        self,
        disc: Discretisation,
        medium: PorousMedium,
        cement: CementModel,
        curing: Curing,
        needles: list[NeedleInlet],
        injector: Injector,
        boundaries: LeakBoundaries,
        numerics: Numerics,
        pressure: fem.Function,
        fluxes: BoxFluxes,
        timings: Timings,
    ) -> None:
        self.disc = disc
        self.medium = medium
        self.cement = cement
        self.curing = curing
        self.needles = needles
        self.injector = injector
        self.openings = boundaries.openings
        self.is_outlet = boundaries.is_outlet
        self.numerics = numerics
        self.timings = timings
        self.viscosity = fem.Function(disc.W, name="cement_viscosity")
        self.log_viscosity = fem.Function(disc.W)
        self._log_mu_vertex = fem.form(self.log_viscosity * ufl.TestFunction(disc.V) * ufl.dx)
        self.velocity = fem.Function(disc.W_vector, name="darcy_velocity")
        self.mobility_k = fem.Function(disc.W_tensor, name="mobility_permeability")
        self.pressure = pressure
        self.solver = PressureSolver(
            pressure,
            fluxes,
            medium.permeability,
            [n.weights for n in needles],
            boundaries.bcs,
            tolerance=numerics.pressure_tolerance,
            flow_scale=_flow_scale(needles),
            robin=None if self.openings is None else self.openings.robin,
            method=numerics.pressure_solver,
        )
        controlled = [n for n in needles if n.protocol.pressure_controlled]
        self._superposition = [pressure.x.petsc_vec.duplicate() for _ in range(len(controlled) + 1)]
        self.fluxes = fluxes
        self.shear_rate = np.ones(disc.n_cells)  # first guess of the Picard iteration (1/s)
        self.mu_vertex = np.zeros(disc.n_owned)
        self.mu_columns = np.zeros(0)

    def fields(self) -> list[OutputField]:
        return [
            OutputField("pressure", self.pressure, "point"),
            OutputField("darcy_velocity", self.velocity, "cell"),
            OutputField("cement_viscosity", self.viscosity, "cell"),
        ]

    def initialise(self, state: State) -> None:
        state.rates = [0.0 for _ in self.needles]
        state.syringe_pressures = [0.0 for _ in self.needles]

    def max_step(self, state: State, dt: float) -> float:
        """At most numerics.volume_per_step of the total volume per step."""
        return volume_limited(
            dt, self.total_volume(), sum(state.rates), self.numerics.volume_per_step
        )

    def stops(self, state: State) -> list[float]:
        """Times (s) a step must land on: the next scheduled rate change, and the end of each
        pressure-controlled needle's volume at its present rate."""
        stops = []
        change = self.injector.next_change(state.t)
        if change is not None:
            stops.append(change)
        for needle, r in zip(self.needles, state.rates, strict=True):
            if needle.protocol.pressure_controlled and r > 0:  # do not overshoot the volume
                stops.append(
                    state.t + (needle.protocol.target_volume - needle.protocol.injected) / r
                )
        return stops

    def initial_step(self, state: State) -> float:
        """Default first step: fill half of the smallest inlet control volume (s)."""
        ratio = np.inf
        for needle, rate in zip(self.needles, state.rates, strict=True):
            w = needle.weights > 0
            if rate > 0 and np.any(w):
                ratio = min(
                    ratio, float(np.min(self.medium.pore_volume[w] / (rate * needle.weights[w])))
                )
        ratio = self.disc.comm.allreduce(ratio, op=MPI.MIN)
        return 0.5 * ratio if np.isfinite(ratio) else 1.0

    def total_volume(self) -> float:
        """Volume all needles are to inject (m³)."""
        return sum(n.protocol.target_volume for n in self.needles)

    def injected(self) -> float:
        """Volume all needles have injected (m³)."""
        return sum(n.protocol.injected for n in self.needles)

    # ------------------------------------------------------------------ viscosity
    def cell_viscosity(self, state: State) -> np.ndarray:
        """Apparent viscosity (Pa·s) per owned cell at the current shear rates."""
        return self.cement.viscosity(self.shear_rate, self.curing.bone_factor(state), state.age)

    def set_viscosity(self, mu: np.ndarray) -> None:
        """Set the cell viscosities; derive the vertex viscosities used by the fractional flow
        (volume-weighted geometric mean of the cells around each vertex). Nothing to do when
        no rank's cell viscosities changed (a cement of constant viscosity: 2.7 ms a step of
        assembly on the benchmark cube; collective)."""
        n = self.disc.n_cells
        unchanged = bool(np.array_equal(mu, self.viscosity.x.array[:n]))
        if self.disc.comm.allreduce(unchanged, op=MPI.LAND):
            return
        self.viscosity.x.array[:n] = mu
        self.viscosity.x.scatter_forward()
        self.log_viscosity.x.array[:n] = np.log(mu)
        self.log_viscosity.x.scatter_forward()
        self.mu_vertex = np.exp(
            self.disc.assemble_owned(self._log_mu_vertex) / self.disc.bulk_volume
        )
        self.mu_columns = self.fluxes.to_columns(self.mu_vertex).copy()

    # ------------------------------------------------------------------ pressure and rates
    def _upwind_vertices(self) -> Upwind:
        """The vertices of highest pressure of each local cell (where the flow enters it):
        those within TIE x the largest |p| of the cell's highest (collective)."""
        p = self.pressure.x.array
        scale = self.disc.comm.allreduce(float(np.abs(p).max(initial=0.0)), op=MPI.MAX)
        vertex, near = self.fluxes.upwind(self.disc.cell_dofs, p, TIE * scale)
        tied = np.flatnonzero(near & (near - 1))  # more than one bit: several vertices
        return Upwind(vertex, tied, (near[tied, None] >> np.arange(4, dtype=np.uint8)) & 1 == 1)

    def _set_mobility(self, state: State, upwind: Upwind) -> np.ndarray:
        """lambda_t K per cell, lambda_t from the saturation of the cell's upstream vertex, the
        mean over its tied vertices where several are (added in increasing order, so that it
        does not depend on the order of a cell's vertices); returns lambda_t (1/(Pa·s))."""
        s, mu = state.S.x.array, self.viscosity.x.array
        mobility = self.medium.mobility
        lam = mobility.total(s[upwind.vertex], mu)
        if len(upwind.tied):
            cells, top = upwind.tied, upwind.top
            each = np.where(top, mobility.total(s[self.disc.cell_dofs[cells]], mu[cells, None]), 0)
            lam[cells] = np.sort(each, axis=1).sum(axis=1) / top.sum(axis=1)
        np.multiply(
            lam[:, None, None],
            self.medium.permeability,
            out=self.mobility_k.x.array.reshape(-1, 3, 3),
        )
        return lam

    def _update_openings(self, state: State) -> None:
        """Conductances of the openings for the fluid now at them (1 / mu_mixture: the total
        mobility of the vertex)."""
        if self.openings is None:
            return
        n_local = self.disc.n_local
        self.openings.update(
            self.medium.mobility.total(state.S.x.array[:n_local], self.mu_columns[:n_local])
        )

    def tip_pressure(self, needle: NeedleInlet, values: np.ndarray | None = None) -> float:
        """Mean of a P1 pressure (owned values; default the current pressure) over a needle's
        inlet surface (Pa)."""
        p = self.pressure.x.array if values is None else values
        return self.disc.owned_sum(needle.weights * p[: self.disc.n_owned])

    def cannula_drop(self, needle: NeedleInlet, rate: float, age: float) -> float:
        """Pressure drop (Pa) in the needle's cannula at `rate` (m³/s) of syringe cement."""
        return needle.cannula_pressure_drop(
            rate,
            self.cement.law_at(age),
            self.cement.syringe_factor(age),
            self.cement.set_viscosity,
        )

    def _pressure_and_rates(
        self, state: State, rates: list[float], controlled: list[int]
    ) -> list[float]:
        """Solve for p with the given rates; the rates of the `controlled` needles are solved
        for (pressure control) by superposition."""
        rates = [0.0 if i in controlled else r for i, r in enumerate(rates)]
        if not controlled:
            self.solver.solve(rates)
            return rates
        base, *units = self._superposition[: len(controlled) + 1]
        self.solver.solve(rates, outlets=True, out=base, ghosts=False)
        for k, unit in zip(controlled, units, strict=False):
            unit_rates = [1.0 if i == k else 0.0 for i in range(len(rates))]
            self.solver.solve(unit_rates, outlets=False, out=unit, ghosts=False)
        tip0 = [self.tip_pressure(self.needles[j], base.array) for j in controlled]
        gain = [[self.tip_pressure(self.needles[j], u.array) for u in units] for j in controlled]
        q = [0.0] * len(controlled)
        for _ in range(20 if len(controlled) > 1 else 1):  # Gauss-Seidel over the needles
            for a, j in enumerate(controlled):
                needle = self.needles[j]
                others = tip0[a] + sum(gain[a][b] * q[b] for b in range(len(q)) if b != a)
                q[a] = pressure_controlled_rate(
                    needle.protocol.spec.syringe_pressure,  # type: ignore[arg-type]
                    others,
                    gain[a][a],
                    lambda r, n=needle: self.cannula_drop(n, r, state.age),
                    needle.protocol.spec.max_rate,
                )
        for a, j in enumerate(controlled):
            rates[j] = q[a]
        superpose(self.pressure.x.petsc_vec, base, units, q)
        return rates

    def stop(self, state: State) -> None:
        """End the flow: no rates, no fluxes from now on (the run follows the setting)."""
        state.flowing = False
        state.rates = [0.0 for _ in self.needles]
        self.fluxes.flux[:] = 0.0
        self.fluxes.velocity[:] = 0.0
        self.velocity.x.array[:] = 0.0

    def update(self, state: State) -> None:
        """Rates, pressure, fluxes and viscosities for the state (Picard on the viscosity
        where it depends on the shear rate); only the viscosity once the flow has stopped."""
        self.set_viscosity(self.cell_viscosity(state))
        if not state.flowing:
            return
        num = self.numerics
        comm = self.disc.comm
        # once every needle has finished, the state keeps showing the last injection pressure
        finished = self.injector.finished()
        given = (
            state.rates if finished else [n.protocol.scheduled_rate(state.t) for n in self.needles]
        )
        controlled = [
            i
            for i, (n, r) in enumerate(zip(self.needles, state.rates, strict=True))
            if n.protocol.pressure_controlled
            and (n.protocol.active(state.t) or (finished and r > 0))
        ]
        upwind = self._upwind_vertices()  # fixed within the step, so the iteration cannot cycle
        self._update_openings(state)
        accelerate = Anderson(comm)
        n_cells = self.disc.n_cells
        for iteration in range(1, num.picard_max_iterations + 1):
            t0 = time.perf_counter()
            self.solver.assemble(self._set_mobility(state, upwind))
            rates = self._pressure_and_rates(state, given, controlled)  # ghosts updated
            t1 = time.perf_counter()
            self.fluxes.compute(self.pressure, self.mobility_k.x.array.reshape(-1, 3, 3))
            self.timings.assembly_and_pressure += t1 - t0
            self.timings.fluxes += time.perf_counter() - t1
            reopened = self.openings is not None and self.openings.reopen(
                self.pressure.x.array, comm
            )
            if reopened:
                self._update_openings(state)
            if self.cement.newtonian:
                if reopened:
                    continue
                break
            self.shear_rate = self.cement.closure.shear_rate(
                self.fluxes.velocity,
                self.medium.permeability[:n_cells],
                self.medium.porosity.x.array[:n_cells],
                self.cement.law_at(state.age).flow_index,
            )
            log_old = np.log(self.viscosity.x.array[:n_cells])
            log_new = np.log(self.cell_viscosity(state))
            change = comm.allreduce(float(np.abs(log_new - log_old).max(initial=0.0)), op=MPI.MAX)
            self.set_viscosity(np.exp(accelerate(log_old, log_new)))
            log.debug("Picard %d: largest viscosity change %.2e", iteration, change)
            if change <= num.picard_tolerance and not reopened:
                break
        else:
            state.counters.picard_failures += 1
            log.warning(
                "viscosity (Picard) and opening iteration did not converge in %d iterations at "
                "t = %.4g s",
                num.picard_max_iterations,
                state.t,
            )
        state.counters.picard_last = iteration
        self.velocity.x.array[: 3 * n_cells] = self.fluxes.velocity.ravel()
        state.rates = rates
        state.syringe_pressures = [
            self.tip_pressure(n) + self.cannula_drop(n, r, state.age)
            for n, r in zip(self.needles, state.rates, strict=True)
        ]

    def boundary_exchange(self, state: State) -> tuple[np.ndarray, np.ndarray]:
        """Cement inflow at inlets and mixture outflow at outlets (m³/s, owned vertices)."""
        q_in = np.zeros(self.disc.n_owned)
        for needle, rate in zip(self.needles, state.rates, strict=True):
            q_in += rate * needle.weights
        net_out_to_interior = self.fluxes.divergence()
        q_out = np.where(self.is_outlet, np.maximum(0.0, -net_out_to_interior), 0.0)
        return q_in, q_out

    def checkpoint(self) -> Saved:
        """The viscosities (cells, and the vertex values the transport uses), the shear rates
        the next Picard iteration starts from, the mobility the fluxes were computed with, and
        which threshold openings are open; the fluxes follow from the pressure."""
        n = self.disc.n_cells
        saved: Saved = {
            "viscosity": CellValues(self.viscosity.x.array[:n]),
            "shear_rate": CellValues(self.shear_rate),
            "mobility_k": CellValues(self.mobility_k.x.array[: 9 * n].reshape(n, 9)),
            "mu_vertex": VertexValues(self.mu_vertex),
        }
        if self.openings is not None:
            saved["is_open"] = VertexValues(self.openings.is_open[: self.disc.n_owned])
        return saved

    def restore(self, state: State, saved: Saved) -> None:
        n_cells, n_owned = self.disc.n_cells, self.disc.n_owned
        self.viscosity.x.array[:] = saved["viscosity"]
        self.shear_rate = saved["shear_rate"][:n_cells].copy()
        self.mobility_k.x.array[:] = saved["mobility_k"].ravel()
        self.mu_vertex = saved["mu_vertex"][:n_owned].copy()
        self.mu_columns = self.fluxes.to_columns(self.mu_vertex).copy()
        if self.openings is not None:
            self.openings.is_open[:] = saved["is_open"] > 0.5
        if not state.flowing:
            self.stop(state)
            return
        self.fluxes.compute(self.pressure, self.mobility_k.x.array.reshape(-1, 3, 3))
        self.velocity.x.array[: 3 * n_cells] = self.fluxes.velocity.ravel()

    def account(self, state: State, dt: float) -> None:
        """Book the volume each needle injected over the step that ends at state.t + dt."""
        for needle, rate in zip(self.needles, state.rates, strict=True):
            needle.protocol.account(state.t + dt, rate, dt)

    def destroy(self) -> None:
        self.solver.destroy()
        for vec in self._superposition:
            vec.destroy()


def _flow_scale(needles: list[NeedleInlet]) -> float:
    """A typical injection rate (m³/s): the scale of the pressure solver's tolerance."""
    rates = []
    for needle in needles:
        n = needle.protocol.spec
        rates += [s.rate for s in n.steps() if s.rate is not None]
        rates += [n.max_rate or n.total_volume / 60.0] if n.syringe_pressure else []
    return max(rates)
