"""The geometry kinds bounded by a surface: ``surface_file`` (a bone surface read and
checked) and ``label_map`` (the marching-cubes surface of a segmentation's bone labels),
filled with tetrahedra (sim.geometry.surface_import), their boundaries named by the
scenario's selectors (sim.geometry.selectors) and their regions by selectors or by labels."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

from sim.ct.volume import CTVolume
from sim.geometry.partition import InjectionSites
from sim.geometry.selectors import Selector, tag_mesh
from sim.geometry.surface_import import CellTest, mesh_surface_volume
from sim.geometry.tagged_mesh import TaggedMesh
from sim.shapes.label_map import labels_at
from sim.shapes.primitives import needle_tips

if TYPE_CHECKING:
    from sim.scenario.geometry import BoundedBySurface, LabelMapGeometry, SurfaceFileGeometry
    from sim.scenario.injection import Needle

log = logging.getLogger(__name__)


def mesh_surface_file(
    geometry: SurfaceFileGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``surface_file`` kind: the surface read and checked by the scenario
    (on every rank), meshed on rank 0 refined around the needle tips, its boundaries and
    regions named by the selectors; written to `msh_path` when given."""
    cells = {tag: spec.build() for tag, spec in geometry.regions.items()}
    return _mesh_bounded(geometry, needles, name, comm, msh_path, sites, cells=cells)


def mesh_label_map(
    geometry: LabelMapGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``label_map`` kind: the marching-cubes surface of the bone labels
    (made and checked by the scenario), meshed on rank 0 refined around the needle tips;
    each region the cells whose centroid lies in a voxel of its labels (physical groups of
    the mesh, so also in `msh_path`), boundaries named by the selectors."""
    volume = geometry.label_volume()
    regions = {
        region: LabelRegion(volume, tuple(labels)) for region, labels in geometry.regions.items()
    }
    tagged = _mesh_bounded(geometry, needles, name, comm, msh_path, sites, regions=regions)
    for region, labels in geometry.regions.items():
        log.info("region '%s' (labels %s): %.4g mm³", region, labels, tagged.volume(region) * 1e9)
    return tagged


@dataclass(frozen=True, eq=False)
class LabelRegion:
    """The cells whose centroid lies in a voxel labelled one of `labels` (a CellTest of
    sim.geometry.surface_import), with a repr that digests the label map, so that the mesh
    cache keys meshes by their labels."""

    volume: CTVolume
    labels: tuple[int, ...]

    def __call__(self, centroids: np.ndarray) -> np.ndarray:
        return labels_at(self.volume, centroids, self.labels)

    def __repr__(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.volume.values).tobytes())
        digest.update(np.ascontiguousarray(self.volume.affine).tobytes())
        return f"LabelRegion(labels={self.labels}, map={digest.hexdigest()})"


def _mesh_bounded(
    geometry: BoundedBySurface,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None,
    *,
    regions: Mapping[str, CellTest] | None = None,
    cells: Mapping[str, Selector] | None = None,
) -> TaggedMesh:
    """The geometry's surface meshed (`regions` split off in gmsh), then boundaries and
    `cells` named by selectors."""
    surface, _ = geometry.surface()  # checked when the scenario was validated
    tagged = mesh_surface_volume(
        surface,
        comm,
        h_max=geometry.mesh.size_max,
        h_min=geometry.mesh.size_tip,
        needles=needle_tips(needles),
        growth=geometry.mesh.growth,
        name=name,
        msh_path=msh_path,
        regions=regions,
        sites=sites,
    )
    return tag_mesh(
        tagged,
        facets={tag: spec.build() for tag, spec in geometry.boundaries.items()},
        cells=cells,
    )
