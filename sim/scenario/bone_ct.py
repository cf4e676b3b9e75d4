"""Scenario section `bone.ct`: porosity and permeability mapped from a CT volume.

    bone:
      ct:
        file: spine_ct.nii.gz      # .nii/.nii.gz (nibabel), .npy (give voxel_size, origin
                                   # and, for array[z, y, x], axis_order: zyx), .h5, a
                                   # TIFF stack (.tif, or a folder of slices; voxel_size
                                   # and origin; array[slice, row, column]) or a folder
                                   # holding one DICOM series
        length_unit: mm            # unit of the lengths in the file (default: the unit a
                                   # NIfTI header declares, mm for DICOM, else m;
                                   # voxel_size and origin given here are in metres unless
                                   # written with a unit)
        image: hu                  # or bone_fraction (values are BV/TV) or segmented
        threshold: 90              # segmented: grey value from which a voxel is bone
        frame: LPS                 # the file's frame (default: LPS for DICOM, else
        transform: {...}           # project), then a transform, as for surface files
        calibration: {slope: 0.7, intercept: -9.0}   # BMD = slope HU + intercept, mg/cm³
        tissue_mineral_density: 1240 kg/m^3           # BV/TV = BMD / TMD
        porosity_limits: [0.05, 0.98]
        permeability: {law: kozeny_carman}            # or power_law, log_linear
        anisotropy: {ratio: 0.773, axis: [0, 0, 1]}
        regions: [anterior, posterior]                # where the CT applies (default: all)
        outside: error                                # or fallback: keep bone.porosity/...

`image: segmented` turns a grey micro-CT into a bone mask (value >= threshold), whose cell
means are the cells' BV/TV; `bone_fraction` reads BV/TV from the values directly. Otherwise:
HU -> BMD -> BV/TV -> porosity -> axial permeability (sim.ct.density), from each cell's
mean HU: by default the mean over the voxels whose centres lie in the cell (`sampling:
average`; a cell smaller than a voxel takes the trilinear samples at its quadrature points),
or the trilinear samples alone (`sampling: points`, `quadrature_points` 1 or 4). The defaults
and their sources are in sim/ct/density.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from sim.ct.density import (
    DEFAULT_ANISOTROPY_RATIO,
    DEFAULT_HU_INTERCEPT,
    DEFAULT_HU_SLOPE,
    DEFAULT_KOZENY_CONSTANT,
    DEFAULT_POROSITY_MAX,
    DEFAULT_POROSITY_MIN,
    DEFAULT_SPECIFIC_SURFACE,
    DEFAULT_TISSUE_MINERAL_DENSITY,
    CTMapping,
)
from sim.ct.volume import (
    CTFileError,
    peek_ct,
)
from sim.scenario.base import Section
from sim.scenario.volume_source import VolumePlacement
from sim.units import PERMEABILITY_RANGE, in_permeability_range

Positive = Annotated[float, Field(gt=0)]


class Calibration(Section):
    """BMD = slope HU + intercept; slope in (mg/cm³)/HU, intercept in mg/cm³ (= kg/m³). A
    phantom's slope is about 0.6-1.2; it must be positive and at most 10."""

    slope: Annotated[float, Field(gt=0, le=10)] = DEFAULT_HU_SLOPE
    intercept: float = DEFAULT_HU_INTERCEPT


class KozenyCarman(Section):
    """K = phi^3 / (c S^2 (1 - phi)^2); specific surface S in 1/m, Kozeny constant c."""

    law: Literal["kozeny_carman"]
    specific_surface: Positive = DEFAULT_SPECIFIC_SURFACE
    kozeny_constant: Positive = DEFAULT_KOZENY_CONSTANT


class PowerLaw(Section):
    """K = coefficient * phi^exponent (m²)."""

    law: Literal["power_law"]
    coefficient: Positive
    exponent: float


class LogLinear(Section):
    """ln K = intercept + slope phi (K in m²)."""

    law: Literal["log_linear"]
    intercept: float
    slope: float


PermeabilityLaw = Annotated[KozenyCarman | PowerLaw | LogLinear, Field(discriminator="law")]


