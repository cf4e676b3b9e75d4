"""The collected sweep: table, leak maps, curves, sensitivity, and one HTML page.

SWEEP_DIR/results.csv|h5|parquet   one row per run (sim.sweep.collect)
SWEEP_DIR/leak_map.png             leak probability and mean leaked volume over two axes
SWEEP_DIR/fill_vs_volume.png       every run's fill and leaked volume against injected volume
SWEEP_DIR/sensitivity.png|csv      Sobol indices (saltelli designs), main effects (grids) or
                                   rank correlations (other sampled designs)
SWEEP_DIR/leak_probability.csv     sweeps over bone realisations: per group and route, the leak
SWEEP_DIR/leak_probability_vs_volume.png   probability, volumes at risk, relative risks, and
SWEEP_DIR/leak_probability_vs_age.png      P(leak) against cement age when it is grouped by
SWEEP_DIR/analysis.json            the numbers behind the figures
SWEEP_DIR/sweep_report.html        all of it on one self-contained page
"""

from __future__ import annotations

import csv
import html
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sim.outputs.report import STYLE, image_tag, table_html
from sim.outputs.summary import write_json_atomic, write_text_atomic
from sim.sweep.analysis import (
    Columns,
    Sensitivity,
    leak_map,
    leaked,
    main_effects,
    rank_correlations,
    sobol_indices,
)
from sim.sweep.collect import as_columns, table, write_table
from sim.sweep.figures import (
    ML,
    plot_curves,
    plot_leak_map,
    plot_leak_probability_vs,
    plot_leak_probability_vs_volume,
    plot_sensitivity,
    shown_levels,
)
from sim.sweep.leak_probability import (
    ANY,
    ByVolume,
    LeakProbability,
    RouteEstimate,
    leak_probability,
    versus,
)
from sim.sweep.spec import CEMENT_AGE, LeakProbabilityReport, written_unit
from sim.sweep.store import CORRUPT, DONE, FAILED, PENDING, read_plan, run_dir

#: the analysis.json entry of the leak probability over bone realisations
REALISATIONS_KEY = "leak_probability_over_realisations"


def _numeric_parameters(plan: dict[str, Any], columns: Columns) -> list[str]:
    """The numeric parameters that vary, but the seed of the bone realisations."""
    seed = (plan.get("realisations") or {}).get("parameter")
    return [
        p
        for p in plan["parameters"]
        if p != seed and columns[p].dtype == float and np.nanmax(columns[p]) > np.nanmin(columns[p])
    ]


def sensitivity(plan: dict[str, Any], columns: Columns) -> Sensitivity | None:
    """Sobol indices for a saltelli design, main effects for a grid, rank correlations for
    other sampled designs (None when no parameter varies)."""
    metric = f"summary.{plan['report']['metric']}"
    if metric not in columns:
        raise ValueError(
            f"report.metric {plan['report']['metric']!r} is not in the run summaries "
            f"(known: {', '.join(c[8:] for c in _metrics(columns))})"
        )
    method = plan["sampling"]["method"]
    if method == "saltelli":
        return sobol_indices(
            np.array(plan["design"]),
            columns[metric],
            plan["sampled"],
            plan["report"]["metric"],
            plan["sampling"]["seed"],
        )
    parameters = _numeric_parameters(plan, columns)
    if not parameters:
        return None
    if method == "grid":
        return main_effects(columns, parameters, metric)
    return rank_correlations(columns, parameters, metric)


def _metrics(columns: Columns) -> list[str]:
    return [c for c in columns if c.startswith("summary.") and columns[c].dtype == float]


