"""Unit tests of the cement and injection-protocol schema (sim.scenario.cement, .injection).

Every bad input must give a ScenarioError whose message names the field (dotted path), the
bad value and what is allowed. Scenarios are the shipped verification case A (ball) or the
default vertebroplasty, modified as a dict and validated with `validate_scenario`; presets are
the files in sim/data/cements/, merged under the scenario's own `cement` keys.

Pure Python, each rank writes its own files: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mpi4py import MPI  # noqa: F401  (before anything that may import dolfinx)

# isort: split
import pytest
import yaml

from sim.needle import GAUGE_INNER_DIAMETER
from sim.scenario import ScenarioError, load_scenario, validate_scenario
from sim.scenario.cement import (
    BinghamRheology,
    CarreauYasudaRheology,
    Cement,
    CrossRheology,
    CureKineticsSpec,
    ExponentialCuringSpec,
    HerschelBulkleyRheology,
    NewtonianRheology,
    PowerLawRheology,
    TabulatedCuringSpec,
)
from sim.scenario.loader import PRESET_DIR, cement_presets

from .scenario_support import assert_mentions, invalid, read

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
VERTEBROPLASTY = SCENARIOS / "vertebroplasty.yaml"
SPHERE = SCENARIOS / "verification" / "sphere_newtonian.yaml"
PRESETS = ["vertebroplasty_high_viscosity", "vertebroplasty_low_viscosity"]


@pytest.fixture
def sphere() -> dict[str, Any]:
    """The raw mapping of the shipped verification scenario A (ball, one needle)."""
    return read(SPHERE)


@pytest.fixture
def vb() -> dict[str, Any]:
    """The raw mapping of the shipped vertebroplasty scenario (one needle with a tip)."""
    return read(VERTEBROPLASTY)


def with_cement(base: dict[str, Any], cement: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    data["cement"] = cement
    return data


def cement_of(base: dict[str, Any], cement: dict[str, Any]) -> Cement:
    return validate_scenario(with_cement(base, cement)).cement


def power_law(consistency: Any = 100.0, n: Any = 0.6, **extra: Any) -> dict[str, Any]:
    return {"rheology": {"model": "power_law", "consistency": consistency, "n": n, **extra}}


def newtonian_table(points: list[list[Any]], **rheology: Any) -> dict[str, Any]:
    return {
        "rheology": {"model": "newtonian", **rheology},
        "curing": {"law": "table", "reference_age": "4 min", "points": points},
    }


# --- rheology: flow index ------------------------------------------------------------------


def test_negative_flow_index_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(n=-0.5)))
    assert_mentions(message, "cement.rheology.n", "greater than 0", "(got -0.5)")


def test_zero_flow_index_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(n=0)))
    assert_mentions(message, "cement.rheology.n", "greater than 0", "(got 0)")


@pytest.mark.parametrize("model", ["power_law", "herschel_bulkley", "cross", "carreau_yasuda"])
def test_shear_thickening_is_named_and_refused(sphere: dict[str, Any], model: str) -> None:
    rheology: dict[str, Any] = {"model": model, "n": 1.5}
    if model in ("power_law", "herschel_bulkley"):
        rheology["consistency"] = "100 Pa*s^1.5"
    else:
        rheology.update(viscosity="100 Pa*s", time_constant="1 s")
    if model == "herschel_bulkley":
        rheology["yield_stress"] = "50 Pa"
    message = invalid(with_cement(sphere, {"rheology": rheology}))
    assert_mentions(
        message,
        "cement.rheology",
        "n = 1.5",
        "shear-thickening",
        "shear-thinning (n <= 1)",
        "allow_shear_thickening: true",
    )


def test_shear_thickening_is_accepted_when_allowed(sphere: dict[str, Any]) -> None:
    cement = cement_of(sphere, power_law("100 Pa*s^1.5", 1.5, allow_shear_thickening=True))
    assert isinstance(cement.rheology, PowerLawRheology)
    assert (cement.rheology.n, cement.rheology.consistency) == (1.5, 100.0)


def test_newtonian_flow_index_is_not_shear_thickening(sphere: dict[str, Any]) -> None:
    cement = cement_of(sphere, power_law("100 Pa*s", 1.0))
    assert (cement.rheology.n, cement.rheology.consistency) == (1.0, 100.0)


# --- rheology: porous closure ---------------------------------------------------------------


def test_default_closure_is_christopher_middleman(sphere: dict[str, Any]) -> None:
    rheology = cement_of(sphere, power_law()).rheology
    assert (rheology.closure, rheology.shift_factor) == ("christopher_middleman", None)


def test_unknown_closure_lists_the_closures(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(closure="ergun")))
    assert_mentions(
        message,
        "cement.rheology.closure",
        "'christopher_middleman', 'capillary_bundle' or 'shift_factor'",
        "(got 'ergun')",
    )


def test_shift_factor_closure_needs_its_factor(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(closure="shift_factor")))
    assert_mentions(message, "cement.rheology", "closure 'shift_factor' needs a shift_factor")


def test_shift_factor_beside_a_named_closure_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(shift_factor=2.0)))
    assert_mentions(
        message, "shift_factor = 2", "closure 'christopher_middleman'", "closure: shift_factor"
    )


def test_shift_factor_closure_with_its_factor(sphere: dict[str, Any]) -> None:
    rheology = cement_of(sphere, power_law(closure="shift_factor", shift_factor=3.0)).rheology
    assert (rheology.closure, rheology.shift_factor) == ("shift_factor", 3.0)


def test_negative_shift_factor_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law(closure="shift_factor", shift_factor=-1.0)))
    assert_mentions(message, "cement.rheology.shift_factor", "greater than 0")


# --- rheology: consistency units -----------------------------------------------------------


@pytest.mark.parametrize("value", ["100 Pa*s", "100 Pa*s^0.5", "100 Pa", "100 s"])
def test_consistency_in_wrong_units_is_rejected(sphere: dict[str, Any], value: str) -> None:
    message = invalid(with_cement(sphere, power_law(value, 0.6)))
    assert_mentions(
        message, "cement.rheology", repr(value), "not a consistency for n = 0.6", "Pa*s^0.6"
    )


@pytest.mark.parametrize("value", ["100 Pa*s^0.6", "100000 mPa*s^0.6", 100.0, 100, "100"])
def test_consistency_in_units_of_the_flow_index_is_si(sphere: dict[str, Any], value: Any) -> None:
    cement = cement_of(sphere, power_law(value, 0.6))
    assert cement.rheology.consistency == 100.0


def test_herschel_bulkley_consistency_and_yield_stress_units(sphere: dict[str, Any]) -> None:
    rheology = {
        "model": "herschel_bulkley",
        "consistency": "20000 mPa*s^0.5",
        "n": 0.5,
        "yield_stress": "0.1 kPa",
    }
    cement = cement_of(sphere, {"rheology": rheology})
    assert isinstance(cement.rheology, HerschelBulkleyRheology)
    assert (cement.rheology.consistency, cement.rheology.yield_stress) == (20.0, 100.0)
    rheology["consistency"] = "20 Pa*s"
    message = invalid(with_cement(sphere, {"rheology": rheology}))
    assert_mentions(message, "cement.rheology", "'20 Pa*s'", "not a consistency for n = 0.5")


def test_consistency_with_an_unknown_unit_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law("150 Pa*x^0.6", 0.6)))
    assert_mentions(message, "cement.rheology", "'150 Pa*x^0.6'", "Pa*s^0.6")


def test_negative_consistency_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, power_law("-100 Pa*s^0.6", 0.6)))
    assert_mentions(message, "cement.rheology", "consistency must be > 0", "got -100")


def test_rheology_without_its_value_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, {"rheology": {"model": "power_law", "n": 0.6}}))
    assert_mentions(message, "cement", "power_law law needs its viscosity/consistency")


def test_every_rheology_model_validates(sphere: dict[str, Any]) -> None:
    models = {
        "newtonian": ({"viscosity": "100 Pa*s"}, NewtonianRheology),
        "power_law": ({"consistency": "150 Pa*s^0.6", "n": 0.6}, PowerLawRheology),
        "cross": ({"viscosity": "1 kPa*s", "n": 0.4, "time_constant": "2 s"}, CrossRheology),
        "carreau_yasuda": (
            {"viscosity": "1 kPa*s", "n": 0.4, "time_constant": "2 s", "a": 1.5},
            CarreauYasudaRheology,
        ),
        "herschel_bulkley": (
            {"consistency": "150 Pa*s^0.6", "n": 0.6, "yield_stress": "50 Pa"},
            HerschelBulkleyRheology,
        ),
        "bingham": ({"viscosity": "100 Pa*s", "yield_stress": "50 Pa"}, BinghamRheology),
    }
    for model, (values, cls) in models.items():
        rheology = cement_of(sphere, {"rheology": {"model": model, **values}}).rheology
        assert type(rheology) is cls, model
        assert rheology.primary() in (100.0, 150.0, 1000.0), model


@pytest.mark.parametrize("model", ["cross", "carreau_yasuda"])
def test_infinite_viscosity_takes_units(sphere: dict[str, Any], model: str) -> None:
    rheology = {
        "model": model,
        "viscosity": "1 kPa*s",
        "n": 0.4,
        "time_constant": "2 s",
        "infinite_viscosity": "2000 mPa*s",
    }
    try:
        cement = cement_of(sphere, {"rheology": rheology})
    except ScenarioError as exc:
        raise AssertionError(str(exc)) from None
    assert cement.rheology.infinite_viscosity == 2.0


def test_negative_infinite_viscosity_is_rejected(sphere: dict[str, Any]) -> None:
    rheology = {
        "model": "cross",
        "viscosity": "1 kPa*s",
        "n": 0.4,
        "time_constant": "2 s",
        "infinite_viscosity": -1,
    }
    message = invalid(with_cement(sphere, {"rheology": rheology}))
    assert_mentions(message, "cement.rheology.infinite_viscosity", "greater than or equal to 0")


# --- curing tables -------------------------------------------------------------------------


def test_decreasing_viscosity_table_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "50 Pa*s"], ["4 min", "100 Pa*s"], ["6 min", "80 Pa*s"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(
        message, "cement.curing", "must not decrease with age (curing)", "[50.0, 100.0, 80.0]"
    )


def test_table_with_unsorted_ages_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "50 Pa*s"], ["6 min", "80 Pa*s"], ["4 min", "100 Pa*s"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(
        message, "cement.curing", "ages must increase strictly", "[120.0, 360.0, 240.0] s"
    )


def test_table_with_a_repeated_age_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["4 min", "100 Pa*s"], ["240 s", "120 Pa*s"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "ages must increase strictly", "[240.0, 240.0] s")


def test_table_that_disagrees_with_the_rheology_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "50 Pa*s"], ["4 min", "100 Pa*s"]], viscosity="60 Pa*s")
    message = invalid(with_cement(sphere, table))
    assert_mentions(
        message,
        "cement: rheology gives 60 at the reference state",
        "the table gives 100 at reference_age 240 s",
        "leave the rheology's value out or make them agree",
    )


def test_table_that_agrees_with_the_rheology_is_accepted(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "50 Pa*s"], ["4 min", "100 Pa*s"]], viscosity="100 Pa*s")
    cement = cement_of(sphere, table)
    assert cement.rheology.viscosity == 100.0
    assert isinstance(cement.curing, TabulatedCuringSpec)


def test_table_value_between_rows_is_log_linear(sphere: dict[str, Any]) -> None:
    # reference age 3 min, halfway between 100 and 400 Pa*s in log: 200 Pa*s
    table = newtonian_table([["2 min", "100 Pa*s"], ["4 min", "400 Pa*s"]])
    table["curing"]["reference_age"] = "3 min"
    assert cement_of(sphere, table).rheology.viscosity == pytest.approx(200.0, rel=1e-12)


def test_three_column_table_with_a_newtonian_rheology_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", 50, 0.7], ["4 min", 100, 0.6]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement", "flow index column needs a power-law rheology")


def test_three_column_table_with_a_power_law_is_accepted(sphere: dict[str, Any]) -> None:
    cement = cement_of(
        sphere,
        {
            "rheology": {"model": "power_law", "n": 0.6},
            "curing": {
                "law": "table",
                "reference_age": "4 min",
                "points": [["2 min", "50 Pa*s^0.7", 0.7], ["4 min", "100 Pa*s^0.6", 0.6]],
            },
        },
    )
    assert cement.curing.points == [[120.0, 50.0, 0.7], [240.0, 100.0, 0.6]]
    assert cement.rheology.consistency == pytest.approx(100.0, rel=1e-14)


def test_table_rows_of_mixed_width_are_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", 50], ["4 min", 100, 0.6]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "must all be [age, value] or all [age, value, n]")


def test_table_with_a_non_positive_value_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", 0], ["4 min", 100]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "values must be > 0", "[0.0, 100.0]")


def test_table_age_in_wrong_units_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 Pa", "50 Pa*s"], ["4 min", "100 Pa*s"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "'2 Pa'", "expected a time")


def test_table_value_in_wrong_units_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "50 m"], ["4 min", "100 m"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "'50 m'")


def test_unreadable_table_value_is_rejected(sphere: dict[str, Any]) -> None:
    table = newtonian_table([["2 min", "fifty"], ["4 min", "100 Pa*s"]])
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", "'fifty'")


def test_table_csv_with_three_columns_and_a_newtonian_rheology_is_rejected(
    sphere: dict[str, Any], tmp_path: Path
) -> None:
    csv = tmp_path / "rheometry.csv"
    csv.write_text("age_s,consistency_pa_sn,n\n120,50,0.7\n240,100,0.6\n")
    table = newtonian_table([])
    table["curing"] = {"law": "table", "reference_age": "4 min", "file": str(csv)}
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement", "flow index column needs a power-law rheology")


def test_table_csv_with_a_non_number_is_rejected(sphere: dict[str, Any], tmp_path: Path) -> None:
    csv = tmp_path / "rheometry.csv"
    csv.write_text("age_s,viscosity_pa_s\n120,50\n240,lots\n")
    table = newtonian_table([])
    table["curing"] = {"law": "table", "reference_age": "4 min", "file": str(csv)}
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", str(csv), "'lots'")


def test_empty_table_csv_is_rejected(sphere: dict[str, Any], tmp_path: Path) -> None:
    csv = tmp_path / "rheometry.csv"
    csv.write_text("")
    table = newtonian_table([])
    table["curing"] = {"law": "table", "reference_age": "4 min", "file": str(csv)}
    message = invalid(with_cement(sphere, table))
    assert_mentions(message, "cement.curing", str(csv), "age_s,viscosity_pa_s", "an empty file")


# --- curing laws ---------------------------------------------------------------------------


def test_unknown_curing_law_lists_the_laws(sphere: dict[str, Any]) -> None:
    cement = {"rheology": {"model": "newtonian", "viscosity": 100}, "curing": {"law": "linear"}}
    message = invalid(with_cement(sphere, cement))
    assert_mentions(
        message,
        "cement.curing.law",
        "'linear'",
        "'none'",
        "'exponential'",
        "'table'",
        "'cure_kinetics'",
    )


def test_exponential_curing_needs_a_positive_time_constant(sphere: dict[str, Any]) -> None:
    curing = {"law": "exponential", "reference_age": "4 min", "time_constant": "0 s"}
    cement = {"rheology": {"model": "newtonian", "viscosity": 100}, "curing": curing}
    message = invalid(with_cement(sphere, cement))
    assert_mentions(message, "cement.curing.time_constant", "greater than 0")


def test_cure_kinetics_temperatures_in_celsius_are_kelvin(sphere: dict[str, Any]) -> None:
    cement = cement_of(
        sphere,
        {
            "preset": "vertebroplasty_low_viscosity",
            "curing": {"syringe_temperature": "25 degC", "bone_temperature": "37 degC"},
        },
    )
    assert isinstance(cement.curing, CureKineticsSpec)
    assert cement.curing.syringe_temperature == pytest.approx(298.15, rel=1e-14)
    assert cement.curing.bone_temperature == pytest.approx(310.15, rel=1e-14)


def test_gel_conversion_above_one_is_rejected(sphere: dict[str, Any]) -> None:
    cement = {"preset": "vertebroplasty_low_viscosity", "curing": {"gel_conversion": 1.5}}
    message = invalid(with_cement(sphere, cement))
    assert_mentions(message, "cement.curing.gel_conversion", "less than or equal to 1", "1.5")


# --- presets -------------------------------------------------------------------------------


def test_shipped_presets_are_listed() -> None:
    assert cement_presets() == PRESETS


def test_unknown_preset_lists_the_known_ones(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, {"preset": "palacos_r"}))
    assert_mentions(
        message,
        "cement.preset",
        "'palacos_r' is not a shipped cement",
        "known: vertebroplasty_high_viscosity, vertebroplasty_low_viscosity",
    )


def test_preset_that_is_not_a_name_is_rejected(sphere: dict[str, Any]) -> None:
    message = invalid(with_cement(sphere, {"preset": ["vertebroplasty_low_viscosity"]}))
    assert_mentions(message, "cement.preset", "is not a shipped cement", "known:")


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_loads(sphere: dict[str, Any], name: str) -> None:
    raw = read(PRESET_DIR / f"{name}.yaml")
    assert raw["name"] == name
    expected = raw["cement"]
    cement = cement_of(sphere, {"preset": name})
    assert cement.preset == name
    assert isinstance(cement.rheology, PowerLawRheology)
    assert isinstance(cement.curing, CureKineticsSpec)
    assert cement.rheology.consistency == expected["rheology"]["consistency"]
    assert cement.rheology.n == expected["rheology"]["n"]
    assert cement.set_viscosity == expected["set_viscosity"]
    dumped = cement.curing.model_dump()
    for key, value in expected["curing"].items():
        assert dumped[key] == value, key


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_has_a_source_for_every_value(name: str) -> None:
    raw = read(PRESET_DIR / f"{name}.yaml")

    def leaves(node: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            out += leaves(value, path + ".") if isinstance(value, dict) else [path]
        return out

    missing = [k for k in leaves(raw["cement"]) if k not in raw["sources"]]
    assert missing == [], f"{name}: no source for {missing}"


def test_scenario_overrides_one_preset_value(sphere: dict[str, Any]) -> None:
    cement = cement_of(sphere, {"preset": "vertebroplasty_low_viscosity", "rheology": {"n": 0.5}})
    assert isinstance(cement.rheology, PowerLawRheology)
    assert cement.rheology.n == 0.5
    assert cement.rheology.consistency == 45.0  # the preset's
    assert isinstance(cement.curing, CureKineticsSpec)
    assert cement.curing.c1 == 2.69
    assert cement.set_viscosity == 75000.0


def test_scenario_overrides_a_preset_curing_value(sphere: dict[str, Any]) -> None:
    cement = cement_of(sphere, {"preset": "vertebroplasty_high_viscosity", "curing": {"c1": 3.0}})
    assert isinstance(cement.curing, CureKineticsSpec)
    assert cement.curing.c1 == 3.0
    assert cement.curing.k1_prefactor == 22000.0  # the preset's
    assert cement.rheology.consistency == 440.0


def test_changing_the_preset_model_replaces_the_rheology(sphere: dict[str, Any]) -> None:
    cement = cement_of(
        sphere,
        {
            "preset": "vertebroplasty_low_viscosity",
            "rheology": {"model": "newtonian", "viscosity": "80 Pa*s"},
        },
    )
    # nothing of the preset's power law (consistency, n, closure) is carried over
    assert cement.rheology == NewtonianRheology(model="newtonian", viscosity=80.0)
    assert isinstance(cement.curing, CureKineticsSpec)  # the curing block stays


def test_changing_the_preset_curing_law_replaces_the_curing(sphere: dict[str, Any]) -> None:
    cement = cement_of(
        sphere,
        {
            "preset": "vertebroplasty_low_viscosity",
            "curing": {"law": "exponential", "reference_age": "4 min", "time_constant": "2 min"},
        },
    )
    assert cement.curing == ExponentialCuringSpec(
        law="exponential", reference_age=240.0, time_constant=120.0
    )
    assert cement.rheology.consistency == 45.0


def test_preset_override_keys_are_validated(sphere: dict[str, Any]) -> None:
    message = invalid(
        with_cement(sphere, {"preset": "vertebroplasty_low_viscosity", "rheology": {"n": 1.2}})
    )
    assert_mentions(message, "cement.rheology", "n = 1.2", "shear-thickening")
    message = invalid(
        with_cement(sphere, {"preset": "vertebroplasty_low_viscosity", "rheology": {"k": 1}})
    )
    assert_mentions(message, "cement.rheology.k", "unknown key", "allowed here:", "consistency")


def test_preset_from_a_file_with_a_set_override(tmp_path: Path, sphere: dict[str, Any]) -> None:
    data = with_cement(sphere, {"preset": "vertebroplasty_high_viscosity"})
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    scenario = load_scenario(path, ["cement.rheology.n=0.5", "cement.set_viscosity=50 kPa*s"])
    assert (scenario.cement.rheology.n, scenario.cement.rheology.consistency) == (0.5, 440.0)
    assert scenario.cement.set_viscosity == 50000.0
    assert read(path) == data  # the file is not changed


def test_preset_does_not_change_the_input_mapping(sphere: dict[str, Any]) -> None:
    data = with_cement(sphere, {"preset": "vertebroplasty_low_viscosity", "rheology": {"n": 0.5}})
    before = copy.deepcopy(data)
    validate_scenario(data)
    assert data == before


# --- needles: gauge and protocol -----------------------------------------------------------


def test_unknown_gauge_lists_the_known_gauges(vb: dict[str, Any]) -> None:
    vb["injection"]["needles"][0]["gauge"] = 9
    message = invalid(vb)
    known = ", ".join(f"{g} G" for g in sorted(GAUGE_INNER_DIAMETER))
    assert known == "8 G, 10 G, 11 G, 13 G, 15 G"
    assert_mentions(message, "injection.needles.0", "gauge 9 is not in the table", known)


def test_rate_and_syringe_pressure_together_are_rejected(vb: dict[str, Any]) -> None:
    vb["injection"]["needles"][0]["syringe_pressure"] = "1 MPa"
    message = invalid(vb)
    assert_mentions(
        message,
        "injection.needles.0",
        "give exactly one protocol",
        "got ['rate', 'syringe_pressure']",
    )


def test_no_protocol_is_rejected(vb: dict[str, Any]) -> None:
    del vb["injection"]["needles"][0]["rate"]
    del vb["injection"]["needles"][0]["volume"]
    message = invalid(vb)
    assert_mentions(
        message,
        "injection.needles.0",
        "give exactly one protocol: 'rate' (with 'volume'), 'schedule', 'aliquots' or "
        "'syringe_pressure' (with 'volume'); got none",
    )


def test_schedule_and_aliquots_together_are_rejected(vb: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"], needle["volume"]
    needle["schedule"] = [{"rate": "2 mL/min", "volume": "1 mL"}]
    needle["aliquots"] = {"volume": "1 mL", "count": 2, "rate": "2 mL/min", "pause": "30 s"}
    message = invalid(vb)
    assert_mentions(message, "injection.needles.0", "got ['schedule', 'aliquots']")


@pytest.mark.parametrize(
    "entry",
    [
        {"rate": "2 mL/min"},
        {"volume": "1 mL"},
        {"rate": "2 mL/min", "volume": "1 mL", "pause": "30 s"},
        {"volume": "1 mL", "pause": "30 s"},
        {},
    ],
    ids=["rate", "volume", "all", "volume_pause", "empty"],
)
def test_bad_schedule_entry_is_rejected(vb: dict[str, Any], entry: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"], needle["volume"]
    needle["schedule"] = [{"rate": "2 mL/min", "volume": "1 mL"}, {"pause": "30 s"}, entry]
    message = invalid(vb)
    assert_mentions(message, "injection.needles.0.schedule.2", "either {rate, volume} or {pause}")


def test_schedule_with_a_volume_beside_it_is_rejected(vb: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"]
    needle["schedule"] = [{"rate": "2 mL/min", "volume": "1 mL"}]
    message = invalid(vb)
    assert_mentions(message, "injection.needles.0", "'volume' goes with 'rate' or")


def test_syringe_pressure_without_volume_is_rejected(vb: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"], needle["volume"]
    needle["syringe_pressure"] = "1 MPa"
    message = invalid(vb)
    assert_mentions(message, "injection.needles.0", "'volume' goes with", "'syringe_pressure'")


def test_max_rate_without_syringe_pressure_is_rejected(vb: dict[str, Any]) -> None:
    vb["injection"]["needles"][0]["max_rate"] = "5 mL/min"
    message = invalid(vb)
    assert_mentions(
        message, "injection.needles.0", "'max_rate' applies to pressure-controlled injection"
    )


def test_pressure_controlled_needle_is_accepted(vb: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"]
    needle.update(syringe_pressure="1.5 MPa", max_rate="6 mL/min")
    [parsed] = validate_scenario(vb).injection.needles
    assert parsed.syringe_pressure == 1.5e6
    assert parsed.max_rate == pytest.approx(1e-7, rel=1e-14)
    assert parsed.total_volume == 4e-6
    assert parsed.steps() == []


def _second_needle(vb: dict[str, Any], **protocol: Any) -> dict[str, Any]:
    first = vb["injection"]["needles"][0]
    second = {**first, "name": "right", "tip": "[6, 4, 0] mm", **protocol}
    vb["injection"]["needles"].append(second)
    return second


def test_after_an_unknown_needle_is_rejected(vb: dict[str, Any]) -> None:
    _second_needle(vb, after="left")
    message = invalid(vb)
    assert_mentions(message, "injection", "needle 'right': after 'left' is not a needle")


def test_after_itself_is_rejected(vb: dict[str, Any]) -> None:
    _second_needle(vb, after="right")
    assert_mentions(invalid(vb), "injection", "needle 'right' cannot start after itself")


def test_cycle_of_after_is_rejected(vb: dict[str, Any]) -> None:
    _second_needle(vb, after="needle")
    vb["injection"]["needles"][0]["after"] = "right"
    message = invalid(vb)
    assert_mentions(message, "injection", "in a cycle", "['needle', 'right']")


def test_longer_cycle_of_after_is_rejected(vb: dict[str, Any]) -> None:
    vb["injection"]["needles"][0]["after"] = "third"
    _second_needle(vb, after="needle")
    vb["injection"]["needles"].append(
        {**vb["injection"]["needles"][0], "name": "third", "tip": "[8, 0, 0] mm", "after": "right"}
    )
    message = invalid(vb)
    assert_mentions(message, "injection", "in a cycle", "['needle', 'right', 'third']")


def test_start_and_after_together_are_rejected(vb: dict[str, Any]) -> None:
    _second_needle(vb, after="needle", start="1 min")
    assert_mentions(invalid(vb), "injection.needles.1", "give 'start' or 'after', not both")


def test_duplicate_needle_names_are_rejected(vb: dict[str, Any]) -> None:
    _second_needle(vb, name="needle")
    message = invalid(vb)
    assert_mentions(message, "injection", "needle names must be unique", "['needle', 'needle']")


def test_sequential_needles_are_accepted(vb: dict[str, Any]) -> None:
    _second_needle(vb, after="needle")
    first, second = validate_scenario(vb).injection.needles
    assert (first.after, second.after) == (None, "needle")
    assert second.tip == (0.006, 0.004, 0.0)


def test_aliquots_are_accepted_and_expand(vb: dict[str, Any]) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"], needle["volume"]
    needle["aliquots"] = {"volume": "1 mL", "count": 3, "rate": "2 mL/min", "pause": "30 s"}
    [parsed] = validate_scenario(vb).injection.needles
    steps = parsed.steps()
    assert [s.pause for s in steps] == [None, 30.0, None, 30.0, None]
    assert [s.volume for s in steps if s.volume is not None] == [1e-6] * 3
    assert parsed.total_volume == pytest.approx(3e-6, rel=1e-14)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [("count", 0, "greater than or equal to 1"), ("pause", "-1 s", "greater than or equal")],
)
def test_bad_aliquots_are_rejected(vb: dict[str, Any], key: str, value: Any, allowed: str) -> None:
    needle = vb["injection"]["needles"][0]
    del needle["rate"], needle["volume"]
    needle["aliquots"] = {"volume": "1 mL", "count": 3, "rate": "2 mL/min", "pause": "30 s"}
    needle["aliquots"][key] = value
    message = invalid(vb)
    assert_mentions(message, f"injection.needles.0.aliquots.{key}", allowed)


# --- set viscosity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cement", "start"),
    [
        ({"rheology": {"model": "newtonian", "viscosity": 100.0}}, 100.0),
        (power_law(consistency=300.0), 300.0),  # its viscosity at 1/s
    ],
    ids=["newtonian", "power law"],
)
def test_a_set_viscosity_not_above_the_starting_one_is_refused(
    sphere: dict[str, Any], cement: dict[str, Any], start: float
) -> None:
    # it caps the curing cement where it sets: below its starting viscosity it would cap the
    # fresh cement (at 1e-6 Pa·s, 3.4 of the default scenario's 4 mL leaked)
    for cap in (1e-6, start):
        message = invalid(with_cement(sphere, {**cement, "set_viscosity": cap}))
        assert_mentions(
            message,
            f"cement.set_viscosity: {cap:g} Pa·s is not above the cement's viscosity when the "
            f"injection starts ({start:g} Pa·s at a shear rate of 1/s, 0 s after mixing)",
        )
    assert cement_of(sphere, {**cement, "set_viscosity": start + 1.0}).set_viscosity == start + 1


def test_the_set_viscosity_is_judged_at_the_injection_start(vb: dict[str, Any]) -> None:
    # a curve described by its set point: 75 000 Pa·s at 15 min, injected from 4 min, when
    # the cement is at 75 000 exp(-11 / 2) = 307 Pa·s; from 20 min at 75 000 exp(2.5): set
    cement = {
        "rheology": {"model": "newtonian", "viscosity": "75000 Pa*s"},
        "curing": {"law": "exponential", "reference_age": "15 min", "time_constant": "2 min"},
        "set_viscosity": "75000 Pa*s",
    }
    assert cement_of(vb, cement).set_viscosity == 75000.0
    late = with_cement(vb, cement)
    late["injection"]["start_after_mixing"] = "20 min"
    assert_mentions(
        invalid(late),
        "cement.set_viscosity: 75000 Pa·s is not above the cement's viscosity when the "
        "injection starts (9.137e+05 Pa·s at a shear rate of 1/s, 1200 s after mixing)",
        "check injection.start_after_mixing",
    )
