"""Helpers shared by the scenario-file unit tests: raw YAML and the messages of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.scenario import ScenarioError, validate_scenario


def read(path: Path) -> dict[str, Any]:
    """The raw mapping of a YAML scenario file."""
    return yaml.safe_load(path.read_text())


def invalid(data: dict[str, Any]) -> str:
    """The message of the ScenarioError that validating `data` must raise."""
    with pytest.raises(ScenarioError) as info:
        validate_scenario(data, "test")
    return str(info.value)


def assert_mentions(message: str, *parts: str) -> None:
    """Every one of `parts` occurs in `message`."""
    for part in parts:
        assert part in message, f"{part!r} is not in the message:\n{message}"


def small_column(volume: float, rate: float = 1e-9, cement: dict | None = None) -> dict[str, Any]:
    """The raw scenario of a 20 mm column of 10 cells (SI numbers), outputs off: the
    smallest run that exercises every part of a step."""
    return {
        "name": "column",
        "geometry": {
            "kind": "column",
            "length": 0.02,
            "width": 0.004,
            "cells_along": 10,
            "cells_across": 1,
        },
        "bone": {"porosity": 0.8, "permeability": 1e-9},
        "cement": cement or {"rheology": {"model": "newtonian", "viscosity": 50.0}},
        "marrow": {"viscosity": 0.01},
        "injection": {"needles": [{"inner_diameter": 0.002, "rate": rate, "volume": volume}]},
        "leak_routes": {"outlet": {"kind": "outlet", "boundary": "outlet"}},
        "output": {"fields": False, "plots": False, "fluoroscopy": False},
    }