def _curves(
    sweep_dir: Path, rows: list[dict[str, Any]], colour_by: str | None, notes: list[str]
) -> list[Any]:
    """Every finished run's fill and leaked volume against injected volume, from its
    timeseries.csv; a run whose table cannot be read is left out and named in `notes`."""
    curves = []
    unreadable = []
    for row in rows:
        path = run_dir(sweep_dir, row["run"]) / "timeseries.csv"
        if row["status"] != DONE or not path.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy warns about an empty file
                data = np.genfromtxt(path, delimiter=",", names=True, deletechars="", ndmin=1)
            names = data.dtype.names or ()
            injected = data["injected_volume_m3"]
        except (OSError, ValueError, IndexError):
            unreadable.append(row["run"])
            continue
        ys = {n: data[n] for n in names if n.startswith("fill_fraction.")}
        leaks = [n for n in names if n.startswith("leaked_volume_m3.")]
        if leaks:
            ys["leaked_volume_total"] = sum(data[n] for n in leaks)
        value = row.get(colour_by) if colour_by else None
        curves.append(
            (
                float(value) if isinstance(value, int | float) else np.nan,
                injected,
                ys,
            )
        )
    if unreadable:
        notes.append(
            f"fill_vs_volume.png leaves out {len(unreadable)} run(s) whose timeseries.csv "
            f"cannot be read: {', '.join(unreadable)}"
        )
    return curves


def _sensitivity_csv(s: Sensitivity) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    fields = ["first", "total", "first_conf", "total_conf", "low", "high"]
    present = [f for f in fields if getattr(s, f) is not None]
    writer.writerow(["parameter", "method", *present])
    for i, p in enumerate(s.parameters):
        writer.writerow([p, s.method, *(repr(float(getattr(s, f)[i])) for f in present)])
    return buffer.getvalue()


def write_sweep_report(sweep_dir: Path) -> dict[str, Path]:
    """Collect the table, the analysis, the figures and sweep_report.html; returns the paths."""
    paths = write_table(sweep_dir)
    plan = read_plan(sweep_dir)
    names, rows = table(sweep_dir)
    columns = as_columns(rows, names)
    done = columns["status"] == DONE
    analysis: dict[str, Any] = {
        "runs": len(rows),
        "done": int(done.sum()),
        "failed": int((columns["status"] == FAILED).sum()),
        "corrupt": int((columns["status"] == CORRUPT).sum()),
        "pending": int((columns["status"] == PENDING).sum()),
    }
    corrupt = [r for r in rows if r["status"] == CORRUPT]
    if corrupt:
        shown = "; ".join(f"{r['run']}: {r['error']}" for r in corrupt[:10])
        analysis["warnings"] = [
            f"{len(corrupt)} corrupt run(s) skipped, whose summary.json does not count "
            f"(`cementsim sweep run` runs them again): {shown}"
            + (f"; and {len(corrupt) - 10} more" if len(corrupt) > 10 else "")
        ]
    figures: list[tuple[str, str]] = []
    numeric = _numeric_parameters(plan, columns)
    if analysis["done"]:
        threshold = plan["report"]["leak_threshold"]
        leaks = leaked(columns, threshold)
        analysis["leak_probability"] = float(np.nanmean(leaks))
        routes = [c for c in columns if c.startswith("summary.leaked_volume_m3.")]
        limit = columns["summary.leak_threshold_m3"] if threshold is None else threshold
        analysis["leak_probability_per_route"] = {
            c.split(".")[-1]: float(np.nanmean(np.where(done, columns[c] > limit, np.nan)))
            for c in routes
        }
        axes = plan["report"]["map"] or numeric[:2]
        log = frozenset(plan["log_scale"])
        if len(axes) == 2:
            m = leak_map(columns, axes[0], axes[1], threshold, log)
            paths["leak_map"] = sweep_dir / "leak_map.png"
            plot_leak_map(m, paths["leak_map"], plan.get("shown_units", {}))
            analysis["leak_map"] = {
                "parameters": axes,
                "levels_or_edges": [m.a_levels.tolist(), m.b_levels.tolist()],
                "count": m.count.tolist(),
                "probability": np.where(np.isnan(m.probability), None, m.probability).tolist(),
            }
            figures.append(("leak_map.png", f"Leak probability and volume: {axes[0]} × {axes[1]}"))
        notes: list[str] = []
        curves = _curves(sweep_dir, rows, axes[0] if axes else None, notes)
        if notes:
            analysis.setdefault("warnings", []).extend(notes)
        if curves and axes:
            paths["curves"] = sweep_dir / "fill_vs_volume.png"
            plot_curves(
                curves, axes[0], paths["curves"], axes[0] in log, plan.get("shown_units", {})
            )
            figures.append(("fill_vs_volume.png", "Fill and leakage against injected volume"))
        try:
            s = sensitivity(plan, columns)
        except ValueError as exc:
            s = None
            analysis.setdefault("warnings", []).append(f"no sensitivity analysis: {exc}")
        if s is not None:
            paths["sensitivity"] = sweep_dir / "sensitivity.png"
            plot_sensitivity(s, paths["sensitivity"])
            write_text_atomic(sweep_dir / "sensitivity.csv", _sensitivity_csv(s))
            figures.append(("sensitivity.png", f"Sensitivity of {s.metric} ({s.method})"))
            analysis["sensitivity"] = {
                "metric": s.metric,
                "method": s.method,
                **{p: float(v) for p, v in zip(s.parameters, s.first, strict=True)},
            }
    section = ""
    if analysis["done"] and plan.get("realisations"):
        section = _realisations(sweep_dir, plan, columns, analysis, paths)
    write_json_atomic(sweep_dir / "analysis.json", analysis)
    paths["report"] = sweep_dir / "sweep_report.html"
    write_text_atomic(paths["report"], _page(sweep_dir, plan, rows, analysis, figures, section))
    return paths


