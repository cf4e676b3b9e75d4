"""Leak probability over bone realisations: how often cement leaks, and after how much injected
volume, when the same design point is run on many random bones.

A sweep with `realisations` runs every design point on the same bone realisations (one
bone.heterogeneity.seed each). The runs of a group (one combination of the group parameters,
pooled over the seeds and over the parameters that are not group parameters) give, per leak
route and for `any` route:

- the leak probability at the end of the run, p = k / n (k of the n finished realisations
  leaked), with the Wilson 95 % score interval;
- F(V) = P(first leak at or before injected volume V), the empirical distribution of the
  injected volume at first leak, with pointwise Wilson 95 % bands;
- the volume at risk: the smallest V at which F(V) exceeds the risk level (default 10 %), and
  the smallest V at which the upper 95 % bound of F(V) does, the conservative answer to
  "how much can I inject before the leak risk passes 10 %?";
- the relative risk against a reference group, with the Katz log-method 95 % interval;
- at given injected volumes (a clinical volume, say 3 mL): the probability of a leak by then,
  F(V) with its Wilson interval, and its relative risk against the reference group, the
  comparison with clinical leak rates at a typical volume.

A route leaks in a run when its leaked volume reaches the run's output.leak_threshold: the
summary's `injected_volume_at_first_leak_m3.<route>` is then the total injected volume (m³)
at that moment, and null otherwise; `any` route leaks at the first of them.

Functions take a `Columns` table (sim.sweep.analysis: one entry per run, the run `status`,
parameters in SI, summary numbers under `summary.<key>`) so that they can be checked on
tables with known answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from sim.sweep.analysis import Columns
from sim.sweep.spec import matches
from sim.sweep.store import DONE

#: the standard normal quantile of a two-sided 95 % interval
Z95 = float(norm.ppf(0.975))
#: the pseudo-route "a leak through any route"
ANY = "any"
FIRST_LEAK = "summary.injected_volume_at_first_leak_m3."
INJECTED = "summary.injected_volume_m3"


def wilson_interval(leaks: Any, n: Any, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the binomial proportion k / n (no continuity correction):
    (k + z²/2 ± z sqrt(k (n - k) / n + z²/4)) / (n + z²); NaN where n = 0. Works on arrays."""
    k = np.asarray(leaks, dtype=float)
    m = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (k + z * z / 2) / (m + z * z)
        half = z / (m + z * z) * np.sqrt(k * (m - k) / m + z * z / 4)
        low = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
        high = np.where(k == m, 1.0, np.clip(centre + half, 0.0, 1.0))
    return np.where(m > 0, low, np.nan), np.where(m > 0, high, np.nan)


@dataclass
class RelativeRisk:
    """Risk ratio of a group against a reference, with its 95 % interval; `corrected`: 0.5 was
    added to every cell of the 2 × 2 table because one was zero."""

    rr: float
    low: float
    high: float
    corrected: bool


