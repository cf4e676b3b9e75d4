"""Scenario pieces `frame` and `transform`: bringing a file's coordinates into the project frame.

The project frame: +x anterior, +y the patient's left, +z cranial (right-handed), metres. A
surface exported from a scanner or a segmentation tool is usually in another frame:

- ``LPS`` (DICOM patient coordinates, also ``scanner``): +x left, +y posterior, +z superior;
- ``RAS`` (NIfTI world, 3D Slicer, ITK-SNAP display): +x right, +y anterior, +z superior;
- ``project`` (default): already in the project frame.

A `transform` then moves the result: mirror (`flip` the listed axes), `rotate` about axes
through the origin (in the order given, right-hand rule), `translate`. So a point x of the
file, scaled to metres, lands at  translate + R_n ... R_1 F (M_frame x).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import field_validator

from sim.scenario.base import Section
from sim.units import Angle, Point

#: x_project = FRAMES[name] @ x_frame
FRAMES: dict[str, np.ndarray] = {
    "project": np.eye(3),
    "LPS": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
    "RAS": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}
FRAMES["scanner"] = FRAMES["LPS"]
FrameName = Literal["project", "LPS", "RAS", "scanner"]


class Rotation(Section):
    """A rotation by `angle` about `axis` (through the origin, right-hand rule)."""

    axis: tuple[float, float, float]
    angle: Angle

    @field_validator("axis")
    @classmethod
    def _nonzero(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not (all(math.isfinite(c) for c in v) and any(c != 0.0 for c in v)):
            raise ValueError(f"{list(v)} must be three finite numbers, not all zero")
        return v

    def matrix(self) -> np.ndarray:
        """The 3 x 3 rotation matrix (Rodrigues)."""
        k = np.asarray(self.axis, dtype=float)
        k = k / np.linalg.norm(k)
        cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.eye(3) + s * cross + (1.0 - c) * cross @ cross


class Transform(Section):
    """flip, then rotate (in order), then translate (m); see the module docstring."""

    flip: list[Literal["x", "y", "z"]] = []
    rotate: list[Rotation] = []
    translate: Point = (0.0, 0.0, 0.0)

    def affine(self) -> np.ndarray:
        """The 4 x 4 affine map of this transform."""
        linear = np.diag([-1.0 if axis in self.flip else 1.0 for axis in "xyz"])
        for rotation in self.rotate:
            linear = rotation.matrix() @ linear
        out = np.eye(4)
        out[:3, :3] = linear
        out[:3, 3] = self.translate
        return out


def to_project(frame: str, transform: Transform | None) -> np.ndarray:
    """The 4 x 4 affine map from a file's frame (scaled to metres) to the project frame."""
    out = np.eye(4)
    out[:3, :3] = FRAMES[frame]
    return out if transform is None else transform.affine() @ out
