"""Cloud metrics on synthetic saturation fields with known answers (sim.outputs.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from sim import measurements as measure
from sim.outputs.metrics import FrontDistances, cloud_shape, coverage, ellipsoid_sphericity
from sim.problem import InjectionProblem

from .conftest import cube_of_bone

L, N = 0.02, 24  # cube edge (m) and cells per edge
H = L / N


@pytest.fixture(scope="module")
def cube() -> InjectionProblem:
    """A cube of bone (structured tetrahedra) with an outlet on the face x = L."""
    return cube_of_bone(L, N, 0.9)


def _fill(pb: InjectionProblem, inside) -> None:
    x = pb.disc.V.tabulate_dof_coordinates()
    pb.state.S.x.array[:] = np.where(inside(x - L / 2), 1.0, 0.0)


def test_ball_volume_axes_and_sphericity(cube):
    r = 6e-3
    _fill(cube, lambda d: np.linalg.norm(d, axis=1) <= r)
    shape = cloud_shape(cube)
    assert shape["volume_m3"] == pytest.approx(4 / 3 * np.pi * r**3, rel=0.05)
    np.testing.assert_allclose(shape["ellipsoid_axes_m"], r, rtol=0.05)
    np.testing.assert_allclose(shape["centre_m"], L / 2, atol=1e-9)
    assert shape["sphericity"] == pytest.approx(1.0, abs=0.02)
    assert shape["extent_m"] == pytest.approx([2 * r] * 3, abs=H)


def test_ellipsoid_axes_and_sphericity(cube):
    a, b, c = 8e-3, 5e-3, 3.5e-3
    _fill(cube, lambda d: (d[:, 0] / a) ** 2 + (d[:, 1] / b) ** 2 + (d[:, 2] / c) ** 2 <= 1)
    shape = cloud_shape(cube)
    assert shape["volume_m3"] == pytest.approx(4 / 3 * np.pi * a * b * c, rel=0.06)
    np.testing.assert_allclose(shape["ellipsoid_axes_m"], [a, b, c], rtol=0.07)
    assert shape["sphericity"] == pytest.approx(ellipsoid_sphericity(a, b, c), rel=0.03)


def test_sphericity_of_a_spheroid_against_the_exact_area():
    a, c = 2.0, 1.0  # prolate spheroid, semi-axes a > c = c
    e = np.sqrt(1 - c**2 / a**2)
    area = 2 * np.pi * c**2 * (1 + a / (c * e) * np.arcsin(e))
    volume = 4 / 3 * np.pi * a * c * c
    exact = np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area
    assert ellipsoid_sphericity(a, c, c) == pytest.approx(exact, rel=0.011)
    assert ellipsoid_sphericity(1.0, 1.0, 1.0) == pytest.approx(1.0, rel=1e-12)


def test_half_filled_region_coverage_and_distance_to_the_outlet(cube):
    # S = 1 on the vertex planes x <= L/2: their boxes reach h/2 beyond the plane
    _fill(cube, lambda d: d[:, 0] <= 1e-12)
    assert coverage(cube, "whole") == pytest.approx(0.5 + 0.5 / N, rel=1e-12)
    assert measure.fill_fraction(cube, "whole") == pytest.approx(0.5 + 0.5 / N, rel=1e-12)
    distances = FrontDistances(cube)()
    assert distances["outlet"] == pytest.approx(L / 2, rel=1e-12)
    assert distances["cortex"] == pytest.approx(0.0, abs=1e-15)  # it touches the side walls
