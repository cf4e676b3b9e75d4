"""Scalar quantities polled by the time loop: one column of the time series each.

Columns carry their unit in the name (SI); per-needle, per-route and per-target quantities
are suffixed with ``.name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sim import measurements as measure
from sim.outputs.metrics import FrontDistances, coverage

if TYPE_CHECKING:
    from sim.components.base import Component
    from sim.problem import InjectionProblem


class Quantity(Protocol):
    """A named scalar of the current state."""

    @property
    def column(self) -> str: ...

    def __call__(self, problem: InjectionProblem) -> float: ...


@dataclass(frozen=True)
class Time:
    column: str = "time_s"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.state.t


@dataclass(frozen=True)
class CementAge:
    column: str = "cement_age_s"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.state.age


@dataclass(frozen=True)
class InjectedVolume:
    column: str = "injected_volume_m3"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.injected(problem)


@dataclass(frozen=True)
class InjectionRate:
    needle: str

    @property
    def column(self) -> str:
        return f"injection_rate_m3_s.{self.needle}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.rate(problem, self.needle)


@dataclass(frozen=True)
class TipPressure:
    needle: str

    @property
    def column(self) -> str:
        return f"tip_pressure_pa.{self.needle}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.tip_pressure(problem, self.needle)


@dataclass(frozen=True)
class CementInBone:
    column: str = "cement_in_bone_m3"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.cement_in_bone(problem)


@dataclass(frozen=True)
class LeakedVolume:
    route: str

    @property
    def column(self) -> str:
        return f"leaked_volume_m3.{self.route}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.route(problem, self.route).leaked


@dataclass(frozen=True)
class MarrowOutflow:
    route: str

    @property
    def column(self) -> str:
        return f"marrow_outflow_m3.{self.route}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.route(problem, self.route).marrow_out


@dataclass(frozen=True)
class FillFraction:
    target: str

    @property
    def column(self) -> str:
        return f"fill_fraction.{self.target}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.fill_fraction(problem, self.target)


@dataclass(frozen=True)
class CloudVolume:
    column: str = "cloud_volume_m3"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.cloud(problem)[0]


@dataclass(frozen=True)
class CloudDistance:
    column: str = "cloud_max_distance_from_tip_m"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.cloud(problem)[1]


@dataclass(frozen=True)
class MassBalanceError:
    column: str = "mass_balance_rel_error"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.mass_balance_error(problem)


@dataclass(frozen=True)
class SaturationMin:
    column: str = "saturation_min"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.saturation_range(problem)[0]


@dataclass(frozen=True)
class SaturationMax:
    column: str = "saturation_max"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.saturation_range(problem)[1]


@dataclass(frozen=True)
class CementViscosityMin:
    column: str = "cement_viscosity_min_pa_s"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.cement_viscosity_range(problem)[0]


@dataclass(frozen=True)
class CementViscosityMax:
    column: str = "cement_viscosity_max_pa_s"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.cement_viscosity_range(problem)[1]


@dataclass(frozen=True)
class SyringeViscosity:
    """Apparent viscosity of the cement in the syringe at a shear rate of 1/s."""

    column: str = "syringe_viscosity_pa_s"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.syringe_viscosity(problem)


@dataclass(frozen=True)
class SyringePressure:
    needle: str

    @property
    def column(self) -> str:
        return f"syringe_pressure_pa.{self.needle}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.syringe_pressure(problem, self.needle)


@dataclass(frozen=True)
class NeedleVolume:
    needle: str

    @property
    def column(self) -> str:
        return f"injected_volume_m3.{self.needle}"

    def __call__(self, problem: InjectionProblem) -> float:
        return measure.needle(problem, self.needle).protocol.injected


@dataclass(frozen=True)
class PicardIterations:
    column: str = "picard_iterations"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.state.counters.picard_last


@dataclass(frozen=True)
class TransportIterations:
    column: str = "transport_iterations"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.state.counters.transport_last


@dataclass(frozen=True)
class TimeErrorRatio:
    """The last step's estimated time error over numerics.time_tolerance (0: no estimate)."""

    column: str = "time_error_ratio"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.state.counters.time_error_last


@dataclass(frozen=True)
class PressureIterations:
    column: str = "pressure_iterations"

    def __call__(self, problem: InjectionProblem) -> float:
        return problem.flow.solver.iterations


@dataclass(frozen=True)
class FrontDistance:
    """Distance (m) from the cement cloud to a leak route or to the cortex (inf: no cloud)."""

    name: str
    distances: FrontDistances

    @property
    def column(self) -> str:
        return f"front_distance_m.{self.name}"

    def __call__(self, problem: InjectionProblem) -> float:
        return self.distances()[self.name]


@dataclass(frozen=True)
class Coverage:
    target: str

    @property
    def column(self) -> str:
        return f"coverage.{self.target}"

    def __call__(self, problem: InjectionProblem) -> float:
        return coverage(problem, self.target)


class ComponentValues:
    """A component's time-series values (sim.components.base.Component.columns), computed
    once per state."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self._key: tuple[int, float] | None = None
        self._values: dict[str, float] = {}

    def __call__(self, problem: InjectionProblem) -> dict[str, float]:
        state = problem.state
        key = (state.counters.steps, state.t)
        if key != self._key:
            self._key, self._values = key, self.component.columns(state)
        return self._values


@dataclass(frozen=True)
class ComponentColumn:
    column: str
    values: ComponentValues

    def __call__(self, problem: InjectionProblem) -> float:
        return self.values(problem)[self.column]


def component_quantities(problem: InjectionProblem) -> list[Quantity]:
    """The columns the components add (collective: asks each component for its values)."""
    out: list[Quantity] = []
    for component in problem.stepper.components:
        values = ComponentValues(component)
        out += [ComponentColumn(name, values) for name in values(problem)]
    return out


def standard_quantities(problem: InjectionProblem) -> list[Quantity]:
    """The columns of every run's time series."""
    needles = [n.name for n in problem.needles]
    distances = FrontDistances(problem)
    routes = [r.name for r in problem.routes]
    targets = list(problem.scenario.targets)
    return [
        Time(),
        CementAge(),
        InjectedVolume(),
        *(NeedleVolume(n) for n in needles),
        *(InjectionRate(n) for n in needles),
        *(TipPressure(n) for n in needles),
        *(SyringePressure(n) for n in needles),
        CementInBone(),
        *(LeakedVolume(r) for r in routes),
        *(MarrowOutflow(r) for r in routes),
        *(FillFraction(t) for t in targets),
        *(Coverage(t) for t in targets),
        CloudVolume(),
        CloudDistance(),
        *(FrontDistance(name, distances) for name in [*routes, "cortex"]),
        MassBalanceError(),
        SaturationMin(),
        SaturationMax(),
        CementViscosityMin(),
        CementViscosityMax(),
        SyringeViscosity(),
        TransportIterations(),
        PicardIterations(),
        PressureIterations(),
        *([TimeErrorRatio()] if problem.scenario.numerics.time_tolerance is not None else []),
        *component_quantities(problem),
    ]
