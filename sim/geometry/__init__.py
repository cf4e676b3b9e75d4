"""Geometry: generated (gmsh) and imported tetrahedral meshes with named tags.

`build_mesh(scenario, comm)` (sim.geometry.build) makes the mesh of a scenario; it is loaded on
first use so that the scenario schema can use the selectors of this package.
"""

from __future__ import annotations

from typing import Any

from mpi4py import MPI  # noqa: F401  (loads libmpi before dolfinx does; see README)

from sim.geometry.tagged_mesh import MeshError, TaggedMesh

__all__ = ["MeshError", "TaggedMesh", "build_mesh"]


def __getattr__(name: str) -> Any:
    if name == "build_mesh":
        from sim.geometry.build import build_mesh

        return build_mesh
    raise AttributeError(f"module 'sim.geometry' has no attribute {name!r}")
