"""CT volumes: a voxel grid of Hounsfield units placed in space, readers and sampling.

Geometry convention. Voxel (i, j, k) has its centre at

    x = origin + direction @ (voxel_size * (i, j, k))

with origin the centre of voxel (0, 0, 0) (m), voxel_size the spacing along i, j, k (m) and
direction a 3x3 matrix whose columns are the unit world directions of the i, j and k axes
(identity when None). The image covers index space [-0.5, n - 0.5] along each axis.

Readers: NIfTI (.nii, .nii.gz; needs the optional package nibabel; the affine gives spacing,
direction and origin, in the file's length unit, usually mm), NumPy (.npy; the array only:
voxel_size and origin must be given), HDF5 (.h5, .hdf5: dataset `hu`, attributes
`voxel_size`, `origin` and optionally `direction` on the file root or on the dataset), TIFF
stacks and DICOM series (sim.ct.series; tifffile, pydicom).
`length_unit_factor` converts every length (read from the file or passed in) to metres:
1e-3 for a NIfTI file in mm.

Sampling is trilinear (or nearest-voxel) interpolation between voxel centres. Between the
outermost voxel centres and the image edge (half a voxel) the edge value is held; points
beyond the image edge are outside and raise `PointsOutsideVolumeError` (or give NaN).

Everything here is per process: under MPI every rank reads the file (read-only) and samples
its own cells; `CTVolume.crop` trims a volume to a rank's bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

SampleMethod = Literal["linear", "nearest"]
OutsidePolicy = Literal["raise", "nan"]

_INDEX_TOLERANCE = 1e-6  # voxels: points this close outside the image edge count as inside


class CTFileError(ValueError):
    """A CT file cannot be read: unknown format, missing data or attributes, wrong shapes."""


class PointsOutsideVolumeError(ValueError):
    """Sample points lie outside the CT volume."""


def _vector3(value: npt.ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        v = np.full(3, float(v))
    if v.shape != (3,):
        raise ValueError(f"{name} must be a scalar or have 3 components, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v.tolist()}")
    return v


#: voxel sizes (m) of CT images: micro-CT of bone from about 1 um, clinical CT up to 10 mm
VOXEL_SIZE_RANGE = (1e-6, 1e-2)


@dataclass
class CTVolume:
    """A CT image in HU on a regular grid placed in space (lengths in m).

    values: (nx, ny, nz) CT numbers (HU); float64 arrays are kept, anything else is stored
    as float32 (a 512 x 512 x 400 image is then 420 MB). voxel_size: (3,) spacing along
    i, j, k (m, > 0). origin: (3,) centre of voxel (0, 0, 0) (m). direction: optional 3x3
    matrix whose columns are the world directions of the i, j, k axes (normalised here;
    None = identity).
    """

    values: np.ndarray
    voxel_size: np.ndarray
    origin: np.ndarray
    direction: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 3 or min(values.shape) < 1:
            raise ValueError(f"CT values must be a non-empty 3-D array, got shape {values.shape}")
        if not (
            np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
        ):
            raise ValueError(f"CT values must be numeric, got dtype {values.dtype}")
        self.values = values if values.dtype == np.float64 else values.astype(np.float32)
        self.voxel_size = _vector3(self.voxel_size, "voxel_size")
        if np.any(self.voxel_size <= 0.0):
            raise ValueError(f"voxel_size must be > 0 m, got {self.voxel_size.tolist()}")
        self.origin = _vector3(self.origin, "origin")
        if self.direction is not None:
            d = np.asarray(self.direction, dtype=float)
            if d.shape != (3, 3) or not np.all(np.isfinite(d)):
                raise ValueError(f"direction must be a finite 3x3 matrix, got shape {d.shape}")
            norms = np.linalg.norm(d, axis=0)
            if np.any(norms == 0.0):
                raise ValueError("direction has a zero column")
            d = d / norms
            if abs(np.linalg.det(d)) < 1e-6:
                raise ValueError("direction columns must be linearly independent")
            self.direction = d

    # --- geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    @property
    def axes(self) -> np.ndarray:
        """3x3 matrix mapping voxel indices to world offsets: direction @ diag(voxel_size)."""
        d = np.eye(3) if self.direction is None else self.direction
        return d * self.voxel_size[None, :]

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index -> world (m) affine, as in NIfTI (origin = voxel (0, 0, 0) centre)."""
        a = np.eye(4)
        a[:3, :3] = self.axes
        a[:3, 3] = self.origin
        return a

    def world_coordinates(self, indices: npt.ArrayLike) -> np.ndarray:
        """World coordinates (m) of (continuous) voxel indices, shape (..., 3)."""
        ijk = np.asarray(indices, dtype=float)
        return self.origin + ijk @ self.axes.T

    def index_coordinates(self, points: npt.ArrayLike) -> np.ndarray:
        """Continuous voxel indices of world points (m), shape (..., 3)."""
        x = np.asarray(points, dtype=float)
        if x.shape[-1:] != (3,):
            raise ValueError(f"points must have shape (..., 3), got {x.shape}")
        return np.linalg.solve(self.axes, (x - self.origin).reshape(-1, 3).T).T.reshape(x.shape)

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates x, y, z (m) of every voxel centre, each of shape `shape`."""
        i, j, k = np.meshgrid(*(np.arange(n, dtype=float) for n in self.shape), indexing="ij")
        xyz = self.world_coordinates(np.stack([i, j, k], axis=-1))
        return xyz[..., 0], xyz[..., 1], xyz[..., 2]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World-space bounding box (m) of the image (voxel edges, not centres)."""
        n = np.asarray(self.shape, dtype=float)
        corners = np.array(
            [
                [a, b, c]
                for a in (-0.5, n[0] - 0.5)
                for b in (-0.5, n[1] - 0.5)
                for c in (-0.5, n[2] - 0.5)
            ]
        )
        world = self.world_coordinates(corners)
        return world.min(axis=0), world.max(axis=0)

    def placed(self, affine: np.ndarray) -> CTVolume:
        """The volume moved by a rigid 4 x 4 map of world coordinates (rotation, flips,
        translation in m), e.g. from the scanner's frame into the project frame."""
        a = np.asarray(affine, dtype=float)
        direction = np.eye(3) if self.direction is None else self.direction
        return CTVolume(
            self.values,
            self.voxel_size.copy(),
            a[:3, :3] @ self.origin + a[:3, 3],
            a[:3, :3] @ direction,
        )

    def segmented(self, threshold: float) -> CTVolume:
        """The bone mask: 1 where the value is at least `threshold`, else 0 (its cell means
        are bone volume fractions)."""
        mask = (self.values >= threshold).astype(np.float32)
        return CTVolume(mask, self.voxel_size.copy(), self.origin.copy(), self.direction)

    def crop(self, lower: npt.ArrayLike, upper: npt.ArrayLike, margin: int = 1) -> CTVolume:
        """The sub-volume covering the world box [lower, upper] (m) plus `margin` voxels.

        For memory under MPI: crop to the bounding box of a rank's cells before sampling.
        Samples inside the box are identical to those of the full volume when margin >= 1.
        """
        lo, hi = _vector3(lower, "lower"), _vector3(upper, "upper")
        if np.any(hi < lo):
            raise ValueError(f"crop box has upper < lower: {lo.tolist()} .. {hi.tolist()}")
        corners = np.array(
            [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
        )
        idx = self.index_coordinates(corners)
        n = np.asarray(self.shape)
        start = np.clip(np.floor(idx.min(axis=0)).astype(int) - margin, 0, n - 1)
        stop = np.clip(np.ceil(idx.max(axis=0)).astype(int) + margin, 0, n - 1) + 1
        sub = self.values[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]].copy()
        return CTVolume(
            sub, self.voxel_size.copy(), self.world_coordinates(start.astype(float)), self.direction
        )


