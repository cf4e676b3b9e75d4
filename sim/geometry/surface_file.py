"""The ``surface_file`` geometry kind: a bone surface read, checked and filled with tetrahedra
(sim.geometry.surface_import), its boundaries and regions named by the scenario's selectors
(sim.geometry.selectors)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mpi4py import MPI

from sim.geometry.selectors import tag_mesh
from sim.geometry.surface_import import mesh_surface_volume
from sim.geometry.tagged_mesh import TaggedMesh
from sim.shapes.primitives import needle_tips

if TYPE_CHECKING:
    from sim.scenario.geometry import SurfaceFileGeometry
    from sim.scenario.injection import Needle


def mesh_surface_file(
    geometry: SurfaceFileGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
) -> TaggedMesh:
    """The builder of the ``surface_file`` kind: the surface read and checked by the scenario
    (on every rank), meshed on rank 0 refined around the needle tips, its boundaries and
    regions named by the selectors; written to `msh_path` when given."""
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
    )
    return tag_mesh(
        tagged,
        facets={tag: spec.build() for tag, spec in geometry.boundaries.items()},
        cells={tag: spec.build() for tag, spec in geometry.regions.items()},
    )
