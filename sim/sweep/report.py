"""The collected sweep: table, leak maps, curves, sensitivity, and one HTML page.

SWEEP_DIR/results.csv|h5|parquet   one row per run (sim.sweep.collect)
SWEEP_DIR/leak_map.png             leak probability and mean leaked volume over two axes
SWEEP_DIR/fill_vs_volume.png       every run's fill and leaked volume against injected volume
SWEEP_DIR/sensitivity.png|csv      Sobol indices (saltelli designs), main effects (grids) or
                                   rank correlations (other sampled designs)
SWEEP_DIR/analysis.json            the numbers behind the figures
SWEEP_DIR/sweep_report.html        all of it on one self-contained page
"""

from __future__ import annotations

import csv
import html
import io
import json
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
from sim.sweep.figures import plot_curves, plot_leak_map, plot_sensitivity
from sim.sweep.store import DONE, read_plan, run_dir


def _numeric_parameters(plan: dict[str, Any], columns: Columns) -> list[str]:
    return [
        p
        for p in plan["parameters"]
        if columns[p].dtype == float and np.nanmax(columns[p]) > np.nanmin(columns[p])
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


def _curves(sweep_dir: Path, rows: list[dict[str, Any]], colour_by: str | None) -> list[Any]:
    curves = []
    for row in rows:
        path = run_dir(sweep_dir, row["run"]) / "timeseries.csv"
        if row["status"] != DONE or not path.is_file():
            continue
        data = np.genfromtxt(path, delimiter=",", names=True, deletechars="")
        names = data.dtype.names or ()
        ys = {n: data[n] for n in names if n.startswith("fill_fraction.")}
        leaks = [n for n in names if n.startswith("leaked_volume_m3.")]
        if leaks:
            ys["leaked_volume_total"] = sum(data[n] for n in leaks)
        value = row.get(colour_by) if colour_by else None
        curves.append(
            (
                float(value) if isinstance(value, int | float) else np.nan,
                data["injected_volume_m3"],
                ys,
            )
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
        "failed": int((columns["status"] == "failed").sum()),
        "pending": int((~done & (columns["status"] != "failed")).sum()),
    }
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
        curves = _curves(sweep_dir, rows, axes[0] if axes else None)
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
            analysis["warnings"] = [f"no sensitivity analysis: {exc}"]
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
    write_json_atomic(sweep_dir / "analysis.json", analysis)
    paths["report"] = sweep_dir / "sweep_report.html"
    write_text_atomic(paths["report"], _page(sweep_dir, plan, rows, analysis, figures))
    return paths


def _page(
    sweep_dir: Path,
    plan: dict[str, Any],
    rows: list[dict[str, Any]],
    analysis: dict[str, Any],
    figures: list[tuple[str, str]],
) -> str:
    headline = [
        ("Runs", f"{analysis['runs']} ({plan['sampling']['method']} design)"),
        (
            "Finished / failed / pending",
            f"{analysis['done']} / {analysis['failed']} / {analysis['pending']}",
        ),
        ("Parameters", ", ".join(plan["parameters"])),
    ]
    if "leak_probability" in analysis:
        headline.append(("Runs that leaked", f"{100 * analysis['leak_probability']:.0f} %"))
        headline += [
            (f"  through {route}", f"{100 * p:.0f} %")
            for route, p in analysis["leak_probability_per_route"].items()
        ]
    notes = "".join(
        f'<div class="warn">{html.escape(w)}</div>' for w in analysis.get("warnings", [])
    )
    failed = [r for r in rows if r["status"] == "failed"]
    failures = "".join(
        f'<div class="warn">run {html.escape(r["run"])}: '
        f"<pre>{html.escape(str(r.get('error', ''))[-600:])}</pre></div>"
        for r in failed
    )
    images = "".join(
        f"<figure>{image_tag(sweep_dir / name)}<figcaption>{html.escape(caption)}"
        "</figcaption></figure>"
        for name, caption in figures
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cementsim sweep: {html.escape(plan["name"])}</title><style>{STYLE}</style></head>
<body>
<h1>Sweep {html.escape(plan["name"])}</h1>
<p class="sub">base scenario {html.escape(plan["base"])}</p>
<h2>Summary</h2>{table_html(headline)}{notes}
{"<h2>Failed runs</h2>" + failures if failed else ""}
<h2>Figures</h2>{images or "<p>No finished run yet.</p>"}
<h2>Analysis</h2><pre>{html.escape(json.dumps(analysis, indent=1))}</pre>
<p class="sub">Table: results.csv, results.h5{
        ", results.parquet" if (sweep_dir / "results.parquet").is_file() else ""
    } in {html.escape(str(sweep_dir))}</p>
</body></html>
"""
