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
