"""Sweep files and their expansion: validation, designs, seeds, bounds, constraints, ids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.scenario import ScenarioError
from sim.sweep.cli import load_sweep
from sim.sweep.figures import shown_levels
from sim.sweep.plan import PlanError, evaluate, make_plan
from sim.sweep.store import write_plan
from tests.sweep.conftest import REPO, SPHERE, SPHERE_SWEEP, SWEEPS, write_sweep

pytestmark = pytest.mark.serial

VISCOSITY = "cement.rheology.viscosity"
RATE = "injection.needles.0.rate"
VOLUME = "injection.needles.0.volume"
POROSITY = "bone.porosity"


def plan_of(folder: Path, **changes):
    return make_plan(load_sweep(write_sweep(folder, **changes)))


def sampled(method: str, samples: int, seed: int, **extra):
    return {
        "axes": [
            {
                "param": VISCOSITY,
                "distribution": {"kind": "log_uniform", "low": 20.0, "high": 500.0},
            },
            {
                "param": POROSITY,
                "distribution": {
                    "kind": "normal",
                    "mean": 0.9,
                    "std": 0.05,
                    "low": 0.8,
                    "high": 0.95,
                },
            },
            {"param": RATE, "distribution": {"kind": "uniform", "low": 1e-8, "high": 8e-8}},
        ],
        "sampling": {"method": method, "samples": samples, "seed": seed},
        "report": {"metric": "tip_pressure_max_pa"},
        **extra,
    }


def test_grid_is_the_full_factorial_with_values_in_si(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert len(plan.runs) == 6
    pairs = sorted((r.si[VISCOSITY], r.si[RATE]) for r in plan.runs)
    ml_min = 1e-6 / 60
    expected = sorted((v, q * ml_min) for v in (50.0, 100.0, 200.0) for q in (2.0, 4.0))
    assert np.allclose(pairs, expected, rtol=1e-14, atol=0)
    assert len({r.id for r in plan.runs}) == 6


def test_run_ids_depend_only_on_the_resolved_scenario(tmp_path: Path) -> None:
    """The same point written in other units, in another sweep, has the same id."""
    a = plan_of(tmp_path, name="a")
    b = plan_of(
        tmp_path,
        name="b",
        axes=[
            {"param": VISCOSITY, "values": ["50000 mPa*s", "0.1 kPa*s", 200]},
            {"param": RATE, "values": ["2 mL/min", "4 mL/min"]},
        ],
    )
    assert sorted(r.id for r in a.runs) == sorted(r.id for r in b.runs)


def test_ranges_coupled_axes_and_derived_parameters(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        axes=[
            {"param": VISCOSITY, "range": {"start": 10, "stop": 1000, "num": 3, "spacing": "log"}},
            {"params": [VOLUME, POROSITY], "values": [["0.5 mL", 0.85], ["1 mL", 0.9]]},
        ],
        derived={RATE: f"{VOLUME} / 20"},
    )
    assert len(plan.runs) == 6
    assert sorted({r.si[VISCOSITY] for r in plan.runs}) == pytest.approx([10, 100, 1000])
    for r in plan.runs:
        assert (r.si[VOLUME], r.si[POROSITY]) in {(0.5e-6, 0.85), (1e-6, 0.9)}
        assert r.si[RATE] == pytest.approx(r.si[VOLUME] / 20)
        assert any(o.startswith(f"{RATE}=") for o in r.overrides)


def test_constraints_drop_combinations(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, constraints=[f"{VISCOSITY} * {RATE} < 5e-6"])
    assert plan.dropped == 3
    assert all(r.si[VISCOSITY] * r.si[RATE] < 5e-6 for r in plan.runs)
    assert len(plan.runs) == 3


@pytest.mark.parametrize("method", ["random", "latin_hypercube", "sobol"])
def test_sampled_designs_are_reproducible_with_a_seed_and_respect_bounds(
    tmp_path: Path, method: str
) -> None:
    one = plan_of(tmp_path, name="one", **sampled(method, 16, seed=7))
    again = plan_of(tmp_path, name="again", **sampled(method, 16, seed=7))
    other = plan_of(tmp_path, name="other", **sampled(method, 16, seed=8))
    assert [r.id for r in one.runs] == [r.id for r in again.runs]
    assert [r.si for r in one.runs] == [r.si for r in again.runs]
    assert {r.id for r in one.runs}.isdisjoint({r.id for r in other.runs})
    assert len(one.runs) == 16
    v = np.array([r.si[VISCOSITY] for r in one.runs])
    phi = np.array([r.si[POROSITY] for r in one.runs])
    q = np.array([r.si[RATE] for r in one.runs])
    assert v.min() >= 20 and v.max() <= 500
    assert phi.min() >= 0.8 and phi.max() <= 0.95
    assert q.min() >= 1e-8 and q.max() <= 8e-8


def test_latin_hypercube_puts_one_sample_in_each_stratum(tmp_path: Path) -> None:
    n = 10
    plan = plan_of(tmp_path, **sampled("latin_hypercube", n, seed=3))
    log_v = np.log([r.si[VISCOSITY] for r in plan.runs])
    u = (log_v - math.log(20)) / (math.log(500) - math.log(20))
    assert sorted(np.floor(u * n).astype(int)) == list(range(n))
    q = np.array([r.si[RATE] for r in plan.runs])
    assert sorted(np.floor((q - 1e-8) / 7e-8 * n).astype(int)) == list(range(n))


def test_sampled_design_with_constraints_keeps_only_valid_points(tmp_path: Path) -> None:
    rule = f"{VISCOSITY} < 200 or {RATE} < 4e-8"
    plan = plan_of(tmp_path, constraints=[rule], **sampled("latin_hypercube", 32, seed=1))
    assert plan.dropped > 0
    assert len(plan.runs) + plan.dropped == 32
    assert all(r.si[VISCOSITY] < 200 or r.si[RATE] < 4e-8 for r in plan.runs)


def test_saltelli_design_has_n_times_d_plus_2_runs(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, **sampled("saltelli", 8, seed=0))
    assert len(plan.runs) == 8 * (3 + 2)
    assert plan.design is not None and plan.design.shape == (40, 3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "axes": [
                    {"param": VISCOSITY, "values": [1], "range": {"start": 1, "stop": 2, "num": 2}}
                ]
            },
            "exactly one of values, range, distribution",
        ),
        (
            {
                "axes": [
                    {"param": VISCOSITY, "distribution": {"kind": "uniform", "low": 1, "high": 2}}
                ]
            },
            "use a sampled design",
        ),
        (
            {
                "axes": [{"param": VISCOSITY, "distribution": {"kind": "normal", "mean": 1}}],
                "sampling": {"method": "random", "samples": 4},
            },
            "needs mean and std",
        ),
        (
            {"axes": [{"param": VISCOSITY, "values": [1]}, {"param": VISCOSITY, "values": [2]}]},
            "more than one axis",
        ),
        ({"report": {"map": [VISCOSITY, POROSITY]}}, "are not axes"),
        ({"executor": {"kind": "condor"}}, "executor.kind"),
        ({"sampling": {"method": "grid", "seeds": 3}}, "sampling.seeds"),
        ({"base": "missing.yaml"}, "does not exist"),
    ],
)
def test_invalid_sweep_files_name_the_problem(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match="invalid sweep") as error:
        load_sweep(write_sweep(tmp_path, **changes))
    assert message in str(error.value)


def test_a_point_that_is_not_a_valid_scenario_is_an_error_of_the_plan(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"point 1 \(cement.rheology.viscosity = -5") as error:
        plan_of(tmp_path, axes=[{"param": VISCOSITY, "values": ["50 Pa*s", "-5 Pa*s"]}])
    assert "cement.rheology.viscosity" in str(error.value).split("\n", 1)[1]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("bone.porosty < 1", "'bone.porosty' is not a parameter"),
        ("__import__('os')", "is not allowed"),
        ("bone.porosity.__class__", "'bone.porosity.__class__' is not a parameter"),
        ("[1, 2]", "is not allowed"),
        ("a <", "cannot read"),
    ],
)
def test_expressions_are_checked(expression: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        evaluate(expression, {"bone.porosity": 0.9})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("2**2**2**2**2", "cannot be evaluated: math range error"),  # powers in floats
        ("1 / (bone.porosity - 0.9)", "cannot be evaluated at bone.porosity = 0.9: float div"),
        ("log(bone.porosity - 0.9)", "cannot be evaluated at bone.porosity = 0.9: math domain"),
        ("exp(1000 * bone.porosity)", "cannot be evaluated at bone.porosity = 0.9: math range"),
        ("7 % 0", "cannot be evaluated: integer modulo by zero"),
        ("min()", "cannot be evaluated: min expected at least 1 argument"),
    ],
)
def test_expressions_that_cannot_be_evaluated_name_the_expression(
    expression: str, message: str
) -> None:
    with pytest.raises(PlanError) as info:
        evaluate(expression, {"bone.porosity": 0.9})
    assert str(info.value).startswith(f"{expression!r} {message}"), str(info.value)


def test_a_long_expression_is_refused_before_it_is_read() -> None:
    with pytest.raises(PlanError, match="is longer than 500 characters"):
        evaluate("-" * 1000 + "1", {})


def test_a_derived_parameter_that_cannot_be_evaluated_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sim.cli import main

    expression = f"log({RATE} - {RATE})"
    path = write_sweep(tmp_path, derived={VOLUME: expression})
    assert main(["sweep", "plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{expression!r} cannot be evaluated at {RATE} = " in err
    assert "math domain error" in err and "Traceback" not in err


def test_expressions_compute() -> None:
    values = {"a.b": 2.0, "c": 8.0}
    assert evaluate("a.b * c + sqrt(c / a.b) - max(1, 3)", values) == 2 * 8 + 2 - 3
    assert evaluate("a.b < c and not c < 1 or a.b > 5", values) is True
    assert evaluate("1 < a.b < 3", values) is True


def test_shipped_sweep_files_plan() -> None:
    for path in sorted(SWEEPS.glob("*.yaml")):
        plan = make_plan(load_sweep(path))
        assert plan.runs, path
    assert SPHERE_SWEEP.is_file()


def test_bounds_may_carry_units_and_the_scenario_checks_their_dimension(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        name="units",
        axes=[
            {
                "param": "injection.start_after_mixing",
                "distribution": {"kind": "uniform", "low": "2 min", "high": "8 min"},
            },
            {"param": VOLUME, "range": {"start": "0.5 mL", "stop": "1 mL", "num": 2}},
        ],
        sampling={"method": "random", "samples": 3, "seed": 0},
    )
    ages = [r.si["injection.start_after_mixing"] for r in plan.runs]
    assert min(ages) >= 120 and max(ages) <= 480
    assert sorted({r.si[VOLUME] for r in plan.runs}) == pytest.approx([0.5e-6, 1e-6])
    # plots show the parameters in the units the sweep file wrote them in
    write_plan(tmp_path / "out", plan, tmp_path / "units.yaml", {"kind": "local"})
    shown = json.loads((tmp_path / "out" / "plan.json").read_text())["shown_units"]
    assert shown == {"injection.start_after_mixing": "min", VOLUME: "mL"}
    levels, label = shown_levels(VOLUME, np.array([0.5e-6, 1e-6]), shown)
    assert levels == pytest.approx([0.5, 1.0]) and label == f"{VOLUME} (mL)"
    levels, label = shown_levels("bone.porosity", np.array([0.8]), shown)
    assert levels == pytest.approx([0.8]) and label == "bone.porosity (SI)"
    with pytest.raises(PlanError, match="expected a time"):
        plan_of(
            tmp_path,
            name="wrong",
            axes=[
                {
                    "param": "injection.start_after_mixing",
                    "distribution": {"kind": "uniform", "low": "2 mL", "high": "8 mL"},
                },
            ],
            sampling={"method": "random", "samples": 3, "seed": 0},
        )
    with pytest.raises(ScenarioError, match="different units"):
        load_sweep(
            write_sweep(
                tmp_path,
                name="mixed",
                axes=[{"param": VOLUME, "range": {"start": "1 mL", "stop": "2 min", "num": 2}}],
            )
        )


def test_the_readme_example_plans(tmp_path: Path) -> None:
    """The sweep file shown in README.md is valid and expands as described."""
    text = (REPO / "README.md").read_text()
    block = text.split("```yaml\nname: viscosity_rate\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load("name: viscosity_rate\n" + block)
    data["base"] = str(SPHERE)
    path = tmp_path / "readme.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = make_plan(load_sweep(path))
    assert len(plan.runs) + plan.dropped == 3 * 4 * 2
    assert plan.dropped > 0
    for r in plan.runs:
        assert r.si[RATE] == pytest.approx(r.si[VOLUME] / 80)
        assert r.si[VISCOSITY] * r.si[RATE] < 5e-6


@pytest.mark.parametrize("command", [["status"], ["collect"], ["run-one", "r0001"]])
def test_a_folder_that_is_not_a_sweep_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    from sim.cli import main

    code = main(["sweep", command[0], str(tmp_path / "nowhere"), *command[1:]])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path / 'nowhere'} is not a sweep directory (no plan.json)\n"


def test_an_invalid_sweep_file_is_reported_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sim.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase: nowhere.yaml\naxes: []\n")
    code = main(["sweep", "plan", str(bad)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.startswith("error: ")


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("leaked_volume_total", "the summary has no entry 'leaked_volume_total'; it has: "),
        ("leaked_volume_m3", "leaked_volume_m3 holds several numbers: name one: "),
        ("tip_pressure_final_pa.nedle", "tip_pressure_final_pa has no entry 'nedle'; it has: "),
        ("n_steps.max", "n_steps is one number: leave out .max"),
        ("stop_reason", "stop_reason is text, not a number"),
    ],
)
def test_a_metric_the_summaries_will_not_have_is_refused_when_planned(
    tmp_path: Path, metric: str, message: str
) -> None:
    # found when the sweep is planned, not in the table collected after its runs
    with pytest.raises(PlanError) as info:
        plan_of(tmp_path, report={"metric": metric})
    assert str(info.value).startswith(f"report.metric {metric!r}: {message}"), str(info.value)


@pytest.mark.parametrize("names", [["left", "right"], ["right", "left"]])
def test_a_metric_is_judged_at_every_point(tmp_path: Path, names: list[str]) -> None:
    # an axis may rename the needle: the metric must be in every point's summary, whichever
    # comes first
    axes = [{"param": "injection.needles.0.name", "values": names}]
    with pytest.raises(PlanError) as info:
        plan_of(tmp_path, axes=axes, report={"metric": "tip_pressure_final_pa.right"})
    message = str(info.value)
    assert (
        "tip_pressure_final_pa has no entry 'right'; it has: tip_pressure_final_pa.left" in message
    )
    assert f"(point {names.index('left')}: injection.needles.0.name = 'left')" in message


def test_a_metric_the_summaries_will_have_is_accepted(tmp_path: Path) -> None:
    # names from the scenario: its needle, its route
    for metric in (
        "tip_pressure_final_pa.needle",
        "leaked_volume_m3.far_field",
        "cloud.extent_m.2",
    ):
        assert len(plan_of(tmp_path, report={"metric": metric}).runs) == 6