def katz_relative_risk(
    leaks: int, n: int, reference_leaks: int, reference_n: int, z: float = Z95
) -> RelativeRisk:
    """RR = (a / n1) / (c / n2) of a group (a leaks in n1 runs) against a reference (c in n2),
    with Katz's log interval exp(ln RR ± z SE), SE² = 1/a - 1/n1 + 1/c - 1/n2 (Katz, Baptista,
    Azen & Pike 1978). When a cell of the 2 × 2 table is zero (no leak, or nothing but leaks,
    in a group), 0.5 is added to every cell (Haldane-Anscombe: a + 0.5, c + 0.5, n1 + 1,
    n2 + 1) and `corrected` says so: without it RR or SE is infinite, or the interval has no
    width.

    The interval treats the two groups as independent samples; with the same realisations in
    both (a paired comparison) leaks tend to go together and it is conservative."""
    if n < 1 or reference_n < 1:
        raise ValueError(f"a relative risk needs runs in both groups (got {n} and {reference_n})")
    a, n1, c, n2 = float(leaks), float(n), float(reference_leaks), float(reference_n)
    corrected = 0 in (a, n1 - a, c, n2 - c)
    if corrected:
        a, n1, c, n2 = a + 0.5, n1 + 1, c + 0.5, n2 + 1
    rr = (a / n1) / (c / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    return RelativeRisk(rr, rr * math.exp(-z * se), rr * math.exp(z * se), corrected)


@dataclass
class LeakCurve:
    """F(V) = P(first leak at or before injected volume V) of one group and route, a
    right-continuous step function given at its corners: `volume` (m³) holds 0, every injected
    volume at which a realisation first leaked up to `reached`, and `reached`; `leaks`: how many
    of the `n` realisations had leaked at or before each volume.

    reached (m³): the smallest final injected volume of the realisations that did not leak
    (the largest of all when every one leaked). Up to it every realisation is either known to
    have leaked or known not to have, so F is k / n with the same n; beyond it, runs that
    stopped early without leaking would be unknowns, and the curve stops."""

    volume: np.ndarray
    leaks: np.ndarray
    n: int
    reached: float

    @property
    def p(self) -> np.ndarray:
        return self.leaks / self.n if self.n else np.full(self.volume.shape, np.nan)

    @property
    def band(self) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise Wilson 95 % interval of F at each volume."""
        return wilson_interval(self.leaks, self.n)


def leak_curve(first_leak: np.ndarray, injected: np.ndarray) -> LeakCurve:
    """The curve of the realisations of one group: `first_leak` the injected volume at first
    leak of each (m³, inf when it did not leak), `injected` its final injected volume (m³)."""
    n = int(first_leak.size)
    if n == 0:
        return LeakCurve(np.zeros(1), np.zeros(1, dtype=int), 0, 0.0)
    leaked = np.isfinite(first_leak)
    reached = float(injected[~leaked].min() if (~leaked).any() else injected.max())
    jumps = first_leak[leaked & (first_leak <= reached)]
    volume = np.unique(np.concatenate([[0.0], jumps, [reached]]))
    leaks = (first_leak[:, None] <= volume[None, :]).sum(axis=0)
    return LeakCurve(volume, leaks, n, reached)


def volume_at_risk(curve: LeakCurve, risk_level: float, upper: bool = False) -> float | None:
    """The smallest injected volume (m³) at which F(V) (or, with `upper`, the upper bound of
    its Wilson 95 % interval) exceeds `risk_level`; None if it does not up to `curve.reached`.
    0 with `upper` when even no leak at all cannot bound the risk below the level (too few
    realisations: 0 of n leaks has the upper bound z² / (n + z²))."""
    values = curve.band[1] if upper else curve.p
    above = np.nonzero(values > risk_level)[0]
    return float(curve.volume[above[0]]) if above.size else None


def leak_routes(columns: Columns) -> list[str]:
    """The leak routes of the run summaries."""
    names = [c[len(FIRST_LEAK) :] for c in columns if c.startswith(FIRST_LEAK)]
    if ANY in names:
        raise ValueError(f"a leak route is called {ANY!r}, the name of 'any route'; rename it")
    return names


def first_leak_volumes(columns: Columns, route: str) -> np.ndarray:
    """Injected volume at the first leak through `route` (or ANY) of each run (m³): inf when
    the run finished without leaking there, NaN when it did not finish."""
    names = leak_routes(columns) if route == ANY else [route]
    if not names:
        raise ValueError("the run summaries have no leak route (injected_volume_at_first_leak_m3)")
    volumes = np.stack([_floats(columns[FIRST_LEAK + r]) for r in names])
    first = np.where(np.isnan(volumes), np.inf, volumes).min(axis=0)
    return np.where(columns["status"] == DONE, first, np.nan)


def _floats(values: np.ndarray) -> np.ndarray:
    """A column as floats, NaN for empty cells (a column of nulls only comes as objects)."""
    if values.dtype == float:
        return values
    return np.array([np.nan if v is None else float(v) for v in values])


@dataclass
class Group:
    """One combination of values of the group parameters (SI numbers, or text) and its runs
    (`rows`: a mask over the table, runs of every status)."""

    values: dict[str, Any]
    rows: np.ndarray


def groups(columns: Columns, parameters: list[str]) -> list[Group]:
    """The distinct combinations of `parameters` in the table, in order of first appearance."""
    keys = [tuple(repr(columns[p][i]) for p in parameters) for i in range(len(columns["status"]))]
    out: dict[tuple[str, ...], Group] = {}
    for i, key in enumerate(keys):
        if key not in out:
            values = {p: columns[p][i] for p in parameters}
            out[key] = Group({p: _plain(v) for p, v in values.items()}, np.zeros(len(keys), bool))
        out[key].rows[i] = True
    return list(out.values())


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class ByVolume:
    """Leaks by injected volume `volume` (m³): `leaks` of the `n` realisations had leaked at or
    before it, Wilson 95 % [low, high]; the relative risk against the reference group at the
    same volume."""

    volume: float
    leaks: int
    n: int
    low: float
    high: float
    relative_risk: RelativeRisk | None = None

    @property
    def p(self) -> float:
        return self.leaks / self.n if self.n else math.nan


def by_volume(curve: LeakCurve, volume: float) -> ByVolume | None:
    """F(volume) of a curve with its Wilson interval; None beyond `curve.reached` (some
    realisations stopped before that volume without leaking) or without realisations."""
    if not curve.n or volume > curve.reached * (1 + 1e-12):
        return None
    leaks = int(curve.leaks[np.searchsorted(curve.volume, volume, side="right") - 1])
    low, high = wilson_interval(leaks, curve.n)
    return ByVolume(volume, leaks, curve.n, float(low), float(high))


@dataclass
class RouteEstimate:
    """Leaks of one group through one route: `leaks` of `n` finished realisations, the Wilson
    95 % interval [low, high] of the probability, the curve F(V), the volumes at risk (m³, see
    volume_at_risk) and the relative risk against the reference group (None for the reference
    group itself, or when there is none)."""

    route: str
    n: int
    leaks: int
    low: float
    high: float
    curve: LeakCurve
    volume_at_risk: float | None
    volume_at_risk_upper: float | None
    relative_risk: RelativeRisk | None = None
    by_volume: list[ByVolume | None] = field(default_factory=list)

    @property
    def p(self) -> float:
        return self.leaks / self.n if self.n else math.nan


@dataclass
class GroupEstimate:
    """The estimates of one group, by route (ANY first); `unfinished`: its failed and pending
    runs, which are not counted; `reference`: the group its relative risks are taken against
    (None when there is none, or for the reference group itself)."""

    group: Group
    unfinished: int
    routes: dict[str, RouteEstimate]
    reference: Group | None = None
    is_reference: bool = False


@dataclass
class LeakProbability:
    """Per group of `parameters`: leak probabilities, curves, volumes at `risk_level`, and
    relative risks against the groups with the `reference` values."""

    parameters: list[str]
    risk_level: float
    reference: dict[str, Any]
    groups: list[GroupEstimate] = field(default_factory=list)
    volumes: list[float] = field(default_factory=list)


def estimate(
    route: str,
    first_leak: np.ndarray,
    injected: np.ndarray,
    risk_level: float,
    volumes: Sequence[float] = (),
) -> RouteEstimate:
    """Leak probability, curve, volumes at risk and leaks by each of `volumes` (m³) of the
    finished realisations of a group: `first_leak` their injected volume at first leak
    through `route` (m³, inf: none), `injected` their final injected volume (m³)."""
    curve = leak_curve(first_leak, injected)
    leaks = int(np.isfinite(first_leak).sum())
    low, high = wilson_interval(leaks, curve.n)
    return RouteEstimate(
        route,
        curve.n,
        leaks,
        float(low),
        float(high),
        curve,
        volume_at_risk(curve, risk_level) if curve.n else None,
        volume_at_risk(curve, risk_level, upper=True) if curve.n else None,
        by_volume=[by_volume(curve, v) for v in volumes],
    )


def leak_probability(
    columns: Columns,
    parameters: list[str],
    risk_level: float = 0.1,
    reference: dict[str, Any] | None = None,
    volumes: Sequence[float] = (),
) -> LeakProbability:
    """Estimates per group of `parameters` (pooled over everything else, the seeds included)
    and per route, with relative risks against the reference group of each group: the one
    with the `reference` values on its parameters and the group's own values on the other
    group parameters (default reference: the first group's values); also by each of the
    injected `volumes` (m³)."""
    found = groups(columns, parameters)
    chosen = dict(reference) if reference is not None else dict(found[0].values)
    first = {r: first_leak_volumes(columns, r) for r in [ANY, *leak_routes(columns)]}
    injected = columns[INJECTED].astype(float)
    finished = columns["status"] == DONE
    result = LeakProbability(parameters, risk_level, chosen, volumes=list(volumes))
    for g in found:
        runs = g.rows & finished
        estimates = {
            r: estimate(r, at_leak[runs], injected[runs], risk_level, result.volumes)
            for r, at_leak in first.items()
        }
        unfinished = int((g.rows & ~finished).sum())
        result.groups.append(GroupEstimate(g, unfinished, estimates))
    for e in result.groups:
        wanted = {**e.group.values, **chosen}
        ref = next((x for x in result.groups if _has(x.group, wanted)), None)
        if ref is e:
            e.is_reference = True
            continue
        e.reference = None if ref is None else ref.group
        for route, r in e.routes.items():
            base = None if ref is None else ref.routes[route]
            if base is not None and r.n and base.n:
                r.relative_risk = katz_relative_risk(r.leaks, r.n, base.leaks, base.n)
            for mine, theirs in zip(r.by_volume, base.by_volume if base else [], strict=False):
                if mine is not None and theirs is not None:
                    mine.relative_risk = katz_relative_risk(
                        mine.leaks, mine.n, theirs.leaks, theirs.n
                    )
    return result


def _has(group: Group, values: dict[str, Any]) -> bool:
    return all(matches(group.values[p], v) for p, v in values.items())


@dataclass
class Series:
    """P(leak) of the groups that share the values `others` of the other group parameters,
    against one group parameter (`x`, SI, ascending): leaks of n, Wilson 95 % [low, high]."""

    others: dict[str, Any]
    x: np.ndarray
    n: np.ndarray
    leaks: np.ndarray
    low: np.ndarray
    high: np.ndarray


def versus(result: LeakProbability, parameter: str, route: str = ANY) -> list[Series]:
    """P(leak through `route`) against the group parameter `parameter` (e.g. the cement age at
    the start of injection, injection.start_after_mixing: s), one series per combination of
    the other group parameters."""
    series: dict[str, list[GroupEstimate]] = {}
    for e in result.groups:
        others = {p: v for p, v in e.group.values.items() if p != parameter}
        series.setdefault(repr(others), []).append(e)
    out = []
    for members in series.values():
        members = sorted(members, key=lambda e: float(e.group.values[parameter]))
        estimates = [e.routes[route] for e in members]
        out.append(
            Series(
                {p: v for p, v in members[0].group.values.items() if p != parameter},
                np.array([float(e.group.values[parameter]) for e in members]),
                np.array([r.n for r in estimates]),
                np.array([r.leaks for r in estimates]),
                np.array([r.low for r in estimates]),
                np.array([r.high for r in estimates]),
            )
        )
    return out
