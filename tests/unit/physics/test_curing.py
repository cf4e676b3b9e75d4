"""Unit tests of the cement viscosity against age (sim.physics.curing).

Laws are built through the scenario models, so values with units are converted as in a file.
Pure functions: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sim.physics.curing import viscosity_of_age
from sim.scenario.materials import ConstantViscosity, ExponentialViscosity, TabulatedViscosity


def test_constant_law_ignores_age() -> None:
    mu = viscosity_of_age(ConstantViscosity(law="constant", viscosity="100 Pa*s"))
    for age in (0.0, 60.0, 1e4):
        assert mu(age) == 100.0


def test_constant_law_converts_units() -> None:
    mu = viscosity_of_age(ConstantViscosity(law="constant", viscosity="50 cP"))
    assert mu(0.0) == 0.05


@pytest.fixture
def exponential() -> ExponentialViscosity:
    return ExponentialViscosity(
        law="exponential",
        viscosity="100 Pa*s",
        reference_age="4 min",
        time_constant="2 min",
        set_viscosity="75000 Pa*s",
    )


def test_exponential_law_at_the_reference_age(exponential: ExponentialViscosity) -> None:
    assert viscosity_of_age(exponential)(240.0) == pytest.approx(100.0, rel=1e-14)


def test_exponential_law_e_folds_over_one_time_constant(
    exponential: ExponentialViscosity,
) -> None:
    mu = viscosity_of_age(exponential)
    assert mu(240.0 + 120.0) == pytest.approx(100.0 * math.e, rel=1e-14)
    assert mu(240.0 - 120.0) == pytest.approx(100.0 / math.e, rel=1e-14)
    ages = np.linspace(0.0, 900.0, 31)
    values = np.array([mu(a) for a in ages])
    np.testing.assert_allclose(values, 100.0 * np.exp((ages - 240.0) / 120.0), rtol=1e-13)


def test_exponential_law_is_capped_at_the_set_viscosity(
    exponential: ExponentialViscosity,
) -> None:
    mu = viscosity_of_age(exponential)
    age_set = 240.0 + 120.0 * math.log(750.0)  # where 100 e^(...) reaches 75000
    assert mu(age_set - 1.0) < 75000.0
    assert mu(age_set + 1.0) == 75000.0
    assert mu(1e4) == 75000.0  # long after setting
    assert isinstance(mu(1e4), float)


def test_exponential_law_without_cap_keeps_rising() -> None:
    law = ExponentialViscosity(
        law="exponential", viscosity="100 Pa*s", reference_age="4 min", time_constant="2 min"
    )
    mu = viscosity_of_age(law)
    assert mu(240.0 + 120.0 * math.log(1e4)) == pytest.approx(1e6, rel=1e-12)


def test_exponential_law_rejects_a_cap_below_the_viscosity() -> None:
    with pytest.raises(ValueError, match="set_viscosity"):
        ExponentialViscosity(
            law="exponential",
            viscosity="100 Pa*s",
            reference_age="4 min",
            time_constant="2 min",
            set_viscosity="50 Pa*s",
        )


AGES = [60.0, 240.0, 480.0]  # s
MUS = [20.0, 100.0, 10000.0]  # Pa*s


@pytest.fixture
def table() -> TabulatedViscosity:
    return TabulatedViscosity(
        law="table", points=[["1 min", "20 Pa*s"], ["4 min", "100 Pa*s"], ["8 min", "1e4 Pa*s"]]
    )


def test_table_law_converts_its_points(table: TabulatedViscosity) -> None:
    assert table.points == list(zip(AGES, MUS, strict=True))


def test_table_law_is_exact_at_the_nodes(table: TabulatedViscosity) -> None:
    mu = viscosity_of_age(table)
    for age, value in zip(AGES, MUS, strict=True):
        assert mu(age) == pytest.approx(value, rel=1e-14)


def test_table_law_is_log_linear_between_nodes(table: TabulatedViscosity) -> None:
    mu = viscosity_of_age(table)
    # midpoints: geometric means of the neighbours (not arithmetic)
    assert mu(150.0) == pytest.approx(math.sqrt(20.0 * 100.0), rel=1e-13)
    assert mu(360.0) == pytest.approx(math.sqrt(100.0 * 10000.0), rel=1e-13)
    # a quarter of the way: 100 * 100^(1/4)
    assert mu(300.0) == pytest.approx(100.0 * 100.0**0.25, rel=1e-13)


def test_table_law_holds_the_end_values_outside(table: TabulatedViscosity) -> None:
    mu = viscosity_of_age(table)
    assert mu(0.0) == pytest.approx(20.0, rel=1e-14)
    assert mu(59.0) == pytest.approx(20.0, rel=1e-14)
    assert mu(481.0) == pytest.approx(1e4, rel=1e-14)
    assert mu(1e6) == pytest.approx(1e4, rel=1e-14)


def test_table_law_is_non_decreasing(table: TabulatedViscosity) -> None:
    mu = viscosity_of_age(table)
    values = [mu(a) for a in np.linspace(0.0, 600.0, 601)]
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_table_law_with_a_plateau(tmp_path) -> None:
    csv = tmp_path / "plateau.csv"
    csv.write_text("age_s,viscosity_pa_s\n0,50\n100,50\n200,500\n")
    mu = viscosity_of_age(TabulatedViscosity(law="table", file=csv))
    assert mu(50.0) == pytest.approx(50.0, rel=1e-14)
    assert mu(150.0) == pytest.approx(math.sqrt(50.0 * 500.0), rel=1e-13)
