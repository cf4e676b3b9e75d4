"""Fields for ParaView: saturation, pressure, Darcy velocity and cement viscosity (XDMF)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dolfinx.io import XDMFFile

if TYPE_CHECKING:
    from sim.problem import InjectionProblem


class FieldWriter:
    """Writes the mesh, its tags, and the fields at chosen times to ``fields.xdmf`` (+ .h5).

    Open the .xdmf in ParaView (reader: "XDMF Reader" or "Xdmf3ReaderT"); each field is a
    temporal collection with time in seconds.
    """

    def __init__(self, path: Path, problem: InjectionProblem) -> None:
        self.problem = problem
        self.file = XDMFFile(problem.comm, str(path), "w")
        mesh = problem.mesh
        self.file.write_mesh(mesh)
        tags = problem.tagged
        tags.cell_tags.name = "regions"
        tags.facet_tags.name = "boundaries"
        self.file.write_meshtags(tags.cell_tags, mesh.geometry)
        self.file.write_meshtags(tags.facet_tags, mesh.geometry)
        self.times: list[float] = []

    def write(self) -> None:
        pb = self.problem
        for u in (pb.S, pb.p, pb.velocity, pb.viscosity):
            self.file.write_function(u, pb.t)
        self.times.append(pb.t)

    def close(self) -> None:
        self.file.close()
