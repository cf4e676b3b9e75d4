"""Unit tests of sim.units: scenario quantities with units are converted to SI floats.

Pure Python (no MPI communication): runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import pytest

from sim.units import (
    FLOW_RATE,
    LENGTH,
    PERMEABILITY,
    PRESSURE,
    TIME,
    VISCOSITY,
    VOLUME,
    point_to_si,
    to_si,
)

# --- to_si: values with units -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dim", "expected"),
    [
        ("3 mL", VOLUME, 3e-6),
        ("3 mL/min", FLOW_RATE, 5e-8),
        ("100 mPa*s", VISCOSITY, 0.1),
        ("50 cP", VISCOSITY, 0.05),
        ("2 min", TIME, 120.0),
        ("1e-9 m^2", PERMEABILITY, 1e-9),
        ("12 mm", LENGTH, 0.012),
        ("1 kPa", PRESSURE, 1000.0),
        ("  3 mL  ", VOLUME, 3e-6),  # surrounding blanks are ignored
    ],
)
def test_to_si_converts_units_exactly(value: str, dim, expected: float) -> None:
    # exact equality: the module rounds to 15 significant digits so that '3 mL' == 3e-6
    assert to_si(value, dim) == expected


def test_to_si_result_is_a_plain_float() -> None:
    result = to_si("3 mL", VOLUME)
    assert type(result) is float


def test_to_si_rounding_makes_unit_and_si_spellings_equal() -> None:
    # without rounding, 0.24 mm would be 0.00023999999999999998 m
    assert to_si("0.24 mm", LENGTH) == 0.00024
    assert to_si("2 mL/min", FLOW_RATE) == pytest.approx(2e-6 / 60.0, rel=1e-14)


@pytest.mark.parametrize("number", [3e-6, 3, 0.0, -2.5, 1e-9])
def test_to_si_takes_plain_numbers_as_si(number: float) -> None:
    assert to_si(number, VOLUME) == float(number)
    assert type(to_si(number, VOLUME)) is float


@pytest.mark.parametrize(("text", "dim"), [("3e-6", VOLUME), ("1e-9", PERMEABILITY)])
def test_to_si_takes_a_bare_number_string_as_si(text: str, dim) -> None:
    assert to_si(text, dim) == float(text)


# --- to_si: rejected values ---------------------------------------------------------------


def test_wrong_dimension_names_the_expected_one_and_gives_an_example() -> None:
    with pytest.raises(ValueError) as info:
        to_si("3 m", VOLUME)
    message = str(info.value)
    assert "a volume" in message
    assert "3 mL" in message  # the example
    assert "'3 m'" in message  # the bad value


@pytest.mark.parametrize(
    ("value", "dim"),
    [
        ("3 mL", LENGTH),
        ("2 min", VISCOSITY),
        ("100 Pa*s", PRESSURE),
        ("3 mL/min", VOLUME),
        ("0.9 m/km", VOLUME),  # dimensionless (with units) where a volume is expected
    ],
)
def test_wrong_dimension_is_rejected(value: str, dim) -> None:
    with pytest.raises(ValueError, match=dim.name):
        to_si(value, dim)


@pytest.mark.parametrize("garbage", ["abc", "3 furlongs per banana", "", "-", "3 mL)", "3 mL/"])
def test_garbage_strings_are_rejected(garbage: str) -> None:
    with pytest.raises(ValueError) as info:
        to_si(garbage, VOLUME)
    assert "a volume" in str(info.value)


@pytest.mark.parametrize("garbage", ["(3 mL", "3 mL'", "{", "1/0 mL", "10**400 mL"])
def test_unbalanced_or_arithmetic_garbage_is_a_value_error(garbage: str) -> None:
    with pytest.raises(ValueError, match="a volume"):
        to_si(garbage, VOLUME)


# --- to_si: text pint could not evaluate quickly --------------------------------------------
# pint evaluates the text as arithmetic, integer powers exactly: '9**9**9 mL' ran for hours.
# The cases here are quick even without the bounds (2**2**2**2**2 = 2**65536), so that a
# regression fails instead of hanging; the CLI test of the audit case runs in a subprocess.


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2**2**2**2**2 mL", "a power of a power is not read"),
        ("2^2^2^2^2 mL", "a power of a power is not read"),
        ("1e-9 m**2**2**2**2", "a power of a power is not read"),
        ("(2**2)**2 mL", "a power of a power is not read"),
        ("((2)**2)**2 mL", "a power of a power is not read"),
        ("10^400 mL", "an exponent must be a number of at most 30 in magnitude"),
        ("9²²²²² mL", "an exponent must be a number of at most 30 in magnitude"),
        ("m**(9**9)", "an exponent must be a number of at most 30 in magnitude"),
        ("1" + "0" * 100 + " mL", "longer than 100 characters"),
    ],
)
def test_text_pint_could_not_evaluate_quickly_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        to_si(text, VOLUME)
    message = str(info.value)
    for part in (repr(text), "a volume", problem):
        assert part in message, message


@pytest.mark.parametrize(
    ("text", "dim", "expected"),
    [
        ("1e-9 m²", PERMEABILITY, 1e-9),
        ("1e-9 m**(2)", PERMEABILITY, 1e-9),
        ("10^-15 m^2", PERMEABILITY, 1e-15),
        ("2e-9 (m^2/s) * s", PERMEABILITY, 2e-9),
        ("3 mm^3 * 1000", VOLUME, 3e-6),
        ("1e-9 m ** (4/2)", PERMEABILITY, 1e-9),
    ],
)
def test_exponents_that_are_small_numbers_are_read(text: str, dim, expected: float) -> None:
    assert to_si(text, dim) == expected


@pytest.mark.parametrize("value", ["inf mL", "nan mL", "3e999 mL", float("inf"), float("nan")])
def test_non_finite_values_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="a volume"):
        to_si(value, VOLUME)


@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_rejected(flag: bool) -> None:
    # bool is a subclass of int: without a check True would be 1 m^3
    with pytest.raises(ValueError, match="boolean"):
        to_si(flag, VOLUME)


@pytest.mark.parametrize("other", [None, [3], {"value": 3}])
def test_other_types_are_rejected(other: object) -> None:
    with pytest.raises(ValueError, match="a volume"):
        to_si(other, VOLUME)


# --- points ---------------------------------------------------------------------------------


def test_point_with_a_common_unit() -> None:
    assert point_to_si("[4, -6, 0] mm") == (0.004, -0.006, 0.0)


def test_point_with_parentheses_and_blanks() -> None:
    assert point_to_si("(4 -6 0) mm") == (0.004, -0.006, 0.0)


def test_point_with_mixed_units_and_plain_numbers() -> None:
    assert point_to_si(["4 mm", "1 cm", 0]) == (0.004, 0.01, 0.0)


def test_point_of_plain_numbers_is_in_metres() -> None:
    assert point_to_si([0.004, -0.006, 0]) == (0.004, -0.006, 0.0)
    assert point_to_si("[0.004, -0.006, 0]") == (0.004, -0.006, 0.0)


def test_point_is_a_tuple_of_floats() -> None:
    p = point_to_si(("1 mm", 2, "3 m"))
    assert isinstance(p, tuple)
    assert all(type(c) is float for c in p)
    assert p == (0.001, 2.0, 3.0)


@pytest.mark.parametrize(
    "bad",
    ["[4, -6] mm", "[1, 2, 3, 4] mm", [1, 2], [1, 2, 3, 4], (), 5],
)
def test_point_needs_three_coordinates(bad: object) -> None:
    with pytest.raises(ValueError, match="three coordinates"):
        point_to_si(bad)


def test_unreadable_point_string_is_rejected_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"\[4, -6, 0\] mm"):
        point_to_si("4 mm")


def test_point_with_a_wrong_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="a length"):
        point_to_si("[4, 5, 6] s")