def _realisations(
    sweep_dir: Path,
    plan: dict[str, Any],
    columns: Columns,
    analysis: dict[str, Any],
    paths: dict[str, Path],
) -> str:
    """The leak probability over bone realisations: leak_probability.csv, the figures, the
    analysis.json entry; returns the report's section (HTML)."""
    settings = LeakProbabilityReport.model_validate(plan["report"].get("leak_probability") or {})
    seed = plan["realisations"]["parameter"]
    parameters = settings.group_by or [p for p in plan["parameters"] if p != seed]
    warnings = analysis.setdefault("warnings", [])
    try:
        result = leak_probability(
            columns, parameters, settings.risk_level, settings.reference, settings.volumes
        )
    except ValueError as exc:
        warnings.append(f"no leak probability over realisations: {exc}")
        return ""
    if plan["report"]["leak_threshold"] is not None:
        warnings.append(
            "the leak probability over realisations counts a leak when a route reached the "
            "run's output.leak_threshold (the first-leak volumes of the summaries); "
            "report.leak_threshold applies to the leak map only"
        )
    written = _written_values(plan)
    units = {**_written_units(plan), **plan.get("shown_units", {})}
    labels = [_label(g.group.values, written, units) for g in result.groups]
    paths["leak_probability"] = sweep_dir / "leak_probability.csv"
    write_text_atomic(paths["leak_probability"], _leak_probability_csv(result, labels))
    if result.volumes:
        paths["leak_probability_by_volume"] = sweep_dir / "leak_probability_by_volume.csv"
        write_text_atomic(paths["leak_probability_by_volume"], _by_volume_csv(result, labels))
    paths["leak_probability_vs_volume"] = sweep_dir / "leak_probability_vs_volume.png"
    plot_leak_probability_vs_volume(result, labels, paths["leak_probability_vs_volume"])
    figures = [
        (
            "leak_probability_vs_volume.png",
            "P(first leak at or before injected volume V) per group, with Wilson 95 % bands",
        )
    ]
    entry = _realisations_entry(plan, result, labels)
    age = settings.age or (CEMENT_AGE if CEMENT_AGE in parameters else None)
    if age is not None and columns[age].dtype == float and np.unique(columns[age]).size > 1:
        series = versus(result, age)
        series_labels = [_label(s.others, written, units) for s in series]
        paths["leak_probability_vs_age"] = sweep_dir / "leak_probability_vs_age.png"
        plot_leak_probability_vs(
            result, age, series_labels, paths["leak_probability_vs_age"], units
        )
        figures.append(
            ("leak_probability_vs_age.png", f"P(leak) against {age}, with Wilson 95 % intervals")
        )
        entry["versus_age"] = {
            "parameter": age,
            "series": [
                {
                    "group": label,
                    "values": s.others,
                    age: s.x.tolist(),
                    "n": s.n.tolist(),
                    "leaks": s.leaks.tolist(),
                    "ci_low": s.low.tolist(),
                    "ci_high": s.high.tolist(),
                }
                for s, label in zip(series, series_labels, strict=True)
            ],
        }
    analysis[REALISATIONS_KEY] = entry
    reference = _label(result.reference, written, units)
    return _realisations_html(sweep_dir, plan, result, labels, reference, figures)


