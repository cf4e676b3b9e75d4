"""A new physics component is added in three places only: its module, its schema section and
the registry (issue 10).

The test adds a small component here, as a user or a developer would: `CementContact`, the time
(s) each vertex has spent with cement at S >= a threshold. Its module is this file, its schema
section a `contact` field on a Scenario subclass, its registry entry one item in
OPTIONAL_COMPONENTS. Nothing else is edited, and a run writes its field, time-series column,
summary entry (which the section declares, for sweeps), report row and figure. A second
check reads the package: the heat component, added the same way, is named nowhere outside
its module, its schema section and those two registrations. Runs serially and under
mpirun -n 2.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dolfinx import fem
from mpi4py import MPI

import sim
from sim.components.base import Component, Figure, OutputField, StepData
from sim.outputs.plots import RunPlots
from sim.outputs.summary_layout import metric_problem, summary_layout
from sim.problem import OPTIONAL_COMPONENTS, InjectionProblem
from sim.run import run_scenario
from sim.scenario.base import NUMBER, Section
from sim.scenario.model import Scenario
from sim.state import State

from ..unit.scenario_support import small_column

VOLUME = 2e-8  # m³
RATE = 1e-9  # m³/s


class Contact(Section):
    """The schema section: the saturation (-) that counts as contact, and what the component
    adds to summary.json (so that a sweep may name it as its report.metric)."""

    threshold: float = 0.5

    def summary_entries(self) -> dict[str, Any]:
        return {"contact_time_max_s": NUMBER}


class ContactScenario(Scenario):
    """The scenario with the new section."""

    contact: Contact | None = None


class CementContact(Component):
    """Time (s) each vertex has spent at S >= threshold."""

    def __init__(self, pb: InjectionProblem) -> None:
        assert isinstance(pb.scenario, ContactScenario) and pb.scenario.contact is not None
        self.threshold = pb.scenario.contact.threshold
        self.time = fem.Function(pb.disc.V, name="contact_time")
        self.n = pb.disc.n_owned
        self.comm = pb.comm

    def fields(self) -> list[OutputField]:
        return [OutputField("contact_time", self.time, "point")]

    def after_transport(self, state: State, step: StepData) -> None:
        self.time.x.array[: self.n] += step.dt * (step.s_new >= self.threshold)

    def longest(self) -> float:
        local = float(self.time.x.array[: self.n].max(initial=0.0))
        return self.comm.allreduce(local, op=MPI.MAX)

    def columns(self, state: State) -> dict[str, float]:
        return {"contact_time_max_s": self.longest()}

    def summary(self, state: State) -> dict[str, object]:
        return {"contact_time_max_s": self.longest()}

    def figures(self, plots: RunPlots) -> list[Figure]:
        figure = Figure("contact_midplanes.png", "Cement contact time, sections", True)
        plots.sections(self.fields()[0], "contact time (s)", figure.file)
        return [figure]

    def report_rows(self, summary: dict[str, Any]) -> list[tuple[str, str]]:
        return [("Longest cement contact", f"{summary['contact_time_max_s']:.1f} s")]


@pytest.fixture
def contact_run(shared_tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(OPTIONAL_COMPONENTS, "contact", CementContact)
    data = small_column(VOLUME, RATE) | {"contact": {"threshold": 0.5}}
    data["output"] = {"fields": True, "plots": True, "fluoroscopy": False, "report": True}
    scenario = ContactScenario.model_validate(data)
    run_dir = shared_tmp_path / "contact"
    run_scenario(scenario, run_dir)
    return run_dir


def test_a_component_added_in_three_places_reaches_every_output(contact_run: Path) -> None:
    summary = json.loads((contact_run / "summary.json").read_text())
    longest = summary["contact_time_max_s"]
    # the inlet end is in contact from (almost) the start to the end of the injection
    assert VOLUME / RATE * 0.8 < longest <= VOLUME / RATE * (1 + 1e-12)
    with (contact_run / "timeseries.csv").open() as f:
        column = np.array([float(r["contact_time_max_s"]) for r in csv.DictReader(f)])
    assert np.all(np.diff(column) >= 0.0)
    assert column[-1] == pytest.approx(longest, rel=1e-12)
    assert 'Name="contact_time"' in (contact_run / "fields.xdmf").read_text()
    report = (contact_run / "report.html").read_text()
    assert f"<th>Longest cement contact</th><td>{longest:.1f} s</td>" in report
    assert "Cement contact time, sections" in report
    # the bone's statistics (uniform here) come before the components' rows
    bone = "<th>Bone porosity (volume-weighted)</th><td>mean 0.8, CV 0.00, 0.8 to 0.8</td>"
    assert report.index(bone) < report.index("Longest cement contact")
    assert (contact_run / "contact_midplanes.png").stat().st_size > 0
    # its entry is one a sweep's report.metric may name, judged before any run
    scenario = ContactScenario.model_validate(small_column(VOLUME, RATE) | {"contact": {}})
    assert metric_problem(summary_layout(scenario), "contact_time_max_s") is None


def _names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every identifier, import and string in code (docstrings left out)."""
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom):
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                out.append((node.lineno, node.value))
    return out


@pytest.mark.serial
def test_heat_is_named_only_in_its_module_schema_section_and_registrations() -> None:
    package = Path(sim.__file__).parent
    own = {package / "components" / "heat.py", package / "scenario" / "heat.py"}
    registrations = {
        (package / "problem.py", "sim.components.heat.heat_component"),
        (package / "problem.py", "heat"),  # the registry's key
        (package / "problem.py", "heat_component"),
        (package / "scenario" / "model.py", "sim.scenario.heat.Heat"),
        (package / "scenario" / "model.py", "Heat"),
        (package / "scenario" / "model.py", "heat"),
    }
    mentions = re.compile(r"heat|temperature_(peak|max|k)", re.IGNORECASE)
    found = [
        f"{path.relative_to(package)}:{line}: {text}"
        for path in sorted(package.rglob("*.py"))
        if path not in own
        for line, text in _names(ast.parse(path.read_text()))
        if mentions.search(text) and (path, text) not in registrations
    ]
    assert not found, "heat named outside its module and registrations:\n" + "\n".join(found)
