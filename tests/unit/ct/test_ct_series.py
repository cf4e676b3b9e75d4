"""TIFF stacks and DICOM series (sim.ct.series) read through read_ct: round trips through the
writers, slice order and placement of DICOM, and clear errors for what cannot be a volume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from mpi4py import MPI

from sim.ct.synthetic import write_ct_dicom, write_ct_tiff
from sim.ct.volume import CTFileError, CTVolume, read_ct

pytestmark = pytest.mark.serial  # file readers: nothing parallel to check

ROTATION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def volume(direction: np.ndarray | None = None) -> CTVolume:
    """Integer HU on a small, anisotropic, unsymmetric grid (each axis told apart)."""
    values = np.random.default_rng(3).integers(-900, 1900, size=(5, 4, 6)).astype(float)
    return CTVolume(values, [0.5e-3, 0.6e-3, 1.25e-3], [0.01, -0.02, 0.03], direction)


def assert_same(a: CTVolume, b: CTVolume) -> None:
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.affine, b.affine, rtol=0, atol=1e-12)


def test_a_multipage_tiff_and_a_folder_of_slices_read_as_the_stack(tmp_path: Path) -> None:
    v = volume()
    stack = write_ct_tiff(tmp_path / "stack.tif", v)
    assert_same(read_ct(stack, voxel_size=v.voxel_size, origin=v.origin), v)
    slices = tmp_path / "slices"
    slices.mkdir()
    for k in range(v.shape[2]):
        tifffile.imwrite(slices / f"img_{k:03d}.tiff", v.values[:, :, k].T.astype(np.int16))
    assert_same(read_ct(slices, voxel_size=v.voxel_size, origin=v.origin), v)
    # told another order, the same file reads transposed
    xyz = read_ct(stack, voxel_size=v.voxel_size, origin=v.origin, axis_order="xyz")
    assert xyz.shape == (6, 4, 5)


def test_tiffs_that_are_no_volume_are_named(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(CTFileError, match="a single 2-D image of 4 x 5 pixels"):
        read_ct(tmp_path / "one.tif", voxel_size=1e-5, origin=[0, 0, 0])
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 4, 5, 3), np.uint8))
    with pytest.raises(CTFileError, match="not colour"):
        read_ct(tmp_path / "rgb.tif", voxel_size=1e-5, origin=[0, 0, 0])
    (tmp_path / "cut.tif").write_bytes(b"II*\x00\x08")
    with pytest.raises(CTFileError, match="not a readable TIFF stack"):
        read_ct(tmp_path / "cut.tif", voxel_size=1e-5, origin=[0, 0, 0])


@pytest.mark.parametrize("direction", [None, ROTATION])
def test_a_dicom_series_reads_back_in_mm_and_in_slice_order(
    tmp_path: Path, direction: np.ndarray | None
) -> None:
    v = volume(direction)
    folder = write_ct_dicom(tmp_path / "series", v)
    # file names that sort against the slice order, and a file that is not DICOM
    files = sorted(folder.iterdir())
    for i, f in enumerate(files):
        f.rename(folder / f"x{len(files) - i:03d}")
    (folder / "README.txt").write_text("not an image")
    back = read_ct(folder)  # lengths in the DICOM's mm, converted
    assert_same(back, v)
    with pytest.raises(CTFileError, match=r"header gives lengths in mm"):
        read_ct(folder, length_unit_factor=1.0)
    with pytest.raises(CTFileError, match=r"axis_order applies to \.npy arrays and TIFF stacks"):
        read_ct(folder, axis_order="zyx")


def test_dicom_folders_that_are_no_single_regular_series_are_named(tmp_path: Path) -> None:
    v = volume()
    one = write_ct_dicom(tmp_path / "one", v)
    with pytest.raises(CTFileError, match="DICOM series is read from the folder of its slices"):
        read_ct(next(one.iterdir()))
    two = tmp_path / "two"
    shutil.copytree(one, two)
    write_ct_dicom(two / "other", v)
    for f in (two / "other").iterdir():
        f.rename(two / f"b_{f.name}")
    with pytest.raises(CTFileError, match="holds 2 DICOM series"):
        read_ct(two)
    gap = tmp_path / "gap"
    shutil.copytree(one, gap)
    (gap / "slice_0002.dcm").unlink()
    with pytest.raises(CTFileError, match="are not one regular grid"):
        read_ct(gap)


def test_a_ct_volume_placed_by_a_rigid_map() -> None:
    v = volume()
    affine = np.eye(4)
    affine[:3, :3] = ROTATION
    affine[:3, 3] = [1e-3, 2e-3, -3e-3]
    moved = v.placed(affine)
    ijk = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 5.0]])
    expected = v.world_coordinates(ijk) @ ROTATION.T + affine[:3, 3]
    np.testing.assert_allclose(moved.world_coordinates(ijk), expected, rtol=0, atol=1e-15)
    assert MPI.COMM_WORLD.size == 1