# ---------------------------------------------------------------- reading


def ct_format(path: Path) -> str | None:
    """The kind of CT source at `path`: ".nii", ".nii.gz", ".npy", ".h5", ".hdf5", ".tif"
    (a TIFF file or a folder of TIFF slices), "dicom" (a folder of DICOM slices) or
    "dicom_seg" (a DICOM segmentation file, read as a label map); None if
    unknown."""
    from sim.ct.series import is_dicom_seg, is_dicom_series, is_tiff

    if is_dicom_seg(path):
        return "dicom_seg"
    if path.is_dir():
        if is_dicom_series(path):
            return "dicom"
        return ".tif" if is_tiff(path) else None
    name = path.name.lower()
    for s in (".nii.gz", ".nii", ".npy", ".h5", ".hdf5"):
        if name.endswith(s):
            return s
    return ".tif" if is_tiff(path) else None


def unknown_source(path: Path) -> str:
    """What to say of a CT source of unknown kind."""
    what = "folder" if path.is_dir() else f"file type {path.suffix.lower()!r}"
    hint = "; a DICOM series is read from the folder of its slices" * (
        path.suffix.lower() == ".dcm"
    )
    return (
        f"{path}: unknown CT {what}; supported: .nii, .nii.gz (nibabel), .npy, .h5/.hdf5, "
        f".tif/.tiff stacks or a folder of TIFF slices, a folder of DICOM slices{hint}"
    )


