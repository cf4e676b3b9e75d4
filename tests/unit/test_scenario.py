"""Unit tests of scenario loading and validation (sim.scenario).

Every bad input must give a ScenarioError whose message names the field (dotted path), the
bad value and what is allowed. Scenarios are built from the shipped YAML files: read, modified
as a dict, written to a temporary file and loaded with `load_scenario`.

Pure Python, each rank writes its own files: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpi4py import MPI  # noqa: F401  (before anything that may import dolfinx)

# isort: split
import pytest
import yaml

from sim.outputs.rundir import config_hash
from sim.protocol import Injector, NeedleProtocol
from sim.scenario import Scenario, ScenarioError, load_scenario, validate_scenario
from sim.scenario.cement import (
    ExponentialCuringSpec,
    NewtonianRheology,
    PowerLawRheology,
    TabulatedCuringSpec,
)

from .scenario_support import assert_mentions, read

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
VERTEBROPLASTY = SCENARIOS / "vertebroplasty.yaml"
SPHERE = SCENARIOS / "verification" / "sphere_newtonian.yaml"

VERTEBRAL_BOUNDARIES = [
    "basivertebral_foramen",
    "endplate_lower",
    "endplate_upper",
    "lateral_wall",
    "posterior_wall",
    "segmental_vein_left",
    "segmental_vein_right",
]

Writer = Callable[..., Path]


@pytest.fixture
def vb() -> dict[str, Any]:
    """The raw mapping of the shipped vertebroplasty scenario."""
    return read(VERTEBROPLASTY)


@pytest.fixture
def sphere() -> dict[str, Any]:
    """The raw mapping of the shipped verification scenario A (ball)."""
    return read(SPHERE)


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """write(data, name) -> path of a YAML file holding `data` in tmp_path."""

    def _write(data: dict[str, Any], name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


def error_of(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The message of the ScenarioError that loading `path` must raise."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return str(info.value)


# --- good input ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [VERTEBROPLASTY, SPHERE], ids=["vertebroplasty", "sphere"])
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert isinstance(scenario, Scenario)
    assert scenario.name == read(path)["name"]


def test_vertebroplasty_values_are_in_si() -> None:
    s = load_scenario(VERTEBROPLASTY)
    needle = s.injection.needles[0]
    assert needle.rate == 5e-8  # 3 mL/min in m^3/s
    assert needle.volume == 4e-6
    assert needle.tip == (0.006, -0.004, 0.0)
    assert needle.gauge == 11
    assert needle.inner_radius == pytest.approx(0.5 * 2.39e-3, rel=1e-12)
    assert needle.cannula_length == 0.12  # default 12 cm
    assert needle.total_volume == 4e-6
    # 4 mL at 3 mL/min: one segment of 80 s from the start of the injection
    [segment] = NeedleProtocol(needle).segments
    assert (segment.begin, segment.rate) == (0.0, 5e-8)
    assert segment.end == pytest.approx(80.0, rel=1e-12)
    assert Injector(list(s.injection.needles)).planned_end() == pytest.approx(80.0, rel=1e-12)
    assert s.injection.start_after_mixing == 240.0
    assert (s.geometry.depth, s.geometry.width, s.geometry.height) == (0.035, 0.045, 0.028)
    assert s.geometry.mesh.size_tip == 0.0006
    assert s.geometry.mesh.size_outlet == 0.001
    assert s.bone.porosity == 0.9
    assert s.bone.permeability == (2e-8, 2e-8, 4e-8)
    rheology, curing = s.cement.rheology, s.cement.curing
    assert isinstance(rheology, NewtonianRheology)
    assert rheology.viscosity == 100.0
    assert isinstance(curing, ExponentialCuringSpec)
    assert (curing.reference_age, curing.time_constant) == (240.0, 120.0)
    assert s.cement.set_viscosity == 75000.0
    assert s.cement.preset is None
    assert s.marrow.viscosity == 0.05
    assert s.leak_routes["basivertebral"].pressure == 1000.0
    assert s.leak_routes["basivertebral"].boundary == ["basivertebral_foramen"]
    assert s.leak_routes["segmental_veins"].boundary == [
        "segmental_vein_left",
        "segmental_vein_right",
    ]
    assert s.targets["anterior"].regions == ["anterior"]


def test_sphere_values_are_in_si() -> None:
    s = load_scenario(SPHERE)
    assert s.geometry.radius == 0.05
    assert s.geometry.mesh.size_tip == 0.00024
    assert s.bone.permeability == 1e-9
    assert s.injection.needles[0].inner_diameter == 0.0024
    assert s.injection.needles[0].rate == 5e-8
    assert s.injection.needles[0].volume == 5e-6
    assert s.leak_routes["far_field"].pressure == 0.0


def _in_units(vb: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(vb)
    d["name"] = "units_check"
    d["geometry"].update(depth="35 mm", width="45 mm", height="28 mm")
    d["geometry"]["mesh"] = {
        "size_tip": "0.6 mm",
        "size_max": "3 mm",
        "growth": 0.25,
        "size_outlet": "1 mm",
    }
    d["bone"]["permeability"] = ["2e-2 mm^2", "2e-2 mm^2", "4e-2 mm^2"]
    d["cement"] = {
        "rheology": {"model": "newtonian", "viscosity": "100000 mPa*s"},
        "curing": {"law": "exponential", "reference_age": "4 min", "time_constant": "2 min"},
        "set_viscosity": "75000000 mPa*s",
    }
    d["marrow"]["viscosity"] = "50 mPa*s"
    d["injection"]["start_after_mixing"] = "4 min"
    d["injection"]["needles"][0].update(tip="[6, -4, 0] mm", rate="3 mL/min", volume="4 mL")
    for route in d["leak_routes"].values():
        route["pressure"] = "1 kPa"
    return d


def _in_si(vb: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(vb)
    d["name"] = "units_check"
    d["geometry"].update(depth=0.035, width=0.045, height=0.028)
    d["geometry"]["mesh"] = {
        "size_tip": 0.0006,
        "size_max": 0.003,
        "growth": 0.25,
        "size_outlet": 0.001,
    }
    d["bone"]["permeability"] = [2e-8, 2e-8, 4e-8]
    d["cement"] = {
        "rheology": {"model": "newtonian", "viscosity": 100.0},
        "curing": {"law": "exponential", "reference_age": 240.0, "time_constant": 120.0},
        "set_viscosity": 75000.0,
    }
    d["marrow"]["viscosity"] = 0.05
    d["injection"]["start_after_mixing"] = 240.0
    d["injection"]["needles"][0].update(tip=[0.006, -0.004, 0.0], rate=5e-8, volume=4e-6)
    for route in d["leak_routes"].values():
        route["pressure"] = 1000.0
    return d


def test_units_and_si_spellings_give_the_same_scenario_and_hash(
    vb: dict[str, Any], write: Writer
) -> None:
    with_units = load_scenario(write(_in_units(vb), "units.yaml"))
    in_si = load_scenario(write(_in_si(vb), "si.yaml"))
    assert with_units.model_dump() == in_si.model_dump()
    assert config_hash(with_units) == config_hash(in_si)
    assert re.fullmatch(r"[0-9a-f]{10}", config_hash(in_si))
    # and the hash does see a change of value
    changed = copy.deepcopy(_in_si(vb))
    changed["injection"]["needles"][0]["rate"] = 4e-8
    assert config_hash(load_scenario(write(changed, "changed.yaml"))) != config_hash(in_si)


def test_hand_written_exponent_numbers_are_taken_as_si(tmp_path: Path) -> None:
    text = SPHERE.read_text().replace("permeability: 1e-9 m^2", "permeability: 1e-9")
    assert "permeability: 1e-9\n" in text
    path = tmp_path / "sphere.yaml"
    path.write_text(text)
    assert load_scenario(path).bone.permeability == 1e-9


# --- unknown and missing keys --------------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(vb: dict[str, Any], write: Writer) -> None:
    vb["geometry"]["hieght"] = vb["geometry"].pop("height")
    message = error_of(write(vb))
    assert_mentions(message, "geometry.hieght", "unknown key", "'height'")


def test_unknown_top_level_key_is_named_with_a_suggestion(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["marow"] = vb.pop("marrow")
    message = error_of(write(vb))
    assert_mentions(message, "marow: unknown key", "'marrow'")


def test_missing_section_is_named(vb: dict[str, Any], write: Writer) -> None:
    del vb["marrow"]
    message = error_of(write(vb))
    assert_mentions(message, "marrow", "required", "missing")


def test_missing_needle_rate_is_named(vb: dict[str, Any], write: Writer) -> None:
    # a needle injects by one of several protocols: without `rate` it has none, and the
    # message lists what it could have
    del vb["injection"]["needles"][0]["rate"]
    message = error_of(write(vb))
    assert_mentions(
        message,
        "injection.needles.0: give exactly one protocol",
        "'rate' (with 'volume')",
        "'schedule'",
        "'aliquots'",
        "'syringe_pressure'",
        "got none",
    )


def test_missing_needle_volume_is_named(vb: dict[str, Any], write: Writer) -> None:
    del vb["injection"]["needles"][0]["volume"]
    message = error_of(write(vb))
    assert_mentions(message, "injection.needles.0", "'volume' goes with 'rate'")


def test_every_problem_is_listed(vb: dict[str, Any], write: Writer) -> None:
    del vb["marrow"]
    del vb["injection"]["needles"][0]["rate"]
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(vb))
    assert len(info.value.problems) == 2
    assert_mentions(str(info.value), "marrow", "injection.needles.0", "exactly one protocol")


# --- values with a wrong unit or out of range ----------------------------------------------


def test_volume_with_a_length_unit_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["injection"]["needles"][0]["volume"] = "3 m"
    message = error_of(write(vb))
    assert_mentions(message, "injection.needles.0.volume", "'3 m'", "a volume", "3 mL")


def test_negative_marrow_viscosity_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["marrow"]["viscosity"] = "-0.05 Pa*s"
    message = error_of(write(vb))
    assert_mentions(message, "marrow.viscosity", "-0.05 Pa*s", "greater than 0")


def test_zero_marrow_viscosity_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["marrow"]["viscosity"] = 0
    message = error_of(write(vb))
    assert_mentions(message, "marrow.viscosity", "got 0", "greater than 0")


def test_negative_cement_viscosity_is_rejected(sphere: dict[str, Any], write: Writer) -> None:
    sphere["cement"]["rheology"]["viscosity"] = "-100 Pa*s"
    message = error_of(write(sphere))
    assert_mentions(message, "cement.rheology.viscosity", "'-100 Pa*s'", "greater than 0")


def test_zero_cement_viscosity_is_rejected(sphere: dict[str, Any], write: Writer) -> None:
    sphere["cement"]["rheology"]["viscosity"] = "0 Pa*s"
    message = error_of(write(sphere))
    assert_mentions(message, "cement.rheology.viscosity", "'0 Pa*s'", "greater than 0")


def test_missing_cement_viscosity_is_named(sphere: dict[str, Any], write: Writer) -> None:
    del sphere["cement"]["rheology"]["viscosity"]
    message = error_of(write(sphere))
    assert_mentions(message, "cement", "newtonian law needs its viscosity")


def test_unknown_rheology_model_lists_the_models(sphere: dict[str, Any], write: Writer) -> None:
    sphere["cement"]["rheology"]["model"] = "constant"  # the old schema's name
    message = error_of(write(sphere))
    assert_mentions(
        message,
        "cement.rheology.model",
        "'constant'",
        "'newtonian'",
        "'power_law'",
        "'cross'",
        "'carreau_yasuda'",
        "'herschel_bulkley'",
        "'bingham'",
    )


def test_old_cement_schema_is_rejected_with_the_new_keys(
    sphere: dict[str, Any], write: Writer
) -> None:
    sphere["cement"] = {"viscosity": {"law": "constant", "viscosity": "100 Pa*s"}}
    message = error_of(write(sphere))
    assert_mentions(
        message,
        "cement.rheology: required, but missing",
        "cement.viscosity: unknown key",
        "allowed here: preset, rheology, curing, set_viscosity",
    )


PERMEABILITY_RANGE = "must lie between 1e-18 and 0.001 m^2"


@pytest.mark.parametrize("bad", ["0 m^2", "-1e-9 m^2", "1e-300 m^2", "1e300 m^2", "1e-19 m^2"])
def test_a_scalar_permeability_out_of_range_is_rejected(
    sphere: dict[str, Any], write: Writer, bad: str
) -> None:
    """Zero, negative, and values the pressure solve cannot handle in double precision
    (1e-300 m^2 ended in PETSc's GAMG set-up, 1e300 m^2 in a time step below its minimum)."""
    sphere["bone"]["permeability"] = bad
    message = error_of(write(sphere))
    assert_mentions(message, "bone.permeability", f"'{bad}'", PERMEABILITY_RANGE)


@pytest.mark.parametrize("bad", ["-2e-8 m^2", "0 m^2", "1 m^2"])
def test_bad_principal_permeability_is_rejected(
    vb: dict[str, Any], write: Writer, bad: str
) -> None:
    vb["bone"]["permeability"][1] = bad
    message = error_of(write(vb))
    assert_mentions(message, "bone.permeability", f"every principal value {PERMEABILITY_RANGE}")


def test_an_axial_permeability_out_of_range_is_rejected(
    sphere: dict[str, Any], write: Writer
) -> None:
    sphere["bone"]["permeability"] = {"along_axis": "1e-30 m^2"}
    message = error_of(write(sphere))
    assert_mentions(message, "bone.permeability.along_axis", "'1e-30 m^2'", PERMEABILITY_RANGE)


def test_an_anisotropic_permeability_is_judged_across_its_axis_too(
    sphere: dict[str, Any], write: Writer
) -> None:
    # along the axis in range, across it (ratio x along_axis) not
    sphere["bone"]["permeability"] = {"along_axis": "2e-18 m^2", "ratio": 0.2}
    message = error_of(write(sphere))
    assert_mentions(
        message, "bone.permeability", "ratio x along_axis = 4e-19 m^2", PERMEABILITY_RANGE
    )
    sphere["bone"]["permeability"] = {"along_axis": "2e-18 m^2", "ratio": 0.5}
    k = load_scenario(write(sphere)).bone.permeability
    assert (k.along_axis, k.ratio) == (2e-18, 0.5)  # 1e-18 m^2 across: at the limit


@pytest.mark.parametrize("bad", ["1e-300 Pa*s", "1e30 Pa*s"])
def test_a_pore_fluid_viscosity_out_of_range_is_rejected(
    sphere: dict[str, Any], write: Writer, bad: str
) -> None:
    """1e-300 Pa*s ran to the end with 926 mL leaked of 4 mL injected (mass balance 1.7e4)."""
    sphere["marrow"]["viscosity"] = bad
    message = error_of(write(sphere))
    assert_mentions(message, "marrow.viscosity", f"'{bad}'", "between 1e-4 and 1e5 Pa*s")


def test_a_first_step_longer_than_the_longest_is_rejected(
    sphere: dict[str, Any], write: Writer
) -> None:
    sphere["numerics"] = {"dt_max": "1 ms", "dt_initial": "30 s"}
    message = error_of(write(sphere))
    assert_mentions(message, "numerics: dt_initial = 30 s is longer than dt_max = 0.001 s")


def test_a_fluoroscopy_pixel_below_the_smallest_is_rejected(
    sphere: dict[str, Any], write: Writer
) -> None:
    """1e-9 m asked numpy for 680 PiB."""
    sphere["output"] = {"fluoroscopy_pixel": "1 nm"}
    message = error_of(write(sphere))
    assert_mentions(message, "output.fluoroscopy_pixel", "'1 nm'", "at least 0.05 mm")


def test_bad_principal_permeability_message_shows_the_value(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["bone"]["permeability"][1] = "-2e-8 m^2"
    message = error_of(write(vb))
    assert re.search(r"-2(\.0*)?e-0?8", message), message


def test_wrong_number_of_principal_permeabilities(vb: dict[str, Any], write: Writer) -> None:
    vb["bone"]["permeability"] = ["2e-8 m^2", "4e-8 m^2"]
    message = error_of(write(vb))
    assert_mentions(message, "bone.permeability", "three principal values", "2 values")


@pytest.mark.parametrize(
    ("porosity", "allowed"), [(0, "greater than 0"), (1, "less than 1"), (1.5, "less than 1")]
)
def test_porosity_out_of_range_is_rejected(
    vb: dict[str, Any], write: Writer, porosity: float, allowed: str
) -> None:
    vb["bone"]["porosity"] = porosity
    message = error_of(write(vb))
    assert_mentions(message, "bone.porosity", f"got {porosity}", allowed)


# --- needles and the geometry --------------------------------------------------------------


def test_needle_tip_outside_the_body_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["injection"]["needles"][0]["tip"] = "[0, 0, 20] mm"  # the body is 28 mm high
    message = error_of(write(vb))
    assert_mentions(message, "injection.needles.0.tip", "[0.0, 0.0, 20.0] mm", "outside the bone")


def test_needle_tip_too_close_to_the_wall_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    # 1.5 mm below the upper endplate (z = 14 mm); 11 G radius 1.195 mm + size_tip 0.6 mm
    vb["injection"]["needles"][0]["tip"] = "[0, 0, 12.5] mm"
    message = error_of(write(vb))
    assert_mentions(message, "injection.needles.0.tip", "12.5", "closer than 1.80 mm")


def test_needle_tip_just_far_enough_from_the_wall_is_accepted(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["injection"]["needles"][0]["tip"] = "[0, 0, 12] mm"  # 2 mm clearance > 1.795 mm
    assert load_scenario(write(vb)).injection.needles[0].tip == (0.0, 0.0, 0.012)


def test_unknown_needle_gauge_lists_the_known_ones(vb: dict[str, Any], write: Writer) -> None:
    vb["injection"]["needles"][0]["gauge"] = 12
    message = error_of(write(vb))
    assert_mentions(
        message, "injection.needles.0", "gauge 12", "known gauges", "8 G", "11 G", "15 G"
    )


def test_gauge_and_inner_diameter_together_are_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["injection"]["needles"][0]["inner_diameter"] = "2 mm"
    message = error_of(write(vb))
    assert_mentions(message, "injection.needles.0", "exactly one of 'gauge'", "inner_diameter")


# --- leak routes and targets ---------------------------------------------------------------


def test_empty_leak_routes_are_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["leak_routes"] = {}
    message = error_of(write(vb))
    assert_mentions(message, "leak_routes")


def test_empty_leak_routes_explain_that_marrow_has_nowhere_to_go(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["leak_routes"] = {}
    message = error_of(write(vb))
    assert_mentions(message, "leak_routes", "outlet", "nowhere to go", "ill-posed")


def test_missing_leak_routes_are_named(vb: dict[str, Any]) -> None:
    del vb["leak_routes"]
    with pytest.raises(ScenarioError) as info:
        validate_scenario(vb, "in-memory")
    message = str(info.value)
    assert message.startswith("in-memory: invalid scenario")
    assert_mentions(message, "leak_routes", "missing")


def test_leak_route_on_an_unknown_boundary_lists_the_boundaries(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["leak_routes"]["basivertebral"]["boundary"] = "veins"
    message = error_of(write(vb))
    assert_mentions(
        message,
        "leak_routes.basivertebral.boundary",
        "'veins'",
        "it has: " + ", ".join(VERTEBRAL_BOUNDARIES),
    )


def test_leak_route_on_the_needle_inlet_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["leak_routes"]["basivertebral"]["boundary"] = "needle"
    message = error_of(write(vb))
    assert_mentions(message, "leak_routes.basivertebral.boundary", "'needle'", "needle inlet")


def test_unknown_leak_route_kind_lists_the_kinds(vb: dict[str, Any], write: Writer) -> None:
    vb["leak_routes"]["basivertebral"]["kind"] = "sink"
    message = error_of(write(vb))
    assert_mentions(message, "leak_routes.basivertebral.kind", "'sink'", "'outlet'")


def test_negative_opening_pressure_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["leak_routes"]["basivertebral"] = {
        "kind": "vein",
        "boundary": "basivertebral_foramen",
        "diameter": "2 mm",
        "length": "10 mm",
        "opening_pressure": "-1 kPa",
    }
    message = error_of(write(vb))
    assert_mentions(
        message,
        "leak_routes.basivertebral.opening_pressure",
        "must lie between 0 and 10 MPa",
        "-1 kPa",
    )


def test_opening_pressure_on_an_outlet_is_an_unknown_key(vb: dict[str, Any], write: Writer) -> None:
    vb["leak_routes"]["basivertebral"]["opening_pressure"] = "1 kPa"
    message = error_of(write(vb))
    assert_mentions(message, "leak_routes.basivertebral.opening_pressure", "unknown key")


def test_target_on_an_unknown_region_lists_the_regions(vb: dict[str, Any], write: Writer) -> None:
    vb["targets"]["anterior"]["regions"] = ["anterior", "middle"]
    message = error_of(write(vb))
    assert_mentions(message, "targets.anterior.regions", "'middle'", "it has: anterior, posterior")


# --- files: the scenario itself, meshes, viscosity tables ----------------------------------


def test_missing_mesh_file_is_named(vb: dict[str, Any], write: Writer, tmp_path: Path) -> None:
    vb["geometry"] = {"kind": "mesh_file", "path": "nothing.msh", "length_unit": "mm"}
    message = error_of(write(vb))
    # relative paths are taken from the scenario file's folder
    assert_mentions(message, "geometry.path", str(tmp_path / "nothing.msh"), "does not exist")


def test_mesh_file_must_be_a_gmsh_file(vb: dict[str, Any], write: Writer, tmp_path: Path) -> None:
    (tmp_path / "body.vtk").write_text("")
    vb["geometry"] = {"kind": "mesh_file", "path": "body.vtk", "length_unit": "mm"}
    message = error_of(write(vb))
    assert_mentions(message, "geometry.path", "body.vtk", ".msh")


def test_mesh_file_length_unit_must_be_a_length(
    vb: dict[str, Any], write: Writer, tmp_path: Path
) -> None:
    (tmp_path / "body.msh").write_text("")
    vb["geometry"] = {"kind": "mesh_file", "path": "body.msh", "length_unit": "s"}
    message = error_of(write(vb))
    assert_mentions(message, "geometry.length_unit", "a length")


def test_unparseable_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ngeometry: [unclosed\n")
    message = error_of(path)
    assert_mentions(message, str(path), "YAML")


def test_yaml_that_is_not_a_mapping_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- geometry\n- bone\n")
    assert_mentions(error_of(path), str(path), "mapping")


def test_missing_scenario_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert_mentions(error_of(path), str(path), "not found")


def _table(points: list[list[str]], reference_age: str = "4 min") -> dict[str, Any]:
    """A Newtonian cement whose viscosity follows a rheometer table (no viscosity given)."""
    return {
        "rheology": {"model": "newtonian"},
        "curing": {"law": "table", "reference_age": reference_age, "points": points},
    }


def _table_file(name: str, reference_age: str = "4 min") -> dict[str, Any]:
    return {
        "rheology": {"model": "newtonian"},
        "curing": {"law": "table", "reference_age": reference_age, "file": name},
    }


def test_viscosity_table_with_units_is_converted(vb: dict[str, Any], write: Writer) -> None:
    vb["cement"] = _table([["2 min", "50 Pa*s"], ["4 min", "100000 mPa*s"]])
    cement = load_scenario(write(vb)).cement
    assert isinstance(cement.curing, TabulatedCuringSpec)
    assert cement.curing.points == [[120.0, 50.0], [240.0, 100.0]]
    assert cement.curing.reference_age == 240.0
    # the rheology's viscosity is the table's value at reference_age
    assert cement.rheology.viscosity == pytest.approx(100.0, rel=1e-14)


def test_viscosity_table_with_unsorted_ages_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["cement"] = _table([["4 min", "100 Pa*s"], ["3 min", "200 Pa*s"]])
    message = error_of(write(vb))
    assert_mentions(message, "cement.curing", "ages must increase", "[240.0, 180.0] s")


def test_viscosity_table_with_decreasing_viscosity_is_rejected(
    vb: dict[str, Any], write: Writer
) -> None:
    vb["cement"] = _table([["4 min", "100 Pa*s"], ["5 min", "50 Pa*s"]])
    message = error_of(write(vb))
    assert_mentions(message, "cement.curing", "must not decrease", "[100.0, 50.0]")


def test_viscosity_table_with_one_point_is_rejected(vb: dict[str, Any], write: Writer) -> None:
    vb["cement"] = _table([["4 min", "100 Pa*s"]])
    assert_mentions(error_of(write(vb)), "cement.curing", "at least two")


def test_viscosity_table_from_csv(vb: dict[str, Any], write: Writer, tmp_path: Path) -> None:
    (tmp_path / "rheometry.csv").write_text(
        "age_s,viscosity_pa_s\n# measured at 23 C\n0,50\n240,100\n600,5000\n"
    )
    vb["cement"] = _table_file("rheometry.csv")  # relative path
    cement = load_scenario(write(vb)).cement
    assert isinstance(cement.curing, TabulatedCuringSpec)
    assert cement.curing.points == [[0.0, 50.0], [240.0, 100.0], [600.0, 5000.0]]
    assert cement.curing.file == tmp_path / "rheometry.csv"
    assert cement.rheology.viscosity == pytest.approx(100.0, rel=1e-14)


def test_consistency_table_from_csv(vb: dict[str, Any], write: Writer, tmp_path: Path) -> None:
    (tmp_path / "rheometry.csv").write_text(
        "age_s,consistency_pa_sn,n\n0,50,0.7\n240,100,0.6\n600,5000,0.5\n"
    )
    vb["cement"] = _table_file("rheometry.csv")
    vb["cement"]["rheology"] = {"model": "power_law", "n": 0.6}
    cement = load_scenario(write(vb)).cement
    assert isinstance(cement.rheology, PowerLawRheology)
    assert cement.curing.points == [[0.0, 50.0, 0.7], [240.0, 100.0, 0.6], [600.0, 5000.0, 0.5]]
    assert cement.rheology.consistency == pytest.approx(100.0, rel=1e-14)


def test_viscosity_csv_with_a_bad_header_is_rejected(
    vb: dict[str, Any], write: Writer, tmp_path: Path
) -> None:
    (tmp_path / "rheometry.csv").write_text("age_min,viscosity\n0,50\n4,100\n")
    vb["cement"] = _table_file("rheometry.csv")
    message = error_of(write(vb))
    assert_mentions(
        message,
        "cement.curing",
        "rheometry.csv",
        "age_s,viscosity_pa_s",
        "age_s,consistency_pa_sn,n",
        "age_min,viscosity",
    )


def test_viscosity_csv_that_decreases_is_rejected(
    vb: dict[str, Any], write: Writer, tmp_path: Path
) -> None:
    (tmp_path / "rheometry.csv").write_text("age_s,viscosity_pa_s\n0,500\n240,100\n")
    vb["cement"] = _table_file("rheometry.csv")
    assert_mentions(error_of(write(vb)), "cement.curing", "must not decrease", "[500.0, 100.0]")


def test_viscosity_csv_with_one_row_is_rejected(
    vb: dict[str, Any], write: Writer, tmp_path: Path
) -> None:
    (tmp_path / "rheometry.csv").write_text("age_s,viscosity_pa_s\n240,100\n")
    vb["cement"] = _table_file("rheometry.csv")
    assert_mentions(error_of(write(vb)), "cement.curing", "at least two")


def test_viscosity_csv_with_unsorted_ages_is_rejected(
    vb: dict[str, Any], write: Writer, tmp_path: Path
) -> None:
    (tmp_path / "rheometry.csv").write_text("age_s,viscosity_pa_s\n240,100\n180,200\n")
    vb["cement"] = _table_file("rheometry.csv")
    message = error_of(write(vb))
    assert_mentions(message, "cement.curing", "ages must increase", "[240.0, 180.0] s")


def test_missing_viscosity_csv_is_named(vb: dict[str, Any], write: Writer, tmp_path: Path) -> None:
    vb["cement"] = _table_file("absent.csv")
    message = error_of(write(vb))
    assert_mentions(message, "cement.curing", str(tmp_path / "absent.csv"), "does not exist")


# --- --set overrides -----------------------------------------------------------------------


def test_override_changes_a_value(write: Writer, vb: dict[str, Any]) -> None:
    path = write(vb)
    before = load_scenario(path)
    after = load_scenario(path, ["injection.needles.0.rate=2 mL/min"])
    assert before.injection.needles[0].rate == 5e-8
    assert after.injection.needles[0].rate == pytest.approx(2e-6 / 60.0, rel=1e-14)
    assert after.injection.needles[0].volume == before.injection.needles[0].volume
    assert read(path) == vb  # the file is not changed


def test_overrides_apply_in_order_and_may_create_sections(
    write: Writer, vb: dict[str, Any]
) -> None:
    s = load_scenario(
        write(vb),
        ["bone.porosity=0.8", "bone.porosity=0.85", "numerics.max_steps=10", "name=other"],
    )
    assert s.bone.porosity == 0.85
    assert s.numerics.max_steps == 10
    assert s.name == "other"


def test_the_step_follows_one_rule(write: Writer, vb: dict[str, Any]) -> None:
    assert vb.pop("numerics") == {"front_courant": 4}  # the default scenario's rule
    assert load_scenario(write(vb)).numerics.saturation_target() == 0.25
    s = load_scenario(write(vb), ["numerics.front_courant=4"])
    assert s.numerics.front_courant == 4.0 and s.numerics.saturation_target() is None
    assert validate_scenario(s.model_dump(mode="json")).numerics == s.numerics  # round trip
    message = error_of(
        write(vb), ["numerics.front_courant=4", "numerics.max_saturation_change=0.25"]
    )
    assert_mentions(message, "numerics:", "front_courant and max_saturation_change", "one of")


def test_the_time_tolerance_is_a_fraction_and_off_by_default(
    write: Writer, vb: dict[str, Any]
) -> None:
    assert load_scenario(write(vb)).numerics.time_tolerance is None
    assert (
        load_scenario(write(vb), ["numerics.time_tolerance=0.01"]).numerics.time_tolerance == 0.01
    )
    for bad in ("0", "1", "-0.01", "fast"):
        message = error_of(write(vb), [f"numerics.time_tolerance={bad}"])
        assert_mentions(message, "numerics.time_tolerance", bad)


def test_the_pressure_solver_is_one_of_three(write: Writer, vb: dict[str, Any]) -> None:
    assert load_scenario(write(vb)).numerics.pressure_solver == "auto"
    s = load_scenario(write(vb), ["numerics.pressure_solver=direct"])
    assert s.numerics.pressure_solver == "direct"
    message = error_of(write(vb), ["numerics.pressure_solver=lu"])
    assert_mentions(message, "numerics.pressure_solver", "'lu'", "'auto', 'direct' or 'multigrid'")


def test_the_volume_per_step_is_a_share_or_none(write: Writer, vb: dict[str, Any]) -> None:
    def share(*overrides: str) -> float | None:
        return load_scenario(write(vb), list(overrides)).numerics.volume_per_step

    assert share() == 0.05
    assert share("numerics.volume_per_step=null") is None
    assert share("numerics.volume_per_step=0.1") == 0.1
    for bad in ("0", "1.5", "-0.1"):
        message = error_of(write(vb), [f"numerics.volume_per_step={bad}"])
        assert_mentions(message, "numerics.volume_per_step", bad)


def test_override_with_a_bad_value_is_validated(write: Writer, vb: dict[str, Any]) -> None:
    message = error_of(write(vb), ["injection.needles.0.rate=2 mL"])
    assert_mentions(message, "injection.needles.0.rate", "'2 mL'", "a volumetric flow rate")


def test_override_of_an_unknown_key_is_reported(write: Writer, vb: dict[str, Any]) -> None:
    message = error_of(write(vb), ["injection.needles.0.rat=2 mL/min"])
    assert_mentions(message, "injection.needles.0.rat", "unknown key", "'rate'")


@pytest.mark.parametrize("index", ["1", "7", "x"])
def test_override_with_a_list_index_out_of_range(
    write: Writer, vb: dict[str, Any], index: str
) -> None:
    message = error_of(write(vb), [f"injection.needles.{index}.rate=2 mL/min"])
    assert_mentions(message, "--set", f"injection.needles.{index}", "index must be 0..0")


@pytest.mark.parametrize(
    "assignment", ["injection.needles.0.rate", "=2 mL/min", "needle rate=2 mL/min", ""]
)
def test_malformed_override_is_reported(write: Writer, vb: dict[str, Any], assignment: str) -> None:
    message = error_of(write(vb), [assignment])
    assert_mentions(message, "--set", "dotted.key=value")


def test_override_that_is_not_yaml_reaches_the_field_parser(
    write: Writer, vb: dict[str, Any]
) -> None:
    path = write(vb)
    scenario = load_scenario(path, ["injection.needles.0.tip=[4, -6, 1] mm"])
    assert scenario.injection.needles[0].tip == pytest.approx((0.004, -0.006, 0.001))
    message = error_of(path, ["injection.needles.0.tip=[1, 2"])
    assert_mentions(message, "injection.needles.0.tip", "[1, 2", "point")


def test_override_below_a_value_is_reported(write: Writer, vb: dict[str, Any]) -> None:
    message = error_of(write(vb), ["bone.porosity.value=0.8"])
    assert_mentions(message, "--set", "bone.porosity", "not a section")


def test_validated_scenario_is_immutable() -> None:
    s = load_scenario(SPHERE)
    with pytest.raises(ValueError):
        s.bone.porosity = 0.5  # type: ignore[misc]
    assert math.isclose(s.bone.porosity, 0.9)


@pytest.mark.parametrize(
    ("path", "override", "message"),
    [
        (VERTEBROPLASTY, "geometry.foramen_radius=20 mm", "geometry: foramen_radius = 0.02 is"),
        (VERTEBROPLASTY, "geometry.vein_x=1 m", "geometry: vein_x = 1.0 is out of range"),
        (VERTEBROPLASTY, "geometry.cortical_shell=10 mm", "geometry: cortical_shell = 0.01 is"),
        (VERTEBROPLASTY, "injection.needles.0.entry=[0,0,0] mm", "entry point of needle 'needle'"),
        ("anatomy/vertebroplasty_cleft.yaml", "geometry.cleft.normal=[0,0,0]", "cleft normal"),
        (
            "anatomy/vertebroplasty_posterior_defect.yaml",
            "geometry.posterior_defect.y=1 m",
            "posterior_defect = PosteriorDefect(y=1.0",
        ),
    ],
)
def test_the_vertebral_body_builders_checks_run_on_validation(
    path: Path | str, override: str, message: str
) -> None:
    """The gmsh builder's checks of outlet patches, features and needle paths, which `validate`
    passed and a run reported as "gmsh failed to mesh" (review helper)."""
    assert_mentions(error_of(SCENARIOS / path, [override]), message, "is out of range")