class Anisotropy(Section):
    """k_transverse / k_axial and the principal (axial) direction."""

    ratio: Annotated[float, Field(gt=0, le=10)] = DEFAULT_ANISOTROPY_RATIO
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)

    @field_validator("axis")
    @classmethod
    def _direction(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not np.linalg.norm(v) > 0.0:  # underflows to 0 for a vector of 1e-200s
            raise ValueError(f"must be a direction, got {list(v)}")
        return v


class CTSection(VolumePlacement):
    """A CT volume and the chain that turns its Hounsfield units into bone properties."""

    file: Path
    image: Literal["hu", "bone_fraction", "segmented"] = "hu"
    threshold: float | None = None
    calibration: Calibration = Calibration()
    tissue_mineral_density: Positive = DEFAULT_TISSUE_MINERAL_DENSITY
    porosity_limits: tuple[float, float] = (DEFAULT_POROSITY_MIN, DEFAULT_POROSITY_MAX)
    permeability: PermeabilityLaw = KozenyCarman(law="kozeny_carman")
    anisotropy: Anisotropy = Anisotropy()
    sampling: Literal["average", "points"] = "average"
    quadrature_points: Literal[1, 4] = 4
    outside: Literal["error", "fallback"] = "error"
    regions: list[str] | None = None

    @model_validator(mode="after")
    def _readable(self) -> CTSection:
        self.check_source(self.file, "file")
        if (self.image == "segmented") != (self.threshold is not None):
            raise ValueError(
                "threshold: give it with image: segmented (the grey value from which a voxel is "
                f"bone), and only then; image is {self.image!r}"
            )
        self._plausible_values()
        lo, hi = self.porosity_limits
        if not 0 < lo < hi < 1:
            raise ValueError(f"porosity_limits must satisfy 0 < min < max < 1, got {[lo, hi]}")
        self._permeability_in_range(self.mapping())  # the mapping names every other problem
        return self

    def _permeability_in_range(self, mapping: CTMapping) -> None:
        """The law's axial permeability, and the transverse one (times the anisotropy ratio),
        at both porosity limits (the law is monotone in between) within PERMEABILITY_LIMITS,
        named by the law's fields."""
        law = self.permeability
        ratio = self.anisotropy.ratio
        for phi in self.porosity_limits:
            with np.errstate(over="ignore", under="ignore"):
                k = mapping.axial_permeability(phi)
            for value, which in ((float(k), "an axial"), (float(k) * ratio, "a transverse")):
                if in_permeability_range(value):
                    continue
                fields = ", ".join(
                    f"{n} = {v:g}" for n, v in law.model_dump().items() if n != "law"
                )
                raise ValueError(
                    f"permeability: the {law.law} law ({fields}) gives {which} "
                    f"permeability of {value:.3g} m² at porosity {phi:g} (porosity_limits; "
                    f"anisotropy ratio {ratio:g}); it {PERMEABILITY_RANGE}: narrow "
                    "porosity_limits or change the law"
                )

    def _plausible_values(self) -> None:
        """A 3-D image whose value type fits `image` (read from the header only)."""
        try:
            peeked = peek_ct(self.file)
        except CTFileError as err:
            raise ValueError(f"file: {err}") from None
        if peeked is None:
            return
        shape, dtype = peeked
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise ValueError(f"file: {str(self.file)!r} holds an array of shape {shape}, not 3-D")
        if self.image == "hu" and (dtype == np.uint8 or dtype == np.bool_):
            raise ValueError(
                f"image: 'hu', but {str(self.file)!r} holds {dtype} values (grey levels or a "
                "mask, not CT numbers): give image: segmented with a threshold, or "
                "bone_fraction"
            )

    def mapping(self) -> CTMapping:
        """The HU -> properties chain (sim.ct.density.CTMapping)."""
        law = self.permeability
        extra: dict[str, object] = {}
        if isinstance(law, KozenyCarman):
            extra = {
                "specific_surface": law.specific_surface,
                "kozeny_constant": law.kozeny_constant,
            }
        elif isinstance(law, PowerLaw):
            extra = {"power_coefficient": law.coefficient, "power_exponent": law.exponent}
        else:
            extra = {"log_linear_intercept": law.intercept, "log_linear_slope": law.slope}
        return CTMapping(
            hu_slope=self.calibration.slope,
            hu_intercept=self.calibration.intercept,
            tissue_mineral_density=self.tissue_mineral_density,
            porosity_min=self.porosity_limits[0],
            porosity_max=self.porosity_limits[1],
            law=law.law,
            anisotropy_ratio=self.anisotropy.ratio,
            principal_axis=self.anisotropy.axis,
            image="hu" if self.image == "hu" else "bone_fraction",
            **extra,  # type: ignore[arg-type]
        )
