"""Unit tests of the curing laws (sim.physics.curing) and of the shipped presets' set times.

Cure kinetics are checked against exact solutions of the Kamal-Sourour equation at constant
temperature: for m = p = 1 (autocatalytic, logistic-like)

    (k1 + k2 a) / (1 - a) = C exp((k1 + k2) t),  C = (k1 + k2 a0) / (1 - a0),

and for k2 = 0, p = 2 (second-order kinetics) 1 / (1 - a) = 1 / (1 - a0) + k1 t. The presets
must set (reach 75 kPa*s) in 8.7-13 min at 25 C and twice as fast at 37 C (Nicholas et al.
2007). Pure functions: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import sim.physics.curing as curing_module
from sim.physics.cement import CementModel
from sim.physics.curing import (
    GAS_CONSTANT,
    CureKinetics,
    ExponentialCuring,
    NoCuring,
    TabulatedCuring,
)
from sim.physics.rheology import PowerLaw
from sim.scenario.cement import Cement
from sim.scenario.loader import PRESET_DIR

PRESETS = ["vertebroplasty_high_viscosity", "vertebroplasty_low_viscosity"]
CELSIUS = 273.15


def kinetics(**changes: float) -> CureKinetics:
    """Cure kinetics with temperature-independent rate constants k1 = 1e-3, k2 = 1e-2 1/s."""
    values = {
        "k1_prefactor": 1e-3,
        "k1_activation_energy": 0.0,
        "k2_prefactor": 1e-2,
        "k2_activation_energy": 0.0,
        "m": 1.0,
        "p": 1.0,
        "gel_conversion": 0.5,
        "c1": 2.0,
        "c2": 0.0,
        "viscosity_activation_energy": 0.0,
        "reference_temperature": 295.15,
        "syringe_temperature": 295.15,
        "bone_temperature": 310.15,
    }
    values.update(changes)
    return CureKinetics(**values)  # type: ignore[arg-type]


def preset(name: str) -> Cement:
    return Cement.model_validate(
        yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())["cement"]
    )


# --- age-based laws ------------------------------------------------------------------------


def test_no_curing() -> None:
    law = NoCuring()
    assert [law.factor(age) for age in (0.0, 240.0, 1e4)] == [1.0, 1.0, 1.0]
    assert law.flow_index(240.0) is None


def test_exponential_curing() -> None:
    law = ExponentialCuring(reference_age=240.0, time_constant=120.0)
    assert law.factor(240.0) == 1.0
    for age in (0.0, 100.0, 360.0, 600.0):
        assert law.factor(age) == pytest.approx(np.exp((age - 240.0) / 120.0), rel=1e-14)
    assert law.factor(360.0) == pytest.approx(np.e, rel=1e-14)
    assert law.flow_index(300.0) is None


TABLE = TabulatedCuring(
    ages=(60.0, 240.0, 420.0, 600.0),
    values=(40.0, 100.0, 400.0, 5000.0),
    reference_age=240.0,
    flow_indices=(0.7, 0.6, 0.5, 0.3),
)


def test_tabulated_curing_is_exact_at_the_nodes() -> None:
    assert TABLE.factor(240.0) == 1.0
    for age, value in zip(TABLE.ages, TABLE.values, strict=True):
        assert TABLE.value(age) == pytest.approx(value, rel=1e-14)
        assert TABLE.factor(age) == pytest.approx(value / 100.0, rel=1e-14)


def test_tabulated_curing_is_log_linear_between_nodes() -> None:
    for lo, hi in zip(range(3), range(1, 4), strict=True):
        (a0, a1), (v0, v1) = TABLE.ages[lo : hi + 1], TABLE.values[lo : hi + 1]
        for w in (0.25, 0.5, 0.9):
            age = a0 + w * (a1 - a0)
            expected = v0 ** (1 - w) * v1**w  # linear in log v
            assert TABLE.value(age) == pytest.approx(expected, rel=1e-13)
            assert TABLE.factor(age) == pytest.approx(expected / 100.0, rel=1e-13)
    # the geometric, not the arithmetic, mean halfway
    assert TABLE.value(330.0) == pytest.approx(200.0, rel=1e-13)


def test_tabulated_curing_is_held_outside_the_table() -> None:
    for age in (0.0, 30.0, 59.9999):
        assert TABLE.factor(age) == pytest.approx(0.4, rel=1e-5)
    assert TABLE.factor(0.0) == pytest.approx(0.4, rel=1e-14)
    for age in (600.0, 900.0, 1e5):
        assert TABLE.factor(age) == pytest.approx(50.0, rel=1e-14)
    assert TABLE.flow_index(0.0) == 0.7
    assert TABLE.flow_index(1e5) == 0.3


def test_tabulated_flow_index_is_interpolated_linearly() -> None:
    for age, n in zip(TABLE.ages, TABLE.flow_indices, strict=True):  # type: ignore[arg-type]
        assert TABLE.flow_index(age) == pytest.approx(n, rel=1e-14)
    assert TABLE.flow_index(150.0) == pytest.approx(0.65, rel=1e-14)
    assert TABLE.flow_index(555.0) == pytest.approx(0.5 + 0.75 * (0.3 - 0.5), rel=1e-14)
    two_columns = TabulatedCuring(TABLE.ages, TABLE.values, 240.0)
    assert two_columns.flow_index(300.0) is None


def test_three_column_table_changes_the_flow_index_of_the_cement() -> None:
    cement = Cement.model_validate(
        {
            "rheology": {"model": "power_law", "n": 0.6},
            "curing": {
                "law": "table",
                "reference_age": 240,
                "points": [[60, 40, 0.7], [240, 100, 0.6], [420, 400, 0.5]],
            },
        }
    )
    model = CementModel(cement)
    assert model.law_at(150.0) == PowerLaw(pytest.approx(100.0, rel=1e-14), pytest.approx(0.65))
    assert model.syringe_factor(420.0) == pytest.approx(4.0, rel=1e-14)
    g = np.array([0.1, 1.0, 10.0])
    np.testing.assert_allclose(
        model.viscosity(g, model.syringe_factor(420.0), 420.0), 400.0 * g ** (0.5 - 1), rtol=1e-13
    )


def test_curing_law_from_a_table_spec() -> None:
    cement = Cement.model_validate(
        {
            "rheology": {"model": "newtonian"},
            "curing": {"law": "table", "reference_age": 240, "points": [[60, 40], [240, 100]]},
        }
    )
    law = cement.curing.build()
    assert law == TabulatedCuring((60.0, 240.0), (40.0, 100.0), 240.0, None)


# --- cure kinetics -------------------------------------------------------------------------

TIMES = [0.5, 5.0, 30.0, 100.0, 250.0, 600.0, 1500.0]  # a > 0.99 at the end


def autocatalytic(t: float, a0: float, k1: float, k2: float) -> float:
    """Exact degree of cure for m = p = 1 at constant temperature."""
    c = (k1 + k2 * a0) / (1 - a0)
    e = c * np.exp((k1 + k2) * t)
    return (e - k1) / (e + k2)


@pytest.mark.parametrize("a0", [0.0, 0.3])
@pytest.mark.parametrize(("k1", "k2"), [(1e-3, 1e-2), (2e-3, 2e-3), (5e-4, 2e-2)])
def test_autocatalytic_cure_against_the_exact_solution(a0: float, k1: float, k2: float) -> None:
    law = kinetics(k1_prefactor=k1, k2_prefactor=k2)
    for t in TIMES:
        got = law.advance(np.array([a0]), 300.0, t)
        assert abs(got[0] - autocatalytic(t, a0, k1, k2)) < 1e-8, t


def test_autocatalytic_cure_advances_many_points_at_once() -> None:
    a0 = np.array([0.0, 0.1, 0.2, 0.4])
    got = kinetics().advance(a0, 300.0, 200.0)
    expected = [autocatalytic(200.0, a, 1e-3, 1e-2) for a in a0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)
    assert got.shape == a0.shape
    assert kinetics().advance(a0, 300.0, 0.0) is not a0  # a copy, unchanged
    np.testing.assert_array_equal(kinetics().advance(a0, 300.0, 0.0), a0)


def test_cure_in_steps_equals_cure_at_once() -> None:
    law = kinetics()
    a = np.array([0.0])
    for _ in range(10):
        a = law.advance(a, 300.0, 60.0)
    assert abs(a[0] - autocatalytic(600.0, 0.0, 1e-3, 1e-2)) < 1e-8


@pytest.mark.parametrize("a0", [0.0, 0.1, 0.6])
def test_second_order_cure_against_the_exact_solution(a0: float) -> None:
    k1 = 1e-3
    law = kinetics(k1_prefactor=k1, k2_prefactor=0.0, p=2.0)
    for t in [*TIMES, 2e4]:
        exact = 1.0 - 1.0 / (1.0 / (1.0 - a0) + k1 * t)
        got = law.advance(np.array([a0]), 300.0, t)
        assert abs(got[0] - exact) < 1e-8, t


def test_rate_constants_are_arrhenius() -> None:
    law = kinetics(k1_prefactor=2.2e4, k1_activation_energy=45e3, k2_activation_energy=30e3)
    for temperature in (295.15, 310.15):
        k1, k2 = law.rate_constants(temperature)
        assert k1 == pytest.approx(2.2e4 * np.exp(-45e3 / (GAS_CONSTANT * temperature)))
        assert k2 == pytest.approx(1e-2 * np.exp(-30e3 / (GAS_CONSTANT * temperature)))
    assert law.rate_constants(310.15)[0] > law.rate_constants(295.15)[0]


def test_factor_of_is_one_at_the_reference_state() -> None:
    law = kinetics(viscosity_activation_energy=20e3, c2=0.5)
    assert law.factor_of(0.0, law.reference_temperature) == 1.0


def test_factor_of_rises_with_cure() -> None:
    law = kinetics(c1=2.69, c2=0.5)
    alpha = np.linspace(0.0, 0.499, 200)
    factor = law.factor_of(alpha, law.reference_temperature)
    assert np.all(np.isfinite(factor))
    assert np.all(np.diff(factor) > 0)
    # Castro-Macosko: (a_g / (a_g - a))^(c1 + c2 a)
    a = 0.3
    expected = (0.5 / 0.2) ** (2.69 + 0.5 * a)
    assert law.factor_of(a, law.reference_temperature) == pytest.approx(expected, rel=1e-14)


def test_factor_of_is_infinite_at_and_past_the_gel_point() -> None:
    law = kinetics()
    factor = law.factor_of(np.array([0.5, 0.6, 1.0]), law.reference_temperature)
    assert np.all(np.isinf(factor))
    assert np.all(factor > 0)


def test_factor_of_temperature_shift() -> None:
    law = kinetics(viscosity_activation_energy=20e3)
    warm = law.factor_of(0.0, 310.15)
    expected = np.exp(20e3 / GAS_CONSTANT * (1 / 310.15 - 1 / 295.15))
    assert warm == pytest.approx(expected, rel=1e-14)
    assert warm < 1.0  # warmer dough is thinner at the same degree of cure


def test_isothermal_set_time_against_the_exact_solution() -> None:
    # F = (a_g / (a_g - a))^c1 reaches S when a = a_g (1 - S^(-1/c1)); invert the exact a(t)
    k1, k2, c1, a_g = 1e-3, 1e-2, 2.0, 0.5
    law = kinetics(c1=c1, gel_conversion=a_g)
    a_set = a_g * (1 - 100.0 ** (-1 / c1))  # reference 1, set 100
    s = k1 + k2
    # (k1 + k2 a) / (1 - a) = k1 exp(s t) from a0 = 0
    t_set = np.log((k1 + k2 * a_set) / (1 - a_set) / k1) / s
    assert law.isothermal_set_time(1.0, 100.0, 300.0) == pytest.approx(t_set, rel=1e-6)


def test_syringe_conversion_follows_the_syringe_temperature() -> None:
    law = kinetics(k1_activation_energy=0.0, initial_conversion=0.05)
    assert law.syringe_conversion(0.0) == 0.05
    assert law.syringe_conversion(300.0) == pytest.approx(
        autocatalytic(300.0, 0.05, 1e-3, 1e-2), abs=1e-8
    )


def test_syringe_conversion_does_not_depend_on_the_ages_asked_before() -> None:
    # integrated on a 1-s grid and from the grid point below: the same value whichever ages
    # came first (a resumed run asks for other ages than the run it resumes)
    ages = [0.0, 0.4, 1.0, 57.3, 300.7, 299.99, 1e-3, 812.25]
    values = {}
    for order in (ages, ages[::-1], sorted(ages)):
        curing_module._syringe_grid.cache_clear()
        curing_module._syringe_conversion.cache_clear()
        law = kinetics(k1_activation_energy=0.0, initial_conversion=0.05)
        got = {age: law.syringe_conversion(age) for age in order}
        assert values.setdefault("first", got) == got
    for age, alpha in values["first"].items():
        assert alpha == pytest.approx(autocatalytic(age, 0.05, 1e-3, 1e-2), abs=1e-8)


# --- the shipped presets -------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_preset_set_time_at_25_and_37_celsius(name: str) -> None:
    cement = preset(name)
    law = cement.curing.build()
    assert isinstance(law, CureKinetics)
    reference = cement.rheology.primary()
    t25 = law.isothermal_set_time(reference, cement.set_viscosity, 25.0 + CELSIUS)
    t37 = law.isothermal_set_time(reference, cement.set_viscosity, 37.0 + CELSIUS)
    # Nicholas et al. 2007: 8.7-13 min at 25 C, curing rates halved at 37 C
    assert 8.7 * 60 <= t25 <= 13.0 * 60, t25 / 60
    assert t25 / t37 == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize(
    ("name", "anchors"),
    [
        ("vertebroplasty_low_viscosity", {3.5: 65, 5: 81, 6.5: 109, 8: 159, 9.5: 262}),
        ("vertebroplasty_high_viscosity", {3.5: 650, 5: 833, 6.5: 1144, 8: 1724}),
    ],
)
def test_preset_consistency_in_the_syringe_matches_its_documentation(
    name: str, anchors: dict[float, float]
) -> None:
    """The K*F values at 22 C that the preset file states in its header comment."""
    model = CementModel(preset(name))
    k = model.spec.rheology.primary()
    for minutes, documented in anchors.items():
        assert k * model.syringe_factor(60 * minutes) == pytest.approx(documented, rel=0.01)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_cement_in_the_bone_is_capped_at_the_set_viscosity(name: str) -> None:
    model = CementModel(preset(name))
    law = model.curing
    assert isinstance(law, CureKinetics)
    conversion = np.array([0.0, 0.3, 0.5, 0.9])
    factor = np.asarray(law.factor_of(conversion, law.bone_temperature))
    assert np.isinf(factor[2:]).all()
    mu = model.viscosity(np.full(4, 1.0), factor, 300.0)
    assert mu[2] == mu[3] == model.set_viscosity
    assert mu[0] < mu[1] < mu[2]


def test_presets_are_the_documented_files() -> None:
    assert sorted(p.stem for p in Path(PRESET_DIR).glob("*.yaml")) == PRESETS


def test_a_cure_far_faster_than_the_step_completes_within_the_substep_limit() -> None:
    """k1 = 1e300 1/s asked for 1e303 RK4 substeps of a 1-s step (the run never ended): now
    at most MAX_SUBSTEPS, and the cure is complete. A cure the limit does not bind keeps its
    accuracy (k2 = 0, p = 1: alpha = 1 - exp(-k1 dt))."""
    fast = kinetics(k1_prefactor=1e300, k2_prefactor=0.0)
    assert fast.advance(np.zeros(3), 310.0, 1.0).tolist() == [1.0, 1.0, 1.0]
    for k1, dt in ((1e-3, 1.0), (1.0, 4.0)):  # 1 substep; 800 substeps
        alpha = kinetics(k1_prefactor=k1, k2_prefactor=0.0).advance(np.zeros(1), 310.0, dt)
        assert alpha[0] == pytest.approx(1.0 - np.exp(-k1 * dt), rel=1e-12)