def _written_values(plan: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Parameter values as the sweep file wrote them ("3.5 min"), by (parameter, SI value)."""
    return {
        (p, repr(run["si"][p])): v
        for run in plan["runs"]
        for p, v in run["params"].items()
        if isinstance(v, str) and p in run["si"]
    }


def _written_units(plan: dict[str, Any]) -> dict[str, str]:
    """The unit of each numeric parameter whose values the sweep file wrote with one unit
    ("2 min", "6 min" -> "min")."""
    found: dict[str, set[str]] = {}
    for run in plan["runs"]:
        for p, v in run["params"].items():
            if p in run["si"]:
                unit = written_unit(v) if isinstance(v, str) else None
                found.setdefault(p, set()).add(unit or "")
    return {p: units.pop() for p, units in found.items() if len(units) == 1 and "" not in units}


def _label(
    values: dict[str, Any], written: dict[tuple[str, str], str], units: dict[str, str]
) -> str:
    """A group's values as "parameter = value, ...", in the units of the sweep file."""
    shown = []
    for p, v in values.items():
        if (p, repr(v)) in written:
            text = written[(p, repr(v))]
        elif isinstance(v, float) and p in units:
            text = f"{shown_levels(p, np.array([v]), units)[0][0]:.4g} {units[p]}"
        else:
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
        shown.append(f"{p} = {text}")
    return ", ".join(shown)


def _number(value: float | None) -> float | None:
    """A float for JSON: None for a missing or undefined (NaN) value."""
    return None if value is None or np.isnan(value) else float(value)


def _route_entry(r: RouteEstimate) -> dict[str, Any]:
    rr = r.relative_risk
    return {
        "n": r.n,
        "leaks": r.leaks,
        "p": _number(r.p),
        "ci": [_number(r.low), _number(r.high)],
        "volume_at_risk_m3": r.volume_at_risk,
        "volume_at_risk_upper_m3": r.volume_at_risk_upper,
        "reached_m3": r.curve.reached,
        "relative_risk": None
        if rr is None
        else {"rr": rr.rr, "ci": [rr.low, rr.high], "haldane_anscombe": rr.corrected},
        "curve": {"volume_m3": r.curve.volume.tolist(), "leaks": r.curve.leaks.tolist()},
        "by_volume": [None if b is None else _by_volume_entry(b) for b in r.by_volume],
    }


def _by_volume_entry(b: ByVolume) -> dict[str, Any]:
    rr = b.relative_risk
    return {
        "volume_m3": b.volume,
        "n": b.n,
        "leaks": b.leaks,
        "p": _number(b.p),
        "ci": [_number(b.low), _number(b.high)],
        "relative_risk": None
        if rr is None
        else {"rr": rr.rr, "ci": [rr.low, rr.high], "haldane_anscombe": rr.corrected},
    }


def _realisations_entry(
    plan: dict[str, Any], result: LeakProbability, labels: list[str]
) -> dict[str, Any]:
    index = {id(g.group): label for g, label in zip(result.groups, labels, strict=True)}
    return {
        "parameter": plan["realisations"]["parameter"],
        "realisations": plan["realisations"]["count"],
        "group_by": result.parameters,
        "risk_level": result.risk_level,
        "reference": result.reference,
        "zero_cells": "Haldane-Anscombe: 0.5 added to every cell of a 2 x 2 table with a zero",
        "groups": [
            {
                "group": label,
                "values": g.group.values,
                "unfinished_runs": g.unfinished,
                "is_reference": g.is_reference,
                "reference": None if g.reference is None else index[id(g.reference)],
                "routes": {route: _route_entry(r) for route, r in g.routes.items()},
            }
            for g, label in zip(result.groups, labels, strict=True)
        ],
    }


def _leak_probability_csv(result: LeakProbability, labels: list[str]) -> str:
    """One row per group and route: n, leaks, p and its Wilson 95 % interval, the volumes at
    risk (m³), the relative risk and its Katz 95 % interval (the reference group: rr 1 and
    no interval)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "group",
            "route",
            "n",
            "leaks",
            "p",
            "ci_low",
            "ci_high",
            "volume_at_risk",
            "volume_at_risk_upper",
            "rr",
            "rr_low",
            "rr_high",
        ]
    )

    for g, label in zip(result.groups, labels, strict=True):
        for route, r in g.routes.items():
            rr = r.relative_risk
            ratio = (1.0, None, None) if g.is_reference else (None, None, None)
            if rr is not None:
                ratio = (rr.rr, rr.low, rr.high)
            writer.writerow(
                [
                    label,
                    route,
                    r.n,
                    r.leaks,
                    _csv_cell(r.p),
                    _csv_cell(r.low),
                    _csv_cell(r.high),
                    _csv_cell(r.volume_at_risk),
                    _csv_cell(r.volume_at_risk_upper),
                    *(_csv_cell(v) for v in ratio),
                ]
            )
    return buffer.getvalue()


def _by_volume_csv(result: LeakProbability, labels: list[str]) -> str:
    """One row per group, route and volume of report.leak_probability.volumes: the injected
    volume (m³), n, the leaks by then, p and its Wilson 95 % interval, the relative risk and
    its Katz 95 % interval (the reference group: rr 1 and no interval; empty where some
    realisations stopped before the volume without leaking)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["group", "route", "volume", "n", "leaks", "p", "ci_low", "ci_high", "rr", "rr_low",
         "rr_high"]
    )  # fmt: skip
    for g, label in zip(result.groups, labels, strict=True):
        for route, r in g.routes.items():
            for volume, b in zip(result.volumes, r.by_volume, strict=True):
                if b is None:
                    writer.writerow([label, route, repr(volume), *[""] * 8])
                    continue
                rr = b.relative_risk
                ratio = (1.0, None, None) if g.is_reference else (None, None, None)
                if rr is not None:
                    ratio = (rr.rr, rr.low, rr.high)
                numbers = (b.p, b.low, b.high, *ratio)
                writer.writerow(
                    [label, route, repr(volume), b.n, b.leaks, *(_csv_cell(v) for v in numbers)]
                )
    return buffer.getvalue()


