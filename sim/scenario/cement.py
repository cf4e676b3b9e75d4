"""Scenario section `cement`: rheology at a reference state, curing, set point, preset.

    cement:
      preset: vertebroplasty_low_viscosity   # optional; the keys below override the preset's
      rheology: {model: power_law, consistency: "150 Pa*s^0.6", n: 0.6}
      curing: {law: exponential, reference_age: 4 min, time_constant: 2 min}
      set_viscosity: 75000 Pa*s

The rheology describes the cement at the reference state (reference age or, for cure
kinetics, zero conversion at the reference temperature); curing gives the factor by which
its consistency parameters rise (see sim.physics.curing). Presets are data files in
sim/data/cements/ with a source for every value.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from sim.physics.curing import CureKinetics, ExponentialCuring, NoCuring, TabulatedCuring
from sim.physics.rheology import (
    CarreauYasuda,
    Cross,
    HerschelBulkley,
    Newtonian,
    PowerLaw,
    Rheology,
)
from sim.scenario.base import Section
from sim.units import (
    TIME,
    VISCOSITY,
    BodyTemperature,
    Dimension,
    Pressure,
    Time,
    Viscosity,
    quantity,
    registry,
    to_si,
)

FlowIndex = Annotated[float, Field(gt=0)]
Positive = Annotated[float, Field(gt=0)]
_SHEAR_THICKENING = (
    "n = {n:g} describes a shear-thickening cement, but PMMA bone cements are shear-thinning "
    "(n <= 1); set allow_shear_thickening: true if you mean it"
)


def consistency_to_si(value: Any, n: float) -> float:
    """A power-law consistency K (Pa·s^n) to SI; numbers are taken as SI."""
    dim = Dimension(
        f"a consistency in Pa*s^{n:g}", f"[mass]/[length]/[time]**{2 - n!r}", f"150 Pa*s^{n:g}"
    )
    if isinstance(value, str):
        q = _parse(value, dim.name) if not _is_number(value) else None
        if q is not None:
            expected = registry().get_dimensionality(dim.pint_dim)
            if getattr(q, "dimensionality", None) != expected:
                raise ValueError(
                    f"{value!r} is not a consistency for n = {n:g}: write it in Pa*s^{n:g}"
                )
            return float(f"{q.to_base_units().magnitude:.15g}")
    return to_si(value, dim)


def _parse(text: str, what: str) -> Any:
    """pint's reading of `text`; ValueError (not pint's own errors) if it cannot be read."""
    try:
        return quantity(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {text!r} as {what}: {exc}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Shear(Section):
    """Common to non-Newtonian laws: the porous-media shear-rate closure
    (sim.physics.rheology.porous_closure): `christopher_middleman` (default),
    `capillary_bundle`, or `shift_factor` with its `shift_factor` alpha."""

    closure: Literal["christopher_middleman", "capillary_bundle", "shift_factor"] = (
        "christopher_middleman"
    )
    shift_factor: Positive | None = None
    allow_shear_thickening: bool = False

    @model_validator(mode="after")
    def _closure(self) -> _Shear:
        if self.closure == "shift_factor" and self.shift_factor is None:
            raise ValueError("closure 'shift_factor' needs a shift_factor (alpha > 0, e.g. 1.5)")
        if self.closure != "shift_factor" and self.shift_factor is not None:
            raise ValueError(
                f"shift_factor = {self.shift_factor:g} is given, but closure "
                f"'{self.closure}' computes its own shift factor from n; set closure: "
                "shift_factor to use a fixed one, or leave shift_factor out"
            )
        return self

    def _check_n(self, n: float) -> None:
        if n > 1.0 and not self.allow_shear_thickening:
            raise ValueError(_SHEAR_THICKENING.format(n=n))


class NewtonianRheology(Section):
    """mu = viscosity (Pa·s)."""

    model: Literal["newtonian"]
    viscosity: Viscosity | None = None

    def primary(self) -> float | None:
        return self.viscosity

    def with_primary(self, value: float) -> NewtonianRheology:
        return self.model_copy(update={"viscosity": value})

    def build(self) -> Rheology:
        return Newtonian(self.viscosity)  # type: ignore[arg-type]


class _WithConsistency(_Shear):
    """Laws with a power-law consistency K in Pa·s^n (e.g. "150 Pa*s^0.6")."""

    consistency: float | None = None
    n: FlowIndex = 1.0

    @model_validator(mode="before")
    @classmethod
    def _consistency_units(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("consistency") is not None:
            n = data.get("n", 1.0)
            if isinstance(n, int | float) and n > 0:
                data = {**data, "consistency": consistency_to_si(data["consistency"], float(n))}
        return data

    @model_validator(mode="after")
    def _checks(self) -> _WithConsistency:
        self._check_n(self.n)
        if self.consistency is not None and self.consistency <= 0:
            raise ValueError(f"consistency must be > 0, got {self.consistency:g}")
        return self

    def primary(self) -> float | None:
        return self.consistency

    def with_primary(self, value: float) -> _WithConsistency:
        return self.model_copy(update={"consistency": value})


class PowerLawRheology(_WithConsistency):
    """mu = K gamma_dot^(n-1); below min_shear_rate (1/s) the viscosity is held."""

    model: Literal["power_law"]
    n: FlowIndex
    min_shear_rate: Positive = 1e-3

    def build(self) -> Rheology:
        return PowerLaw(self.consistency, self.n, self.min_shear_rate)  # type: ignore[arg-type]


class CrossRheology(_Shear):
    """mu = mu_inf + (mu_0 - mu_inf) / (1 + (lambda gamma_dot)^(1-n)); viscosity = mu_0."""

    model: Literal["cross"]
    viscosity: Viscosity | None = None
    n: FlowIndex
    time_constant: Annotated[Time, Field(gt=0)]
    infinite_viscosity: Annotated[
        float, BeforeValidator(lambda v: to_si(v, VISCOSITY)), Field(ge=0)
    ] = 0.0

    @model_validator(mode="after")
    def _checks(self) -> CrossRheology:
        self._check_n(self.n)
        return self

    def primary(self) -> float | None:
        return self.viscosity

    def with_primary(self, value: float) -> CrossRheology:
        return self.model_copy(update={"viscosity": value})

    def build(self) -> Rheology:
        return Cross(self.viscosity, self.n, self.time_constant, self.infinite_viscosity)  # type: ignore[arg-type]


class CarreauYasudaRheology(CrossRheology):
    """mu = mu_inf + (mu_0 - mu_inf)(1 + (lambda gamma_dot)^a)^((n-1)/a); a = 2: Carreau."""

    model: Literal["carreau_yasuda"]  # type: ignore[assignment]
    a: Positive = 2.0

    def build(self) -> Rheology:
        return CarreauYasuda(
            self.viscosity,  # type: ignore[arg-type]
            self.n,
            self.time_constant,
            self.a,
            self.infinite_viscosity,
        )


class HerschelBulkleyRheology(_WithConsistency):
    """tau = tau_y + K gamma_dot^n, no flow below tau_y (regularised, Papanastasiou)."""

    model: Literal["herschel_bulkley"]
    yield_stress: Annotated[Pressure, Field(ge=0)]
    regularisation_rate: Positive = 1e-3

    def build(self) -> Rheology:
        return HerschelBulkley(
            self.yield_stress,
            self.consistency,  # type: ignore[arg-type]
            self.n,
            self.regularisation_rate,
        )


class BinghamRheology(_Shear):
    """tau = tau_y + mu_p gamma_dot: Herschel-Bulkley with n = 1; viscosity = mu_p."""

    model: Literal["bingham"]
    yield_stress: Annotated[Pressure, Field(ge=0)]
    viscosity: Viscosity | None = None
    regularisation_rate: Positive = 1e-3

    def primary(self) -> float | None:
        return self.viscosity

    def with_primary(self, value: float) -> BinghamRheology:
        return self.model_copy(update={"viscosity": value})

    def build(self) -> Rheology:
        return HerschelBulkley(
            self.yield_stress,
            self.viscosity,  # type: ignore[arg-type]
            1.0,
            self.regularisation_rate,
        )


RheologySpec = Annotated[
    NewtonianRheology
    | PowerLawRheology
    | CrossRheology
    | CarreauYasudaRheology
    | HerschelBulkleyRheology
    | BinghamRheology,
    Field(discriminator="model"),
]


class NoCuringSpec(Section):
    """The cement does not change during the injection."""

    law: Literal["none"]

    def build(self) -> NoCuring:
        return NoCuring()


class ExponentialCuringSpec(Section):
    """Consistency x exp((age - reference_age) / time_constant)."""

    law: Literal["exponential"]
    reference_age: Annotated[Time, Field(ge=0)]
    time_constant: Annotated[Time, Field(gt=0)]

    def build(self) -> ExponentialCuring:
        return ExponentialCuring(self.reference_age, self.time_constant)


def _read_table_csv(path: Path) -> list[list[float]]:
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
    headers = (["age_s", "viscosity_pa_s"], ["age_s", "consistency_pa_sn", "n"])
    if not rows or [h.strip().lower() for h in rows[0]] not in headers:
        raise ValueError(
            f"{path}: the header must be 'age_s,viscosity_pa_s' or 'age_s,consistency_pa_sn,n'"
            f" (SI units), got {','.join(rows[0]) if rows else 'an empty file'!r}"
        )
    try:
        return [[float(v) for v in r] for r in rows[1:]]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


class TabulatedCuringSpec(Section):
    """A rheometer curve: [age, value] or [age, consistency, n] rows, or a CSV file.

    value: the rheology's viscosity (Pa·s) or consistency (Pa·s^n) at that age. Ages must
    increase strictly and values not decrease (curing). reference_age: the age whose value is
    the rheology's own parameter (filled in from the table when the rheology omits it).
    """

    law: Literal["table"]
    points: list[list[float]] | None = None
    file: Path | None = None
    reference_age: Annotated[Time, Field(ge=0)]

    @model_validator(mode="before")
    @classmethod
    def _load(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("file") is not None and data.get("points") is None:
            path = Path(data["file"])
            if not path.is_file():
                raise ValueError(f"viscosity table file {str(path)!r} does not exist")
            data = {**data, "points": _read_table_csv(path)}
        points = data.get("points")
        if isinstance(points, list):
            data = {**data, "points": [_table_row(p) for p in points]}
        return data

    @model_validator(mode="after")
    def _table(self) -> TabulatedCuringSpec:
        if not self.points or len(self.points) < 2:
            raise ValueError("a viscosity table needs at least two rows")
        widths = {len(p) for p in self.points}
        if len(widths) != 1 or widths.pop() not in (2, 3):
            raise ValueError("table rows must all be [age, value] or all [age, value, n]")
        table = np.array(self.points)
        if np.any(np.diff(table[:, 0]) <= 0):
            raise ValueError(f"table ages must increase strictly, got {table[:, 0].tolist()} s")
        if np.any(table[:, 1] <= 0):
            raise ValueError(f"table values must be > 0, got {table[:, 1].tolist()}")
        if np.any(np.diff(table[:, 1]) < 0):
            raise ValueError(
                f"table values must not decrease with age (curing), got {table[:, 1].tolist()}"
            )
        if table.shape[1] == 3 and np.any(table[:, 2] <= 0):
            raise ValueError(f"flow indices n must be > 0, got {table[:, 2].tolist()}")
        return self

    def value_at(self, age: float) -> float:
        table = np.array(self.points)
        return float(np.exp(np.interp(age, table[:, 0], np.log(table[:, 1]))))

    def build(self) -> TabulatedCuring:
        table = np.array(self.points)
        n = tuple(table[:, 2]) if table.shape[1] == 3 else None
        return TabulatedCuring(tuple(table[:, 0]), tuple(table[:, 1]), self.reference_age, n)


def _table_row(row: Any) -> Any:
    if not isinstance(row, list | tuple) or len(row) not in (2, 3):
        return row
    age = to_si(row[0], TIME)
    value = row[1]
    if isinstance(value, str) and not _is_number(value):
        if len(row) == 3:  # a consistency in Pa*s^n with n in the third column
            value = consistency_to_si(value, float(row[2]))
        else:  # a viscosity (Pa*s) or a consistency (Pa*s^n, n of the rheology)
            q = _parse(value, "a viscosity or a consistency")
            dims = dict(getattr(q, "dimensionality", {}))
            if dims.pop("[time]", 0) >= 0 or dims != {"[mass]": 1, "[length]": -1}:
                raise ValueError(
                    f"table value {value!r} is not a viscosity (e.g. '100 Pa*s') or a "
                    "consistency (e.g. '150 Pa*s^0.6')"
                )
            value = float(f"{q.to_base_units().magnitude:.15g}")
    return [age, float(value), *(float(v) for v in row[2:])]


class CureKineticsSpec(Section):
    """Kamal-Sourour autocatalytic cure + Castro-Macosko viscosity (see sim.physics.curing).

    Rate constants k_i = A_i exp(-E_i / (R T)) in 1/s with A_i in 1/s and E_i in J/mol.
    """

    law: Literal["cure_kinetics"]
    k1_prefactor: Annotated[float, Field(ge=0)]
    k1_activation_energy: Annotated[float, Field(ge=0)]
    k2_prefactor: Annotated[float, Field(ge=0)]
    k2_activation_energy: Annotated[float, Field(ge=0)]
    m: Annotated[float, Field(ge=0)] = 1.0
    p: Annotated[float, Field(ge=0)] = 1.0
    gel_conversion: Annotated[float, Field(gt=0, le=1)]
    c1: float
    c2: float = 0.0
    viscosity_activation_energy: float = 0.0
    reference_temperature: BodyTemperature
    syringe_temperature: BodyTemperature
    bone_temperature: BodyTemperature
    initial_conversion: Annotated[float, Field(ge=0, lt=1)] = 0.0

    def build(self) -> CureKinetics:
        return CureKinetics(**self.model_dump(exclude={"law"}))


CuringSpec = Annotated[
    NoCuringSpec | ExponentialCuringSpec | TabulatedCuringSpec | CureKineticsSpec,
    Field(discriminator="law"),
]


class Cement(Section):
    """PMMA bone cement: rheology at the reference state, curing, and the set point."""

    preset: str | None = None
    rheology: RheologySpec
    curing: CuringSpec = NoCuringSpec(law="none")
    set_viscosity: Viscosity | None = None

    @model_validator(mode="after")
    def _primary(self) -> Cement:
        value = self.rheology.primary()
        if isinstance(self.curing, TabulatedCuringSpec):
            from_table = self.curing.value_at(self.curing.reference_age)
            if value is None:
                object.__setattr__(self, "rheology", self.rheology.with_primary(from_table))
            elif abs(value - from_table) > 0.01 * from_table:
                raise ValueError(
                    f"rheology gives {value:g} at the reference state but the table gives "
                    f"{from_table:g} at reference_age {self.curing.reference_age:g} s; leave "
                    "the rheology's value out or make them agree"
                )
            if len(self.curing.points[0]) == 3 and not isinstance(  # type: ignore[index]
                self.rheology, PowerLawRheology | HerschelBulkleyRheology
            ):
                raise ValueError("a table with a flow index column needs a power-law rheology")
        elif value is None:
            raise ValueError(
                f"rheology: the {self.rheology.model} law needs its viscosity/consistency"
            )
        return self


__all__ = [
    "Cement",
    "CureKineticsSpec",
    "ExponentialCuringSpec",
    "NoCuringSpec",
    "TabulatedCuringSpec",
]
