"""The summary a run will write, known from its scenario (sim.outputs.summary_layout): what a
sweep's report.metric may name. Entries by mesh region take a region's name; the
heat section declares its entries; the layout holds against real summaries in
tests/regression/test_runs.py and test_checkpoint.py."""

from __future__ import annotations

import pytest

from sim.outputs.summary_layout import metric_problem, summary_layout
from sim.scenario import load_scenario

from ..conftest import REPO


@pytest.mark.serial
@pytest.mark.parametrize(
    ("metric", "problem"),
    [
        ("temperature_max_k.bone", None),
        ("necrosis_volume_m3.nerve", None),
        ("probe_temperature_max_k.canal", None),
        ("temperature_max_k", "temperature_max_k holds one number per region: name one"),
        ("temperature_max_k.front.half", None),  # a region's name may hold dots
        ("necrosis_volume_m3.skin", "necrosis_volume_m3 has no entry 'skin'; it has: "),
        ("heat_balance_rel_error", None),
    ],
)
def test_the_heat_sections_entries_are_judged(metric: str, problem: str | None) -> None:
    scenario = load_scenario(REPO / "scenarios" / "thermal" / "vertebroplasty_bath.yaml")
    found = metric_problem(summary_layout(scenario), metric)
    assert (found is None) if problem is None else found.startswith(problem), found


@pytest.mark.serial
def test_without_the_heat_section_its_entries_are_not_there() -> None:
    scenario = load_scenario(REPO / "scenarios" / "vertebroplasty.yaml")
    assert metric_problem(summary_layout(scenario), "heat_balance_rel_error").startswith(
        "the summary has no entry 'heat_balance_rel_error'"
    )
