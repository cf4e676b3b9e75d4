"""Synthetic CT volumes of a known porosity field, and writers, for tests and examples.

`synthetic_ct` inverts a `CTMapping` (phi -> BV/TV -> BMD -> HU) at every voxel centre, so
mapping the volume back gives the porosity field exactly (to round-off) at the voxel centres.
Porosity fields are callables f(x, y, z) -> phi on arrays of world coordinates (m); helpers
build the common ones and can be nested (a lesion inside a gradient inside a shell).

Writers: `write_ct_h5` (everything `read_ct` needs), `write_ct_npy` (values only: pass
voxel_size and origin to `read_ct`), `write_ct_nifti` (needs nibabel). Call them on one MPI
rank and barrier before other ranks read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.ct.density import CTMapping
from sim.ct.volume import CTVolume, _import_nibabel, _vector3

PorosityField = Callable[[np.ndarray, np.ndarray, np.ndarray], npt.ArrayLike]
FieldOrValue = PorosityField | float


def _evaluate(f: FieldOrValue, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    value = f(x, y, z) if callable(f) else f
    return np.broadcast_to(np.asarray(value, dtype=float), np.shape(x))


def synthetic_ct(
    shape: Sequence[int],
    voxel_size: npt.ArrayLike,
    origin: npt.ArrayLike,
    porosity_field: FieldOrValue,
    mapping: CTMapping | None = None,
    direction: npt.ArrayLike | None = None,
) -> CTVolume:
    """A CT volume (HU) whose voxel centres map back to porosity_field(x, y, z) under `mapping`.

    shape (nx, ny, nz); voxel_size (m, scalar or 3); origin (m) = centre of voxel (0, 0, 0);
    porosity_field: callable on arrays of world coordinates, or a constant; mapping: default
    CTMapping(); direction: optional 3x3 (columns = world directions of i, j, k). The field
    must lie within [mapping.porosity_min, mapping.porosity_max] at every voxel centre
    (ValueError otherwise: clipped values would not map back).
    """
    mapping = CTMapping() if mapping is None else mapping
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers, got {shape}")
    volume = CTVolume(np.zeros(shape), voxel_size, origin, direction)
    x, y, z = volume.voxel_centres()
    phi = _evaluate(porosity_field, x, y, z)
    volume.values = np.ascontiguousarray(mapping.hu_from_porosity(phi), dtype=np.float64)
    return volume


# ---------------------------------------------------------------- porosity fields


def uniform_porosity(phi: float) -> PorosityField:
    """phi everywhere."""
    return lambda x, y, z: np.full(np.shape(x), float(phi))


def linear_porosity_gradient(
    phi_start: float,
    phi_end: float,
    axis: int | Sequence[float] = 2,
    start: float = 0.0,
    end: float = 1.0,
) -> PorosityField:
    """phi varying linearly from phi_start at s = start to phi_end at s = end (m).

    s = the coordinate along `axis` (0, 1, 2 for x, y, z, or a direction vector, normalised:
    s = x . a). Not clamped outside [start, end]: it extrapolates linearly.
    """
    if end == start:
        raise ValueError("linear_porosity_gradient needs end != start")
    if isinstance(axis, int | np.integer):
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1, 2 or a 3-vector, got {axis}")
        a = np.eye(3)[axis]
    else:
        a = _vector3(axis, "axis")
        norm = np.linalg.norm(a)
        if norm == 0.0:
            raise ValueError("axis vector must be nonzero")
        a = a / norm
    slope = (phi_end - phi_start) / (end - start)

    def field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        s = a[0] * np.asarray(x) + a[1] * np.asarray(y) + a[2] * np.asarray(z)
        return phi_start + slope * (s - start)

    return field


def spherical_lesion(
    background: FieldOrValue, lesion: float, centre: npt.ArrayLike, radius: float
) -> PorosityField:
    """Porosity `lesion` inside the ball |x - centre| <= radius (m), `background` elsewhere.

    A lytic lesion or fracture cleft: higher porosity (e.g. 0.97) in an osteoporotic
    background (e.g. 0.88). background may itself be a field.
    """
    c = _vector3(centre, "centre")
    if radius <= 0.0:
        raise ValueError(f"lesion radius must be > 0 m, got {radius}")

    def field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        r2 = (np.asarray(x) - c[0]) ** 2 + (np.asarray(y) - c[1]) ** 2 + (np.asarray(z) - c[2]) ** 2
        return np.where(r2 <= radius**2, float(lesion), _evaluate(background, x, y, z))

    return field


def cortical_shell(
    interior: FieldOrValue,
    shell: float,
    lower: npt.ArrayLike,
    upper: npt.ArrayLike,
    thickness: float,
) -> PorosityField:
    """Porosity `shell` within `thickness` (m) of the faces of the box [lower, upper] and
    outside it; `interior` (value or field) deeper inside. A dense cortex (e.g. 0.10)
    around cancellous bone."""
    lo, hi = _vector3(lower, "lower"), _vector3(upper, "upper")
    if np.any(hi <= lo):
        raise ValueError(f"box needs upper > lower, got {lo.tolist()} and {hi.tolist()}")
    if thickness <= 0.0:
        raise ValueError(f"shell thickness must be > 0 m, got {thickness}")

    def field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        xyz = (np.asarray(x), np.asarray(y), np.asarray(z))
        depth = np.min([np.minimum(c - lo[i], hi[i] - c) for i, c in enumerate(xyz)], axis=0)
        return np.where(depth >= thickness, _evaluate(interior, x, y, z), float(shell))

    return field


def osteoporotic_vertebra(
    width: float = 41.2e-3,
    depth: float = 33.7e-3,
    height: float = 23.8e-3,
    posterior_flat: float = 0.8,
    voxel: float = 1e-3,
) -> CTVolume:
    """An example CT of an osteoporotic lumbar body (default: L1 dimensions, m) in the frame of
    the `vertebral_body` geometry of the same dimensions (+x anterior, y lateral, +z cranial;
    the body spans x from -posterior_flat a to a, a = depth / (1 + posterior_flat)): porosity
    0.86 at the posterior wall rising to 0.92 at the anterior rim (the anterior body loses
    trabeculae first), and a lytic lesion of porosity 0.97, radius 6 mm, in the anterior left
    quadrant. Two voxels of margin around the body; default mapping (HU)."""
    a = depth / (1.0 + posterior_flat)
    lower = np.array([-posterior_flat * a, -width / 2, -height / 2]) - 2 * voxel
    upper = np.array([a, width / 2, height / 2]) + 2 * voxel
    shape = np.ceil((upper - lower) / voxel).astype(int) + 1
    field = spherical_lesion(
        linear_porosity_gradient(0.86, 0.92, axis=0, start=-posterior_flat * a, end=a),
        0.97,
        centre=(0.5 * a, 0.2 * width, 0.0),
        radius=6e-3,
    )
    return synthetic_ct(shape, voxel, lower, field)


# ---------------------------------------------------------------- segmented blocks


def rod_lattice(
    shape: Sequence[int],
    spacing: float,
    bone_volume_fraction: float,
    horizontal_ratio: float = 1.0,
    jitter: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Pore mask (True = pore) of a cubic lattice of straight bone rods: an idealised
    low-density trabecular block (the open-cell rod model of Gibson 1985, J Biomech 18:317).

    shape: voxels along x, y, z; spacing: rod centre distance (voxels); rods along z
    (vertical) at x, y = (i + 1/2) spacing (i integer; the block's faces at 0 and n voxels
    are mirror planes when n is a multiple of spacing / 2 and jitter is 0), and likewise
    along x and y, each shifted by a
    normal random offset of standard deviation `jitter` × spacing (seed: the generator's
    seed); horizontal_ratio: radius of the x and y rods over that of the z rods (below 1:
    thick vertical columns and thin horizontal struts, as in vertebral bone). The rod radius
    is set so that the fraction of bone voxels is as near `bone_volume_fraction` as the grid
    allows. A real trabecular network has plates, varying thickness and connectivity that
    this lattice does not.
    """
    n = np.asarray([int(v) for v in shape])
    if n.shape != (3,) or np.any(n < 1):
        raise ValueError(f"shape must be three positive integers, got {list(shape)}")
    if not 0.0 < bone_volume_fraction < 1.0:
        raise ValueError(f"bone_volume_fraction must be in (0, 1), got {bone_volume_fraction}")
    if spacing <= 0.0 or horizontal_ratio <= 0.0 or jitter < 0.0:
        raise ValueError("spacing and horizontal_ratio must be > 0 and jitter >= 0")
    rng = np.random.default_rng(seed)
    centres = [np.arange(m) + 0.5 for m in n]
    grid = np.meshgrid(*centres, indexing="ij")

    def lines(m: int) -> np.ndarray:  # rod positions along one axis, one beyond each face
        return (np.arange(-1, int(np.ceil(m / spacing)) + 1) + 0.5) * spacing

    def distance_to_rods(axis: int) -> np.ndarray:
        a, b = (i for i in range(3) if i != axis)
        best = np.full(tuple(n), np.inf)
        for ca in lines(n[a]):
            for cb in lines(n[b]):
                da, db = rng.normal(0.0, jitter * spacing, 2)
                d = np.hypot(grid[a] - ca - da, grid[b] - cb - db)
                np.minimum(best, d, out=best)
        return best

    vertical = distance_to_rods(2)
    horizontal = np.minimum(distance_to_rods(0), distance_to_rods(1)) / horizontal_ratio
    nearest = np.minimum(vertical, horizontal)  # bone where nearest < radius of the z rods
    radius = np.quantile(nearest, bone_volume_fraction)
    candidates = np.unique(nearest[np.abs(nearest - radius) < 1.0])
    fractions = np.array([(nearest <= r).mean() for r in candidates])
    radius = candidates[np.argmin(np.abs(fractions - bone_volume_fraction))]
    return nearest > radius


