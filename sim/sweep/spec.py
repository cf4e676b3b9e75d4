"""The sweep file: a base scenario, parameter axes, a sampling design, an executor.

    name: viscosity_and_volume
    base: ../vertebroplasty.yaml
    set: {output.fields: false, output.fluoroscopy: false}
    axes:
      - {param: cement.rheology.viscosity, values: ["50 Pa*s", "100 Pa*s", "200 Pa*s"]}
      - {param: injection.needles.0.volume, range: {start: 2e-6, stop: 6e-6, num: 5}}
      - {params: [injection.needles.0.volume, injection.needles.0.rate],   # coupled
         values: [["2 mL", "1.5 mL/min"], ["4 mL", "3 mL/min"]]}
      - {param: bone.porosity, distribution: {kind: uniform, low: 0.85, high: 0.95}}
    derived: {injection.needles.0.rate: "injection.needles.0.volume / 80"}
    constraints: ["bone.porosity < 0.93 or bone.permeability < 2e-8"]
    sampling: {method: grid}   # or random | latin_hypercube | sobol | saltelli, samples, seed
    realisations: {count: 100, seed: 2026}   # every point on 100 bone realisations
    executor: {kind: local, workers: 2, ranks_per_run: 1, retries: 1}
    report: {leak_probability: {group_by: [cement.preset], risk_level: 10 %,
                                reference: {cement.preset: vertebroplasty_low_viscosity}}}

`values` and `range` axes are crossed (full factorial). Sampled designs draw the
`distribution` axes (uniform, log_uniform, normal, truncated to [low, high] when given) and
cross them with the other axes. Derived parameters and constraints are expressions of the
point's values in SI units (arithmetic, comparisons, and/or/not, min, max, abs, log, exp,
sqrt); a combination that fails a constraint is dropped, one that fails validation is an
error of the plan.

`realisations` repeats every design point on `count` random bones: each run sets
bone.heterogeneity.seed (REALISATION_PARAMETER) to one of `count` seeds derived from `seed`, the
same seeds for every design point (sim.sweep.plan.realisation_seeds).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pint
from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from sim.outputs.rundir import CHECKPOINT_EVERY, checkpoint_interval
from sim.scenario.base import Section
from sim.scenario.injection import Name
from sim.units import Time, Volume, quantity

Param = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]
Scalar = float | int | str | bool

#: the scenario parameter that selects one bone realisation
REALISATION_PARAMETER = "bone.heterogeneity.seed"
#: runs a sweep may have (a plan of 100 000 points takes minutes and about a GB)
MAX_RUNS = 100_000
#: the parameter read as the cement age when the leak probability is shown against age
CEMENT_AGE = "injection.start_after_mixing"


_LEADING_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _with_units(data: Any, fields: tuple[str, ...]) -> Any:
    """Numbers written with units ("2 min", "50 Pa*s") -> SI floats, and `unit`: their SI base
    unit, with which sampled values are handed to the scenario (which checks the dimension);
    `shown_unit`: the unit as first written ("min"), for plots."""
    if not isinstance(data, dict):
        return data
    if "unit" in data or "shown_unit" in data:
        raise ValueError("write the unit with each number, e.g. low: 2 min")
    out = dict(data)
    units = set()
    shown = None
    for name in fields:
        value = out.get(name)
        if isinstance(value, str):
            try:  # a bare number in a string (PyYAML reads 1e-9 as one)
                out[name] = float(value)
                continue
            except ValueError:
                pass
            try:
                q = quantity(value)
            except ValueError as exc:
                raise ValueError(
                    f"{name}: cannot read {value!r} as a number with a unit: {exc}"
                ) from None
            if not isinstance(q, pint.Quantity) or q.dimensionless:
                out[name] = float(
                    q.to_base_units().magnitude if isinstance(q, pint.Quantity) else q
                )
                continue
            base = q.to_base_units()
            out[name] = float(base.magnitude)
            units.add(str(base.units))
            shown = shown or written_unit(value) or f"{q.units:~}"
    if len(units) > 1:
        raise ValueError(f"bounds in different units: {sorted(units)}")
    out["unit"] = units.pop() if units else None
    out["shown_unit"] = shown
    return out


def written_unit(value: str) -> str | None:
    """The unit as written after the number ("min" of "3.5 min"); None without a number or
    a unit."""
    match = _LEADING_NUMBER.match(value.strip())
    unit = value.strip()[match.end() :].strip() if match else ""
    return unit or None


def _si_value(value: Any) -> Any:
    """A number written with a unit ("3.5 min") -> its SI magnitude; other values unchanged
    (names such as a cement preset, or text that pint cannot read, stay text)."""
    if not isinstance(value, str) or not _LEADING_NUMBER.match(value.strip()):
        return value
    try:
        q = quantity(value)
    except ValueError:
        return value
    return float(q.to_base_units().magnitude if isinstance(q, pint.Quantity) else q)


def matches(value: Any, wanted: Any) -> bool:
    """Whether a parameter value (SI number, or text) is the value `wanted` (numbers to a
    relative 1e-9)."""
    if isinstance(value, int | float) and isinstance(wanted, int | float):
        return math.isclose(value, wanted, rel_tol=1e-9, abs_tol=0.0)
    return str(value) == str(wanted)


def _fraction(value: Any) -> Any:
    """A fraction written as a number (0.1) or a percentage ("10 %")."""
    if not isinstance(value, str):
        return value
    try:
        q = quantity(value)
    except ValueError as exc:
        raise ValueError(
            f"cannot read {value!r} as a fraction, e.g. 0.1 or '10 %': {exc}"
        ) from None
    if isinstance(q, pint.Quantity) and not q.dimensionless:
        raise ValueError(f"{value!r} is not a fraction: write e.g. 0.1 or '10 %'")
    return float(q.to("dimensionless").magnitude if isinstance(q, pint.Quantity) else q)


def _probability(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1, both excluded (e.g. 0.1 or '10 %')")
    return value


Probability = Annotated[float, BeforeValidator(_fraction), AfterValidator(_probability)]


def sets_parameter(name: str, value: Any, target: str) -> bool:
    """Whether assigning `value` to parameter `name` sets parameter `target`: `name` is
    `target`, or a section holding it whose value (a mapping) has it."""
    if name == target:
        return True
    if not target.startswith(name + "."):
        return False
    node = value
    for key in target[len(name) + 1 :].split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


class Range(Section):
    """`num` values from `start` to `stop` (SI numbers, or numbers with units), linearly or
    logarithmically spaced."""

    start: float
    stop: float
    num: Annotated[int, Field(ge=2, le=10_000)]
    spacing: Literal["linear", "log"] = "linear"
    unit: str | None = Field(default=None, exclude=True)
    shown_unit: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data: Any) -> Any:
        return _with_units(data, ("start", "stop"))

    @model_validator(mode="after")
    def _log_positive(self) -> Range:
        if self.spacing == "log" and min(self.start, self.stop) <= 0:
            raise ValueError("a log range needs start and stop > 0")
        return self


class Distribution(Section):
    """uniform / log_uniform on [low, high]; normal (mean, std), truncated to [low, high]
    when those are given. SI numbers, or numbers with units ("2 min")."""

    kind: Literal["uniform", "log_uniform", "normal"]
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: Annotated[float, Field(gt=0)] | None = None
    unit: str | None = Field(default=None, exclude=True)
    shown_unit: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data: Any) -> Any:
        return _with_units(data, ("low", "high", "mean", "std"))

    @model_validator(mode="after")
    def _parameters(self) -> Distribution:
        if self.kind in ("uniform", "log_uniform"):
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"a {self.kind} distribution needs low < high")
            if self.kind == "log_uniform" and self.low <= 0:
                raise ValueError("a log_uniform distribution needs low > 0")
        elif self.mean is None or self.std is None:
            raise ValueError("a normal distribution needs mean and std")
        return self


class Axis(Section):
    """One parameter (or coupled parameters) and how it varies."""

    param: Param | None = None
    params: Annotated[list[Param], Field(min_length=2)] | None = None
    values: Annotated[list[Any], Field(min_length=1)] | None = None
    range: Range | None = None
    distribution: Distribution | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Axis:
        if (self.param is None) == (self.params is None):
            raise ValueError("give 'param' (one parameter) or 'params' (coupled parameters)")
        ways = [w for w in ("values", "range", "distribution") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise ValueError(f"give exactly one of values, range, distribution; got {ways}")
        if self.params is not None:
            if self.values is None:
                raise ValueError("coupled parameters take a list of value tuples ('values')")
            bad = [v for v in self.values if not isinstance(v, list) or len(v) != len(self.params)]
            if bad:
                raise ValueError(
                    f"each entry of values must list {len(self.params)} values, got {bad[0]!r}"
                )
        return self

    @property
    def names(self) -> list[str]:
        return self.params if self.params is not None else [self.param]  # type: ignore[list-item]


class Sampling(Section):
    """grid: the full factorial of the axes; random, latin_hypercube, sobol: `samples` draws of
    the distribution axes; saltelli: the design for Sobol indices (samples * (2 d + 2) runs)."""

    method: Literal["grid", "random", "latin_hypercube", "sobol", "saltelli"] = "grid"
    samples: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _samples(self) -> Sampling:
        if self.method != "grid" and self.samples is None:
            raise ValueError(f"sampling method {self.method!r} needs 'samples'")
        return self


class Realisations(Section):
    """Every design point is run on `count` bone realisations: REALISATION_PARAMETER
    (bone.heterogeneity.seed) takes `count` distinct seeds derived from `seed`. The same sweep
    file gives the same seeds, and every design point gets the same ones, so that comparisons
    between design points are paired (same bones)."""

    count: Annotated[int, Field(ge=2, le=100_000)]
    seed: Annotated[int, Field(ge=0, strict=True)]

    @model_validator(mode="before")
    @classmethod
    def _seeded(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("seed") is None:
            raise ValueError(
                f"missing seed in a sweep over realisations (got {data}): give "
                "realisations.seed, an integer >= 0 (e.g. {count: 100, seed: 2026}), so that "
                "the same sweep file gives the same bones"
            )
        return data


def _job_value(pattern: str, allowed: str) -> AfterValidator:
    """A check that a job setting matches `pattern` in full; the error says what is
    allowed. These values go into #SBATCH and #PBS lines, which are not shell words that
    could be quoted: a space, a quote, a '#' or a newline would change the script."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {allowed}")
        return value

    return AfterValidator(check)


