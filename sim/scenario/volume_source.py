"""How a voxel volume file is read and placed: the keys `bone.ct` and `geometry` of kind
`label_map` share.

    length_unit: mm      # unit of the lengths in the file (default: the unit a NIfTI header
                         # declares, mm for DICOM, else m)
    voxel_size: [0.5, 0.5, 0.5] mm   # .npy and TIFF (replace the file's for the others)
    origin: [0, 0, 0] mm             # centre of voxel (0, 0, 0)
    axis_order: zyx      # .npy and TIFF only: the axes the array's indices run along
    frame: LPS           # the file's frame (default: LPS for DICOM, else project)
    transform: {...}     # then moved as surface files are (sim.scenario.frames)

The file itself is named by the section that holds these keys (`bone.ct.file`,
`geometry.path`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np

from sim.ct.volume import (
    NATURAL_AXIS_ORDER,
    VOXEL_SIZE_RANGE,
    CTVolume,
    ct_format,
    declared_unit,
    read_ct,
    unknown_source,
)
from sim.scenario.base import Section
from sim.scenario.frames import FrameName, Transform, to_project
from sim.units import LengthUnit, Point, metres_per


class VolumePlacement(Section):
    """The unit, voxel grid, axis order and frame of a voxel volume file (lengths in m)."""

    length_unit: LengthUnit | None = None
    voxel_size: Point | None = None
    origin: Point | None = None
    axis_order: Literal["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"] | None = None
    frame: FrameName | None = None
    transform: Transform | None = None

    def check_source(self, path: Path, field: str) -> str:
        """The kind of volume at `path` (see sim.ct.volume.ct_format); ValueError naming
        `field` (the key of the path) or the placement key at fault unless it can be read
        with this placement."""
        if not path.exists():
            raise ValueError(f"{field}: {str(path)!r} does not exist")
        kind = ct_format(path)
        if kind is None:
            raise ValueError(f"{field}: {unknown_source(path)}")
        if kind.startswith(".nii") and importlib.util.find_spec("nibabel") is None:
            raise ValueError("reading NIfTI needs nibabel: pip install 'cementsim[ct]'")
        if kind in (".npy", ".tif") and (self.voxel_size is None or self.origin is None):
            raise ValueError(f"a {kind} volume needs voxel_size and origin")
        if kind not in NATURAL_AXIS_ORDER and self.axis_order is not None:
            raise ValueError(
                f"axis_order: {self.axis_order!r} applies to .npy arrays and TIFF stacks only; "
                f"a {kind} source places its own axes"
            )
        lo, hi = VOXEL_SIZE_RANGE
        if self.voxel_size is not None and not (
            lo <= min(self.voxel_size) <= max(self.voxel_size) <= hi
        ):
            raise ValueError(
                f"voxel_size: {[f'{v:.3g}' for v in self.voxel_size]} m is not that of a CT "
                f"image ({lo:g} to {hi:g} m); a plain number is in metres: write e.g. "
                "'[19.5, 19.5, 19.5] um' or '[0.5, 0.5, 1] mm'"
            )
        return kind

    def frame_of(self, path: Path) -> FrameName:
        """The file's frame: as given, else LPS for DICOM (a series or a SEG), else the
        project frame."""
        if self.frame is not None:
            return self.frame
        return "LPS" if ct_format(path) in ("dicom", "dicom_seg") else "project"

    @property
    def length_factor(self) -> float | None:
        """Metres per length unit of the file; None: the unit the file declares (NIfTI),
        else metres."""
        return None if self.length_unit is None else metres_per(self.length_unit)

    def metres_per_unit(self, path: Path) -> float:
        """Metres per length unit of the file at `path`: length_unit, else the unit the file
        declares, else 1 (metres)."""
        if self.length_unit is not None:
            return metres_per(self.length_unit)
        declared = declared_unit(path)
        return 1.0 if declared is None else declared[1]

    def read(self, path: Path) -> CTVolume:
        """The volume at `path` in metres, placed in the project frame (CTFileError,
        FileNotFoundError if it cannot be read)."""
        volume = read_ct(path, self.length_factor, self.voxel_size, self.origin, self.axis_order)
        return volume.placed(to_project(self.frame_of(path), self.transform))

    def voxel_size_problem(self, volume: CTVolume, where: str) -> str | None:
        """A message if the voxel size read is not that of a CT image (a wrong unit);
        `where` is the section's place in the scenario ("bone.ct")."""
        lo, hi = VOXEL_SIZE_RANGE
        if lo <= float(np.min(volume.voxel_size)) and float(np.max(volume.voxel_size)) <= hi:
            return None
        return (
            f"voxel size {[f'{v:.3g}' for v in volume.voxel_size]} m is not that of a CT "
            f"image ({lo:g} to {hi:g} m); check {where}.length_unit ({self.length_unit!r}) or "
            "voxel_size (a plain number is in metres)"
        )
