"""Expand a sweep file into runs: designs, derived parameters, constraints, realisations,
validation.

Every run is a list of `--set` overrides of the base scenario; its id is the hash of the
resolved scenario, so the same point always maps to the same results folder. With
`realisations`, every design point is repeated on the same bone realisations (seeds).
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import norm, qmc

from sim.outputs.rundir import config_hash
from sim.outputs.summary_layout import metric_problem, summary_layout
from sim.scenario import Scenario, ScenarioError, load_scenario
from sim.scenario.loader import apply_override, read_yaml
from sim.sweep.spec import REALISATION_PARAMETER, Axis, Distribution, SweepSpec, matches


class PlanError(ValueError):
    """The sweep cannot be expanded (a bad expression, a point that does not validate)."""


@dataclass
class PlannedRun:
    """One point of the sweep: its index in the design (design point × realisations + the
    realisation), id (config hash), the parameter values as written (`params`) and in SI
    (`si`, scalars only), and the overrides of the base."""

    index: int
    id: str
    params: dict[str, Any]
    si: dict[str, float]
    overrides: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """All runs of a sweep; `dropped`: design points removed by constraints (with all their
    realisations); `design`: the unit-cube samples of a saltelli design, in run order (None
    otherwise); `seeds`: the seeds of the bone realisations every design point is run on
    (empty without `realisations`)."""

    spec: SweepSpec
    runs: list[PlannedRun]
    dropped: int
    design: np.ndarray | None = None
    seeds: list[int] = field(default_factory=list)

    @property
    def parameter_names(self) -> list[str]:
        """Axes, derived parameters, then the realisation parameter (the seed), if any."""
        names = [n for a in self.spec.axes for n in a.names] + list(self.spec.derived)
        return names + ([REALISATION_PARAMETER] if self.spec.realisations else [])


# ----------------------------------------------------------------------------- expressions
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: math.pow,  # in floats: an integer power such as 9**9**9 would not end
    ast.Mod: operator.mod,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sqrt": math.sqrt,
}


#: the longest expression read (a derived parameter or a constraint is one line)
MAX_EXPRESSION = 500

_NAME = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.\w+)+|(?<![\w.])[A-Za-z_]\w*(?![\w.(])")


def evaluate(expression: str, values: dict[str, float]) -> Any:
    """Value of an arithmetic / logical expression of dotted parameter names (SI values).

    PlanError naming the expression when it is too long, cannot be read, uses what is not
    allowed, or cannot be evaluated for these values (a division by zero, log(0), an overflow).
    """
    if len(expression) > MAX_EXPRESSION:
        raise PlanError(
            f"the expression {expression[:40]!r}... is longer than {MAX_EXPRESSION} characters"
        )
    names: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        if match.group(0) in ("and", "or", "not"):
            return match.group(0)
        return names.setdefault(match.group(0), f"_p{len(names)}")

    try:
        tree = ast.parse(_NAME.sub(placeholder, expression), mode="eval")
    except SyntaxError as exc:
        raise PlanError(f"cannot read the expression {expression!r}: {exc.msg}") from None
    parameters = {v: k for k, v in names.items()}

    def shown(node: ast.AST) -> str:
        return re.sub(r"_p\d+", lambda m: parameters.get(m.group(0), m.group(0)), ast.unparse(node))

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name) and node.id in parameters:
            name = parameters[node.id]
            if name not in values:
                raise PlanError(
                    f"{expression!r}: {name!r} is not a parameter of the sweep "
                    f"(known: {', '.join(sorted(values))})"
                )
            return values[name]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
            v = walk(node.operand)
            return (
                not v
                if isinstance(node.op, ast.Not)
                else (-v if isinstance(node.op, ast.USub) else v)
            )
        if isinstance(node, ast.BoolOp):
            results = [walk(v) for v in node.values]
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.Compare):
            left = walk(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = walk(right_node)
                if type(op) not in _COMPARE or not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and not node.keywords
        ):
            return _FUNCTIONS[node.func.id](*(walk(a) for a in node.args))
        raise PlanError(f"{expression!r}: {shown(node)!r} is not allowed in expressions")

    try:
        return walk(tree)
    except PlanError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        used = ", ".join(f"{n} = {values[n]:.6g}" for n in names if n in values)
        raise PlanError(
            f"{expression!r} cannot be evaluated{' at ' + used if used else ''}: {exc}"
        ) from None


# ----------------------------------------------------------------------------- designs
def _axis_values(axis: Axis) -> list[tuple[Any, ...]]:
    """The discrete values of a values/range axis, as tuples over its parameters."""
    if axis.range is not None:
        r = axis.range
        grid = (
            np.geomspace(r.start, r.stop, r.num)
            if r.spacing == "log"
            else np.linspace(r.start, r.stop, r.num)
        )
        return [(float(v),) for v in grid]
    values = axis.values or []
    return [tuple(v) if axis.params is not None else (v,) for v in values]


def transform(distribution: Distribution, u: np.ndarray) -> np.ndarray:
    """Unit-cube samples u -> the distribution (inverse CDF)."""
    d = distribution
    if d.kind == "uniform":
        return d.low + u * (d.high - d.low)  # type: ignore[operator]
    if d.kind == "log_uniform":
        lo, hi = math.log(d.low), math.log(d.high)  # type: ignore[arg-type]
        return np.exp(lo + u * (hi - lo))
    a = norm.cdf((d.low - d.mean) / d.std) if d.low is not None else 0.0  # type: ignore[operator]
    b = norm.cdf((d.high - d.mean) / d.std) if d.high is not None else 1.0  # type: ignore[operator]
    return d.mean + d.std * norm.ppf(a + np.clip(u, 1e-12, 1 - 1e-12) * (b - a))  # type: ignore[operator]


def unit_samples(method: str, dimension: int, samples: int, seed: int) -> np.ndarray:
    """(n, d) points in the unit cube for a sampled design (saltelli: n (d + 2) rows)."""
    if method == "random":
        return np.random.default_rng(seed).random((samples, dimension))
    if method == "latin_hypercube":
        return qmc.LatinHypercube(d=dimension, seed=seed).random(samples)
    if method == "sobol":
        return qmc.Sobol(d=dimension, scramble=True, seed=seed).random(samples)
    from SALib.sample import sobol as saltelli

    problem = {
        "num_vars": dimension,
        "names": [f"x{i}" for i in range(dimension)],
        "bounds": [[0.0, 1.0]] * dimension,
    }
    return saltelli.sample(problem, samples, calc_second_order=False, seed=seed)


def design_points(spec: SweepSpec) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Parameter values of every design point (before constraints), and the unit samples of
    a saltelli design."""
    fixed = [a for a in spec.axes if a.distribution is None]
    sampled = [a for a in spec.axes if a.distribution is not None]
    grid = [
        {
            name: value
            for axis, combo in zip(fixed, choice, strict=True)
            for name, value in zip(axis.names, combo, strict=True)
        }
        for choice in itertools.product(*(_axis_values(a) for a in fixed))
    ]
    if not sampled:
        return grid, None
    s = spec.sampling
    u = unit_samples(s.method, len(sampled), s.samples, s.seed)  # type: ignore[arg-type]
    columns = {
        a.names[0]: transform(a.distribution, u[:, k])  # type: ignore[arg-type]
        for k, a in enumerate(sampled)
    }
    draws = [{name: float(col[i]) for name, col in columns.items()} for i in range(len(u))]
    points = [{**g, **d} for g in grid for d in draws]
    return points, (u if s.method == "saltelli" else None)


