"""One self-contained HTML page per run: what was simulated, the headline numbers, warnings,
the curves, the virtual fluoroscopy and the sections. Images are embedded (data URIs), there
is no script, so the page opens anywhere, offline, and can be mailed as one file."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sim.outputs.summary import write_text_atomic

if TYPE_CHECKING:
    from sim.components.base import Figure

ML = 1e-6
#: syringe pressures above this are beyond what hands deliver (Krebs et al. 2005: peaks of
#: 1.7 +- 0.6 MPa, at most 3.2 MPa)
SYRINGE_PRESSURE_WARNING = 3.2e6
MASS_BALANCE_WARNING = 1e-8
#: leaked volumes below this share of the injected volume are shown as 0: round-off
NEGLIGIBLE_LEAK = 1e-12

#: (file, caption, wide)
FIGURES = (
    ("fluoroscopy_ap.png", "Virtual fluoroscopy, AP", False),
    ("fluoroscopy_lateral.png", "Virtual fluoroscopy, lateral", False),
    ("fluoroscopy.gif", "Fluoroscopy during the injection (AP | lateral)", True),
    ("saturation_midplanes.png", "Sections through the needle tip", True),
    ("pressure_vs_volume.png", "Tip pressure against injected volume", False),
    ("pressure_vs_time.png", "Syringe and tip pressure against time", False),
    ("leakage_vs_volume.png", "Leakage per route", False),
    ("viscosity_vs_time.png", "Cement viscosity", False),
)
#: the rows and figures the run's components add (Component.report_rows, .figures)
PARTS = "report_parts.json"


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value / scale:.{digits}g}{' ' + unit if unit else ''}"


def stop_phrase(summary: dict[str, Any]) -> str:
    """Why the injection ended, in words that follow "stopped because": the planned volume
    was in, or which of the scenario's `stop` rules ended it and how much of the planned
    volume was in by then."""
    reason = summary["stop_reason"]
    if reason == "volume_reached":
        return "the planned volume was injected"
    kind, _, name = reason.partition(":")
    rule = {
        "time_limit": "stop.time_limit was reached",
        "first_leak": f"cement leaked through {name} (stop.on_first_leak)",
        "syringe_pressure_limit": (
            f"the syringe pressure of needle '{name}' reached stop.max_syringe_pressure"
        ),
    }.get(kind, reason)
    injected = f"{summary['injected_volume_m3'] / ML:.2f}"
    if "planned_volume_m3" in summary:  # summaries written before it was added lack it
        injected += f" of {summary['planned_volume_m3'] / ML:.2f}"
    return f"{rule}, with {injected} mL injected"


def warnings(summary: dict[str, Any]) -> list[str]:
    """Things a reader must not miss: the leaks, an injection that a `stop` rule ended before
    its planned volume, then `run_warnings`."""
    out = []
    for route, volume in summary["leaked_volume_m3"].items():
        first = summary["first_leak_time_s"].get(route)
        if first is not None:
            out.append(
                f"Leak through {route}: {volume / ML:.3g} mL, first at {first:.1f} s "
                f"({summary['injected_volume_at_first_leak_m3'][route] / ML:.2f} mL injected)."
            )
    if summary.get("stop_reason", "volume_reached") != "volume_reached":
        out.append(f"The injection stopped because {stop_phrase(summary)}.")
    return out + run_warnings(summary)


def run_warnings(summary: dict[str, Any]) -> list[str]:
    """What says the run itself is doubtful: a syringe pressure beyond hand injection, a poor
    mass balance, an unconverged viscosity iteration (a stop the scenario asked for is not:
    `stop_phrase`)."""
    out = []
    for needle, p in summary.get("syringe_pressure_max_pa", {}).items():
        if p > SYRINGE_PRESSURE_WARNING:
            out.append(
                f"Syringe pressure of needle {needle} reached {p / 1e6:.2f} MPa, above the "
                f"{SYRINGE_PRESSURE_WARNING / 1e6:.1f} MPa that hand injection achieves."
            )
    if not summary["mass_balance_rel_error"] <= MASS_BALANCE_WARNING:  # NaN too
        out.append(f"Poor mass balance: relative error {summary['mass_balance_rel_error']:.1e}.")
    if summary.get("picard_not_converged_steps"):
        out.append(
            f"The viscosity iteration did not converge in {summary['picard_not_converged_steps']}"
            " steps (see run.log)."
        )
    return out


def table_html(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def results_rows(run_dir: Path, summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's results table of a run with this summary: the headline numbers, the
    components' rows (see write_report_parts) and the run's bookkeeping."""
    return _headline(summary, _read_parts(run_dir)[0])


def _leaked(volume: float, summary: dict[str, Any]) -> float:
    """A leaked volume (m³) as the report shows it: 0 below NEGLIGIBLE_LEAK of the injected volume
    (the round-off in the upwind tails, 1e-35 mL say, is not a volume to print)."""
    return 0.0 if volume < NEGLIGIBLE_LEAK * summary["injected_volume_m3"] else volume


