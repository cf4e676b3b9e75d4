"""Label maps (segmentations) without gmsh or DOLFINx: the labels present, the bone mask, its
surface by marching cubes, and which label a point lies in.

A label map is a voxel volume of integer labels (0 the background), read as a CT volume is
(sim.ct.volume.read_ct: NIfTI, .npy, .h5, TIFF, DICOM) and placed in the project frame::

    labels = label_values(volume)                       # (sorted labels present; ValueError
                                                        #  for values that are not integers)
    surface = label_surface(volume, bone=[1, 2, 3], smoothing=1.0)
    inside = labels_at(volume, centroids, [2])          # nearest voxel has label 2

The surface is the level 1/2 of the bone mask (the union of the bone labels), smoothed by a
Gaussian of `smoothing` voxels (0: the staircase of the voxel faces, cut diagonally at the
corners), by marching cubes (scikit-image, Lewiner's variant, which resolves the ambiguous
cube configurations so that the surface is closed and manifold). Background enclosed by the
bone (holes in the mask) is filled first: a meshed bone has one outer shell.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sim.ct.volume import CTVolume, sample
from sim.shapes.surface import Surface, SurfaceError

#: labels listed in an error message
_MAX_LISTED = 20


def label_values(volume: CTVolume) -> np.ndarray:
    """The sorted labels (integers) present in a label map; ValueError if a voxel value is
    not an integer (a grey image or an interpolated label map)."""
    values = volume.values
    odd = ~np.isfinite(values) | (values != np.round(values))
    if odd.any():
        raise ValueError(
            f"holds values that are not integer labels (e.g. {float(values[odd][0]):g}): a "
            "label map has one whole number per voxel (was it resampled with interpolation?)"
        )
    ints = values.astype(np.int64).ravel()
    if ints.min() >= 0 and ints.max() < 2**16:  # the usual case: counting beats sorting
        return np.flatnonzero(np.bincount(ints))
    return np.unique(ints)


def listed(labels: Sequence[int] | np.ndarray) -> str:
    """Labels for a message: ``0, 1, 2`` (at most _MAX_LISTED, then how many more)."""
    shown = ", ".join(str(int(v)) for v in list(labels)[:_MAX_LISTED])
    more = len(labels) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class MaskReport:
    """The bone mask of a label map: voxels of bone, background voxels enclosed by it
    (filled) and the volume of a voxel (m³)."""

    voxels: int
    filled: int
    voxel_volume: float

    @property
    def volume(self) -> float:
        """The mask's volume (m³), holes filled."""
        return (self.voxels + self.filled) * self.voxel_volume


def bone_mask(volume: CTVolume, bone: Sequence[int]) -> tuple[np.ndarray, MaskReport]:
    """The voxels whose label is one of `bone`, enclosed background filled, and its report."""
    mask = np.isin(volume.values, np.asarray(bone, dtype=volume.values.dtype))
    filled = ndimage.binary_fill_holes(mask)
    voxel_volume = float(abs(np.linalg.det(volume.axes)))
    report = MaskReport(int(mask.sum()), int(filled.sum() - mask.sum()), voxel_volume)
    return filled, report


def label_surface(
    volume: CTVolume, bone: Sequence[int], smoothing: float, length_unit_factor: float = 1.0
) -> tuple[Surface, MaskReport]:
    """The outer surface (m, the volume's frame) of the voxels labelled `bone`: marching
    cubes at level 1/2 of the mask, holes filled, smoothed by a Gaussian of standard
    deviation `smoothing` voxels (0: none), and the mask's report. SurfaceError if no voxel
    has a bone label. The surface is not cleaned or checked (see sim.shapes.surface.clean,
    check): several pieces of bone give several shells. `length_unit_factor` (metres per
    unit of the file) is kept for the unit check (sim.shapes.surface.plausible_unit)."""
    from skimage.measure import marching_cubes

    mask, report = bone_mask(volume, bone)
    if report.voxels == 0:
        raise SurfaceError(f"no voxel has a bone label ({listed(bone)})")
    where = np.argwhere(mask)
    pad = 2 + int(np.ceil(4.0 * smoothing))  # the smoothed mask falls to ~0 within the pad
    start = where.min(axis=0)
    stop = where.max(axis=0) + 1
    crop = mask[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))]
    field = np.pad(crop.astype(np.float32), pad)
    if smoothing > 0:
        field = ndimage.gaussian_filter(field, smoothing, mode="constant")
    with warnings.catch_warnings():  # scikit-image 0.26 sets array shapes (NumPy 2.5 warns)
        warnings.simplefilter("ignore", DeprecationWarning)
        vertices, faces, _, _ = marching_cubes(field, level=0.5, method="lewiner")
    points = volume.world_coordinates(vertices + (start - pad))
    return Surface(points, faces, length_unit_factor), report


def labels_at(volume: CTVolume, points: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Whether each point (n, 3) (m) lies in a voxel (the nearest voxel centre) labelled one
    of `labels`; False outside the volume."""
    values = sample(volume, points, method="nearest", outside="nan")
    return np.isin(values, np.asarray(labels, dtype=float))