# ---------------------------------------------------------------- writers


def write_ct_h5(path: str | Path, volume: CTVolume) -> Path:
    """Write dataset `hu` and root attributes `voxel_size`, `origin` (m), `direction` (if set).

    Read back with read_ct(path) (length_unit_factor 1: lengths are stored in metres).
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("hu", data=volume.values, compression="gzip", shuffle=True)
        f.attrs["voxel_size"] = volume.voxel_size
        f.attrs["origin"] = volume.origin
        if volume.direction is not None:
            f.attrs["direction"] = volume.direction
        f.attrs["value_unit"] = "HU"
        f.attrs["length_unit"] = "m"
    return path


def write_ct_npy(path: str | Path, volume: CTVolume) -> Path:
    """Write the values only (a .npy has no room for geometry): read back with
    read_ct(path, voxel_size=volume.voxel_size, origin=volume.origin)."""
    path = Path(path)
    np.save(path, volume.values, allow_pickle=False)
    return path


def write_ct_nifti(
    path: str | Path, volume: CTVolume, length_unit: float = 1e-3, dtype: str | None = None
) -> Path:
    """Write a NIfTI-1 image (.nii or .nii.gz), lengths in units of `length_unit` metres,
    values stored as `dtype` (e.g. "uint8" for a label map; default: as they are).

    Default mm, the NIfTI convention: read back with
    read_ct(path, length_unit_factor=length_unit). Needs nibabel.
    """
    nibabel = _import_nibabel()
    path = Path(path)
    affine = volume.affine
    affine[:3, :] /= length_unit
    values = np.asarray(volume.values)
    image = nibabel.Nifti1Image(values if dtype is None else values.astype(dtype), affine)
    units = {1.0: "meter", 1e-3: "mm", 1e-6: "micron"}
    image.header.set_xyzt_units(xyz=units.get(length_unit, "unknown"))
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nibabel.save(image, str(path))
    return path


def write_ct_tiff(path: str | Path, volume: CTVolume) -> Path:
    """Write the values as a multi-page TIFF, one page per k (array[k, j, i]); a TIFF has no
    room for geometry: read back with read_ct(path, voxel_size=..., origin=...)."""
    import tifffile

    path = Path(path)
    tifffile.imwrite(path, np.ascontiguousarray(np.transpose(volume.values, (2, 1, 0))))
    return path


def write_ct_dicom(
    folder: str | Path, volume: CTVolume, slope: float = 1.0, intercept: float = -1024.0
) -> Path:
    """Write the volume as a DICOM series of CT slices (one file per k, int16 pixels with
    HU = pixel * slope + intercept), taking its world coordinates as the patient frame (LPS)
    in metres (written in mm). Read back with read_ct(folder). The i and j directions must be
    perpendicular (they become the slices' row and column cosines)."""
    from pydicom.uid import CTImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    axes = np.eye(3) if volume.direction is None else volume.direction
    if abs(float(axes[:, 0] @ axes[:, 1])) > 1e-9:
        raise ValueError("DICOM slices need perpendicular i and j directions")
    stored = np.rint((np.asarray(volume.values, dtype=float) - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("the values do not fit int16 pixels with this slope and intercept")
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    mm = 1e3
    for k in range(volume.shape[2]):
        ds = _dicom_dataset(CTImageStorage, study, series)
        ds.FrameOfReferenceUID = frame
        ds.Modality, ds.InstanceNumber = "CT", k + 1
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.PixelSpacing = [float(volume.voxel_size[1] * mm), float(volume.voxel_size[0] * mm)]
        ds.SliceThickness = float(volume.voxel_size[2] * mm)
        ds.ImageOrientationPatient = [float(c) for c in (*axes[:, 0], *axes[:, 1])]
        position = volume.world_coordinates([0.0, 0.0, float(k)]) * mm
        ds.ImagePositionPatient = [float(c) for c in position]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype("<i2")).tobytes()
        ds.save_as(folder / f"slice_{k:04d}.dcm", enforce_file_format=True)
    return folder


def write_dicom_seg(path: str | Path, volume: CTVolume) -> Path:
    """Write a label volume (integer labels, 0 background) as one DICOM-SEG file: a BINARY
    segment per label, one frame per segment and slice k holding it, the world coordinates
    taken as the patient frame (LPS) in metres (written in mm). Read back with
    read_ct(path) (sim.ct.series.read_dicom_seg). The i and j directions must be
    perpendicular. Holds what the reader needs, not every attribute the standard asks for."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import pack_bits
    from pydicom.sequence import Sequence
    from pydicom.uid import SegmentationStorage, generate_uid

    path = Path(path)
    axes = np.eye(3) if volume.direction is None else volume.direction
    if abs(float(axes[:, 0] @ axes[:, 1])) > 1e-9:
        raise ValueError("DICOM frames need perpendicular i and j directions")
    mm = 1e3
    labels = np.asarray(volume.values).astype(np.int64)
    ds = _dicom_dataset(SegmentationStorage, generate_uid(), generate_uid())
    ds.Modality, ds.SegmentationType = "SEG", "BINARY"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    segments = [int(v) for v in np.unique(labels) if v != 0]
    ds.SegmentSequence = Sequence()
    for number in segments:
        segment = Dataset()
        segment.SegmentNumber, segment.SegmentLabel = number, f"label {number}"
        ds.SegmentSequence.append(segment)
    plane, measures = Dataset(), Dataset()
    plane.ImageOrientationPatient = [float(c) for c in (*axes[:, 0], *axes[:, 1])]
    measures.PixelSpacing = [float(volume.voxel_size[1] * mm), float(volume.voxel_size[0] * mm)]
    measures.SpacingBetweenSlices = float(volume.voxel_size[2] * mm)
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([plane])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, groups = [], Sequence()
    for number in segments:
        for k in range(volume.shape[2]):
            mask = labels[:, :, k].T == number  # [row, column]
            if not mask.any():
                continue
            frames.append(mask)
            position, segment = Dataset(), Dataset()
            position.ImagePositionPatient = [
                float(c) for c in volume.world_coordinates([0.0, 0.0, float(k)]) * mm
            ]
            segment.ReferencedSegmentNumber = number
            group = Dataset()
            group.PlanePositionSequence = Sequence([position])
            group.SegmentIdentificationSequence = Sequence([segment])
            groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.NumberOfFrames = len(frames)
    ds.PixelData = pack_bits(np.stack(frames).astype(np.uint8))
    ds.save_as(path, enforce_file_format=True)
    return path


def _dicom_dataset(sop_class: str, study: str, series: str) -> Any:
    """A DICOM dataset of `sop_class` with its file meta (explicit VR little endian), a new
    instance UID, and the study and series UIDs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    # patient and general study modules (type 2: present, may be empty)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^", "", "", ""
    ds.StudyID, ds.StudyDate, ds.StudyTime = "", "", ""
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    return ds
