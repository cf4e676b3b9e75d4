"""Scenario files: typed, validated input. See README.md for the format reference."""

from sim.scenario.loader import ScenarioError, apply_override, load_scenario, validate_scenario
from sim.scenario.model import Scenario

__all__ = ["Scenario", "ScenarioError", "apply_override", "load_scenario", "validate_scenario"]
