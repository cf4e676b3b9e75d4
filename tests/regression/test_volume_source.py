"""Imported meshes have no needle cavity: the cement enters as a source around the tip."""

from __future__ import annotations

import gmsh
import numpy as np
import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.scenario import validate_scenario

from ..verification.conftest import Extremes, simulate


def _solid_ball(path, radius: float = 0.02) -> None:
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        gmsh.model.add("solid_ball")
        ball = gmsh.model.occ.addSphere(0, 0, 0, radius)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(3, [ball], 1, "bone")
        surfaces = [t for _, t in gmsh.model.getBoundary([(3, ball)], oriented=False)]
        gmsh.model.addPhysicalGroup(2, surfaces, 1, "outer")
        field = gmsh.model.mesh.field.add("MathEval")
        gmsh.model.mesh.field.setString(field, "F", "0.0005 + 0.3 * Sqrt(x*x + y*y + z*z)")
        gmsh.model.mesh.field.setAsBackgroundMesh(field)
        for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
            gmsh.option.setNumber(f"Mesh.{option}", 0)
        gmsh.model.mesh.generate(3)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def test_source_injection_into_a_mesh_without_cavity(shared_tmp_path):
    comm = MPI.COMM_WORLD
    path = shared_tmp_path / "solid_ball.msh"
    if comm.rank == 0:
        _solid_ball(path)
    comm.barrier()
    phi, volume = 0.9, 1e-6
    sc = validate_scenario(
        {
            "name": "source",
            "geometry": {"kind": "mesh_file", "path": str(path), "length_unit": "m"},
            "bone": {"porosity": phi, "permeability": 1e-9},
            "cement": {"rheology": {"model": "newtonian", "viscosity": 100.0}},
            "marrow": {"viscosity": 0.05},
            "injection": {
                "needles": [
                    {"tip": [0, 0, 0], "inner_diameter": 0.0024, "rate": 5e-8, "volume": volume}
                ]
            },
            "leak_routes": {"far": {"kind": "outlet", "boundary": "outer"}},
        }
    )
    extremes = Extremes()
    _, pb = simulate(sc, [], lambda p: None, extremes)
    needle = pb.needles[0]
    assert needle.kind == "source"
    assert pb.comm.allreduce(int(np.count_nonzero(needle.weights))) >= 1
    assert pb.comm.allreduce(float(needle.weights.sum())) == pytest.approx(1.0, rel=1e-12)
    cloud, _ = measure.cloud(pb)
    r_cloud = (3 * cloud / (4 * np.pi)) ** (1 / 3)
    r_exact = (3 * volume / (4 * np.pi * phi)) ** (1 / 3)
    assert r_cloud == pytest.approx(r_exact, rel=0.1)
    assert measure.tip_pressure(pb, needle.name) > 0
    extremes.assert_conservative()
