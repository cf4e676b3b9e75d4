"""Unit tests of the `bone.heterogeneity` schema (sim.scenario.bone_heterogeneity).

Every bad input must give a ScenarioError whose message names the field (dotted path), the
bad value and what is allowed, before anything is meshed. Scenarios are the shipped
vertebroplasty (mesh sizes 0.6-3 mm, regions anterior and posterior) and verification case E
(a column of 1 mm cells), modified as a dict and validated with `validate_scenario`.

Pure Python: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from mpi4py import MPI  # noqa: F401  (before anything that may import dolfinx)

# isort: split
import numpy as np
import pytest

from sim.scenario import validate_scenario
from sim.scenario.bone_heterogeneity import (
    AxialCorrelation,
    Heterogeneity,
    KozenyCarmanScaling,
    PowerLawScaling,
)

from .scenario_support import assert_mentions, invalid, read

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
VERTEBROPLASTY = read(SCENARIOS / "vertebroplasty.yaml")
COLUMN = read(SCENARIOS / "verification" / "column_curing.yaml")
WHERE = "bone.heterogeneity"


def with_heterogeneity(base: dict[str, Any] = VERTEBROPLASTY, **section: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    data["bone"]["heterogeneity"] = {"seed": 7, **section}
    return data


def heterogeneity(base: dict[str, Any] = VERTEBROPLASTY, **section: Any) -> Heterogeneity:
    het = validate_scenario(with_heterogeneity(base, **section)).bone.heterogeneity
    assert het is not None
    return het


# --- good input ----------------------------------------------------------------------------


def test_defaults_are_the_documented_estimates() -> None:
    het = heterogeneity()
    assert het.seed == 7
    assert het.covariance == "exponential"
    assert het.smoothness is None
    assert het.correlation_length == 3e-3
    assert het.bone_volume_fraction_cv == 0.3
    assert het.permeability == KozenyCarmanScaling(law="kozeny_carman")
    assert het.permeability_log_std == 0.0
    assert het.trend == []
    assert het.regions is None
    assert het.porosity_limits == (0.05, 0.98)


def test_full_section_in_units_is_read_in_si() -> None:
    het = heterogeneity(
        covariance="matern",
        smoothness=2.5,
        correlation_length={"along_axis": "4 mm", "across": "2.5 mm", "axis": [0, 3, 4]},
        bone_volume_fraction_cv=0.2,
        permeability={"law": "power_law", "exponent": 3},
        permeability_log_std=0.5,
        trend=[{"axis": [2, 0, 0], "change": -0.2}],
        regions=["anterior"],
        porosity_limits=[0.5, 0.99],
    )
    assert het.correlation_length == AxialCorrelation(
        along_axis=4e-3, across=2.5e-3, axis=(0.0, 0.6, 0.8)
    )
    assert het.smoothness == 2.5
    assert het.permeability == PowerLawScaling(law="power_law", exponent=3.0)
    assert het.trend[0].axis == (1.0, 0.0, 0.0)
    assert het.shortest_correlation_length == 2.5e-3


def test_matern_without_smoothness_gets_nu_1_5() -> None:
    assert heterogeneity(covariance="matern").smoothness == 1.5


def test_heterogeneity_regions_are_referenced_for_the_mesh_check() -> None:
    scenario = validate_scenario(with_heterogeneity(regions=["anterior"]))
    assert "anterior" in scenario.referenced_regions()


def test_correlation_length_between_the_finest_and_the_coarsest_cells_is_a_warning() -> None:
    scenario = validate_scenario(with_heterogeneity(correlation_length="1 mm"))
    (warning,) = scenario.warnings()
    assert_mentions(warning, f"{WHERE}.correlation_length", "1 mm", "3 mm", "not resolved")
    assert validate_scenario(with_heterogeneity()).warnings() == []  # 3 mm = size_max


# --- bad input -----------------------------------------------------------------------------


def test_missing_seed_is_named() -> None:
    data = with_heterogeneity()
    del data["bone"]["heterogeneity"]["seed"]
    assert_mentions(invalid(data), f"{WHERE}.seed: required, but missing")


@pytest.mark.parametrize(("seed", "allowed"), [(-1, "greater than or equal to 0"), (1.5, "int")])
def test_bad_seed_is_rejected(seed: float, allowed: str) -> None:
    assert_mentions(invalid(with_heterogeneity(seed=seed)), f"{WHERE}.seed", str(seed), allowed)


@pytest.mark.parametrize("key", ["bone_volume_fraction_cv", "permeability_log_std"])
def test_negative_variance_is_rejected(key: str) -> None:
    message = invalid(with_heterogeneity(**{key: -0.1}))
    assert_mentions(message, f"{WHERE}.{key}", "(got -0.1)", ">= 0", "negative variance")


@pytest.mark.parametrize("key", ["bone_volume_fraction_cv", "permeability_log_std"])
def test_nan_variance_is_not_a_finite_number(key: str) -> None:
    message = invalid(with_heterogeneity(**{key: math.nan}))
    assert_mentions(message, f"{WHERE}.{key}: nan is not a finite number")


def test_unknown_covariance_lists_the_models() -> None:
    message = invalid(with_heterogeneity(covariance="spherical"))
    assert_mentions(
        message, f"{WHERE}.covariance", "'spherical'", "'exponential', 'gaussian' or 'matern'"
    )


def test_smoothness_without_matern_is_rejected() -> None:
    message = invalid(with_heterogeneity(covariance="gaussian", smoothness=2.0))
    assert_mentions(message, WHERE, "smoothness (2)", "Matern", "covariance: gaussian")


def test_smoothness_outside_gstools_bounds_is_rejected() -> None:
    message = invalid(with_heterogeneity(covariance="matern", smoothness=0.1))
    assert_mentions(message, f"{WHERE}.smoothness", "0.1", "greater than or equal to 0.2")


@pytest.mark.parametrize("length", ["0 mm", "-2 mm"])
def test_correlation_length_must_be_positive(length: str) -> None:
    message = invalid(with_heterogeneity(correlation_length=length))
    assert_mentions(message, f"{WHERE}.correlation_length", repr(length), "> 0")


def test_anisotropic_correlation_length_must_be_positive() -> None:
    section = {"along_axis": "4 mm", "across": "0 mm"}
    message = invalid(with_heterogeneity(correlation_length=section))
    assert_mentions(message, f"{WHERE}.correlation_length.across", "'0 mm'", "greater than 0")


def test_correlation_length_must_be_a_length() -> None:
    message = invalid(with_heterogeneity(correlation_length="3 s"))
    assert_mentions(message, f"{WHERE}.correlation_length", "'3 s'", "a length")


def test_zero_axis_is_rejected() -> None:
    section = {"along_axis": "4 mm", "across": "2 mm", "axis": [0, 0, 0]}
    message = invalid(with_heterogeneity(correlation_length=section))
    assert_mentions(message, f"{WHERE}.correlation_length.axis", "nonzero", "[0.0, 0.0, 0.0]")


def test_correlation_length_below_the_finest_cells_is_rejected() -> None:
    """The vertebroplasty is meshed at 0.6 mm near the tip: a 0.5 mm field would alias."""
    message = invalid(with_heterogeneity(correlation_length="0.5 mm"))
    assert_mentions(message, f"{WHERE}.correlation_length", "0.5 mm", "0.6 mm", "aliased")


def test_anisotropic_correlation_below_the_finest_cells_is_rejected() -> None:
    section = {"along_axis": "4 mm", "across": "0.3 mm"}
    message = invalid(with_heterogeneity(correlation_length=section))
    assert_mentions(message, f"{WHERE}.correlation_length", "0.3 mm", "0.6 mm")


def test_correlation_length_below_the_column_cell_size_is_rejected() -> None:
    """Case E has 20 cells along 20 mm: 1 mm cells."""
    message = invalid(with_heterogeneity(COLUMN, correlation_length="0.8 mm"))
    assert_mentions(message, f"{WHERE}.correlation_length", "0.8 mm", "1 mm", "aliased")


def test_unknown_region_lists_the_regions() -> None:
    message = invalid(with_heterogeneity(regions=["anterior", "middle"]))
    assert_mentions(
        message, f"{WHERE}.regions", "'middle'", "not a region", "it has: anterior, posterior"
    )


def test_unknown_ct_region_is_caught_like_the_others(tmp_path: Path) -> None:
    np.save(tmp_path / "ct.npy", np.zeros((2, 2, 2)))
    data = copy.deepcopy(VERTEBROPLASTY)
    data["bone"]["ct"] = {
        "file": str(tmp_path / "ct.npy"),
        "voxel_size": "[1, 1, 1] mm",
        "origin": [0, 0, 0],
        "regions": ["middle"],
    }
    message = invalid(data)
    assert_mentions(message, "bone.ct.regions", "'middle'", "it has: anterior, posterior")


def test_empty_region_list_is_rejected() -> None:
    message = invalid(with_heterogeneity(regions=[]))
    assert_mentions(message, f"{WHERE}.regions", "at least 1")


@pytest.mark.parametrize("limits", [[0.5, 0.4], [0.0, 0.9], [0.5, 1.0]])
def test_bad_porosity_limits_are_rejected(limits: list[float]) -> None:
    message = invalid(with_heterogeneity(porosity_limits=limits))
    assert_mentions(message, WHERE, "porosity_limits", "0 < min < max < 1", str(limits))


@pytest.mark.parametrize("change", [-2, 2.5])
def test_trend_change_must_keep_the_factor_positive(change: float) -> None:
    message = invalid(with_heterogeneity(trend=[{"axis": [1, 0, 0], "change": change}]))
    assert_mentions(message, f"{WHERE}.trend.0.change", str(change))


def test_unknown_permeability_law_lists_the_laws() -> None:
    message = invalid(with_heterogeneity(permeability={"law": "log_linear"}))
    assert_mentions(message, f"{WHERE}.permeability.law", "'log_linear'", "'kozeny_carman'")


def test_power_law_needs_an_exponent() -> None:
    message = invalid(with_heterogeneity(permeability={"law": "power_law"}))
    assert_mentions(message, f"{WHERE}.permeability.exponent: required, but missing")


def test_unknown_key_is_named() -> None:
    message = invalid(with_heterogeneity(correlation_lenght="3 mm"))
    assert_mentions(message, f"{WHERE}.correlation_lenght: unknown key", "correlation_length")


def test_a_scatter_of_k_beyond_double_precision_is_rejected() -> None:
    """A standard deviation of ln k of 30 (k over 26 orders of magnitude at 2 sigma) ended in
    PETSc's GAMG set-up after meshing."""
    message = invalid(with_heterogeneity(permeability_log_std=30))
    assert_mentions(message, f"{WHERE}.permeability_log_std", "(got 30)", "must be at most 5")


@pytest.mark.parametrize("exponent", [1e6, -21])
def test_a_power_law_exponent_out_of_range_is_rejected(exponent: float) -> None:
    message = invalid(with_heterogeneity(permeability={"law": "power_law", "exponent": exponent}))
    assert_mentions(message, f"{WHERE}.permeability.exponent", str(exponent), "20")
