"""Bone properties per cell: porosity and permeability tensor, uniform, from CT, random, by
region.

Order: the uniform values of the scenario, then the CT mapping where it applies, then the
random heterogeneity on top of those where it applies, then the region overrides (which
replace). The resulting statistics are logged.
"""

from __future__ import annotations

import logging

import dolfinx
import numpy as np
from mpi4py import MPI

from sim.ct.density import permeability_tensor as axial_tensor
from sim.ct.placement import placement_warning
from sim.ct.volume import CTVolume, average_cells, sample_cells
from sim.errors import InputError
from sim.geometry.tagged_mesh import TaggedMesh
from sim.scenario.bone_ct import CTSection
from sim.scenario.bone_heterogeneity import Heterogeneity
from sim.scenario.materials import AnisotropicPermeability, Bone

log = logging.getLogger(__name__)


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
    if bone.heterogeneity is not None:
        _apply_heterogeneity(bone.heterogeneity, tagged, porosity, permeability)
    for name, props in bone.regions.items():
        cells = tagged.cells(name)
        if props.porosity is not None:
            porosity[cells] = props.porosity
        if props.permeability is not None:
            permeability[cells] = permeability_tensor(props.permeability)
    return porosity, permeability


def mean_permeability(permeability: np.ndarray) -> np.ndarray:
    """The mean principal value trace(K)/3 (m²) of permeability tensors (n, 3, 3)."""
    return np.trace(permeability, axis1=1, axis2=2) / 3.0


def _cells_of(tagged: TaggedMesh, regions: list[str] | None, n: int) -> np.ndarray:
    """Local indices of the cells of `regions` (all n local cells when None)."""
    if regions is None:
        return np.arange(n, dtype=np.int32)
    return np.unique(np.concatenate([tagged.cells(r) for r in regions])).astype(np.int32)


def _vertices(tagged: TaggedMesh, cells: np.ndarray) -> np.ndarray:
    """Vertex coordinates (cells, 4, 3) (m) of local cells."""
    mesh = tagged.mesh
    return mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)][:, :4]


def _apply_ct(
    ct: CTSection, tagged: TaggedMesh, porosity: np.ndarray, permeability: np.ndarray
) -> None:
    """Map the CT volume onto the cells of ct.regions (all cells by default), in place; a
    warning in the log when a CT mapped onto the whole mesh probably lies on it in the wrong
    frame (sim.ct.placement)."""
    comm = tagged.comm
    cells = _cells_of(tagged, ct.regions, len(porosity))
    volume = ct.read(ct.file)
    problem = ct.voxel_size_problem(volume, "bone.ct")
    if problem is not None:
        raise CTMappingError(f"bone.ct: {problem}")
    x = _vertices(tagged, cells)
    if ct.regions is None:  # the mesh is the bone the CT images (a region's edge need not be)
        owned = cells < tagged.mesh.topology.index_map(3).size_local
        warning = placement_warning(
            volume, cell_centroids(x[owned]), _volumes(x[owned]), comm, "bone.ct"
        )
        if warning is not None:
            log.warning(warning)
    if len(cells):
        volume = volume.crop(x.reshape(-1, 3).min(axis=0), x.reshape(-1, 3).max(axis=0))
    if ct.threshold is not None:
        volume = volume.segmented(ct.threshold)
    elif ct.image == "bone_fraction":
        _check_fractions(comm, volume, ct)
    hu = sample_cells(volume, x, n_points=ct.quadrature_points, outside="nan")
    if ct.sampling == "average":
        hu = average_cells(volume, x, hu)
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


def _check_fractions(comm: MPI.Comm, volume: CTVolume, ct: CTSection) -> None:
    """Bone-fraction values lie in [0, 1] (within 1e-6), on every rank's part."""
    lo = comm.allreduce(float(volume.values.min()), op=MPI.MIN)
    hi = comm.allreduce(float(volume.values.max()), op=MPI.MAX)
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise CTMappingError(
            f"bone.ct.image: bone_fraction, but {ct.file} holds values from {lo:.4g} to "
            f"{hi:.4g} under the mesh; bone volume fractions lie in [0, 1] (CT numbers: "
            "image: hu; grey values: image: segmented with a threshold)"
        )