#: a partition/queue, account or network interface name
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
Memory = Annotated[
    str,
    _job_value(
        r"[1-9][0-9]{0,8}[KkMmGgTt][Bb]?",
        "a whole number with a unit K, M, G or T, optionally followed by B (what both SLURM "
        "and dask-jobqueue read), e.g. 4G, 4GB, 500M",
    ),
]
Walltime = Annotated[
    str,
    _job_value(
        r"[0-9]{1,6}(:[0-5][0-9]){0,2}|[0-9]{1,4}-[0-9]{1,2}(:[0-5][0-9]){0,2}",
        "a time limit as minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS "
        "(e.g. 90, 02:00:00, 1-12:00:00)",
    ),
]
Queue = Annotated[
    str,
    _job_value(
        rf"{_NAME}(@{_NAME})?(,{_NAME}(@{_NAME})?)*",
        "a partition or queue name of letters, digits and _ . + - (several separated by "
        "commas; PBS queue@server allowed), without spaces, quotes, '#' or line breaks",
    ),
]
Account = Annotated[
    str,
    _job_value(
        _NAME,
        "an account name of letters, digits and _ . + - (at most 64 characters), without "
        "spaces, quotes, '#' or line breaks",
    ),
]
Interface = Annotated[
    str,
    _job_value(
        r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}",
        "a network interface name such as ib0, eth0 or enp1s0f0",
    ),
]


