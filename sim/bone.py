"""Bone properties per cell: porosity and permeability tensor, uniform, from CT, by region.

Order: the uniform values of the scenario, then the CT mapping where it applies, then the
region overrides.
"""

from __future__ import annotations

import dolfinx
import numpy as np
from mpi4py import MPI

from sim.ct.density import permeability_tensor as axial_tensor
from sim.ct.volume import read_ct, sample_cells
from sim.errors import InputError
from sim.geometry.tagged_mesh import TaggedMesh
from sim.scenario.bone_ct import CTSection
from sim.scenario.materials import AnisotropicPermeability, Bone


def permeability_tensor(
    k: float | tuple[float, float, float] | AnisotropicPermeability,
) -> np.ndarray:
    """3x3 permeability tensor (m²) of a scalar, of principal values along x, y, z, or of a
    transversely isotropic specification."""
    if isinstance(k, AnisotropicPermeability):
        return axial_tensor(k.along_axis, k.ratio, k.axis)
    return np.diag(np.broadcast_to(np.asarray(k, dtype=float), (3,)))


class CTMappingError(InputError, ValueError):
    """The CT volume does not cover the cells it should map."""


def cell_properties(bone: Bone, tagged: TaggedMesh) -> tuple[np.ndarray, np.ndarray]:
    """Porosity (-) and permeability tensor (m², shape (cells, 3, 3)) of every local cell."""
    imap = tagged.mesh.topology.index_map(3)
    n = imap.size_local + imap.num_ghosts
    porosity = np.full(n, bone.porosity)
    permeability = np.broadcast_to(permeability_tensor(bone.permeability), (n, 3, 3)).copy()
    if bone.ct is not None:
        _apply_ct(bone.ct, tagged, porosity, permeability)
    for name, props in bone.regions.items():
        cells = tagged.cells(name)
        if props.porosity is not None:
            porosity[cells] = props.porosity
        if props.permeability is not None:
            permeability[cells] = permeability_tensor(props.permeability)
    return porosity, permeability


def _apply_ct(
    ct: CTSection, tagged: TaggedMesh, porosity: np.ndarray, permeability: np.ndarray
) -> None:
    """Map the CT volume onto the cells of ct.regions (all cells by default), in place."""
    mesh, comm = tagged.mesh, tagged.comm
    if ct.regions is None:
        cells = np.arange(len(porosity), dtype=np.int32)
    else:
        cells = np.unique(np.concatenate([tagged.cells(r) for r in ct.regions])).astype(np.int32)
    volume = read_ct(ct.file, ct.length_factor, ct.voxel_size, ct.origin)
    x = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)][:, :4]
    if len(cells):
        volume = volume.crop(x.reshape(-1, 3).min(axis=0), x.reshape(-1, 3).max(axis=0))
    hu = sample_cells(volume, x, n_points=ct.quadrature_points, outside="nan")
    inside = np.isfinite(hu)
    outside = comm.allreduce(int(np.sum(~inside)), op=MPI.SUM)
    if outside and ct.outside == "error":
        raise CTMappingError(
            f"bone.ct: {outside} cells lie (partly) outside the CT volume {ct.file}; check "
            "length_unit and origin, or set outside: fallback"
        )
    phi, k = ct.mapping().properties(hu[inside])
    porosity[cells[inside]] = phi
    permeability[cells[inside]] = k