# ----------------------------------------------------------------------------- realisations
def realisation_seeds(seed: int, count: int) -> list[int]:
    """`count` distinct seeds (32-bit) of bone realisations derived from `seed`: the first
    distinct words of numpy's SeedSequence(seed).generate_state (integer hashing, the same on
    every platform; the tests pin the first ones). The list for a larger count starts with the
    list for a smaller one. Every design point gets this same list, so comparisons between
    design points are paired (the same bones)."""
    sequence = np.random.SeedSequence(seed)
    words = count
    while True:
        distinct = list(dict.fromkeys(int(w) for w in sequence.generate_state(words)))
        if len(distinct) >= count:
            return distinct[:count]
        words += count


def _check_heterogeneity(spec: SweepSpec) -> None:
    """A sweep over realisations varies the seed of bone.heterogeneity: the base scenario with
    `set` applied must have that section (checked on the raw mapping, before the seed is set,
    which would otherwise create the section with every other key at its default)."""
    data = read_yaml(spec.base)
    for assignment in _fixed_overrides(spec):
        apply_override(data, assignment)
    bone = data.get("bone")
    if not isinstance(bone, dict) or not isinstance(bone.get("heterogeneity"), dict):
        raise PlanError(
            f"realisations: a sweep over realisations needs bone.heterogeneity in the base "
            f"scenario, and {spec.base} (with set applied) has "
            f"{'no bone section' if not isinstance(bone, dict) else 'none'}; add a "
            "bone.heterogeneity section to it, or set e.g. bone.heterogeneity.correlation_length"
        )


# ----------------------------------------------------------------------------- the plan
def _override(param: str, value: Any, unit: str | None = None) -> str:
    if isinstance(value, float):
        return f"{param}={value!r}{' ' + unit if unit else ''}"
    if isinstance(value, list | dict):
        return f"{param}={yaml.safe_dump(value, default_flow_style=True).strip()}"
    return f"{param}={value}"


