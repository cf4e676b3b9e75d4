"""Curing in the bone: the cure factor of the cement in each cell and the step limit that
keeps the viscosity rise per step small (numerics.max_viscosity_change).

- `AgeCuringComponent`: laws of the cement's age alone (none, exponential, table): one
  factor everywhere, no field.
- `KineticCuringComponent`: cure kinetics; the degree of cure is a vertex field carried with
  the cement by the transport (injected at the syringe's degree of cure) and advanced after
  every step at the local temperature (state.temperature, with a heat component) or at the
  bone temperature. It leaves the reacted cement volume of the step in
  state.reacted_volume for the reaction heat.

`curing_component` picks the component for a cement's law from `CURING_COMPONENTS`. Times in
s, temperatures in K.
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem
from mpi4py import MPI

from sim.checkpoint import Saved, VertexValues
from sim.components.base import Component, OutputField, StepData
from sim.discretisation import Discretisation
from sim.flow.timestep import change_limited
from sim.flow.transport import ImplicitUpwindTransport
from sim.medium import PorousMedium
from sim.physics.cement import CementModel
from sim.physics.curing import AgeCuring, CureKinetics
from sim.state import State


class CuringComponent(Component):
    """What every curing component is built from: its law, the discretisation, the pore
    volumes, the transport (to carry a cement property) and numerics.max_viscosity_change."""

    def __init__(
        self,
        law: AgeCuring | CureKinetics,
        disc: Discretisation,
        medium: PorousMedium,
        transport: ImplicitUpwindTransport,
        max_change: float,
    ) -> None:
        self.law = law
        self.disc = disc
        self.pore_volume = medium.pore_volume
        self.transport = transport
        self.max_change = max_change

    def bone_factor(self, state: State) -> np.ndarray | float:
        """Cure factor of the cement in the bone (-): one value, or one per owned cell."""
        raise NotImplementedError


class AgeCuringComponent(CuringComponent):
    """Cure factor of the cement's age, the same in every cell."""

    law: AgeCuring

    def bone_factor(self, state: State) -> np.ndarray | float:
        return self.law.factor(state.age)

    def max_step(self, state: State, dt: float) -> float:
        if not state.flowing:  # the viscosity matters only while the cement flows
            return dt
        return change_limited(dt, lambda h: self.law.factor(state.age + h), self.max_change)


class KineticCuringComponent(CuringComponent):
    """Degree of cure carried with the cement and advanced by the cure kinetics."""

    law: CureKinetics

    def __init__(
        self,
        law: CureKinetics,
        disc: Discretisation,
        medium: PorousMedium,
        transport: ImplicitUpwindTransport,
        max_change: float,
    ) -> None:
        super().__init__(law, disc, medium, transport, max_change)
        self.conversion = fem.Function(self.disc.V, name="degree_of_cure")

    def fields(self) -> list[OutputField]:
        return [OutputField("degree_of_cure", self.conversion, "point")]

    def initialise(self, state: State) -> None:
        self.conversion.x.array[:] = self.law.syringe_conversion(state.age)

    def bone_factor(self, state: State) -> np.ndarray | float:
        """Cure factor per owned cell from the mean degree of cure (and temperature, with a
        heat component) of its vertices (-)."""
        dofs = self.disc.cell_dofs[: self.disc.n_cells]
        alpha = self.conversion.x.array[dofs].mean(axis=1)
        if state.temperature is None:
            return self.law.factor_of(alpha, self.law.bone_temperature)
        return self.law.factor_of(alpha, state.temperature[dofs].mean(axis=1))

    def max_step(self, state: State, dt: float) -> float:
        """Limit the rise of the cure factor of the most cured cement (where it is hottest,
        with a heat component), while the cement flows."""
        if not state.flowing:
            return dt
        owned = self.conversion.x.array[: self.disc.n_owned]
        comm = self.disc.comm
        alpha = comm.allreduce(float(owned.max(initial=0.0)), op=MPI.MAX)
        law, temperature = self.law, self.law.bone_temperature
        if state.temperature is not None:
            hottest = state.temperature[: self.disc.n_owned].max(initial=0.0)
            temperature = comm.allreduce(float(hottest), op=MPI.MAX)

        def factor(h: float) -> float:
            return float(
                law.factor_of(law.advance(np.array([alpha]), temperature, h)[0], temperature)
            )

        return change_limited(dt, factor, self.max_change)

    def checkpoint(self) -> Saved:
        return {"conversion": VertexValues(self.conversion.x.array[: self.disc.n_owned])}

    def restore(self, state: State, saved: Saved) -> None:
        self.conversion.x.array[:] = saved["conversion"]

    def after_transport(self, state: State, step: StepData) -> None:
        """Carry the degree of cure with the cement, then let it cure (at the temperature at
        the start of the step); leave the reacted cement volume in the state."""
        n = self.disc.n_owned
        injected = self.law.syringe_conversion(state.age + 0.5 * step.dt)
        carried = self.transport.carry(
            self.conversion.x.array[:n],
            step.s_old,
            step.s_new,
            step.dt,
            step.q_in,
            step.inflow,
            step.outflow,
            step.mu_columns,
            injected,
        )
        carried = np.clip(carried, 0.0, 1.0)
        temperature = (
            self.law.bone_temperature if state.temperature is None else state.temperature[:n]
        )
        cured = self.law.advance(carried, temperature, step.dt)
        state.reacted_volume = self.pore_volume * step.s_new * (cured - carried)
        self.conversion.x.array[:n] = cured
        self.conversion.x.scatter_forward()


Curing = CuringComponent

#: the component of each curing law that needs more than its age (default AgeCuringComponent)
CURING_COMPONENTS: dict[type, type[CuringComponent]] = {CureKinetics: KineticCuringComponent}


def curing_component(
    cement: CementModel,
    disc: Discretisation,
    medium: PorousMedium,
    transport: ImplicitUpwindTransport,
    max_change: float,
) -> Curing:
    """The curing component of a cement's curing law."""
    kind = CURING_COMPONENTS.get(type(cement.curing), AgeCuringComponent)
    return kind(cement.curing, disc, medium, transport, max_change)
