"""Ball of bone with a spherical needle-tip cavity at its centre (verification case A)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import gmsh
import numpy as np
from mpi4py import MPI

from sim.geometry.gmsh_tools import math_field, size_from_background_only
from sim.geometry.partition import InjectionSites
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh

if TYPE_CHECKING:
    from sim.scenario.geometry import BallGeometry
    from sim.scenario.injection import Needle


def mesh_ball(
    geometry: BallGeometry,
    needles: Sequence[Needle],
    name: str,
    comm: MPI.Comm,
    msh_path: Path | None,
    sites: InjectionSites | None = None,
) -> TaggedMesh:
    """The builder of the ``ball`` kind: its mesh (gmsh on rank 0, distributed), the cavity of
    the first needle's inner radius at the centre; written to `msh_path` when given."""
    needle = needles[0]
    build = partial(
        add_ball,
        radius=geometry.radius,
        inlet_radius=needle.inner_radius,
        inlet_name=needle.name,
        h_tip=geometry.mesh.size_tip,
        h_max=geometry.mesh.size_max,
        growth=geometry.mesh.growth,
    )
    return mesh_from_gmsh(build, comm, name, msh_path, sites)


def add_ball(
    *,
    radius: float,
    inlet_radius: float,
    inlet_name: str,
    h_tip: float,
    h_max: float,
    growth: float,
) -> None:
    """Build into the current gmsh model: ball of `radius` (m) minus a cavity of `inlet_radius`.

    Physical groups: volume ``bone``; surfaces `inlet_name` (the cavity) and ``outer``.
    Element size h = min(h_max, h_tip + growth (r - inlet_radius)), r the distance from the
    centre: a size proportional to r resolves the 1/r pressure field uniformly.
    """
    occ = gmsh.model.occ
    ball = occ.addSphere(0, 0, 0, radius)
    cavity = occ.addSphere(0, 0, 0, inlet_radius)
    volumes, _ = occ.cut([(3, ball)], [(3, cavity)])
    occ.synchronize()
    inner, outer = [], []
    for dim, tag in gmsh.model.getBoundary(volumes, oriented=False):
        area = occ.getMass(dim, tag)
        (inner if area < 4 * np.pi * (2 * inlet_radius) ** 2 else outer).append(tag)
    gmsh.model.addPhysicalGroup(3, [v for _, v in volumes], 1, "bone")
    gmsh.model.addPhysicalGroup(2, inner, 1, inlet_name)
    gmsh.model.addPhysicalGroup(2, outer, 2, "outer")
    size = math_field(
        f"Min({h_max:.9f}, {h_tip:.9f} + {growth:.9f}"
        f" * Max(0, Sqrt(x*x + y*y + z*z) - {inlet_radius:.9f}))"
    )
    gmsh.model.mesh.field.setAsBackgroundMesh(size)
    size_from_background_only()
