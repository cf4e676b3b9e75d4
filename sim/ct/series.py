"""Image stacks and series: TIFF stacks (tifffile) and DICOM series (pydicom).

TIFF: one multi-page file, or a folder of single-page slices (sorted by name), read as
array[slice, row, column]: the stack order "zyx" (sim.ct.volume.read_ct turns it into
(x, y, z) unless told another axis order). A TIFF holds no reliable placement: voxel_size
and origin come from the scenario. Typical for micro-CT (8- or 16-bit grey values).

DICOM: a folder holding one series of single-frame CT slices. Slices are ordered along the
normal of ImageOrientationPatient by ImagePositionPatient; values are
pixel * RescaleSlope + RescaleIntercept (HU); voxel (i, j, k) = (column, row, slice), with
spacing (PixelSpacing[1], PixelSpacing[0], slice distance), direction columns (row cosine,
column cosine, slice normal) and origin the first slice's position, all in DICOM patient
coordinates: LPS, millimetres. Files that are not DICOM or hold no image are skipped.

DICOM-SEG: one segmentation file (Modality SEG, pydicom alone, without highdicom) read as a
label map: each voxel gets the SegmentNumber of the segment whose frame covers it (0
elsewhere; where segments overlap, the larger number wins). Frames are placed by their
PlanePositionSequence along the normal of the (shared or per-frame) PlaneOrientationSequence,
on a grid of SpacingBetweenSlices (else the smallest distance between frame positions);
BINARY segments are read as they are, FRACTIONAL ones from half their
MaximumFractionalValue; a LABELMAP segmentation (DICOM 2024: one frame per slice whose pixel
values are the segment numbers) is read as it is. Writers such as highdicom leave out empty
frames: the grid then spans the frames present. Same placement convention as a series (LPS,
mm). Frames that are not on one grid, or a SEG without placement, are errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.ct.volume import CTFileError

TIFF_SUFFIXES = (".tif", ".tiff")
#: relative spread of slice distances accepted as one regular grid
SLICE_SPACING_TOLERANCE = 0.01


def is_tiff(path: Path) -> bool:
    """A TIFF file, or a folder holding TIFF slices."""
    if path.is_dir():
        return any(p.suffix.lower() in TIFF_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in TIFF_SUFFIXES


def read_tiff(path: Path) -> np.ndarray:
    """The stack array[slice, row, column] of a multi-page TIFF or a folder of slices."""
    import tifffile

    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
        if path.is_dir()
        else path
    )
    try:
        values = np.asarray(tifffile.imread(files))
    except Exception as err:  # tifffile raises several types for broken files
        raise CTFileError(f"{path}: not a readable TIFF stack ({err})") from err
    if values.ndim == 2:
        raise CTFileError(
            f"{path}: a single 2-D image of {values.shape[0]} x {values.shape[1]} pixels; a CT "
            "volume needs a stack (a multi-page TIFF or a folder of slices)"
        )
    if values.ndim != 3:
        raise CTFileError(
            f"{path}: TIFF data of shape {values.shape}; a CT stack is 3-D grey values (one "
            "sample per pixel, not colour)"
        )
    return values


def read_dicom_series(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(values[i, j, k] in HU, voxel size (mm), origin (mm), direction) of the DICOM series in
    the folder `path`, in patient coordinates (LPS)."""
    slices = _image_slices(path)
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in slices}
    if len(series) > 1:
        raise CTFileError(
            f"{path}: holds {len(series)} DICOM series; put one series in its own folder"
        )
    if any(int(ds.get("NumberOfFrames", 1)) > 1 for ds in slices):
        raise CTFileError(
            f"{path}: multi-frame (enhanced) DICOM is not read; export the series as "
            "single-frame slices"
        )
    try:
        cosines = np.array([ds.ImageOrientationPatient for ds in slices], dtype=float)
        positions = np.array([ds.ImagePositionPatient for ds in slices], dtype=float)
        spacing = np.array([ds.PixelSpacing for ds in slices], dtype=float)
    except AttributeError as err:
        raise CTFileError(f"{path}: a slice lacks its placement ({err})") from err
    if np.ptp(cosines, axis=0).max() > 1e-4 or np.ptp(spacing, axis=0).max() > 1e-6:
        raise CTFileError(f"{path}: the slices differ in orientation or pixel spacing")
    row, column = cosines[0, :3], cosines[0, 3:]
    normal = np.cross(row, column)
    order = np.argsort(positions @ normal)
    distance = np.diff(positions[order] @ normal)
    if len(slices) > 1 and (
        distance.min() <= 0.0
        or np.ptp(distance) > SLICE_SPACING_TOLERANCE * float(np.mean(distance))
    ):
        raise CTFileError(
            f"{path}: slice distances {distance.min():.4g} to {distance.max():.4g} mm are not "
            "one regular grid (duplicate, missing or unevenly spaced slices)"
        )
    dz = float(np.mean(distance)) if len(slices) > 1 else float(spacing[0].min())
    try:
        images = [_hounsfield(slices[k]) for k in order]
        values = np.stack(images, axis=0)  # [slice, row, column]
    except ValueError as err:
        raise CTFileError(f"{path}: the slices do not stack into one volume ({err})") from err
    voxel = np.array([spacing[0, 1], spacing[0, 0], dz])
    direction = np.column_stack([row, column, normal])
    return np.transpose(values, (2, 1, 0)), voxel, positions[order[0]], direction


