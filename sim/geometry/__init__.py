"""Geometry: generated (gmsh) and imported tetrahedral meshes with named tags.

`build_mesh(scenario, comm)` (sim.geometry.build) makes the mesh of a scenario with the
builder its geometry kind names. The analytic shapes the builders and the scenario schema
share (tag names, point-in-bone tests, parameter checks) are in sim.shapes, which loads
neither gmsh nor DOLFINx; this package does not import the scenario schema at run time.
"""

from __future__ import annotations

from mpi4py import MPI  # noqa: F401  (loads libmpi before dolfinx does; see README)

# isort: split
from sim.geometry.build import build_mesh
from sim.geometry.tagged_mesh import MeshError, TaggedMesh

__all__ = ["MeshError", "TaggedMesh", "build_mesh"]
