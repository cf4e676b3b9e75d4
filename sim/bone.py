"""Bone properties per cell: porosity and permeability tensor, by region."""

from __future__ import annotations

import numpy as np

from sim.geometry.tagged_mesh import TaggedMesh
from sim.scenario.materials import Bone


def permeability_tensor(k: float | tuple[float, float, float]) -> np.ndarray:
    """3x3 permeability tensor (m²) of a scalar or of principal values along x, y, z."""
    return np.diag(np.broadcast_to(np.asarray(k, dtype=float), (3,)))


def cell_properties(bone: Bone, tagged: TaggedMesh) -> tuple[np.ndarray, np.ndarray]:
    """Porosity (-) and permeability tensor (m², shape (cells, 3, 3)) of every local cell.

    Region overrides are applied in the order the scenario lists them.
    """
    n = tagged.mesh.topology.index_map(3).size_local + tagged.mesh.topology.index_map(3).num_ghosts
    porosity = np.full(n, bone.porosity)
    permeability = np.broadcast_to(permeability_tensor(bone.permeability), (n, 3, 3)).copy()
    for name, props in bone.regions.items():
        cells = tagged.cells(name)
        if props.porosity is not None:
            porosity[cells] = props.porosity
        if props.permeability is not None:
            permeability[cells] = permeability_tensor(props.permeability)
    return porosity, permeability