def _image_slices(path: Path) -> list:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_dir():
        raise CTFileError(f"{path}: a DICOM series is read from a folder of slices")
    slices = []
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(file)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        if "PixelData" in ds:
            slices.append(ds)
    if not slices:
        raise CTFileError(f"{path}: no DICOM image in the folder")
    return slices


def _hounsfield(ds) -> np.ndarray:
    """One slice in HU: pixel * RescaleSlope + RescaleIntercept, array[row, column]."""
    pixels = ds.pixel_array.astype(np.float32)
    return pixels * float(ds.get("RescaleSlope", 1.0)) + float(ds.get("RescaleIntercept", 0.0))


def is_dicom_series(path: Path) -> bool:
    """A folder holding at least one DICOM file (by its preamble)."""
    from pydicom.misc import is_dicom

    return path.is_dir() and any(p.is_file() and is_dicom(p) for p in path.iterdir())


#: SOP class of DICOM segmentation storage
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def is_dicom_seg(path: Path) -> bool:
    """A DICOM file whose modality is SEG (reads the header only)."""
    import pydicom
    from pydicom.misc import is_dicom

    if not (path.is_file() and is_dicom(path)):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # a damaged header: not a SEG we can read
        return False
    return ds.get("Modality") == "SEG"


def read_dicom_seg(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels[i, j, k] (segment numbers, 0 background), voxel size (mm), origin (mm),
    direction) of a DICOM-SEG file, in patient coordinates (LPS); see the module docstring."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        frames = np.asarray(ds.pixel_array)
    except Exception as err:  # pydicom raises several types for broken files
        raise CTFileError(f"{path}: not a readable DICOM-SEG file ({err})") from err
    frames = frames.reshape(-1, int(ds.Rows), int(ds.Columns))
    if ds.get("SegmentationType") == "FRACTIONAL":
        frames = frames >= 0.5 * float(ds.get("MaximumFractionalValue", 255))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != len(frames):
        raise CTFileError(
            f"{path}: {len(frames)} frames but {len(per_frame)} per-frame functional groups"
        )
    shared_groups = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_groups[0] if shared_groups else None

    def item(group: object, sequence: str, keyword: str) -> object:
        """A value of a functional group of the frame, else of the shared groups."""
        for holder in (group, shared):
            items = getattr(holder, sequence, None) if holder is not None else None
            if items and keyword in items[0]:
                return getattr(items[0], keyword)
        raise CTFileError(f"{path}: a frame lacks {sequence} > {keyword} (its placement)")

    labelmap = ds.get("SegmentationType") == "LABELMAP"
    segments = [
        0 if labelmap else int(item(f, "SegmentIdentificationSequence", "ReferencedSegmentNumber"))
        for f in per_frame
    ]
    positions = np.array(
        [item(f, "PlanePositionSequence", "ImagePositionPatient") for f in per_frame],
        dtype=float,
    )
    cosines = np.array(
        [item(f, "PlaneOrientationSequence", "ImageOrientationPatient") for f in per_frame],
        dtype=float,
    )
    spacing = np.array(item(per_frame[0], "PixelMeasuresSequence", "PixelSpacing"), float)
    if np.ptp(cosines, axis=0).max() > 1e-4:
        raise CTFileError(f"{path}: the frames differ in orientation")
    row, column = cosines[0, :3], cosines[0, 3:]
    normal = np.cross(row, column)
    height = positions @ normal
    levels = np.unique(np.round(height, 6))
    try:
        dz = float(item(per_frame[0], "PixelMeasuresSequence", "SpacingBetweenSlices"))
    except CTFileError:
        dz = 0.0
    if dz <= 0.0:
        dz = float(np.diff(levels).min()) if len(levels) > 1 else float(spacing.min())
    k = (height - levels[0]) / dz
    in_plane = positions - np.outer(height, normal)
    if np.abs(k - np.round(k)).max() > SLICE_SPACING_TOLERANCE or (
        np.ptp(in_plane, axis=0).max() > 1e-3 * float(spacing.min())
    ):
        raise CTFileError(
            f"{path}: the frames do not lie on one grid of {dz:g} mm slices (positions "
            f"{height.min():.4g} to {height.max():.4g} mm along the slice normal)"
        )
    k = np.round(k).astype(int)
    labels = np.zeros((int(ds.Columns), int(ds.Rows), int(k.max()) + 1), dtype=np.uint16)
    for frame in np.argsort(segments, kind="stable"):  # larger segment numbers last
        values = frames[frame].T
        labels[:, :, k[frame]][values > 0] = values[values > 0] if labelmap else segments[frame]
    origin = in_plane[0] + levels[0] * normal
    voxel = np.array([spacing[1], spacing[0], dz])
    return labels, voxel, origin, np.column_stack([row, column, normal])
