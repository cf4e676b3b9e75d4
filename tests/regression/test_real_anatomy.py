"""Injections into the real vertebra and sacrum surfaces shipped in meshes/anatomy."""

from __future__ import annotations

from pathlib import Path

import meshio
import numpy as np
import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.geometry.selectors import outward_facet_normals
from sim.run import run_scenario
from sim.scenario import load_scenario
from sim.scenario.frames import FRAMES
from sim.scenario.geometry import SurfaceFileGeometry
from sim.shapes.surface import clean, read_surface

from ..conftest import REPO
from ..verification.conftest import run_conservative
from .test_equivalence import assert_same_numbers

L1 = REPO / "meshes" / "anatomy" / "lumbar_L1-L5_S1_artisynth" / "L1_body.obj.xz"
QUIET = ["output.plots=false", "output.fluoroscopy=false", "output.report=false"]

COARSE = [
    "geometry.mesh.size_max=5 mm",
    "geometry.mesh.size_tip=0.55 mm",
    "cement={rheology: {model: newtonian, viscosity: 100 Pa*s}}",
    "output.fields=false",
]


def test_real_l1_body(scenarios):
    sc = load_scenario(
        scenarios / "anatomy" / "vertebroplasty_L1_real_surface.yaml",
        [*COARSE, "injection.needles.0.volume=1 mL"],
    )
    pb = run_conservative(sc)
    assert pb.needles[0].kind == "source"
    for name in ("basivertebral_foramen", "endplate_upper", "endplate_lower", "surface"):
        assert pb.comm.allreduce(len(pb.tagged.facets(name))) > 0, name
    assert 0 < measure.fill_fraction(pb, "anterior") < 1
    assert measure.cement_in_bone(pb) == pytest.approx(1e-6, rel=1e-6)


def test_real_sacrum_bilateral(scenarios):
    sc = load_scenario(
        scenarios / "anatomy" / "sacroplasty_real_sacrum.yaml",
        [*COARSE, "injection.needles.0.volume=1 mL", "injection.needles.1.volume=1 mL"],
    )
    pb = run_conservative(sc)
    assert [n.protocol.injected for n in pb.needles] == pytest.approx([1e-6, 1e-6], rel=1e-12)
    assert measure.route(pb, "cortical_veins").marrow_out > 0
    # the disc route opens through the S1 endplate: a patch facing cranially at its height
    facets = pb.tagged.facets("s1_endplate")
    normals, _, corners = outward_facet_normals(pb.tagged.mesh, facets)
    owned = facets < pb.tagged.mesh.topology.index_map(2).size_local
    edges = corners[:, 1:] - corners[:, :1]
    area = 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1) * owned
    height = corners.mean(axis=1)[:, 2]
    sums = pb.comm.allreduce(np.append(area @ normals, [area @ height, area.sum()]), op=MPI.SUM)
    normal, z, total = sums[:3] / sums[4], sums[3] / sums[4], sums[4]
    print(f"s1_endplate: mean normal {normal}, height {z * 1e3:.2f} mm, {total * 1e6:.1f} mm2")
    assert normal[2] > 0.8 and abs(z - 8e-3) < 3e-3
    assert total == pytest.approx(np.pi * 12e-3**2, rel=0.25)  # a gently curved disc of 12 mm


@pytest.mark.serial
def test_a_surface_in_scanner_coordinates_with_its_frame_gives_the_project_frame_answer(
    scenarios: Path, tmp_path: Path
) -> None:
    """The L1 body written in DICOM LPS coordinates (+x left, +y posterior) and read with
    `frame: LPS` gives the numbers of the same surface in the project frame; read as if it
    were in the project frame, validate warns that its mirror plane is normal to x."""
    surface = clean(read_surface(L1, 1.0))
    lps = surface.points @ FRAMES["LPS"]  # x_LPS = M^T x_project (M orthogonal)
    for name, points in (("project.ply", surface.points), ("lps.ply", lps)):
        meshio.write(tmp_path / name, meshio.Mesh(points, [("triangle", surface.triangles)]))
    runs = {}
    for name, frame in (("project", "project"), ("lps", "LPS")):
        sc = load_scenario(
            scenarios / "anatomy" / "vertebroplasty_L1_real_surface.yaml",
            [
                *COARSE,
                *QUIET,
                "injection.needles.0.volume=0.5 mL",
                f"geometry.path={tmp_path / name}.ply",
                f"geometry.frame={frame}",
            ],
        )
        assert sc.warnings() == []
        runs[name] = run_scenario(sc, tmp_path / f"run_{name}", MPI.COMM_SELF)
    assert_same_numbers(runs["project"], runs["lps"], rtol=1e-9, volume_scale=1e-6)
    unrotated = SurfaceFileGeometry.model_validate(
        {"kind": "surface_file", "path": tmp_path / "lps.ply", "length_unit": "m"}
    )
    (warning,) = unrotated.warnings()
    assert "mirror-symmetric across the plane normal to x" in warning
    assert "geometry.frame" in warning