#: the order of a format's array indices when the scenario gives none
NATURAL_AXIS_ORDER = {".npy": "xyz", ".tif": "zyx"}
#: the length unit of a format's placement when the file itself does not say (name, metres)
FORMAT_UNIT = {"dicom": ("mm", 1e-3), "dicom_seg": ("mm", 1e-3)}


def read_ct(
    path: str | Path,
    length_unit_factor: float | None = None,
    voxel_size: npt.ArrayLike | None = None,
    origin: npt.ArrayLike | None = None,
    axis_order: str | None = None,
) -> CTVolume:
    """Read a CT volume: NIfTI (.nii, .nii.gz), NumPy (.npy), HDF5 (.h5, .hdf5), a TIFF stack
    (a multi-page .tif/.tiff or a folder of slices) or a DICOM series (a folder of slices).

    length_unit_factor: metres per file length unit (1e-3 for mm), applied to the lengths
    read from the file; None: the unit the file declares (a NIfTI header's xyz unit; DICOM:
    mm), else metres. A factor that contradicts the file's declared unit is a CTFileError.
    voxel_size (scalar or 3) and origin (3, centre of voxel (0, 0, 0)), in metres (not
    scaled: the scenario converts what the user wrote): required for .npy and TIFF; for the
    other formats they replace the file's values. axis_order (.npy and TIFF only): the axes
    the array's three indices run along; default "xyz" for .npy and "zyx" for TIFF
    (array[slice, row, column]); voxel_size and origin stay (x, y, z).
    NIfTI: the affine chosen by nibabel (sform or qform) gives spacing, direction and origin;
    scaling (scl_slope/scl_inter) is applied; trailing singleton dimensions are dropped.
    HDF5: dataset `hu` (3-D), attributes `voxel_size`, `origin`, optional `direction` (3x3,
    columns = world directions of i, j, k) on the file root or on `hu`. DICOM: see
    sim.ct.series (coordinates in the patient frame, LPS).
    Raises FileNotFoundError, CTFileError (bad content), or ImportError (NIfTI without nibabel).
    """
    path = Path(path)
    if length_unit_factor is not None and not (
        np.isfinite(length_unit_factor) and length_unit_factor > 0.0
    ):
        raise ValueError(f"length_unit_factor must be > 0, got {length_unit_factor}")
    if not path.exists():
        raise FileNotFoundError(f"CT file not found: {path}")
    kind = ct_format(path)
    readers = {
        ".nii": _read_nifti,
        ".nii.gz": _read_nifti,
        ".npy": _read_npy,
        ".h5": _read_h5,
        ".hdf5": _read_h5,
        ".tif": _read_tiff,
        "dicom": _read_dicom,
        "dicom_seg": _read_dicom_seg,
    }
    if kind is None:
        raise CTFileError(unknown_source(path))
    values, file_voxel, file_origin, direction = readers[kind](
        path, need_voxel_size=voxel_size is None, need_origin=origin is None
    )
    order = axis_order or NATURAL_AXIS_ORDER.get(kind, "xyz")
    if sorted(order) != ["x", "y", "z"]:
        raise ValueError(f"axis_order must be a permutation of 'xyz', got {order!r}")
    if axis_order is not None and kind not in NATURAL_AXIS_ORDER:
        raise CTFileError(
            f"{path}: axis_order applies to .npy arrays and TIFF stacks; the file places its axes"
        )
    if order != "xyz":
        values = np.transpose(values, [order.index(a) for a in "xyz"])
    declared = declared_unit(path)
    if length_unit_factor is None:
        length_unit_factor = 1.0 if declared is None else declared[1]
    elif declared is not None and not np.isclose(declared[1], length_unit_factor, rtol=1e-12):
        raise CTFileError(
            f"{path}: its header gives lengths in {declared[0]}, but the length unit asked for "
            f"is {length_unit_factor:g} m: leave length_unit out or make it agree"
        )

    def metres(
        given: npt.ArrayLike | None, from_file: npt.ArrayLike | None, name: str
    ) -> np.ndarray | None:
        if given is not None:
            return _vector3(given, name)
        return None if from_file is None else _vector3(from_file, name) * length_unit_factor

    vs = metres(voxel_size, file_voxel, "voxel_size")
    org = metres(origin, file_origin, "origin")
    missing = [name for name, v in (("voxel_size", vs), ("origin", org)) if v is None]
    if missing:
        raise CTFileError(
            f"{path}: a {kind} source holds only the voxel values; pass "
            f"{' and '.join(missing)} (m) to read_ct"
        )
    try:
        return CTVolume(values, vs, org, direction)
    except ValueError as err:
        raise CTFileError(f"{path}: {err}") from err


