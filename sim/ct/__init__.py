"""Bone properties mapped from a CT volume: HU -> BMD -> BV/TV -> porosity -> permeability.

volume:    CTVolume, read_ct (NIfTI via optional nibabel, .npy, .h5), sample, sample_cells
density:   the pure laws of the chain, permeability_tensor, CTMapping (all parameters)
synthetic: synthetic_ct (inverse mapping of a known porosity field), porosity-field helpers,
           writers (.h5, .npy, NIfTI), rod_lattice (a segmented trabecular-like block)
pore_flow: permeability tensor of a segmented micro-CT block by a pore-scale Stokes solve
           (imported on use: it needs DOLFINx)
"""

from sim.ct.density import (
    CTMapping,
    bmd_to_bone_volume_fraction,
    bmd_to_hu,
    bone_volume_fraction_to_bmd,
    hu_to_bmd,
    kozeny_carman_permeability,
    kozeny_carman_specific_surface,
    log_linear_permeability,
    permeability_tensor,
    porosity_from_bone_volume_fraction,
    power_law_permeability,
    specific_surface_from_thickness,
)
from sim.ct.synthetic import (
    cortical_shell,
    linear_porosity_gradient,
    rod_lattice,
    spherical_lesion,
    synthetic_ct,
    uniform_porosity,
    write_ct_h5,
    write_ct_nifti,
    write_ct_npy,
)
from sim.ct.volume import (
    CTFileError,
    CTVolume,
    PointsOutsideVolumeError,
    read_ct,
    sample,
    sample_cells,
)

__all__ = [
    "CTFileError",
    "CTMapping",
    "CTVolume",
    "PointsOutsideVolumeError",
    "bmd_to_bone_volume_fraction",
    "bmd_to_hu",
    "bone_volume_fraction_to_bmd",
    "cortical_shell",
    "hu_to_bmd",
    "kozeny_carman_permeability",
    "kozeny_carman_specific_surface",
    "linear_porosity_gradient",
    "log_linear_permeability",
    "permeability_tensor",
    "porosity_from_bone_volume_fraction",
    "power_law_permeability",
    "read_ct",
    "rod_lattice",
    "sample",
    "sample_cells",
    "specific_surface_from_thickness",
    "spherical_lesion",
    "synthetic_ct",
    "uniform_porosity",
    "write_ct_h5",
    "write_ct_nifti",
    "write_ct_npy",
]