def _apply_heterogeneity(
    het: Heterogeneity, tagged: TaggedMesh, porosity: np.ndarray, permeability: np.ndarray
) -> None:
    """Scale BV/TV and permeability of the cells of het.regions (all by default) by the random
    fields at their centroids, in place. Owned and ghost cells get the values a whole mesh
    would give them, whatever the partition."""
    # imported here: gstools (scipy.stats, emcee) adds about 0.6 s to every run's start
    from sim.heterogeneity import along, bone_volume_fraction_factor, permeability_factor

    cells = _cells_of(tagged, het.regions, len(porosity))
    x = _vertices(tagged, cells)
    points = x.reshape(-1, 3)
    extents = [_extent(tagged.comm, along(points, t.axis)) for t in het.trend]
    centroids = cell_centroids(x)
    base = porosity[cells]
    bvtv = (1.0 - base) * bone_volume_fraction_factor(het, centroids, extents)
    phi = np.clip(1.0 - bvtv, *het.porosity_limits)
    permeability[cells] *= permeability_factor(het, centroids, phi, base)[:, None, None]
    porosity[cells] = phi


def cell_centroids(x: np.ndarray) -> np.ndarray:
    """Centroids (n, 3) (m) of tetrahedra with vertices x (n, 4, 3), independent of the order
    of the vertices (each coordinate is summed in ascending order): the same bits for the same
    cell on any partition."""
    s = np.sort(x, axis=1)
    return ((s[:, 0] + s[:, 1]) + (s[:, 2] + s[:, 3])) / 4.0


def _extent(comm: MPI.Comm, values: np.ndarray) -> tuple[float, float]:
    """Smallest and largest of `values` over all ranks."""
    lo = comm.allreduce(float(values.min()) if len(values) else np.inf, op=MPI.MIN)
    hi = comm.allreduce(float(values.max()) if len(values) else -np.inf, op=MPI.MAX)
    return lo, hi


def bone_statistics(
    tagged: TaggedMesh, porosity: np.ndarray, permeability: np.ndarray
) -> dict[str, dict[str, float]]:
    """Volume-weighted mean, coefficient of variation, min and max over all ranks of the
    cells' porosity (-) and mean permeability trace(K)/3 (m²), logged and returned as
    {"porosity": {...}, "permeability_m2": {...}} (collective)."""
    n = tagged.mesh.topology.index_map(3).size_local
    volume = _volumes(_vertices(tagged, np.arange(n, dtype=np.int32)))
    out = {}
    for name, label, values, unit in (
        ("porosity", "porosity", porosity[:n], ""),
        (
            "permeability_m2",
            "permeability (mean principal value)",
            mean_permeability(permeability[:n]),
            " m^2",
        ),
    ):
        mean, cv, lo, hi = _weighted_statistics(tagged.comm, values, volume)
        out[name] = {"mean": mean, "cv": cv, "min": lo, "max": hi}
        log.info(
            "bone %s: mean %.4g%s, CV %.3g, min %.4g, max %.4g (volume-weighted)",
            label,
            mean,
            unit,
            cv,
            lo,
            hi,
        )
    return out


def _volumes(x: np.ndarray) -> np.ndarray:
    """Volumes (m³) of tetrahedra with vertices x (n, 4, 3)."""
    e = x[:, 1:] - x[:, :1]
    return np.abs(np.linalg.det(e)) / 6.0


def _weighted_statistics(
    comm: MPI.Comm, values: np.ndarray, weights: np.ndarray
) -> tuple[float, float, float, float]:
    """Weighted mean, coefficient of variation, min and max of values over all ranks (the
    CV of a uniform field is exactly 0, not the round-off of its partition's sums)."""
    total = comm.allreduce(float(weights.sum()), op=MPI.SUM)
    mean = comm.allreduce(float(weights @ values), op=MPI.SUM) / total
    variance = comm.allreduce(float(weights @ (values - mean) ** 2), op=MPI.SUM) / total
    lo, hi = _extent(comm, values)
    return (mean, 0.0 if lo == hi else np.sqrt(variance) / mean, lo, hi)