def _headline(summary: dict[str, Any], parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    rows = [
        ("Stopped because", stop_phrase(summary) if "stop_reason" in summary else "—"),
        ("Injected", _fmt(summary["injected_volume_m3"], ML, 4, "mL")),
        ("Cement in bone", _fmt(summary["cement_in_bone_m3"], ML, 4, "mL")),
        ("Leaked in total", _fmt(_leaked(summary["leaked_volume_total_m3"], summary), ML, 3, "mL")),
    ]
    for target, fill in summary["fill_fraction"].items():
        cover = summary.get("coverage", {}).get(target)
        rows.append(
            (
                f"Fill of {target}",
                f"{100 * fill:.1f} % of pore volume, "
                f"{'—' if cover is None else f'{100 * cover:.1f} %'} covered (S ≥ 0.5)",
            )
        )
    for route, volume in summary["leaked_volume_m3"].items():
        first = summary["first_leak_time_s"].get(route)
        when = "no leak" if first is None else f"first at {first:.1f} s"
        distance = summary.get("front_distance_min_m", {}).get(route)
        rows.append(
            (
                f"Leak: {route}",
                f"{_fmt(_leaked(volume, summary), ML, 3, 'mL')} ({when}); closest "
                f"approach {_fmt(distance, 1e-3, 3, 'mm')}",
            )
        )
    rows.append(("Peak tip pressure", _fmt(summary["tip_pressure_max_pa"], 1e3, 4, "kPa")))
    for needle, p in summary.get("syringe_pressure_max_pa", {}).items():
        rows.append((f"Peak syringe pressure ({needle})", _fmt(p, 1e3, 4, "kPa")))
    cloud = summary.get("cloud", {})
    if cloud:
        rows += [
            ("Cement cloud (S ≥ 0.5)", _fmt(cloud["volume_m3"], ML, 3, "mL of bone")),
            (
                "Cloud extent x, y, z",
                ", ".join(_fmt(e, 1e-3, 3) for e in cloud["extent_m"]) + " mm",
            ),
            (
                "Equivalent ellipsoid axes",
                ", ".join(_fmt(e, 1e-3, 3) for e in cloud["ellipsoid_axes_m"]) + " mm",
            ),
            ("Sphericity", f"{cloud['sphericity']:.3f}"),
        ]
    for name, key, unit in (
        ("porosity", "bone_porosity", ""),
        ("permeability", "bone_permeability_m2", " m²"),
    ):
        stats = summary.get(key)
        if stats is not None:
            rows.append(
                (
                    f"Bone {name} (volume-weighted)",
                    f"mean {stats['mean']:.3g}{unit}, CV {stats['cv']:.2f}, "
                    f"{stats['min']:.3g} to {stats['max']:.3g}{unit}",
                )
            )
    rows += parts
    rows += [
        ("Mass balance error", f"{summary['mass_balance_rel_error']:.1e}"),
        (
            "Steps, cells, ranks",
            f"{summary['n_steps']}, {summary['n_cells']}, {summary['mpi_ranks']}",
        ),
        ("Wall time", f"{summary['wall_time_s']:.1f} s"),
    ]
    return rows


def write_report_parts(
    run_dir: Path, rows: list[tuple[str, str]], figures: Sequence[Figure]
) -> None:
    """Keep the components' report rows and figures with the run (for write_report)."""
    parts = {"rows": rows, "figures": [dataclasses.asdict(f) for f in figures]}
    write_text_atomic(run_dir / PARTS, json.dumps(parts, indent=1, ensure_ascii=False))


def _read_parts(run_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, bool]]]:
    """The components' rows and (file, caption, wide) figures of a run (none if it kept none)."""
    path = run_dir / PARTS
    if not path.is_file():
        return [], []
    parts = json.loads(path.read_text())
    figures = [(f["file"], f["caption"], f["wide"]) for f in parts["figures"]]
    return [(label, value) for label, value in parts["rows"]], figures


def image_tag(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.stem)}">'


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0} th,td{padding:.25rem .8rem;text-align:left;
border-bottom:1px solid #ddd} th{font-weight:600;color:#444}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.6rem 1rem;margin:.4rem 0}
.ok{background:#eef8ee;border-left:4px solid #3a3;padding:.6rem 1rem}
figure{display:inline-block;margin:.5rem;vertical-align:top} img{max-width:34rem}
figure.wide img{max-width:70rem;width:100%}
figcaption{color:#555;font-size:.9rem} pre{background:#f6f6f6;padding:1rem;overflow:auto}
"""


def write_report(run_dir: Path, summary: dict[str, Any] | None = None) -> Path:
    """Write run_dir/report.html from the files of a run and its summary (by default read
    from run_dir/summary.json; a run passes it, since it writes summary.json after the
    report); return its path."""
    if summary is None:
        summary = json.loads((run_dir / "summary.json").read_text())
    scenario_text = (run_dir / "scenario.resolved.yaml").read_text()
    scenario = yaml.safe_load(scenario_text)
    versions = json.loads((run_dir / "versions.json").read_text())
    notes = warnings(summary)
    warn_html = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in notes) or (
        '<div class="ok">No leak, no pressure or conservation warning.</div>'
    )
    figures = "".join(
        f'<figure class="{"wide" if wide else ""}">{image_tag(run_dir / name)}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption, wide in [*FIGURES, *_read_parts(run_dir)[1]]
        if (run_dir / name).is_file()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cementsim: {html.escape(summary["scenario"])}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(summary["scenario"])}</h1>
<p class="sub">{html.escape(scenario.get("description", "") or "")}</p>
<h2>Warnings</h2>{warn_html}
<h2>Results</h2>{table_html(results_rows(run_dir, summary))}
<h2>Figures</h2>{figures}
<h2>Scenario (resolved, SI units)</h2>
<details><summary>show</summary><pre>{html.escape(scenario_text)}</pre></details>
<p class="sub">cementsim {html.escape(str(versions.get("cementsim")))}, DOLFINx
{html.escape(str(versions.get("dolfinx")))}, PETSc {html.escape(str(versions.get("petsc")))},
git {html.escape(str(versions.get("git_commit")))}</p>
</body></html>
"""
    out = run_dir / "report.html"
    write_text_atomic(out, page)
    return out
