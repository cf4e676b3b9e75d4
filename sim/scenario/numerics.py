"""Scenario sections `numerics` and `output`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sim.scenario.base import Section
from sim.units import Length, Time, Volume

Fraction = Annotated[float, Field(gt=0, le=1)]


#: the pressure solvers of numerics.pressure_solver (sim.flow.pressure)
PressureSolverName = Literal["auto", "direct", "multigrid"]
#: how numerics.partition distributes the cells over MPI ranks (sim.geometry.partition)
PartitionName = Literal["injection", "graph"]

#: the step's largest saturation change unless another rule is given
DEFAULT_SATURATION_CHANGE = 0.25

#: the largest share of the total volume injected in one step unless given
DEFAULT_VOLUME_PER_STEP = 0.05
#: the smallest fluoroscopy pixel (m)
MIN_PIXEL = 5e-5


class Numerics(Section):
    """Time stepping and solver controls.

    max_saturation_change: largest change of cement saturation at any vertex in one step (0.25
    unless front_courant is given); the step size adapts to it (smaller: sharper fronts, more
    steps). front_courant: instead, how many control volumes the cement front may cross in one step
    (the Courant number of the flow through the vertices whose saturation changes, dt x outflow /
    pore volume). The implicit scheme is stable at any step but smears the front over more control
    volumes the larger the step; a front of cement much more viscous than the fluid it displaces
    sharpens itself and stays accurate at several cells a step (1-D benchmark, 1000 cells, ratio
    2500: 4 takes 300 steps, front within 0.01 % and inlet pressure within 0.2 % of exact, where
    max_saturation_change 0.25 takes 4239), a front of comparable viscosities does not (ratio 1:
    first leak 22 % later at 4). Giving both is an error. volume_per_step: largest share of the
    total volume injected in one step (1/20 by default: at least 20 steps per injection, points
    enough for the pressure curve); null: no such limit, the other rules alone set the step (with
    front_courant 8 the front sets it: 7 steps instead of 22 for the first 5 s of the 3-D
    benchmark cube, its quantities within 3 % of those with the limit: the time error of larger
    steps). time_tolerance: the largest local time error of a step in what users read, relative:
    the syringe pressures, the leaked volume per route and the spread of the cement (its radius
    of gyration: where the front is), estimated from the last three steps (sim.flow.time_error);
    the next step grows or shrinks to meet it, and a step above twice it is taken back and
    redone shorter, once. Off by default; it adds to the other rules, and
    with volume_per_step null it replaces that crude limit on the time error.
    max_viscosity_change: largest relative change of the cement viscosity in one step.
    dt_initial / dt_max: bounds of the step (s); by default the first step fills about half of
    the inlet's control volumes.
    pressure_solver: "direct" factorises the pressure system every step
    (MUMPS Cholesky), "multigrid" iterates (CG + GAMG), "auto" (default) factorises systems of up to
    100 000 vertices whose factorisation is cheap (thin domains such as columns and bars; not 3-D
    bodies, judged from the matrix's envelope before the first solve). pressure_tolerance: largest
    residual of the iterative pressure solve, relative to the injection rate; it bounds the
    mass-balance error. newton_tolerance: convergence of the implicit saturation update (the
    ordered sweeps, and Newton's method where they stall), the largest residual in units of
    saturation; 1e-13 keeps the mass balance at round-off under MPI too (the sweeps on each
    rank use their neighbours' last values and converge linearly there).
    newton_max_iterations: at most this many sweeps, then as many Newton iterations.
    picard_tolerance / picard_max_iterations: the iteration between pressure and a shear-rate
    dependent viscosity stops when no cell's viscosity changes by more than this relative
    amount. max_steps: a run that needs more steps stops with an error.
    partition: how the cells are distributed over MPI ranks: "injection" (default) in shells
    of equal size around the injection sites, rank 0 nearest, so that the flow crosses the
    ranks' boundaries outwards and the transport takes few sweeps a step; "graph" by DOLFINx's
    graph partitioner, the smallest boundaries between the ranks (sim.geometry.partition).
    """

    max_saturation_change: Fraction | None = None
    front_courant: Annotated[float, Field(gt=0, le=100)] | None = None
    volume_per_step: Fraction | None = DEFAULT_VOLUME_PER_STEP
    time_tolerance: Annotated[float, Field(gt=0, lt=1)] | None = None
    max_viscosity_change: Annotated[float, Field(gt=0)] = 0.1
    dt_initial: Annotated[Time, Field(gt=0)] | None = None
    dt_max: Annotated[Time, Field(gt=0)] | None = None
    pressure_solver: PressureSolverName = "auto"
    pressure_tolerance: Annotated[float, Field(ge=1e-14, lt=1e-4)] = 1e-11
    newton_tolerance: Annotated[float, Field(gt=0, lt=1e-4)] = 1e-13
    newton_max_iterations: Annotated[int, Field(ge=2, le=200)] = 40
    picard_tolerance: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    picard_max_iterations: Annotated[int, Field(ge=1, le=500)] = 30
    max_steps: Annotated[int, Field(ge=1)] = 20000
    partition: PartitionName = "injection"

    @model_validator(mode="after")
    def _one_step_rule(self) -> Numerics:
        if self.front_courant is not None and self.max_saturation_change is not None:
            raise ValueError(
                "front_courant and max_saturation_change are two rules for the step size: "
                "give one of them"
            )
        first, longest = self.dt_initial, self.dt_max
        if first is not None and longest is not None and first > longest:
            raise ValueError(
                f"dt_initial = {first:g} s is longer than dt_max = {longest:g} s: the first "
                "step may be at most dt_max"
            )
        return self

    def saturation_target(self) -> float | None:
        """The largest saturation change per step the step follows: as given, 0.25 by
        default, none when the step follows front_courant."""
        if self.front_courant is not None:
            return None
        if self.max_saturation_change is None:
            return DEFAULT_SATURATION_CHANGE
        return self.max_saturation_change


class Output(Section):
    """What a run writes.

    field_snapshots: number of field outputs (saturation, pressure, velocity, viscosity) spread
    evenly over the injection, plus the initial and final states; fields, plots: write them
    or not (the time series and summary are always written); leak_threshold: cement volume
    through a route that counts as a leak (m³) for the first-leak time, 1 µL by default;
    fluoroscopy: virtual AP and lateral projections at the field times (pixel size
    fluoroscopy_pixel, by default 1/120 of the bone's largest extent); report: report.html.
    """

    field_snapshots: Annotated[int, Field(ge=0, le=1000)] = 8
    fluoroscopy: bool = True
    report: bool = True
    fluoroscopy_pixel: Annotated[Length, Field(gt=0)] | None = None
    leak_threshold: Annotated[Volume, Field(gt=0)] = 1e-9
    fields: bool = True
    plots: bool = True

    @field_validator("fluoroscopy_pixel")
    @classmethod
    def _detector_pixel(cls, v: float | None) -> float | None:
        if v is not None and v < MIN_PIXEL:
            raise ValueError(
                f"must be at least {MIN_PIXEL * 1e3:g} mm (a fluoroscopy detector's pixels are "
                "0.1-0.2 mm; at 0.01 mm the default scenario's images would take 7 GB)"
            )
        return v
