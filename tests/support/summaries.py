"""The layout a summary is known to have before its run (sim.outputs.summary_layout), held
against the summary of a real run: shared by the regression runs that write one."""

from __future__ import annotations

from typing import Any

from sim.outputs.summary_layout import flatten, leaves, metric_problem, summary_layout
from sim.scenario import Scenario


def assert_summary_has_its_layout(scenario: Scenario, summary: dict[str, Any]) -> None:
    """Every number of `summary` is a metric its scenario's layout accepts, and every number
    the layout names (but the cloud's centre of a run without cement) is in the summary, a
    number by region for some region."""
    layout = summary_layout(scenario)
    written = {k: v for k, v in flatten(summary).items() if not isinstance(v, str)}
    refused = {k: metric_problem(layout, k) for k in written}
    assert not {k: p for k, p in refused.items() if p is not None}, refused
    names = leaves(layout, "")
    by_region = [name.removesuffix(".<region>") for name in names if name.endswith("<region>")]
    assert all(any(k.startswith(f"{name}.") for k in written) for name in by_region)
    missing = set(names) - set(written) - {f"{name}.<region>" for name in by_region}
    if summary["cloud"]["volume_m3"] == 0.0:
        missing -= {f"cloud.centre_m.{i}" for i in range(3)}
    assert not missing, sorted(missing)
