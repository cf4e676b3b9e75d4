"""What a sweep says: leak probability and leaked volume over two parameters, and which
parameters drive a metric (Sobol indices, main effects, rank correlations).

Functions take a `Columns` table (column name -> array, one entry per run; parameters in SI,
metrics under `summary.<key>`) so that they can be checked on tables with known answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

Columns = dict[str, np.ndarray]

#: a parameter with at most this many distinct values is mapped value by value, not binned
MAX_LEVELS = 12
BINS = 6


@dataclass
class LeakMap:
    """Cells over parameters a (x) and b (y): the number of runs, the fraction of runs that
    leaked and their mean leaked volume (m³), with the cell edges (or levels) along each axis.

    Runs are pooled over every other parameter of the sweep.
    """

    a: str
    b: str
    a_levels: np.ndarray
    b_levels: np.ndarray
    binned: tuple[bool, bool]
    count: np.ndarray
    probability: np.ndarray
    mean_leaked: np.ndarray


@dataclass
class Sensitivity:
    """Importance of each parameter for `metric`. method: sobol (first-order S1 and total ST
    with 95 % confidence half-widths), main_effect (range of the level means of the metric,
    low/high: the smallest and largest level mean) or rank_correlation (Spearman's rho)."""

    metric: str
    method: str
    parameters: list[str]
    first: np.ndarray
    total: np.ndarray | None = None
    first_conf: np.ndarray | None = None
    total_conf: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None


def leaked(columns: Columns, threshold: float | None) -> np.ndarray:
    """Whether each finished run leaked more than `threshold` (m³; None: each run's own
    output.leak_threshold). NaN for runs without a summary."""
    volume = columns["summary.leaked_volume_total_m3"].astype(float)
    limit = columns["summary.leak_threshold_m3"].astype(float) if threshold is None else threshold
    out = (volume > limit).astype(float)
    out[np.isnan(volume)] = np.nan
    return out


def _levels(values: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cell index of each value, and the levels (distinct values) or bin edges (geometric
    when `log`)."""
    distinct = np.unique(values)
    if distinct.size <= MAX_LEVELS:
        return np.searchsorted(distinct, values), distinct, False
    if log:
        edges = np.geomspace(distinct.min(), distinct.max(), BINS + 1)
    else:
        edges = np.linspace(distinct.min(), distinct.max(), BINS + 1)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, BINS - 1), edges, True


def leak_map(
    columns: Columns,
    a: str,
    b: str,
    threshold: float | None = None,
    log: frozenset[str] = frozenset(),
) -> LeakMap:
    """Leak probability and mean leaked volume over parameters a and b (finished runs);
    parameters in `log` (log-uniform or log-spaced axes) are binned geometrically."""
    leak = leaked(columns, threshold)
    ok = ~np.isnan(leak)
    if not ok.any():
        raise ValueError("no finished run to map")
    ia, a_levels, a_binned = _levels(columns[a][ok].astype(float), a in log)
    ib, b_levels, b_binned = _levels(columns[b][ok].astype(float), b in log)
    na = a_levels.size - (1 if a_binned else 0)
    nb = b_levels.size - (1 if b_binned else 0)
    count = np.zeros((nb, na))
    hits = np.zeros((nb, na))
    volume = np.zeros((nb, na))
    np.add.at(count, (ib, ia), 1.0)
    np.add.at(hits, (ib, ia), leak[ok])
    np.add.at(volume, (ib, ia), columns["summary.leaked_volume_total_m3"][ok].astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return LeakMap(
            a, b, a_levels, b_levels, (a_binned, b_binned), count, hits / count, volume / count
        )


def sobol_indices(
    design: np.ndarray, y: np.ndarray, parameters: list[str], metric: str, seed: int = 0
) -> Sensitivity:
    """First-order and total Sobol indices (SALib, Jansen/Saltelli estimators) from the runs of
    a saltelli design (`design`: the unit-cube samples in run order)."""
    from SALib.analyze import sobol

    if np.isnan(y).any():
        raise ValueError(f"{int(np.isnan(y).sum())} runs of the saltelli design have no result")
    problem = {
        "num_vars": len(parameters),
        "names": parameters,
        "bounds": [[0.0, 1.0]] * len(parameters),
    }
    if design.shape != (y.size, len(parameters)):
        raise ValueError(f"design of shape {design.shape} for {y.size} results")
    s = sobol.analyze(problem, y, calc_second_order=False, seed=seed)
    return Sensitivity(
        metric,
        "sobol",
        parameters,
        np.asarray(s["S1"]),
        np.asarray(s["ST"]),
        np.asarray(s["S1_conf"]),
        np.asarray(s["ST_conf"]),
    )


def main_effects(columns: Columns, parameters: list[str], metric: str) -> Sensitivity:
    """For each parameter: the mean of `metric` at each of its levels (over the other
    parameters); importance = largest minus smallest level mean (a tornado plot's bar)."""
    y = columns[metric].astype(float)
    ok = ~np.isnan(y)
    low, high = [], []
    for p in parameters:
        x = columns[p][ok].astype(float)
        means = [y[ok][x == v].mean() for v in np.unique(x)]
        low.append(min(means))
        high.append(max(means))
    lo, hi = np.array(low), np.array(high)
    return Sensitivity(metric, "main_effect", parameters, hi - lo, low=lo, high=hi)


def rank_correlations(columns: Columns, parameters: list[str], metric: str) -> Sensitivity:
    """Spearman's rank correlation of `metric` with each parameter (sampled designs)."""
    y = columns[metric].astype(float)
    ok = ~np.isnan(y)
    rho = []
    for p in parameters:
        x = columns[p][ok].astype(float)
        constant = np.ptp(x) == 0 or np.ptp(y[ok]) == 0
        rho.append(0.0 if constant else float(spearmanr(x, y[ok]).statistic))
    return Sensitivity(metric, "rank_correlation", parameters, np.array(rho))
