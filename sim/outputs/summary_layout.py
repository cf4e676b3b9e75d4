"""What a run's summary.json holds, known from its scenario before the run.

`sim.outputs.summary.build_summary` writes the summary; this module says which entries it
will have, so that a sweep's `report.metric` is judged when the sweep is planned
(sim.sweep.plan) rather than in the table collected after thousands of runs. A layout is a
nested dict: each key maps to NUMBER (one number), TEXT (a string: not a metric), BY_NAME
(numbers keyed by names only the mesh knows, e.g. its regions) or a nested layout (keys the
scenario names: needles, routes, targets; fixed sub-keys; list positions "0", "1", "2").
Optional sections add their entries (`Section.summary_entries`).
tests/regression/test_runs.py holds this layout against the summaries of real runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.scenario.base import BY_NAME, NUMBER, TEXT

if TYPE_CHECKING:
    from sim.scenario import Scenario

Layout = dict[str, Any]

#: build_summary's timings_s
TIMINGS = (
    "pressure_assembly_and_solve",
    "fluxes",
    "transport",
    "output",
    "petsc_solves",
    "transport_sweeps",
)
#: sim.bone.bone_statistics, per property
STATISTICS = ("mean", "cv", "min", "max")
#: the numbers of a run's bookkeeping
BOOKKEEPING = (
    "injected_volume_m3",
    "planned_volume_m3",
    "cement_in_bone_m3",
    "leaked_volume_total_m3",
    "leak_threshold_m3",
    "cloud_volume_m3",
    "cloud_max_distance_from_tip_m",
    "tip_pressure_max_pa",
    "mass_balance_rel_error",
    "saturation_min",
    "saturation_max",
    "end_time_s",
    "n_cells",
    "n_vertices",
    "n_steps",
    "n_rejected_steps",
    "picard_iterations_max",
    "picard_not_converged_steps",
    "mpi_ranks",
    "wall_time_s",
)


def numbers(names: Any) -> Layout:
    """One number per name."""
    return dict.fromkeys(names, NUMBER)


def summary_layout(scenario: Scenario) -> Layout:
    """The entries of the summary of a run of `scenario` (see the module docstring)."""
    needles = [n.name for n in scenario.injection.needles]
    routes = list(scenario.leak_routes)
    targets = list(scenario.targets)
    xyz = numbers("012")
    layout: Layout = {
        "scenario": TEXT,
        "stop_reason": TEXT,
        **numbers(BOOKKEEPING),
        "injected_volume_per_needle_m3": numbers(needles),
        "leaked_volume_m3": numbers(routes),
        "first_leak_time_s": numbers(routes),
        "injected_volume_at_first_leak_m3": numbers(routes),
        "marrow_outflow_m3": numbers(routes),
        "fill_fraction": numbers(targets),
        "coverage": numbers(targets),
        "cloud": {
            "volume_m3": NUMBER,
            "extent_m": xyz,
            "centre_m": xyz,  # absent while there is no cloud
            "ellipsoid_axes_m": xyz,
            "sphericity": NUMBER,
        },
        "front_distance_min_m": numbers([*routes, "cortex"]),
        "tip_pressure_final_pa": numbers(needles),
        "syringe_pressure_max_pa": numbers(needles),
        "cement_viscosity_in_bone_pa_s": numbers(("min", "max")),
        "bone_porosity": numbers(STATISTICS),
        "bone_permeability_m2": numbers(STATISTICS),
        "timings_s": numbers(TIMINGS),
    }
    for _, section in scenario.sections():
        layout.update(section.summary_entries())
    return layout


def metric_problem(layout: Layout, metric: str, within: str = "") -> str | None:
    """Why `metric` (a dotted key of summary.json) does not name one number of a summary of
    this layout, or None if it does (or names one by a name only the mesh knows); `within`:
    the dotted entry `layout` is the layout of, when called for the rest of a metric."""
    part, _, rest = metric.partition(".")
    if part not in layout:
        return (
            f"{within or 'the summary'} has no entry {part!r}; "
            f"it has: {', '.join(_entries(layout, within))}"
        )
    node, named = layout[part], f"{within}.{part}" if within else part
    if node is TEXT:
        return f"{named} is text, not a number"
    if node is NUMBER:
        return f"{named} is one number: leave out .{rest}" if rest else None
    if node is BY_NAME:  # a region's name may hold dots itself
        return None if rest else f"{named} holds one number per region: name one, {named}.<region>"
    if not rest:
        return f"{named} holds several numbers: name one: {', '.join(leaves(node, named))}"
    return metric_problem(node, rest, named)


def _entries(node: Layout, prefix: str) -> list[str]:
    """The dotted names of the entries of `node`, a nested one with its keys in braces."""
    out = []
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            name += f".{{{', '.join(value)}}}"
        elif value is BY_NAME:
            name += ".<region>"
        if value is not TEXT:
            out.append(name)
    return out


def leaves(node: Layout, prefix: str) -> list[str]:
    """The dotted names of the numbers under `node` (BY_NAME ones as name.<region>)."""
    return [
        name + (".<region>" if value is BY_NAME else "")
        for name, value in flatten(node, f"{prefix}." if prefix else "").items()
        if value is not TEXT
    ]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary -> {dotted.key: scalar}; lists become key.0, key.1, ..."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            out[name] = value
    return out
