"""The interface every component implements, with do-nothing defaults.

A component owns its fields (listed by `fields()` for the writers), sets its part of the
initial state (`initialise`), may cap the step size (`max_step`), and acts at two points of a
step: after the transport (with what the transport of the step used and produced,
`StepData`) and after the flow has been solved for the new state. It may add time-series
columns (`columns`) and summary entries (`summary`). The stepper calls the components in the
order it was given them. At the end of a run it may draw figures (`figures`) and add rows to
the report's results table (`report_rows`), so that nothing outside the component needs to
know it exists. What of it evolves during a run it saves and takes up again for a resumed
run (`checkpoint`, `restore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from dolfinx import fem

from sim.checkpoint import Saved
from sim.state import State

if TYPE_CHECKING:
    from sim.outputs.plots import RunPlots


@dataclass(frozen=True)
class OutputField:
    """A field to write: its name, its function and where it lives ("point": P1 vertex values,
    "cell": DG0 cell values, scalar or vector)."""

    name: str
    function: fem.Function
    location: Literal["point", "cell"]


@dataclass(frozen=True)
class Figure:
    """A figure a component adds to the run report: its file in the run folder, its caption,
    and whether it spans the page width."""

    file: str
    caption: str
    wide: bool = False


@dataclass(frozen=True)
class StepData:
    """One accepted transport step: start time t and size dt (s); the owned saturations before
    and after; the inflow at the needles and the mixture outflow at the outlets per owned
    vertex (m³/s); the cement viscosity per cell-vertex column the transport used (Pa·s);
    the step's fluxes split into the inflow per entry of the flux layout and the outflow
    per owned vertex, outlets included (sim.flow.box_flux.BoxFluxes.split; m³/s)."""

    t: float
    dt: float
    s_old: np.ndarray
    s_new: np.ndarray
    q_in: np.ndarray
    q_out: np.ndarray
    mu_columns: np.ndarray
    inflow: np.ndarray
    outflow: np.ndarray


class Component:
    """Do-nothing defaults of the component interface."""

    def fields(self) -> list[OutputField]:
        """The fields this component owns and wants written."""
        return []

    def initialise(self, state: State) -> None:
        """Set this component's part of the initial state (before the first flow solve)."""

    def max_step(self, state: State, dt: float) -> float:
        """The largest step (s) this component allows from `state`, given a proposed `dt`."""
        return dt

    def after_transport(self, state: State, step: StepData) -> None:
        """Advance this component's part of the state over an accepted step (state.t is still
        the start of the step)."""

    def after_flow(self, state: State) -> None:
        """React to the flow just solved for the new state."""

    def columns(self, state: State) -> dict[str, float]:
        """Time-series values of this component now, by column name with its unit (collective;
        the same names at every call)."""
        return {}

    def summary(self, state: State) -> dict[str, object]:
        """Entries this component adds to the run summary at the end (collective)."""
        return {}

    def figures(self, plots: RunPlots) -> list[Figure]:
        """Draw this component's figures into the run folder at the end of a run (collective;
        `plots` draws curves on rank 0 and sections on all ranks) and list them."""
        return []

    def report_rows(self, summary: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, value) rows this component adds to the report, from the run's summary."""
        return []

    def follow_up(self) -> float:
        """How long (s) the run should go on after the injection ends, without flow (the
        cement setting, the tissue cooling)."""
        return 0.0

    def checkpoint(self) -> Saved:
        """Everything of this component that evolves during a run and that `restore` needs to
        go on exactly (sim.checkpoint.Saved; owned vertex and cell values wrapped)."""
        return {}

    def restore(self, state: State, saved: Saved) -> None:
        """Take up the state of `checkpoint()` (vertex and cell values now per local vertex
        and cell, ghosts included), after `initialise`, the first flow solve and the restore
        of `state`."""

    def destroy(self) -> None:
        """Free what this component holds outside Python (PETSc objects)."""
