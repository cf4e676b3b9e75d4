"""Unit tests of CT volumes (sim.ct.volume): readers, writers, sampling and its errors.

Files are written by rank 0 into the shared temporary folder and read by every rank, so the
tests run serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from sim.ct import (
    CTFileError,
    CTVolume,
    PointsOutsideVolumeError,
    read_ct,
    sample,
    sample_cells,
    write_ct_h5,
    write_ct_nifti,
    write_ct_npy,
)
from sim.ct.volume import average_cells

COMM = MPI.COMM_WORLD
ROTATION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z


def linear_volume(direction: np.ndarray | None = None) -> tuple[CTVolume, np.ndarray, float]:
    """A volume holding the linear field f(x) = c0 + g . x (HU) at its voxel centres."""
    g, c0 = np.array([3.0e4, -1.5e4, 0.8e4]), 150.0  # HU/m, HU
    vol = CTVolume(np.zeros((7, 6, 5)), [1.0e-3, 1.5e-3, 2.0e-3], [-2e-3, 1e-3, 0.5e-3], direction)
    x, y, z = vol.voxel_centres()
    vol.values = c0 + g[0] * x + g[1] * y + g[2] * z
    return vol, g, c0


def write_on_root(path: Path, writer, *args, **kwargs) -> Path:
    if COMM.rank == 0:
        writer(path, *args, **kwargs)
    COMM.barrier()
    return path


def assert_same_volume(a: CTVolume, b: CTVolume) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.values, b.values)
    assert a.voxel_size == pytest.approx(b.voxel_size, rel=1e-12)
    assert a.origin == pytest.approx(b.origin, rel=1e-12, abs=1e-15)
    da = np.eye(3) if a.direction is None else a.direction
    db = np.eye(3) if b.direction is None else b.direction
    assert da == pytest.approx(db, abs=1e-12)


# --- geometry ---------------------------------------------------------------------------------


def test_geometry_conventions() -> None:
    vol = CTVolume(
        np.zeros((4, 3, 2), dtype=np.int16), [1e-3, 2e-3, 3e-3], [1.0, 2.0, 3.0], 2.0 * ROTATION
    )
    assert vol.values.dtype == np.float32  # integers are stored as float32
    assert vol.direction == pytest.approx(ROTATION)  # columns normalised
    # voxel (1, 0, 0) lies one voxel along the rotated i axis (+y)
    assert vol.world_coordinates([1, 0, 0]) == pytest.approx([1.0, 2.001, 3.0])
    pts = np.array([[1.0, 2.0, 3.0], [0.9995, 2.0025, 3.003]])
    assert vol.world_coordinates(vol.index_coordinates(pts)) == pytest.approx(pts)
    lo, hi = vol.bounds()
    assert lo == pytest.approx([1.0 - 2.5 * 2e-3, 2.0 - 0.5e-3, 3.0 - 1.5e-3])
    assert hi == pytest.approx([1.0 + 0.5 * 2e-3, 2.0 + 3.5e-3, 3.0 + 4.5e-3])


def test_volume_validation() -> None:
    with pytest.raises(ValueError, match="3-D"):
        CTVolume(np.zeros((3, 3)), 1e-3, [0, 0, 0])
    with pytest.raises(ValueError, match="voxel_size must be > 0"):
        CTVolume(np.zeros((2, 2, 2)), [1e-3, 0.0, 1e-3], [0, 0, 0])
    with pytest.raises(ValueError, match="origin"):
        CTVolume(np.zeros((2, 2, 2)), 1e-3, [0, 0])
    with pytest.raises(ValueError, match="independent"):
        CTVolume(np.zeros((2, 2, 2)), 1e-3, [0, 0, 0], [[1, 1, 0], [0, 0, 0], [0, 0, 1.0]])


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", [None, ROTATION])
def test_linear_interpolation_is_exact_for_a_linear_field(direction: np.ndarray | None) -> None:
    vol, g, c0 = linear_volume(direction)
    rng = np.random.default_rng(3)
    idx = rng.uniform(0.0, np.asarray(vol.shape) - 1.0, size=(500, 3))  # interior: between centres
    pts = vol.world_coordinates(idx)
    assert sample(vol, pts) == pytest.approx(c0 + pts @ g, rel=1e-12, abs=1e-9)
    # voxel centres come back exactly with both methods
    centres = vol.world_coordinates(np.array([[0, 0, 0], [6, 5, 4], [3, 2, 1]], dtype=float))
    for method in ("linear", "nearest"):
        assert sample(vol, centres, method=method) == pytest.approx(c0 + centres @ g, rel=1e-13)


def test_edge_half_voxel_holds_the_edge_value_and_beyond_is_outside() -> None:
    vol, _, _ = linear_volume()
    edge = vol.world_coordinates([[-0.4, 0.0, 0.0]])
    assert sample(vol, edge) == pytest.approx(vol.values[0, 0, 0])
    pts = vol.world_coordinates(
        [[1.0, 1.0, 1.0], [-0.7, 0.0, 0.0], [3.0, 9.0, 1.0], [2.0, 2.0, 2.0]]
    )
    with pytest.raises(
        PointsOutsideVolumeError, match=r"2 of 4 points lie outside the CT volume"
    ) as info:
        sample(vol, pts)
    assert "length_unit_factor" in str(info.value)
    out = sample(vol, pts, outside="nan")
    assert np.isnan(out[[1, 2]]).all() and np.isfinite(out[[0, 3]]).all()


def test_sample_cells_quadrature_rules() -> None:
    vol, g, c0 = linear_volume()
    rng = np.random.default_rng(11)
    lo, hi = vol.world_coordinates([1.0, 1.0, 1.0]), vol.world_coordinates([5.0, 4.0, 3.0])
    cells = lo + rng.uniform(0.0, 1.0, size=(40, 4, 3)) * (hi - lo)
    centroids = cells.mean(axis=1)
    for n_points in (1, 4):  # both rules reproduce the centroid value of a linear field
        assert sample_cells(vol, cells, n_points=n_points) == pytest.approx(
            c0 + centroids @ g, rel=1e-12
        )
    assert sample_cells(vol, np.zeros((0, 4, 3))).shape == (0,)
    with pytest.raises(ValueError, match="n_points"):
        sample_cells(vol, cells, n_points=3)
    with pytest.raises(ValueError, match=r"\(n, 4, 3\)"):
        sample_cells(vol, cells[:, :3])
    far = cells.copy()
    far[:3] += 1.0  # three cells a metre away
    with pytest.raises(PointsOutsideVolumeError, match=r"3 of 40 cells"):
        sample_cells(vol, far)
    values = sample_cells(vol, far, outside="nan")
    assert np.isnan(values[:3]).all() and np.isfinite(values[3:]).all()


def test_crop_keeps_samples() -> None:
    vol, _, _ = linear_volume(ROTATION)
    pts = vol.world_coordinates(np.array([[2.2, 2.5, 1.5], [3.9, 3.1, 2.7]]))
    sub = vol.crop(pts.min(axis=0), pts.max(axis=0))
    assert sub.values.size < vol.values.size
    assert sample(sub, pts) == pytest.approx(sample(vol, pts), rel=1e-13)


# --- readers and writers ----------------------------------------------------------------------


@pytest.mark.parametrize("direction", [None, ROTATION])
def test_h5_round_trip(shared_tmp_path: Path, direction: np.ndarray | None) -> None:
    vol, _, _ = linear_volume(direction)
    path = write_on_root(shared_tmp_path / "ct.h5", write_ct_h5, vol)
    assert_same_volume(read_ct(path), vol)
    # lengths in another unit: the same file read as mm is 1000x smaller
    mm = read_ct(path, length_unit_factor=1e-3)
    assert mm.voxel_size == pytest.approx(vol.voxel_size * 1e-3)


def test_npy_round_trip_needs_the_geometry(shared_tmp_path: Path) -> None:
    vol, _, _ = linear_volume()
    path = write_on_root(shared_tmp_path / "ct.npy", write_ct_npy, vol)
    back = read_ct(path, voxel_size=vol.voxel_size, origin=vol.origin)
    assert_same_volume(back, vol)
    # the geometry given is in metres: the file's length unit does not scale it again
    back_mm = read_ct(path, length_unit_factor=1e-3, voxel_size=vol.voxel_size, origin=vol.origin)
    np.testing.assert_array_equal(back_mm.voxel_size, vol.voxel_size)
    np.testing.assert_array_equal(back_mm.origin, vol.origin)
    with pytest.raises(CTFileError, match="pass voxel_size and origin"):
        read_ct(path)
    with pytest.raises(CTFileError, match="pass origin"):
        read_ct(path, voxel_size=1e-3)


@pytest.mark.parametrize("order", ["zyx", "yzx"])
def test_npy_in_another_axis_order(shared_tmp_path: Path, order: str) -> None:
    vol, _, _ = linear_volume()  # a field that changes along x, y and z differently
    stored = np.transpose(vol.values, ["xyz".index(a) for a in order])  # array[order]
    path = write_on_root(shared_tmp_path / f"ct_{order}.npy", lambda p: np.save(p, stored))
    back = read_ct(path, voxel_size=vol.voxel_size, origin=vol.origin, axis_order=order)
    assert_same_volume(back, vol)
    wrong = read_ct(path, voxel_size=vol.voxel_size, origin=vol.origin)
    assert wrong.values.shape != vol.values.shape  # (7, 6, 5) read as (5, 6, 7) or (6, 5, 7)
    with pytest.raises(ValueError, match="permutation of 'xyz'"):
        read_ct(path, voxel_size=vol.voxel_size, origin=vol.origin, axis_order="xxz")


def test_nifti_round_trip(shared_tmp_path: Path) -> None:
    pytest.importorskip("nibabel")
    vol, _, _ = linear_volume(ROTATION)
    for name in ("ct.nii", "ct.nii.gz"):
        path = write_on_root(shared_tmp_path / name, write_ct_nifti, vol)  # lengths in mm
        assert_same_volume(read_ct(path, length_unit_factor=1e-3), vol)
        # the header says mm: read so without being told, and a contradiction is an error
        assert_same_volume(read_ct(path), vol)
        with pytest.raises(CTFileError, match="its header gives lengths in mm, but"):
            read_ct(path, length_unit_factor=1.0)
    unknown = write_on_root(
        shared_tmp_path / "unknown.nii", lambda p, v: write_ct_nifti(p, v, length_unit=0.5e-3), vol
    )
    assert_same_volume(read_ct(unknown, length_unit_factor=0.5e-3), vol)  # unit unknown: as told


def test_nifti_without_nibabel_says_how_to_install(
    shared_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_tmp_path / "fake.nii"
    if COMM.rank == 0:
        path.write_bytes(b"\0" * 400)
    COMM.barrier()
    monkeypatch.setitem(sys.modules, "nibabel", None)  # makes `import nibabel` fail
    with pytest.raises(ImportError, match="pip install nibabel"):
        read_ct(path, length_unit_factor=1e-3)
    vol, _, _ = linear_volume()
    with pytest.raises(ImportError, match="pip install nibabel"):
        write_ct_nifti(shared_tmp_path / "never.nii", vol)


def test_bad_files_give_clear_errors(shared_tmp_path: Path) -> None:
    d = shared_tmp_path
    if COMM.rank == 0:
        with h5py.File(d / "no_hu.h5", "w") as f:
            f.create_dataset("density", data=np.zeros((2, 2, 2)))
        with h5py.File(d / "no_origin.h5", "w") as f:
            f.create_dataset("hu", data=np.zeros((2, 2, 2)))
            f.attrs["voxel_size"] = [1e-3, 1e-3, 1e-3]
        with h5py.File(d / "bad_shape.h5", "w") as f:
            f.create_dataset("hu", data=np.zeros((2, 2)))
            f.attrs["voxel_size"] = 1e-3
            f.attrs["origin"] = [0.0, 0.0, 0.0]
        with h5py.File(d / "bad_origin.h5", "w") as f:
            dset = f.create_dataset("hu", data=np.zeros((2, 2, 2)))
            dset.attrs["voxel_size"] = [1e-3, 1e-3, 1e-3]  # on the dataset: accepted
            dset.attrs["origin"] = [0.0, 0.0]
        (d / "garbage.h5").write_bytes(b"not hdf5")
        np.save(d / "flat.npy", np.zeros((4, 4)))
        (d / "ct.dcm").write_bytes(b"")
    COMM.barrier()
    with pytest.raises(CTFileError, match=r"no dataset 'hu'.*density"):
        read_ct(d / "no_hu.h5")
    with pytest.raises(CTFileError, match="attribute 'origin' missing"):
        read_ct(d / "no_origin.h5")
    assert read_ct(d / "no_origin.h5", origin=[0, 0, 0]).shape == (2, 2, 2)  # override
    with pytest.raises(CTFileError, match=r"3-D array, got shape \(2, 2\)"):
        read_ct(d / "bad_shape.h5")
    with pytest.raises(CTFileError, match=r"'origin' has shape \(2,\)"):
        read_ct(d / "bad_origin.h5")
    with pytest.raises(CTFileError, match="not a readable HDF5"):
        read_ct(d / "garbage.h5")
    with pytest.raises(CTFileError, match="3-D array"):
        read_ct(d / "flat.npy", voxel_size=1e-3, origin=[0, 0, 0])
    with pytest.raises(CTFileError, match=r"unknown CT file type '\.dcm'"):
        read_ct(d / "ct.dcm")
    with pytest.raises(FileNotFoundError):
        read_ct(d / "missing.h5")
    with pytest.raises(ValueError, match="length_unit_factor"):
        read_ct(d / "no_origin.h5", length_unit_factor=0.0)


def test_cell_averages_are_the_means_of_the_voxels_inside() -> None:
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(3)
    vol = CTVolume(rng.uniform(0, 1000, (20, 18, 16)), [1e-3, 1.2e-3, 0.9e-3], [0, 0, 0])
    cells = rng.uniform([1e-3, 1e-3, 1e-3], [18e-3, 19e-3, 13e-3], (30, 4, 3))
    cells[0] = [
        [5e-3, 5e-3, 5e-3],
        [5.3e-3, 5e-3, 5e-3],
        [5e-3, 5.3e-3, 5e-3],
        [5e-3, 5e-3, 5.3e-3],
    ]
    sampled = sample_cells(vol, cells)
    averaged = average_cells(vol, cells, sampled)
    x, y, z = vol.voxel_centres()
    centres = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    for c, cell in enumerate(cells):
        inside = Delaunay(cell).find_simplex(centres) >= 0  # an independent inclusion test
        expected = vol.values.ravel()[inside].mean() if inside.any() else sampled[c]
        assert averaged[c] == pytest.approx(expected, rel=1e-12), c
    assert averaged[0] == sampled[0]  # smaller than a voxel: no centre inside, the samples