def declared_unit(path: Path) -> tuple[str, float] | None:
    """The length unit a CT source declares (name, metres): a NIfTI header's xyz unit, mm
    for DICOM; None if it declares none (then read_ct takes metres)."""
    kind = ct_format(path)
    if kind is not None and kind.startswith(".nii"):
        return _declared_unit(path)
    return FORMAT_UNIT.get(kind) if kind is not None else None


def peek_ct(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and value type of a CT source without reading its values (None for a DICOM
    series, whose values are HU by construction); CTFileError if unreadable."""
    kind = ct_format(path)
    try:
        if kind == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return array.shape, array.dtype
        if kind in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "hu" not in f:
                    raise CTFileError(f"{path}: no dataset 'hu' (the CT numbers)")
                return f["hu"].shape, f["hu"].dtype
        if kind is not None and kind.startswith(".nii"):
            header = _import_nibabel().load(str(path)).header
            return tuple(header.get_data_shape()), header.get_data_dtype()
        if kind == ".tif":
            import tifffile

            files = sorted(p for p in path.iterdir()) if path.is_dir() else [path]
            files = [p for p in files if p.suffix.lower() in (".tif", ".tiff")]
            with tifffile.TiffFile(files[0]) as tif:
                series = tif.series[0]
                shape = series.shape if len(files) == 1 else (len(files), *series.shape)
                return tuple(shape), series.dtype
    except CTFileError:
        raise
    except Exception as err:  # each reader raises its own types for broken files
        raise CTFileError(f"{path}: not a readable {kind} file ({err})") from err
    return None


def _read_tiff(path: Path, **_: bool) -> tuple[np.ndarray, None, None, None]:
    from sim.ct.series import read_tiff

    return _check_values(path, read_tiff(path)), None, None, None


def _read_dicom(path: Path, **_: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sim.ct.series import read_dicom_series

    values, voxel, origin, direction = read_dicom_series(path)
    return _check_values(path, values), voxel, origin, direction


def _read_dicom_seg(path: Path, **_: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sim.ct.series import read_dicom_seg

    return read_dicom_seg(path)


def _check_values(path: Path, values: np.ndarray) -> np.ndarray:
    if values.ndim > 3:
        extra = values.shape[3:]
        if all(s == 1 for s in extra):
            values = values.reshape(values.shape[:3])
    if values.ndim != 3:
        raise CTFileError(f"{path}: CT values must be a 3-D array, got shape {values.shape}")
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise CTFileError(f"{path}: CT values must be numeric, got dtype {values.dtype}")
    return values


def _read_npy(path: Path, **_: bool) -> tuple[np.ndarray, None, None, None]:
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise CTFileError(f"{path}: not a readable .npy array ({err})") from err
    return _check_values(path, values), None, None, None


def _read_h5(
    path: Path, need_voxel_size: bool = True, need_origin: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CTFileError(f"{path}: not a readable HDF5 file ({err})") from err
    with f:
        if "hu" not in f or not isinstance(f["hu"], h5py.Dataset):
            raise CTFileError(
                f"{path}: no dataset 'hu' (the CT numbers); the file holds: "
                f"{', '.join(sorted(f.keys())) or 'nothing'}"
            )
        dset = f["hu"]
        values = _check_values(path, dset[()])

        def attribute(name: str, required: bool) -> np.ndarray | None:
            for holder in (f.attrs, dset.attrs):
                if name in holder:
                    return np.asarray(holder[name], dtype=float)
            if required:
                raise CTFileError(
                    f"{path}: attribute '{name}' missing (looked on the file root and on "
                    f"dataset 'hu'); write it as f.attrs['{name}'] = ... "
                    "or use sim.ct.synthetic.write_ct_h5"
                )
            return None

        voxel_size = attribute("voxel_size", need_voxel_size)
        origin = attribute("origin", need_origin)
        direction = attribute("direction", False)
    for name, value, shapes in (
        ("voxel_size", voxel_size, ((), (3,))),
        ("origin", origin, ((3,),)),
        ("direction", direction, ((3, 3),)),
    ):
        if value is not None and value.shape not in shapes:
            raise CTFileError(
                f"{path}: attribute '{name}' has shape {value.shape}; expected "
                + " or ".join(str(s) for s in shapes)
            )
    return values, voxel_size, origin, direction  # type: ignore[return-value]


def _import_nibabel():
    try:
        import nibabel
    except ImportError as err:
        raise ImportError(
            "reading or writing NIfTI (.nii, .nii.gz) files needs the optional package nibabel, "
            "which is not installed: `pip install nibabel` (or convert the volume to .h5/.npy)"
        ) from err
    return nibabel


#: NIfTI xyz units (nibabel's names) -> metres
_NIFTI_UNITS = {"meter": 1.0, "mm": 1e-3, "micron": 1e-6}


def _declared_unit(path: Path) -> tuple[str, float] | None:
    """The length unit a NIfTI header declares (name, metres), None if 'unknown'."""
    name = _import_nibabel().load(str(path)).header.get_xyzt_units()[0]
    return (name, _NIFTI_UNITS[name]) if name in _NIFTI_UNITS else None


def _read_nifti(path: Path, **_: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nibabel = _import_nibabel()
    try:
        image = nibabel.load(str(path))
        dtype = np.float64 if image.get_data_dtype() == np.float64 else np.float32
        values = np.asarray(image.get_fdata(dtype=dtype))
    except Exception as err:  # nibabel raises several types for broken files
        raise CTFileError(f"{path}: not a readable NIfTI image ({err})") from err
    values = _check_values(path, values)
    affine = np.asarray(image.affine, dtype=float)
    axes = affine[:3, :3]
    voxel_size = np.linalg.norm(axes, axis=0)
    if np.any(voxel_size == 0.0):
        raise CTFileError(f"{path}: the NIfTI affine has a zero column: {axes.tolist()}")
    return values, voxel_size, affine[:3, 3].copy(), axes / voxel_size


# ---------------------------------------------------------------- sampling


def _locate(volume: CTVolume, points: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (m, 3), clamped indices (m, 3), inside mask (m,))."""
    x = np.asarray(points, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3), got {np.shape(points)}")
    if x.shape[0] == 0:
        return x, np.zeros((0, 3)), np.zeros(0, dtype=bool)
    idx = volume.index_coordinates(x)
    upper = np.asarray(volume.shape, dtype=float) - 0.5
    inside = np.all((idx >= -0.5 - _INDEX_TOLERANCE) & (idx <= upper + _INDEX_TOLERANCE), axis=1)
    inside &= np.all(np.isfinite(x), axis=1)
    clamped = np.clip(np.nan_to_num(idx), 0.0, upper - 0.5)
    return x, clamped, inside


def _outside_message(volume: CTVolume, x: np.ndarray, inside: np.ndarray, what: str) -> str:
    out = x[~inside]
    lo, hi = volume.bounds()
    return (
        f"{what}: {out.shape[0]} of {x.shape[0]} points lie outside the CT volume "
        f"(volume spans {np.round(lo, 9).tolist()} .. {np.round(hi, 9).tolist()} m; the outside "
        f"points span {np.round(np.nanmin(out, axis=0), 9).tolist()} .. "
        f"{np.round(np.nanmax(out, axis=0), 9).tolist()} m). Check the length unit "
        "(length_unit_factor), the origin and that the volume covers the mesh"
    )


def _interpolate(volume: CTVolume, clamped: np.ndarray, method: SampleMethod) -> np.ndarray:
    orders = {"linear": 1, "nearest": 0}
    if method not in orders:
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    if clamped.shape[0] == 0:
        return np.zeros(0)
    return ndimage.map_coordinates(
        volume.values,
        clamped.T,
        order=orders[method],
        mode="nearest",
        prefilter=False,
        output=np.float64,
    )


def sample(
    volume: CTVolume,
    points: npt.ArrayLike,
    method: SampleMethod = "linear",
    outside: OutsidePolicy = "raise",
) -> np.ndarray:
    """CT values (HU) at world points (n, 3) (m), by trilinear or nearest-voxel interpolation.

    Trilinear interpolation between voxel centres reproduces a field that is linear in space
    exactly. Points within half a voxel outside the outermost centres get the edge value;
    points beyond the image edge raise PointsOutsideVolumeError (outside="raise", listing how
    many and where) or give NaN (outside="nan").
    """
    if outside not in ("raise", "nan"):
        raise ValueError(f"outside must be 'raise' or 'nan', got {outside!r}")
    x, clamped, inside = _locate(volume, points)
    if outside == "raise" and not np.all(inside):
        raise PointsOutsideVolumeError(_outside_message(volume, x, inside, "sample"))
    values = _interpolate(volume, clamped, method)
    if outside == "nan":
        values[~inside] = np.nan
    return values


_A = 0.5854101966249685  # (5 + 3 sqrt 5) / 20
_B = 0.1381966011250105  # (5 - sqrt 5) / 20
TET_QUADRATURE: dict[int, np.ndarray] = {
    1: np.full((1, 4), 0.25),
    4: np.array([[_A, _B, _B, _B], [_B, _A, _B, _B], [_B, _B, _A, _B], [_B, _B, _B, _A]]),
}
"""Equal-weight tetrahedron rules: barycentric coordinates of the points (rows). 1: the
centroid (exact for linear fields); 4: the symmetric degree-2 rule."""


def sample_cells(
    volume: CTVolume,
    cell_vertices: npt.ArrayLike,
    n_points: int = 4,
    method: SampleMethod = "linear",
    outside: OutsidePolicy = "raise",
) -> np.ndarray:
    """Mean CT value (HU) of each tetrahedron: the average over an equal-weight quadrature rule.

    cell_vertices: (n, 4, 3) vertex coordinates (m), e.g. for DOLFINx
    `mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)]` (take [:, :4] for
    higher-order geometry). n_points: 1 (centroid) or 4 (degree-2 rule, the cell average of
    a quadratic field). Vectorised; an empty array of cells gives an empty result. Cells with
    a point outside the volume raise PointsOutsideVolumeError or, with outside="nan", get NaN.
    """
    cv = np.asarray(cell_vertices, dtype=float)
    if cv.ndim != 3 or cv.shape[1:] != (4, 3):
        raise ValueError(f"cell_vertices must have shape (n, 4, 3), got {cv.shape}")
    if n_points not in TET_QUADRATURE:
        raise ValueError(f"n_points must be one of {sorted(TET_QUADRATURE)}, got {n_points}")
    if outside not in ("raise", "nan"):
        raise ValueError(f"outside must be 'raise' or 'nan', got {outside!r}")
    n = cv.shape[0]
    if n == 0:
        return np.zeros(0)
    bary = TET_QUADRATURE[n_points]
    pts = np.einsum("qv,nvd->nqd", bary, cv).reshape(-1, 3)
    x, clamped, inside = _locate(volume, pts)
    cell_inside = inside.reshape(n, -1).all(axis=1)
    if outside == "raise" and not np.all(cell_inside):
        raise PointsOutsideVolumeError(
            _outside_message(
                volume, x, inside, f"sample_cells ({int((~cell_inside).sum())} of {n} cells)"
            )
        )
    values = _interpolate(volume, clamped, method).reshape(n, -1).mean(axis=1)
    values[~cell_inside] = np.nan
    return values


def average_cells(
    volume: CTVolume, cell_vertices: npt.ArrayLike, sampled: np.ndarray
) -> np.ndarray:
    """Mean CT value (HU) of each tetrahedron over the voxels whose centres lie in it.

    cell_vertices: (n, 4, 3) vertex coordinates (m); sampled: (n,) the cells' point-sampled
    means (sample_cells with outside="nan"), kept for cells that hold no voxel centre (cells
    smaller than a voxel, where the trilinear samples are the better estimate) and for cells
    (partly) outside the volume (NaN). A voxel centre on a shared face counts for both cells.
    Cost: one inclusion test per voxel in each cell's bounding box (about six per voxel of
    the meshed region), in a loop over the cells.
    """
    cv = np.asarray(cell_vertices, dtype=float)
    out = np.array(sampled, dtype=float, copy=True)
    if cv.shape[0] == 0:
        return out
    corners = volume.index_coordinates(cv)  # barycentric coordinates are affine-invariant
    to_barycentric = np.linalg.inv(np.transpose(corners[:, 1:] - corners[:, :1], (0, 2, 1)))
    shape = np.asarray(volume.shape)
    low = np.clip(np.ceil(corners.min(axis=1) - 1e-9), 0, shape - 1).astype(int)
    high = np.clip(np.floor(corners.max(axis=1) + 1e-9), 0, shape - 1).astype(int)
    for c in np.flatnonzero(np.isfinite(out) & np.all(high >= low, axis=1)):
        axes = [np.arange(a, b + 1) for a, b in zip(low[c], high[c], strict=True)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        lam = (grid - corners[c, 0]) @ to_barycentric[c].T
        inside = np.all(lam >= -1e-12, axis=1) & (lam.sum(axis=1) <= 1.0 + 1e-12)
        if inside.any():
            i, j, k = grid[inside].T
            out[c] = float(volume.values[i, j, k].mean(dtype=np.float64))
    return out