def _csv_cell(value: float | None) -> str:
    value = _number(value)
    return "" if value is None else repr(value)


def _ml(volume: float) -> str:
    return f"{volume / ML:.3g} mL"


def _answer(r: RouteEstimate, risk_level: float) -> str:
    """How much can be injected before the risk of a leak (route `r.route`) passes the risk
    level, in words, from the point estimate and from the upper 95 % bound."""
    what = "any leak" if r.route == ANY else f"a leak through {r.route}"
    level = f"{100 * risk_level:g} %"
    if not r.n:
        return "no finished realisation"
    reached = _ml(r.curve.reached)
    if r.volume_at_risk is None:
        text = (
            f"the risk of {what} does not pass {level} up to {reached}, which every "
            "realisation reached"
        )
    else:
        text = f"at most {_ml(r.volume_at_risk)} before the risk of {what} passes {level}"
    upper = r.volume_at_risk_upper
    if upper is None:
        bound = f"does not pass it up to {reached} either"
    elif upper == 0:
        bound = f"0 mL: {r.n} realisations are too few to bound the risk below {level}"
    else:
        bound = _ml(upper)
    return f"{text} (upper 95 % bound: {bound})"


def _grid_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _figures_html(sweep_dir: Path, figures: list[tuple[str, str]]) -> str:
    return "".join(
        f"<figure>{image_tag(sweep_dir / name)}<figcaption>{html.escape(caption)}"
        "</figcaption></figure>"
        for name, caption in figures
    )


