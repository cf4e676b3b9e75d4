"""Property-based fuzzing of scenario and sweep files (issue 12): whatever a script or a
hand writes, `cementsim validate` and `cementsim sweep plan` answer with exit 0 (valid) or 2
(a message), never a traceback and never a hang (each example within 2 s).

Files are made by mutating the shipped sphere scenario and the small sweep: values replaced
by hostile ones (wrong types, NaN, huge numbers, unit expressions, nested junk), keys
deleted or invented; and raw bytes. Serial: the answer does not depend on the ranks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main

from ..conftest import REPO

pytestmark = pytest.mark.serial

SCENARIO = yaml.safe_load((REPO / "scenarios/verification/sphere_newtonian.yaml").read_text())
SWEEP = yaml.safe_load((REPO / "scenarios/sweeps/sphere_viscosity_rate.yaml").read_text())
SWEEP["base"] = str(REPO / "scenarios/verification/sphere_newtonian.yaml")
SETTINGS = settings(
    max_examples=120,
    deadline=2000,  # ms per example: no hang
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure can be rerun
)

UNITS = ["mm", "mL", "mL/min", "Pa*s", "m^2", "kPa", "degC", "s", "min", "um", "kg", "1/s"]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, u: f"{n} {u}", st.floats(allow_nan=True), st.sampled_from(UNITS)),
    st.builds(
        lambda a, b, c: f"{a}**{b}**{c} mL", st.integers(0, 99), st.integers(0, 99), st.integers()
    ),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "[1, 2", "{a: 1}", "~", "&a", "*a"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested dicts and lists."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict) -> dict:
    """`base` with 1-3 values replaced, deleted or added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(data)))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        else:
            parent[where[-1]] = draw(values)
    return data


def dump(data: Any) -> str:
    """YAML of data; floats that YAML cannot write as numbers (nan, inf) as YAML does."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def answers(capsys: pytest.CaptureFixture[str], argv: list[str]) -> int:
    """The exit code of the command line; a traceback anywhere fails the test."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    main(["validate", str(REPO / "scenarios/verification/sphere_newtonian.yaml")])  # warm up
    return path


@SETTINGS
@given(data=mutated(SCENARIO))
def test_any_scenario_file_validates_or_exits_2(
    folder: Path, capsys: pytest.CaptureFixture[str], data: dict
) -> None:
    path = folder / "scenario.yaml"
    path.write_text(dump(data))
    code = answers(capsys, ["validate", str(path)])
    assert code in (0, 2)
    if code == 2:
        assert data != SCENARIO


@SETTINGS
@given(data=mutated(SWEEP))
def test_any_sweep_file_plans_or_exits_2(
    folder: Path, capsys: pytest.CaptureFixture[str], data: dict
) -> None:
    path = folder / "sweep.yaml"
    path.write_text(dump(data))
    assert answers(capsys, ["sweep", "plan", str(path)]) in (0, 2)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_any_bytes_are_answered(folder: Path, capsys: pytest.CaptureFixture[str], raw: bytes):
    path = folder / "raw.yaml"
    path.write_bytes(raw)
    assert answers(capsys, ["validate", str(path)]) == 2
    assert answers(capsys, ["sweep", "plan", str(path)]) == 2


def test_the_unmutated_files_are_valid(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fuzzers start from valid files (else every 2 would be the base's fault)."""
    for name, data, argv in (
        ("s.yaml", SCENARIO, ["validate"]),
        ("w.yaml", SWEEP, ["sweep", "plan"]),
    ):
        (folder / name).write_text(dump(data))
        assert answers(capsys, [*argv, str(folder / name)]) == 0
