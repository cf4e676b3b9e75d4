"""The `mesh` and `run` commands end to end, in-process (also under mpirun)."""

from __future__ import annotations

import json

import h5py
from mpi4py import MPI

from sim.cli import main


def test_mesh_command_writes_the_tagged_mesh(scenarios, shared_tmp_path, capsys):
    out = shared_tmp_path / "mesh"
    code = main(
        [
            "mesh",
            str(scenarios / "vertebroplasty.yaml"),
            "--out",
            str(out),
            "--set",
            "geometry.mesh.size_max=5 mm",
            "--set",
            "geometry.mesh.size_tip=1 mm",
        ]
    )
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        printed = capsys.readouterr().out
        assert "basivertebral_foramen" in printed and "anterior" in printed
        assert (out / "mesh.msh").stat().st_size > 0
        with h5py.File(out / "mesh.h5") as h5:
            assert h5["Mesh/mesh/topology"].shape[1] == 4
            assert "MeshTags" in h5


def test_run_command_prints_the_headline(scenarios, shared_tmp_path, capsys):
    out = shared_tmp_path / "run"
    code = main(
        ["run", str(scenarios / "verification/column_curing.yaml"), "--out", str(out), "--quiet"]
    )
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        printed = capsys.readouterr().out
        summary = json.loads((out / "summary.json").read_text())
        assert f"results: {out.resolve()}" in printed
        assert f"{summary['tip_pressure_max_pa'] / 1e3:8.1f} kPa" in printed
        assert "mass balance error" in printed
