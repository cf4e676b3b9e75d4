"""The mesh of a scenario: generated (gmsh), read from a .msh file, or from a bone surface.

Each geometry kind names its builder (`GeometryKind.builder` in sim.scenario.geometry), a
function ``(geometry, needles, name, comm, msh_path, sites) -> TaggedMesh`` (`sites`: the
injection sites the cells are distributed around, sim.geometry.partition, or None for
DOLFINx's graph partitioner); it is imported here only when a mesh of that kind is built.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from mpi4py import MPI

from sim.geometry.partition import InjectionSites
from sim.geometry.tagged_mesh import TaggedMesh, refined

if TYPE_CHECKING:
    from sim.scenario import Scenario


def build_mesh(scenario: Scenario, comm: MPI.Comm, msh_path: Path | None = None) -> TaggedMesh:
    """The tagged mesh of a scenario, checked to hold every tag the scenario names, its cells
    distributed as `numerics.partition` says (sim.geometry.partition).

    Generated meshes are also written to `msh_path` (gmsh format) when it is given, as
    generated: before the refinements of `geometry.refine`.
    """
    geo = scenario.geometry
    needles = scenario.injection.needles
    module, _, function = geo.builder.partition(":")
    builder = getattr(import_module(module), function)
    sites = InjectionSites.of(needles) if scenario.numerics.partition == "injection" else None
    tagged: TaggedMesh = builder(geo, needles, scenario.name, comm, msh_path, sites)
    if geo.refine:
        tagged = refined(tagged, geo.refine)
    tagged.check_names(scenario.referenced_boundaries(), scenario.referenced_regions())
    tagged.check_names(geo.inlet_boundaries(needles), ())
    return tagged