def resolved_value(scenario: Scenario, param: str) -> Any:
    """A scenario value (SI) by dotted path (list indices as numbers)."""
    node: Any = scenario.model_dump()
    for part in param.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _fixed_overrides(spec: SweepSpec) -> list[str]:
    return [_override(k, v) for k, v in spec.set.items()]


def _scalars(scenario: Scenario, names: Sequence[str]) -> dict[str, float]:
    out = {}
    for name in names:
        value = resolved_value(scenario, name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def make_plan(spec: SweepSpec) -> Plan:
    """Expand, derive, filter by the constraints, repeat over the realisations, validate every
    run (no mesh is built)."""
    points, design = design_points(spec)
    fixed = _fixed_overrides(spec)
    seeds: list[int] = []
    if spec.realisations is not None:
        _check_heterogeneity(spec)
        seeds = realisation_seeds(spec.realisations.seed, spec.realisations.count)
    realisations = [{REALISATION_PARAMETER: s} for s in seeds] or [{}]
    runs: list[PlannedRun] = []
    seen: set[str] = set()
    dropped = 0
    kept_design = []
    axis_names = [n for a in spec.axes for n in a.names]
    units = {
        a.names[0]: (a.range or a.distribution).unit  # type: ignore[union-attr]
        for a in spec.axes
        if a.range is not None or a.distribution is not None
    }
    for index, point in enumerate(points):
        overrides = [_override(k, v, units.get(k)) for k, v in point.items()]
        first = [_override(k, v) for k, v in realisations[0].items()]
        scenario = _load(spec.base, fixed + overrides + first, index, point | realisations[0])
        si = _scalars(scenario, axis_names)
        for name, expression in spec.derived.items():
            value = evaluate(expression, si)
            point = {**point, name: float(value)}
            overrides.append(_override(name, float(value)))
            si[name] = float(value)
        if spec.derived:
            scenario = _load(spec.base, fixed + overrides + first, index, point | realisations[0])
        if not all(evaluate(c, si) for c in spec.constraints):
            dropped += 1
            continue
        _check_metric(spec, scenario, index, point)
        for k, realisation in enumerate(realisations):
            run_overrides = fixed + overrides + [_override(p, v) for p, v in realisation.items()]
            if k:
                scenario = _load(spec.base, run_overrides, index, point | realisation)
            run_id = config_hash(scenario)
            if run_id in seen:
                continue
            seen.add(run_id)
            run_si = si | {p: float(v) for p, v in realisation.items()}
            runs.append(
                PlannedRun(
                    index * len(realisations) + k,
                    run_id,
                    point | realisation,
                    run_si,
                    run_overrides,
                )
            )
            if design is not None:
                kept_design.append(design[index])
    if design is not None and (dropped or len(runs) != len(points)):
        raise PlanError("a saltelli design must keep every point: remove the constraints")
    _check_leak_probability_report(spec, runs)
    kept = np.array(kept_design) if design is not None else None
    return Plan(spec, runs, dropped, kept, seeds)


def _check_metric(spec: SweepSpec, scenario: Scenario, index: int, point: dict[str, Any]) -> None:
    """report.metric names one number of the summary a kept point's runs will write (an axis
    may rename a needle, route or target; its realisations differ in the seed only)."""
    problem = metric_problem(summary_layout(scenario), spec.report.metric)
    if problem is not None:
        values = ", ".join(f"{k} = {_shown(v)}" for k, v in point.items())
        raise PlanError(
            f"report.metric {spec.report.metric!r}: {problem} (point {index}: {values})"
        )


def _check_leak_probability_report(spec: SweepSpec, runs: list[PlannedRun]) -> None:
    """The reference of the relative risks is a group of the runs; the age is a number."""
    report = spec.report.leak_probability
    if report is None:
        return
    for name, wanted in (report.reference or {}).items():
        values = {repr(v): v for v in (r.si.get(name, r.params[name]) for r in runs)}
        if not any(matches(v, wanted) for v in values.values()):
            shown = ", ".join(_shown(v) for v in list(values.values())[:12])
            raise PlanError(
                f"report.leak_probability.reference: {name} = {_shown(wanted)} is not a value "
                f"of the runs (they have {shown})"
            )
    if report.age is not None and not all(report.age in r.si for r in runs):
        raise PlanError(f"report.leak_probability.age: {report.age!r} is not a number in every run")


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _load(base: Path, overrides: list[str], index: int, point: dict[str, Any]) -> Scenario:
    try:
        return load_scenario(base, overrides)
    except ScenarioError as exc:
        values = ", ".join(f"{k} = {v}" for k, v in point.items())
        raise PlanError(f"point {index} ({values}) is not a valid scenario:\n{exc}") from None
