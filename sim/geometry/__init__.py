"""Geometry: generated (gmsh) and imported tetrahedral meshes with named tags.

`build_mesh(scenario, comm)` (sim.geometry.build) makes the mesh of a scenario. It, `TaggedMesh`
and `MeshError` are loaded on first use, so that the scenario schema can use the pure-geometry
helpers of this package (tag names, point-in-bone tests) without loading DOLFINx.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from mpi4py import MPI  # noqa: F401  (loads libmpi before dolfinx does; see README)

__all__ = ["MeshError", "TaggedMesh", "build_mesh"]

_LAZY = {
    "MeshError": "sim.geometry.tagged_mesh",
    "TaggedMesh": "sim.geometry.tagged_mesh",
    "build_mesh": "sim.geometry.build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim.geometry' has no attribute {name!r}")