class JobQueue(Section):
    """Resources of one cluster job (dask-jobqueue) or array task. Every text value is
    checked against what SLURM and PBS accept, so that none can break the job script it is
    written into (a newline in a partition name would add a line to array.sbatch)."""

    cores: Annotated[int, Field(ge=1)] = 1
    memory: Memory = "2GB"
    walltime: Walltime = "01:00:00"
    queue: Queue | None = None
    account: Account | None = None
    jobs: Annotated[int, Field(ge=1)] = 2
    interface: Interface | None = None


def _checkpoint_every(text: str) -> str:
    checkpoint_interval(text)
    return text


class Executor(Section):
    """How runs are executed. ranks_per_run > 1 runs each on that many MPI ranks (a worker
    under mpirun, sim.sweep.worker); retries: attempts after the first; timeout: per attempt
    (s); checkpoint_every: wall time between a point's checkpoints ("30 min", or "never"),
    from which a point killed with its job goes on."""

    kind: Literal["serial", "local", "dask", "slurm", "pbs", "slurm_array"] = "local"
    workers: Annotated[int, Field(ge=1)] = 2
    ranks_per_run: Annotated[int, Field(ge=1)] = 1
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    timeout: Annotated[Time, Field(gt=0)] = 24 * 3600.0
    checkpoint_every: Annotated[str, AfterValidator(_checkpoint_every)] = CHECKPOINT_EVERY
    scheduler: str | None = None
    jobqueue: JobQueue = JobQueue()