def _volume_cell(r: RouteEstimate, volume: float | None) -> str:
    """A volume at risk in mL; "> V" when the risk does not pass the level up to the volume V
    every realisation reached."""
    if not r.n:
        return "—"
    return _ml(volume) if volume is not None else f"> {_ml(r.curve.reached)}"


def _realisations_html(
    sweep_dir: Path,
    plan: dict[str, Any],
    result: LeakProbability,
    labels: list[str],
    reference: str,
    figures: list[tuple[str, str]],
) -> str:
    """The report's section on the leak probability over bone realisations (`labels`: of the
    groups, `reference`: of the reference values)."""
    level = result.risk_level
    answers = "".join(
        f"<li><b>{html.escape(label or 'all runs')}</b>: "
        f"{html.escape(_answer(g.routes[ANY], level))}.</li>"
        for g, label in zip(result.groups, labels, strict=True)
    )
    rows = []
    for g, label in zip(result.groups, labels, strict=True):
        for route, r in g.routes.items():
            rr = r.relative_risk
            if g.is_reference:
                ratio = "reference"
            elif rr is None:
                ratio = "—"
            else:
                star = " *" if rr.corrected else ""
                ratio = f"{rr.rr:.3g} [{rr.low:.3g}, {rr.high:.3g}]{star}"
            rows.append(
                [
                    label or "all runs",
                    "any route" if route == ANY else route,
                    str(r.n),
                    str(r.leaks),
                    f"{100 * r.p:.0f} % [{100 * r.low:.0f}, {100 * r.high:.0f}]" if r.n else "—",
                    _volume_cell(r, r.volume_at_risk),
                    _volume_cell(r, r.volume_at_risk_upper),
                    ratio,
                ]
            )
    realisations = plan["realisations"]
    notes = [
        f"Every design point ran on the same {realisations['count']} bone realisations "
        f"({realisations['parameter']}, derived from realisations.seed "
        f"{realisations['seed']}), so the groups are compared on the same bones (paired); the "
        "Katz intervals of the relative risks treat the groups as independent, which is "
        "conservative for paired comparisons.",
        "A route leaks when its leaked volume reaches the run's leak threshold. V at risk: "
        f"the smallest injected volume at which the estimated probability of a first leak "
        f"exceeds {100 * level:g} %; upper bound: where the upper end of its Wilson 95 % "
        "interval does (> V: not within V, the volume every realisation reached).",
        f"The numbers: leak_probability.csv; the curves: analysis.json ({REALISATIONS_KEY}).",
    ]
    if any(
        r.relative_risk and r.relative_risk.corrected
        for g in result.groups
        for r in g.routes.values()
    ):
        notes.append(
            "* a 2 × 2 table with a zero cell: 0.5 added to every cell (Haldane-Anscombe) "
            "before the relative risk and its interval were computed."
        )
    unfinished = sum(g.unfinished for g in result.groups)
    if unfinished:
        notes.append(f"{unfinished} failed or pending runs are not counted.")
    header = [
        "Group",
        "Route",
        "n",
        "Leaks",
        "P(leak) [95 % CI]",
        f"V at {100 * level:g} % risk",
        "Upper 95 % bound",
        f"RR [95 % CI] against {reference or 'the first group'}",
    ]
    return (
        "<h2>Leak probability over bone realisations</h2>"
        f"<ul>{answers}</ul>{_grid_html(header, rows)}"
        + _by_volume_html(result, labels, reference)
        + "".join(f'<p class="sub">{html.escape(n)}</p>' for n in notes)
        + _figures_html(sweep_dir, figures)
    )


