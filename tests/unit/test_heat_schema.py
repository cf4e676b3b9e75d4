"""The `heat` scenario section (sim.scenario.heat): defaults, units and bad input.

Bad thermal input gets a ScenarioError naming the field, the value and what is allowed, from
`validate`, before any mesh is built. Pure Python: runs serially and under mpirun -n 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpi4py import MPI  # noqa: F401  (before anything that may import dolfinx)

# isort: split
import pytest

from sim.scenario import validate_scenario
from sim.scenario.heat import BODY_TEMPERATURE, ROOM_TEMPERATURE

from .scenario_support import assert_mentions, invalid, read

SCENARIOS = Path(__file__).parents[2] / "scenarios"


@pytest.fixture
def default() -> dict[str, Any]:
    return read(SCENARIOS / "vertebroplasty.yaml")


def with_heat(data: dict[str, Any], heat: dict[str, Any]) -> dict[str, Any]:
    return {**data, "heat": heat}


def test_heat_is_off_unless_asked(default):
    assert validate_scenario(default).heat is None


def test_defaults_and_units(default):
    heat = validate_scenario(
        with_heat(default, {"body_temperature": "38 degC", "cement": {"reaction_heat": "110 J/g"}})
    ).heat
    assert heat.body_temperature == pytest.approx(311.15, rel=1e-12)
    assert heat.cement.reaction_heat == pytest.approx(1.1e5, rel=1e-12)
    assert heat.cement.conductivity == 0.17  # the other cement values keep their defaults
    assert heat.boundary.kind == "temperature"
    assert set(heat.damage) == {"bone", "nerve", "bone_arrhenius"}
    # the injected cement: as given, else the syringe temperature of cure kinetics, else 22 C
    assert heat.injected_temperature(None) == ROOM_TEMPERATURE
    assert heat.injected_temperature(294.0) == 294.0
    assert heat.arterial_temperature is None and heat.body_temperature != BODY_TEMPERATURE


@pytest.mark.parametrize(
    ("heat", "parts"),
    [
        (
            {"bone": {"conductivity": -0.3}},
            ("heat.bone.conductivity", "greater than 0", "-0.3"),
        ),
        (
            {"body_temperature": "-300 degC"},
            ("heat.body_temperature", "must lie between 200 and 600 K"),
        ),
        (  # hung the run: the cure's substeps grow with the Arrhenius rate
            {"body_temperature": 1e5},
            ("heat.body_temperature", "(got 100000.0)", "must lie between 200 and 600 K"),
        ),
        (
            {"cement": {"reaction_heat": 1e12}},
            ("heat.cement.reaction_heat", "must be at most 1e+06 J/kg"),
        ),
        (  # took more than 5 minutes of steps
            {"follow_up": "30 day"},
            ("heat.follow_up", "'30 day'", "must be at most 24 h"),
        ),
        (
            {"liver": {"conductivity": 0.5}},
            ("heat.liver", "unknown key", "bone", "marrow", "cement"),
        ),
        (
            {"cement": {"specific_heat": "1450 J/kg"}},
            ("heat.cement.specific_heat", "1450 J/kg", "a specific heat capacity"),
        ),
        (
            {"boundary": {"kind": "water"}},
            ("heat.boundary", "water", "temperature", "bath", "insulated"),
        ),
        (
            {"boundary": {"kind": "bath"}},
            ("heat.boundary.heat_transfer_coefficient", "required"),
        ),
        (
            {"damage": {"bone": {"kind": "cem43", "threshold": "-1 min"}}},
            ("heat.damage.bone", "threshold", "greater than 0"),
        ),
        ({"damage": {}}, ("heat", "damage", "at least one model")),
        ({"perfusion": -1e-3}, ("heat.perfusion", "greater than or equal to 0")),
        (
            {"probes": {"canal": {"boundary": "spinal_cord"}}},
            ("heat.probes.canal.boundary", "spinal_cord", "posterior_wall"),
        ),
        (
            {"probes": {"canal": "[-30, 0, 0] mm"}},
            ("heat.probes.canal", "[-30, 0, 0] mm", "not in the bone"),
        ),
    ],
)
def test_bad_thermal_input_names_the_field(default, heat, parts):
    assert_mentions(invalid(with_heat(default, heat)), *parts)