class LeakProbabilityReport(Section):
    """Leak probability over bone realisations (sweeps with `realisations`; see
    sim.sweep.leak_probability). `group_by`: the axes whose combinations are compared (runs
    pooled over the others and over the seeds; default: every parameter but the seed);
    `reference`: {parameter: value} of the group the relative risks are taken against (values
    may carry units; group parameters left out keep each group's own value; default: the
    first group); `risk_level`: the leak risk of the volume at risk (a fraction, or "10 %");
    `age`: the parameter the leak probability is plotted against (default:
    injection.start_after_mixing, the cement age at the start of injection, when it is a
    group parameter); `volumes`: injected volumes ("3 mL") at which the probability of a
    leak by then and its relative risk are reported too (a typical clinical volume)."""

    group_by: Annotated[list[Param], Field(min_length=1)] | None = None
    reference: dict[Param, Annotated[Scalar, BeforeValidator(_si_value)]] | None = None
    risk_level: Probability = 0.1
    age: Param | None = None
    volumes: list[Annotated[Volume, Field(gt=0)]] = []


class Report(Section):
    """What the collected report shows: `map` the two parameters of the leak maps (default:
    the first two numeric axes), `metric` the summary quantity of the sensitivity analysis
    (a key of summary.json; nested keys dotted, e.g. fill_fraction.anterior), `leak_threshold`
    the leaked volume above which a run counts as leaking (default: each run's
    output.leak_threshold), `leak_probability` the analysis over bone realisations."""

    map: Annotated[list[Param], Field(min_length=2, max_length=2)] | None = None
    metric: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")] = (
        "leaked_volume_total_m3"
    )
    leak_threshold: Annotated[Volume, Field(gt=0)] | None = None
    leak_probability: LeakProbabilityReport | None = None


