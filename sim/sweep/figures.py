"""Plots of a collected sweep: leak maps, fill and leakage against injected volume for every run,
sensitivity bars (Sobol indices, or a tornado of main effects / rank correlations), and the
leak probability over bone realisations against injected volume and against cement age."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors

from sim.sweep.analysis import LeakMap, Sensitivity
from sim.sweep.leak_probability import ANY, LeakProbability, versus
from sim.units import registry

ML = 1e-6


def _axis(ax: plt.Axes, which: str, levels: np.ndarray, binned: bool, label: str) -> None:
    """Ticks for an axis of cells: level values, or bin edges (log scale when geometric)."""
    set_ticks = ax.set_xticks if which == "x" else ax.set_yticks
    set_labels = ax.set_xticklabels if which == "x" else ax.set_yticklabels
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    set_ticks(np.arange(levels.size) - (0.5 if binned else 0.0))
    set_labels([f"{v:.3g}" for v in levels], rotation=45 if which == "x" else 0)
    set_label(f"{label}{' (binned)' if binned else ''}")


def shown_levels(name: str, levels: np.ndarray, units: dict[str, str]) -> tuple[np.ndarray, str]:
    """Levels of parameter `name` (SI) in the unit the sweep file wrote it in, and the label."""
    if name not in units:
        return levels, f"{name} (SI)"
    factor = registry().Quantity(f"1 {units[name]}").to_base_units().magnitude
    return levels / factor, f"{name} ({units[name]})"


def plot_leak_map(m: LeakMap, path: Path, units: dict[str, str] | None = None) -> None:
    """Two panels over parameters a, b: leak probability and mean leaked volume (mL). Axes in
    `units` (parameter -> unit as written in the sweep file), otherwise SI."""
    a_levels, a_label = shown_levels(m.a, m.a_levels, units or {})
    b_levels, b_label = shown_levels(m.b, m.b_levels, units or {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    panels = (
        (m.probability, "Leak probability", plt.get_cmap("Reds"), colors.Normalize(0, 1)),
        (m.mean_leaked / ML, "Mean leaked volume (mL)", plt.get_cmap("viridis"), None),
    )
    for ax, (values, title, cmap, norm) in zip(axes, panels, strict=True):
        image = ax.imshow(values, origin="lower", cmap=cmap, norm=norm, aspect="auto")
        fig.colorbar(image, ax=ax)
        for (j, i), n in np.ndenumerate(m.count):
            if n:
                ax.text(
                    i,
                    j,
                    f"{values[j, i]:.2g}\nn={int(n)}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if title.startswith("Leak") else "w",
                )
        _axis(ax, "x", a_levels, m.binned[0], a_label)
        _axis(ax, "y", b_levels, m.binned[1], b_label)
        ax.set_title(title)
    fig.suptitle("Runs pooled over the other parameters", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(
    curves: list[tuple[float, np.ndarray, dict[str, np.ndarray]]],
    colour_by: str,
    path: Path,
    log: bool = False,
    units: dict[str, str] | None = None,
) -> None:
    """Each run's target-region fill and total leaked volume against injected volume (mL),
    coloured by the value of parameter `colour_by` (log colour scale when `log`; in its unit
    from `units` as for the leak map). curves: (value, injected, {name: y})."""
    names = sorted({n for _, _, ys in curves for n in ys})
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.4 * len(names), 3.8), squeeze=False, constrained_layout=True
    )
    values, label = shown_levels(colour_by, np.array([v for v, _, _ in curves], float), units or {})
    finite = values[np.isfinite(values)]
    scale = colors.LogNorm if log else colors.Normalize
    norm = scale(finite.min(), finite.max()) if finite.size else colors.Normalize()
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes[0], names, strict=True):
        for value, (_, injected, ys) in zip(values, curves, strict=True):
            if name in ys:
                ax.plot(
                    injected / ML,
                    ys[name] / (ML if name.startswith("leaked") else 1.0),
                    color=cmap(norm(value)) if np.isfinite(value) else "grey",
                    lw=1,
                )
        ax.set_xlabel("Injected volume (mL)")
        ax.set_ylabel(
            name.replace("fill_fraction.", "fill fraction, ").replace(
                "leaked_volume_total", "leaked volume (mL)"
            )
        )
        ax.grid(alpha=0.3)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0, -1], label=label)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sensitivity(s: Sensitivity, path: Path) -> None:
    """Sobol S1/ST bars with confidence, or a tornado of main effects / rank correlations."""
    order = np.argsort(np.abs(s.first))
    labels = [s.parameters[i] for i in order]
    y = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(order)), constrained_layout=True)
    if s.method == "sobol":
        ax.barh(y - 0.2, s.first[order], 0.4, xerr=s.first_conf[order], label="first order S1")
        ax.barh(y + 0.2, s.total[order], 0.4, xerr=s.total_conf[order], label="total ST")
        ax.set_xlabel(f"Sobol index of {s.metric}")
        ax.legend(loc="lower right")
    elif s.method == "main_effect":
        ax.barh(y, s.high[order] - s.low[order], left=s.low[order], color="tab:orange")
        ax.set_xlabel(f"{s.metric}: range of the level means (tornado)")
    else:
        ax.barh(y, s.first[order], color=np.where(s.first[order] > 0, "tab:red", "tab:blue"))
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_xlabel(f"Spearman rank correlation with {s.metric}")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: at most this many groups get a legend and their own colour from a qualitative map
LEGEND_GROUPS = 10


def _group_colours(count: int) -> list[tuple[float, float, float, float]]:
    if count <= LEGEND_GROUPS:
        return [plt.get_cmap("tab10")(k) for k in range(count)]
    return [plt.get_cmap("viridis")(k / (count - 1)) for k in range(count)]


def _route_title(route: str) -> str:
    return "any route" if route == ANY else route


def _route_panels(count: int) -> tuple[plt.Figure, np.ndarray]:
    """A row of `count` panels sharing the probability axis, one per route."""
    return plt.subplots(
        1, count, figsize=(4.4 * count, 4.4), squeeze=False, sharey=True, layout="constrained"
    )


def plot_leak_probability_vs_volume(result: LeakProbability, labels: list[str], path: Path) -> None:
    """P(first leak at or before injected volume V) against V (mL): one panel per route (any
    route first), per group (`labels`) the step curve and its pointwise Wilson 95 % band up to
    the volume every realisation reached; the dashed line is the risk level."""
    routes = list(result.groups[0].routes)
    fig, axes = _route_panels(len(routes))
    colours = _group_colours(len(result.groups))
    for ax, route in zip(axes[0], routes, strict=True):
        for group, label, colour in zip(result.groups, labels, colours, strict=True):
            r = group.routes[route]
            if not r.n:
                continue
            volume = r.curve.volume / ML
            low, high = r.curve.band
            ax.step(volume, r.curve.p, where="post", color=colour, lw=1.4, label=label)
            ax.fill_between(volume, low, high, step="post", color=colour, alpha=0.15, lw=0)
        ax.axhline(result.risk_level, color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlim(left=0)
        ax.set_xlabel("Injected volume V (mL)")
        ax.set_title(_route_title(route))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("P(first leak at or before V)")
    if len(result.groups) <= LEGEND_GROUPS:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", fontsize=8)
    fig.suptitle(
        "Leak probability over bone realisations; bands: Wilson 95 %; dashed: "
        f"{100 * result.risk_level:g} % risk",
        fontsize=9,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_leak_probability_vs(
    result: LeakProbability,
    parameter: str,
    labels: list[str],
    path: Path,
    units: dict[str, str] | None = None,
) -> None:
    """P(leak by the end of the run) against group parameter `parameter` (the cement age at the
    start of injection; axis in its unit from `units` as for the leak map) with Wilson 95 %
    error bars: one panel per route, one line per combination of the other group parameters
    (`labels`, in the order of sim.sweep.leak_probability.versus)."""
    routes = list(result.groups[0].routes)
    fig, axes = _route_panels(len(routes))
    _, x_label = shown_levels(parameter, np.zeros(0), units or {})
    for ax, route in zip(axes[0], routes, strict=True):
        series = versus(result, parameter, route)
        colours = _group_colours(len(series))
        for s, label, colour in zip(series, labels, colours, strict=True):
            x, _ = shown_levels(parameter, s.x, units or {})
            with np.errstate(invalid="ignore", divide="ignore"):
                p = s.leaks / s.n
            ax.errorbar(
                x,
                p,
                yerr=[p - s.low, s.high - p],
                color=colour,
                marker="o",
                capsize=3,
                lw=1.2,
                label=label or None,
            )
        ax.axhline(result.risk_level, color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlabel(x_label)
        ax.set_title(_route_title(route))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("P(leak by the end of the run)")
    if any(labels) and len(labels) <= LEGEND_GROUPS:
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
