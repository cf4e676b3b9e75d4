"""Unit tests of synthetic CT volumes and porosity fields (sim.ct.synthetic).

Pure NumPy: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.ct import (
    CTMapping,
    cortical_shell,
    linear_porosity_gradient,
    rod_lattice,
    spherical_lesion,
    synthetic_ct,
    uniform_porosity,
)

SHAPE = (9, 8, 7)
VOXEL = 1e-3
ORIGIN = (0.0, 0.0, 0.0)


def centres(vol):
    return vol.voxel_centres()


@pytest.mark.parametrize(
    "mapping",
    [CTMapping(), CTMapping(hu_slope=1.1, hu_intercept=-20.0, tissue_mineral_density=1150.0)],
)
def test_mapping_the_volume_back_gives_the_field_at_voxel_centres(mapping: CTMapping) -> None:
    field = spherical_lesion(
        linear_porosity_gradient(0.82, 0.93, axis=0, start=0.0, end=8e-3),
        0.97,
        (4e-3, 4e-3, 3e-3),
        2.1e-3,
    )
    vol = synthetic_ct(SHAPE, VOXEL, ORIGIN, field, mapping)
    assert vol.values.dtype == np.float64 and vol.shape == SHAPE
    x, y, z = centres(vol)
    assert mapping.porosity(vol.values) == pytest.approx(field(x, y, z), rel=1e-13, abs=1e-14)


def test_field_helpers() -> None:
    x, y, z = np.meshgrid(*(np.linspace(0.0, 10e-3, 11),) * 3, indexing="ij")
    assert np.all(uniform_porosity(0.9)(x, y, z) == 0.9)
    g = linear_porosity_gradient(0.8, 0.95, axis=2, start=0.0, end=10e-3)(x, y, z)
    assert g[0, 0, 0] == pytest.approx(0.8) and g[0, 0, -1] == pytest.approx(0.95)
    assert g == pytest.approx(0.8 + 15.0 * z)
    oblique = linear_porosity_gradient(0.8, 0.9, axis=(1.0, 1.0, 0.0), start=0.0, end=1e-2)
    assert oblique(np.array(5e-3), np.array(5e-3), np.array(0.0)) == pytest.approx(
        0.8 + 0.1 * np.sqrt(0.5)
    )
    lesion = spherical_lesion(0.88, 0.97, centre=(5e-3, 5e-3, 5e-3), radius=2e-3)(x, y, z)
    assert lesion[5, 5, 5] == 0.97 and lesion[5, 5, 7] == 0.97 and lesion[5, 5, 8] == 0.88
    shell = cortical_shell(
        0.9, 0.1, lower=(0, 0, 0), upper=(10e-3, 10e-3, 10e-3), thickness=1.5e-3
    )(x, y, z)
    assert (
        shell[0, 5, 5] == 0.1
        and shell[1, 5, 5] == 0.1
        and shell[2, 5, 5] == 0.9
        and shell[5, 5, 10] == 0.1
    )
    with pytest.raises(ValueError, match="end != start"):
        linear_porosity_gradient(0.8, 0.9, start=1.0, end=1.0)
    with pytest.raises(ValueError, match="radius"):
        spherical_lesion(0.9, 0.97, (0, 0, 0), 0.0)


def test_constant_field_and_rotated_grid() -> None:
    rotation = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    vol = synthetic_ct(SHAPE, (1e-3, 2e-3, 3e-3), (0.01, 0.02, 0.03), 0.9, direction=rotation)
    assert CTMapping().porosity(vol.values) == pytest.approx(np.full(SHAPE, 0.9))
    field = linear_porosity_gradient(0.85, 0.95, axis=0, start=-0.01, end=0.05)
    vol = synthetic_ct(SHAPE, (1e-3, 2e-3, 3e-3), (0.01, 0.02, 0.03), field, direction=rotation)
    x, y, z = vol.voxel_centres()
    assert CTMapping().porosity(vol.values) == pytest.approx(field(x, y, z), rel=1e-13)


def test_field_outside_the_mapping_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        synthetic_ct(SHAPE, VOXEL, ORIGIN, linear_porosity_gradient(0.5, 1.5, axis=0, end=8e-3))
    with pytest.raises(ValueError, match="shape"):
        synthetic_ct((3, 3), VOXEL, ORIGIN, 0.9)


def test_rod_lattice_fraction_symmetry_and_eighth() -> None:
    """BV/TV near the target; without jitter the unit cell is mirror-symmetric and its
    eighth is the lattice drawn on the smaller block; jitter is reproducible by seed."""
    cell = rod_lattice((12, 12, 12), 12, 0.15, horizontal_ratio=0.7)
    assert cell.dtype == bool and abs((1 - cell.mean()) - 0.15) < 0.02
    for axis in range(3):
        assert np.array_equal(cell, np.flip(cell, axis))
    assert np.array_equal(rod_lattice((6, 6, 6), 12, 0.15, horizontal_ratio=0.7), cell[:6, :6, :6])
    assert not np.array_equal(cell[:, :, 0], cell[0, :, :])  # thinner horizontal rods
    jittered = rod_lattice((12, 12, 12), 6, 0.1, jitter=0.1, seed=3)
    assert np.array_equal(jittered, rod_lattice((12, 12, 12), 6, 0.1, jitter=0.1, seed=3))
    assert not np.array_equal(jittered, rod_lattice((12, 12, 12), 6, 0.1, jitter=0.1, seed=4))
    with pytest.raises(ValueError, match="bone_volume_fraction"):
        rod_lattice((4, 4, 4), 4, 1.5)