class SweepSpec(Section):
    """A sweep: see the module docstring."""

    name: Name
    base: Path
    set: dict[Param, Scalar | list[Any] | dict[str, Any]] = {}
    axes: list[Axis] = []
    derived: dict[Param, str] = {}
    constraints: list[str] = []
    sampling: Sampling = Sampling()
    realisations: Realisations | None = None
    executor: Executor = Executor()
    report: Report = Report()

    @field_validator("base")
    @classmethod
    def _exists(cls, v: Path) -> Path:
        if not v.is_file():
            raise ValueError(f"base scenario {str(v)!r} does not exist")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        names = [n for a in self.axes for n in a.names]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"parameters on more than one axis: {sorted(duplicated)}")
        sampled = [a for a in self.axes if a.distribution is not None]
        if self.sampling.method == "grid" and sampled:
            raise ValueError(
                f"axis {sampled[0].names[0]!r} has a distribution: use a sampled design "
                "(sampling.method: random, latin_hypercube, sobol or saltelli)"
            )
        if self.sampling.method != "grid" and not sampled:
            raise ValueError(
                f"sampling.method {self.sampling.method!r} needs axes with a distribution"
            )
        if self.sampling.method == "saltelli" and len(sampled) != len(self.axes):
            raise ValueError("a saltelli design samples every axis: give each a distribution")
        self._runs_within_limit(sampled)
        clash = set(self.derived) & set(names)
        if clash:
            raise ValueError(f"derived parameters are also axes: {sorted(clash)}")
        if self.report.map is not None:
            unknown = [p for p in self.report.map if p not in names]
            if unknown:
                raise ValueError(f"report.map: {unknown} are not axes ({names})")
        if self.realisations is None:
            if not self.axes:
                raise ValueError("axes: required, but missing (only realisations may go without)")
            if self.report.leak_probability is not None:
                raise ValueError(
                    "report.leak_probability: applies to a sweep over realisations; add "
                    "realisations: {count: ..., seed: ...}"
                )
            return self
        self._realisations_consistent(names, self.realisations)
        return self

    def _runs_within_limit(self, sampled: list[Axis]) -> None:
        """ValueError naming the factors when the sweep has more than MAX_RUNS runs (before
        any is planned: a plan of 10^8 points fills the memory)."""
        fixed = [a for a in self.axes if a.distribution is None]
        factors = [(a.names[0], len(a.values or []) or a.range.num) for a in fixed]  # type: ignore[union-attr]
        if sampled:
            samples = self.sampling.samples or 1
            if self.sampling.method == "saltelli":
                samples *= 2 * len(sampled) + 2
            factors.append((f"sampling ({self.sampling.method})", samples))
        if self.realisations is not None:
            factors.append(("realisations.count", self.realisations.count))
        runs = math.prod(n for _, n in factors)
        if runs > MAX_RUNS:
            parts = " x ".join(f"{n:,} of {what}" for what, n in factors)
            raise ValueError(
                f"the sweep has {runs:,} runs ({parts}), more than {MAX_RUNS:,}: split it into "
                "several sweeps"
            )

    def _realisations_consistent(self, names: list[str], realisations: Realisations) -> None:
        """The seed is the realisations' alone; the report names group parameters."""
        seed = REALISATION_PARAMETER
        given = f"realisations (count {realisations.count}, seed {realisations.seed})"
        for key, value in self.set.items():
            if sets_parameter(key, value, seed):
                raise ValueError(
                    f"set.{key} = {value!r} sets {seed}, which {given} sets, one seed per "
                    "realisation; remove it from set (or remove realisations)"
                )
        for axis in self.axes:
            for k, name in enumerate(axis.names):
                values = [v[k] if axis.params else v for v in axis.values or [None]]
                if any(sets_parameter(name, v, seed) for v in values):
                    raise ValueError(
                        f"axes: the axis of {name} sets {seed}, which {given} sets, one seed "
                        "per realisation; remove the axis (or remove realisations)"
                    )
        if seed in self.derived:
            raise ValueError(
                f"derived.{seed} = {self.derived[seed]!r} sets {seed}, which {given} sets, one "
                "seed per realisation; remove it (or remove realisations)"
            )
        if self.sampling.method == "saltelli":
            raise ValueError(
                "sampling.method: 'saltelli' cannot be repeated over realisations (Sobol "
                "indices need one result per design point); use grid, random, "
                "latin_hypercube or sobol"
            )
        lp = self.report.leak_probability
        if lp is None:
            return
        unknown = [p for p in lp.group_by or [] if p not in names]
        if unknown:
            raise ValueError(f"report.leak_probability.group_by: {unknown} are not axes ({names})")
        grouped = lp.group_by if lp.group_by is not None else names + list(self.derived)
        unknown = [p for p in lp.reference or {} if p not in grouped]
        if unknown:
            raise ValueError(
                f"report.leak_probability.reference: {unknown} are not group parameters ({grouped})"
            )
        if lp.age is not None and lp.age not in grouped:
            raise ValueError(
                f"report.leak_probability.age: {lp.age!r} is not a group parameter ({grouped})"
            )
