"""Sweeps over bone realisations: the sweep file's checks, the expansion into count runs per
design point on the same seeds, and `sweep collect` on a sweep folder with made-up results
whose leak probabilities, volumes at risk and relative risks are known (no simulations)."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.stats import binomtest
from scipy.stats.contingency import relative_risk

from sim.outputs.summary import write_json_atomic
from sim.scenario import ScenarioError
from sim.sweep.cli import EXIT_INVALID, load_sweep, main
from sim.sweep.leak_probability import Z95
from sim.sweep.plan import PlanError, make_plan, realisation_seeds
from sim.sweep.report import write_sweep_report
from sim.sweep.spec import REALISATION_PARAMETER
from sim.sweep.store import run_dir, write_plan
from tests.sweep.conftest import REPO, SPHERE, SPHERE_SWEEP, write_sweep

pytestmark = pytest.mark.serial

SEED = REALISATION_PARAMETER
VISCOSITY = "cement.rheology.viscosity"
RATE = "injection.needles.0.rate"
AGE = "injection.start_after_mixing"
ML = 1e-6
#: the shipped sweep's fixed overrides, and a bone.heterogeneity section added through `set`
SET = {
    **yaml.safe_load(SPHERE_SWEEP.read_text())["set"],
    "bone.heterogeneity.correlation_length": "3 mm",
}


def sweep_file(folder: Path, name: str = "realisations", **changes: Any) -> Path:
    """The six-point sphere sweep on bone realisations (3 unless changed)."""
    changes.setdefault("set", SET)
    changes.setdefault("realisations", {"count": 3, "seed": 2026})
    return write_sweep(folder, name, **changes)


def with_realisations(**extra: Any) -> dict[str, Any]:
    return {"set": SET, "realisations": {"count": 3, "seed": 2026}, **extra}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"set": SET, "realisations": {"count": 100}},
            "realisations: missing seed in a sweep over realisations (got {'count': 100})",
        ),
        (
            with_realisations(realisations={"count": 1, "seed": 3}),
            "realisations.count: must be greater than or equal to 2 (got 1)",
        ),
        (
            with_realisations(axes=[{"param": SEED, "values": [1, 2]}]),
            f"axes: the axis of {SEED} sets {SEED}, which realisations (count 3, seed 2026) sets",
        ),
        (
            with_realisations(set={**SET, SEED: 7}),
            f"set.{SEED} = 7 sets {SEED}, which realisations (count 3, seed 2026) sets",
        ),
        (
            with_realisations(set={**SET, "bone.heterogeneity": {"seed": 7}}),
            "set.bone.heterogeneity = {'seed': 7} sets bone.heterogeneity.seed",
        ),
        (
            with_realisations(
                axes=[
                    {"param": VISCOSITY, "distribution": {"kind": "uniform", "low": 1, "high": 2}}
                ],
                sampling={"method": "saltelli", "samples": 4},
            ),
            "sampling.method: 'saltelli' cannot be repeated over realisations",
        ),
        (
            {"report": {"leak_probability": {"risk_level": 0.1}}},
            "report.leak_probability: applies to a sweep over realisations",
        ),
        (
            with_realisations(report={"leak_probability": {"group_by": ["bone.porosity"]}}),
            "report.leak_probability.group_by: ['bone.porosity'] are not axes",
        ),
        (
            with_realisations(
                report={
                    "leak_probability": {"group_by": [RATE], "reference": {VISCOSITY: "50 Pa*s"}}
                }
            ),
            f"report.leak_probability.reference: ['{VISCOSITY}'] are not group parameters",
        ),
        (
            with_realisations(report={"leak_probability": {"risk_level": "150 %"}}),
            "report.leak_probability.risk_level: must be between 0 and 1, both excluded "
            "(e.g. 0.1 or '10 %') (got '150 %')",
        ),
        (
            with_realisations(report={"leak_probability": {"risk_level": 0}}),
            "report.leak_probability.risk_level: must be between 0 and 1",
        ),
        (
            with_realisations(report={"leak_probability": {"risk_level": "3 mL"}}),
            "'3 mL' is not a fraction",
        ),
        (
            with_realisations(report={"leak_probability": {"age": AGE}}),
            f"report.leak_probability.age: '{AGE}' is not a group parameter",
        ),
        ({"axes": []}, "axes: required, but missing (only realisations may go without)"),
    ],
)
def test_invalid_realisations_name_the_field_and_the_value(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match="invalid sweep") as error:
        load_sweep(write_sweep(tmp_path, **changes))
    assert message in str(error.value)


def test_a_base_scenario_without_heterogeneity_is_an_error_of_the_plan(tmp_path: Path) -> None:
    """Setting only the seed would create bone.heterogeneity with every other key at its
    default: the base scenario (with set applied) must have the section."""
    spec = load_sweep(sweep_file(tmp_path, set=yaml.safe_load(SPHERE_SWEEP.read_text())["set"]))
    with pytest.raises(PlanError) as error:
        make_plan(spec)
    assert str(error.value).startswith(
        "realisations: a sweep over realisations needs bone.heterogeneity in the base scenario"
    )
    assert str(SPHERE) in str(error.value)


def test_a_reference_that_is_not_a_value_of_the_runs_is_an_error_of_the_plan(
    tmp_path: Path,
) -> None:
    spec = load_sweep(
        sweep_file(tmp_path, report={"leak_probability": {"reference": {VISCOSITY: "75 Pa*s"}}})
    )
    with pytest.raises(PlanError, match=rf"{VISCOSITY} = 75 is not a value of the runs"):
        make_plan(spec)


def test_sweep_plan_exits_with_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_seed = write_sweep(tmp_path, "a", set=SET, realisations={"count": 4})
    assert main(argparse.Namespace(sweep_command="plan", sweep_file=missing_seed)) == EXIT_INVALID
    assert "missing seed in a sweep over realisations" in capsys.readouterr().err
    no_section = sweep_file(tmp_path, "b", set={"output.fields": False})
    assert main(argparse.Namespace(sweep_command="plan", sweep_file=no_section)) == EXIT_INVALID
    assert "needs bone.heterogeneity in the base scenario" in capsys.readouterr().err


def test_every_design_point_runs_on_the_same_distinct_reproducible_seeds(tmp_path: Path) -> None:
    plan = make_plan(load_sweep(sweep_file(tmp_path, "one")))
    seeds = realisation_seeds(2026, 3)
    assert plan.seeds == seeds and len(set(seeds)) == 3
    assert len(plan.runs) == 6 * 3 and len({r.id for r in plan.runs}) == 18
    assert plan.parameter_names == [VISCOSITY, RATE, SEED]
    points: dict[tuple[float, float], list[int]] = {}
    for run in plan.runs:
        points.setdefault((run.si[VISCOSITY], run.si[RATE]), []).append(run.params[SEED])
        assert run.si[SEED] == float(run.params[SEED])
        assert run.overrides[-1] == f"{SEED}={run.params[SEED]}"
    assert len(points) == 6 and all(s == seeds for s in points.values())  # paired
    assert [r.index for r in plan.runs] == list(range(18))
    again = make_plan(load_sweep(sweep_file(tmp_path, "again")))
    assert [r.id for r in again.runs] == [r.id for r in plan.runs]
    other = make_plan(
        load_sweep(sweep_file(tmp_path, "other", realisations={"count": 3, "seed": 7}))
    )
    assert set(other.seeds).isdisjoint(seeds)
    write_plan(tmp_path / "out", plan, tmp_path / "one.yaml", {"kind": "local"})
    recorded = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert recorded["realisations"] == {
        "count": 3,
        "seed": 2026,
        "parameter": SEED,
        "seeds": seeds,
    }
    assert recorded["parameters"][-1] == SEED


def test_realisation_seeds_are_pinned_distinct_and_nested() -> None:
    """SeedSequence(seed).generate_state repeats some 32-bit words among 100 000: the seeds
    skip them; a longer list starts with a shorter one."""
    assert realisation_seeds(2026, 3) == [2727543821, 2207150826, 508070823]
    words = np.random.SeedSequence(0).generate_state(100_000)
    assert len(set(words.tolist())) < 100_000
    many = realisation_seeds(0, 100_000)
    assert len(set(many)) == 100_000
    assert many[:50] == realisation_seeds(0, 50)


def test_a_sweep_over_realisations_alone_needs_no_axes(tmp_path: Path) -> None:
    data = yaml.safe_load(SPHERE_SWEEP.read_text())
    data.pop("axes")
    data.pop("report")
    data.update(base=str(SPHERE), set=SET, realisations={"count": 4, "seed": 1}, name="one_point")
    path = tmp_path / "one_point.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = make_plan(load_sweep(path))
    assert len(plan.runs) == 4 and plan.parameter_names == [SEED]


def test_the_readme_example_of_realisations_plans(tmp_path: Path) -> None:
    """The realisations and report.leak_probability keys shown in README.md are valid."""
    text = (REPO / "README.md").read_text()
    block = text.split("```yaml\n# sweep over bone realisations\n", 1)[1].split("```", 1)[0]
    keys = yaml.safe_load(block)
    assert keys["realisations"] == {"count": 100, "seed": 2026}
    keys["realisations"]["count"] = 2
    path = sweep_file(
        tmp_path,
        axes=[
            {
                "param": "cement.preset",
                "values": ["vertebroplasty_low_viscosity", "vertebroplasty_high_viscosity"],
            },
            {"param": AGE, "values": ["2 min", "3.5 min", "6.5 min"]},
        ],
        **keys,
    )
    spec = load_sweep(path)
    assert spec.report.leak_probability.risk_level == pytest.approx(0.1)
    plan = make_plan(spec)
    assert len(plan.runs) == 2 * 3 * 2


# ----------------------------------------------------------------------------- collect
COUNT = 40
#: leaking realisations (of 40) per (viscosity Pa s, age min): realisation k < L leaks
LEAKS = {(50.0, 2.0): 20, (50.0, 6.0): 28, (200.0, 2.0): 4, (200.0, 6.0): 0}
FAILED = (200.0, 6.0, 39)


def first_leak(k: int, leaks: int) -> dict[str, float | None]:
    """Realisation k leaks at (k + 1) × 0.1 mL injected when k < leaks: through the far field
    when k is even, through the basivertebral vein when odd."""
    volume = (k + 1) * 0.1 * ML if k < leaks else None
    return {
        "far_field": volume if k % 2 == 0 else None,
        "basivertebral": volume if k % 2 == 1 else None,
    }


@pytest.fixture
def realisation_sweep(tmp_path: Path) -> Path:
    """Cement viscosity (50, 200 Pa s) × age at injection (2, 6 min) on 40 realisations, with
    made-up results: leak counts LEAKS, one failed run."""
    path = sweep_file(
        tmp_path,
        axes=[
            {"param": VISCOSITY, "values": ["50 Pa*s", "200 Pa*s"]},
            {"param": AGE, "values": ["2 min", "6 min"]},
        ],
        realisations={"count": COUNT, "seed": 2026},
        report={
            "metric": "tip_pressure_max_pa",
            "leak_probability": {
                "reference": {VISCOSITY: "200 Pa*s"},
                "risk_level": "10 %",
                "volumes": ["0.5 mL", "10 mL"],
            },
        },
    )
    plan = make_plan(load_sweep(path))
    out = tmp_path / "sweep"
    write_plan(out, plan, path, {"kind": "local"})
    for run in plan.runs:
        v, age = run.si[VISCOSITY], run.si[AGE] / 60
        k = plan.seeds.index(run.params[SEED])
        folder = run_dir(out, run.id)
        folder.mkdir(parents=True)
        if (v, age, k) == FAILED:
            write_json_atomic(folder / "failed.json", {"error": "diverged"})
            continue
        firsts = first_leak(k, LEAKS[(v, age)])
        leaked = {r: 0.0 if x is None else 1e-9 for r, x in firsts.items()}
        write_json_atomic(
            folder / "summary.json",
            {
                "injected_volume_m3": 5 * ML,
                "leaked_volume_m3": leaked,
                "leaked_volume_total_m3": sum(leaked.values()),
                "leak_threshold_m3": 1e-10,
                "injected_volume_at_first_leak_m3": firsts,
                "tip_pressure_max_pa": 1e3 * v,
            },
        )
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def test_collect_writes_the_leak_probability_table_figures_and_report(
    realisation_sweep: Path,
) -> None:
    paths = write_sweep_report(realisation_sweep)
    with paths["csv"].open() as fh:
        results = list(csv.DictReader(fh))
    assert len(results) == 4 * COUNT and SEED in results[0]
    with paths["leak_probability"].open() as fh:
        rows = {(r["group"], r["route"]): r for r in csv.DictReader(fh)}
    assert list(next(iter(rows.values()))) == [
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
    thin_young = f"{VISCOSITY} = 50 Pa*s, {AGE} = 2 min"
    thick_young = f"{VISCOSITY} = 200 Pa*s, {AGE} = 2 min"
    thin_old = f"{VISCOSITY} = 50 Pa*s, {AGE} = 6 min"
    thick_old = f"{VISCOSITY} = 200 Pa*s, {AGE} = 6 min"
    assert len(rows) == 4 * 3
    row = rows[(thin_young, "any")]
    assert (int(row["n"]), int(row["leaks"]), float(row["p"])) == (40, 20, 0.5)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(wilson(20, 40))
    # F passes 10 % at the 5th leak (5/40 > 0.1); its upper bound at the first (1 of 40)
    assert float(row["volume_at_risk"]) == pytest.approx(0.5 * ML)
    assert float(row["volume_at_risk_upper"]) == pytest.approx(0.1 * ML)
    # the leaks alternate between the routes: 10 through the far field, at 0.1, 0.3, ... mL,
    # the 5th of which at 0.9 mL
    far = rows[(thin_young, "far_field")]
    assert (int(far["leaks"]), float(far["volume_at_risk"])) == (10, pytest.approx(0.9 * ML))
    # the relative risk against 200 Pa*s at the same age: 20/40 against 4/40, Katz
    expected = relative_risk(20, 40, 4, 40)
    ci = expected.confidence_interval(0.95)
    assert float(row["rr"]) == pytest.approx(5.0)
    assert (float(row["rr_low"]), float(row["rr_high"])) == pytest.approx((ci.low, ci.high))
    # 4 of 40 is exactly 10 %: not above it; the reference group has rr 1 and no interval
    reference = rows[(thick_young, "any")]
    assert reference["volume_at_risk"] == ""
    assert float(reference["volume_at_risk_upper"]) == pytest.approx(0.1 * ML)
    assert (reference["rr"], reference["rr_low"], reference["rr_high"]) == ("1.0", "", "")
    # no leak in 39 finished runs (one failed): zero cell, Haldane-Anscombe
    none = rows[(thick_old, "any")]
    assert (int(none["n"]), int(none["leaks"])) == (39, 0)
    assert none["volume_at_risk"] == none["volume_at_risk_upper"] == ""
    rr = float(rows[(thin_old, "any")]["rr"])
    assert rr == pytest.approx((28.5 / 41) / (0.5 / 40))
    se = math.sqrt(1 / 28.5 - 1 / 41 + 1 / 0.5 - 1 / 40)
    assert float(rows[(thin_old, "any")]["rr_low"]) == pytest.approx(rr * math.exp(-Z95 * se))

    # by 0.5 mL: 5 of 40 leaked (at 0.1 ... 0.5 mL) against the reference's 4 of 40; 10 mL
    # is beyond what the realisations that did not leak reached (5 mL): no estimate
    with paths["leak_probability_by_volume"].open() as fh:
        by = {(r["group"], r["route"], float(r["volume"])): r for r in csv.DictReader(fh)}
    row = next(r for (g, route, v), r in by.items() if (g, route) == (thin_young, "any") and v < ML)
    assert (int(row["n"]), int(row["leaks"]), float(row["p"])) == (40, 5, 0.125)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(wilson(5, 40))
    expected = relative_risk(5, 40, 4, 40)
    ci = expected.confidence_interval(0.95)
    assert float(row["rr"]) == pytest.approx(1.25)
    assert (float(row["rr_low"]), float(row["rr_high"])) == pytest.approx((ci.low, ci.high))
    reference_row = next(
        r for (g, route, v), r in by.items() if (g, route) == (thick_young, "any") and v < ML
    )
    assert reference_row["rr"] == "1.0"
    beyond = [r for (g, route, v), r in by.items() if (g, route) == (thin_young, "any") and v > ML]
    assert [r["n"] for r in beyond] == [""]

    analysis = json.loads((realisation_sweep / "analysis.json").read_text())
    entry = analysis["leak_probability_over_realisations"]
    assert entry["parameter"] == SEED and entry["realisations"] == COUNT
    assert entry["group_by"] == [VISCOSITY, AGE] and entry["risk_level"] == 0.1
    assert entry["reference"] == {VISCOSITY: 200.0}
    groups = {g["group"]: g for g in entry["groups"]}
    assert groups[thick_old]["unfinished_runs"] == 1
    assert groups[thin_old]["routes"]["any"]["relative_risk"]["haldane_anscombe"] is True
    assert groups[thin_young]["reference"] == thick_young and groups[thick_young]["is_reference"]
    curve = groups[thin_young]["routes"]["any"]["curve"]
    assert curve["leaks"] == [*range(21), 20]
    assert curve["volume_m3"][-1] == pytest.approx(5 * ML)
    age = entry["versus_age"]
    assert age["parameter"] == AGE
    assert [s["group"] for s in age["series"]] == [
        f"{VISCOSITY} = 50 Pa*s",
        f"{VISCOSITY} = 200 Pa*s",
    ]
    assert age["series"][0][AGE] == [120.0, 360.0]
    assert age["series"][0]["leaks"] == [20, 28] and age["series"][1]["n"] == [40, 39]
    # the seed is not a parameter of the leak map or of the sensitivity analysis
    assert analysis["leak_map"]["parameters"] == [VISCOSITY, AGE]
    assert SEED not in analysis["sensitivity"]

    for name in ("leak_probability_vs_volume", "leak_probability_vs_age", "report"):
        assert paths[name].is_file() and paths[name].stat().st_size > 1000
    page = paths["report"].read_text()
    assert "Leak probability over bone realisations" in page
    assert (
        f"{thin_young}</b>: at most 0.5 mL before the risk of any leak passes 10 % "
        "(upper 95 % bound: 0.1 mL)." in page
    )
    assert (
        f"{thick_old}</b>: the risk of any leak does not pass 10 % up to 5 mL, which every "
        "realisation reached (upper 95 % bound: does not pass it up to 5 mL either)." in page
    )
    assert "Haldane-Anscombe" in page and "1 failed or pending runs are not counted" in page
    # leak map, sensitivity and the two figures of the realisations (no time series here)
    assert page.count("data:image/png;base64,") == 4


def test_too_few_realisations_cannot_bound_the_risk(tmp_path: Path) -> None:
    """With 20 realisations and no leak, the upper bound of the risk is z² / (20 + z²) = 16 %:
    the conservative volume is 0 mL, and the report says why."""
    path = sweep_file(tmp_path, realisations={"count": 20, "seed": 1})
    plan = make_plan(load_sweep(path))
    out = tmp_path / "sweep"
    write_plan(out, plan, path, {"kind": "local"})
    for run in plan.runs:
        folder = run_dir(out, run.id)
        folder.mkdir(parents=True)
        write_json_atomic(
            folder / "summary.json",
            {
                "injected_volume_m3": 1 * ML,
                "leaked_volume_m3": {"far_field": 0.0},
                "leaked_volume_total_m3": 0.0,
                "leak_threshold_m3": 1e-10,
                "injected_volume_at_first_leak_m3": {"far_field": None},
                "tip_pressure_max_pa": 1e5,
            },
        )
    page = write_sweep_report(out)["report"].read_text()
    assert (
        "(upper 95 % bound: 0 mL: 20 realisations are too few to bound the risk below 10 %)" in page
    )
    assert not (out / "leak_probability_vs_age.png").exists()