def _by_volume_html(result: LeakProbability, labels: list[str], reference: str) -> str:
    """The table of leaks by the injected volumes of report.leak_probability.volumes."""
    if not result.volumes:
        return ""
    rows = []
    for g, label in zip(result.groups, labels, strict=True):
        for route, r in g.routes.items():
            for volume, b in zip(result.volumes, r.by_volume, strict=True):
                rr = None if b is None else b.relative_risk
                if b is None:
                    cells = ["—", "—", "not reached by every realisation"]
                else:
                    cells = [
                        f"{b.leaks} of {b.n}",
                        f"{100 * b.p:.0f} % [{100 * b.low:.0f}, {100 * b.high:.0f}]",
                        "reference"
                        if g.is_reference
                        else "—"
                        if rr is None
                        else f"{rr.rr:.3g} [{rr.low:.3g}, {rr.high:.3g}]"
                        + (" *" if rr.corrected else ""),
                    ]
                route_name = "any route" if route == ANY else route
                rows.append([label or "all runs", route_name, _ml(volume), *cells])
    header = [
        "Group",
        "Route",
        "By injected volume",
        "Leaked",
        "P(leak by then) [95 % CI]",
        f"RR [95 % CI] against {reference or 'the first group'}",
    ]
    return (
        "<h3>Leaks by a given injected volume</h3>"
        + _grid_html(header, rows)
        + '<p class="sub">leak_probability_by_volume.csv has these numbers.</p>'
    )


def _page(
    sweep_dir: Path,
    plan: dict[str, Any],
    rows: list[dict[str, Any]],
    analysis: dict[str, Any],
    figures: list[tuple[str, str]],
    realisations: str,
) -> str:
    headline = [
        ("Runs", f"{analysis['runs']} ({plan['sampling']['method']} design)"),
        (
            "Finished / failed / pending",
            f"{analysis['done']} / {analysis['failed']} / {analysis['pending']}"
            + (f" (and {analysis['corrupt']} corrupt)" if analysis["corrupt"] else ""),
        ),
        ("Parameters", ", ".join(plan["parameters"])),
    ]
    if plan.get("realisations"):
        r = plan["realisations"]
        headline.append(("Bone realisations", f"{r['count']} per design point ({r['parameter']})"))
    if "leak_probability" in analysis:
        headline.append(("Runs that leaked", f"{100 * analysis['leak_probability']:.0f} %"))
        headline += [
            (f"  through {route}", f"{100 * p:.0f} %")
            for route, p in analysis["leak_probability_per_route"].items()
        ]
    notes = "".join(
        f'<div class="warn">{html.escape(w)}</div>' for w in analysis.get("warnings", [])
    )
    failed = [r for r in rows if r["status"] in (FAILED, CORRUPT)]
    failures = "".join(
        f'<div class="warn">run {html.escape(r["run"])} ({r["status"]}): '
        f"<pre>{html.escape(str(r.get('error', ''))[-600:])}</pre></div>"
        for r in failed
    )
    failures_title = "Failed and corrupt runs" if analysis["corrupt"] else "Failed runs"
    images = _figures_html(sweep_dir, figures)
    shown = {k: v for k, v in analysis.items() if k != REALISATIONS_KEY}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cementsim sweep: {html.escape(plan["name"])}</title><style>{STYLE}</style></head>
<body>
<h1>Sweep {html.escape(plan["name"])}</h1>
<p class="sub">base scenario {html.escape(plan["base"])}</p>
<h2>Summary</h2>{table_html(headline)}{notes}
{f"<h2>{failures_title}</h2>" + failures if failed else ""}
<h2>Figures</h2>{images or "<p>No finished run yet.</p>"}
{realisations}
<h2>Analysis</h2><pre>{html.escape(json.dumps(shown, indent=1))}</pre>
<p class="sub">Table: results.csv, results.h5{
        ", results.parquet" if (sweep_dir / "results.parquet").is_file() else ""
    } in {html.escape(str(sweep_dir))}</p>
</body></html>
"""
