"""`cementsim permeability BLOCK`: result, JSON for a scenario, exit 2 on bad input.

In-process (sim.cli.main), serially and under mpirun -n 2 (rank 0 prints and writes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from sim.cli import EXIT_INVALID, main
from sim.ct.synthetic import rod_lattice
from sim.scenario.materials import Bone

ROOT = MPI.COMM_WORLD.rank == 0


@pytest.fixture
def blocks(shared_tmp_path: Path) -> Path:
    """bone.npy: a 6³ rod lattice with a thicker rod along x as labels (1 = bone, 0 = pore),
    saved in [z, y, x] order; grey.npy the same as grey values; closed.npy with a closed bone layer
    across z; flat.npy a 2-D array."""
    if ROOT:
        bone = ~rod_lattice((6, 6, 6), 6, 0.15)
        bone[:, 1:5, 1:5] = True  # a thicker rod along x
        labels = bone.astype(np.uint8)
        np.save(shared_tmp_path / "bone.npy", labels.transpose(2, 1, 0))
        np.save(shared_tmp_path / "grey.npy", 1000.0 * labels.transpose(2, 1, 0) + 20.0)
        closed = labels.copy()
        closed[:, :, 3] = 1
        np.save(shared_tmp_path / "closed.npy", closed)
        np.save(shared_tmp_path / "flat.npy", np.zeros((4, 4)))
    MPI.COMM_WORLD.barrier()
    return shared_tmp_path


def test_tensor_json_and_scenario_snippet(blocks: Path, capsys: pytest.CaptureFixture) -> None:
    out = blocks / "k.json"
    block = blocks / "bone.npy"
    args = ["permeability", str(block), "--voxel-size", "40 um", "--segmented"]
    assert main([*args, "--axis-order", "zyx", "--out", str(out)]) == 0
    if ROOT:
        printed = capsys.readouterr().out
        assert "principal values" in printed and "BV/TV" in printed
    MPI.COMM_WORLD.barrier()
    result = json.loads(out.read_text())
    k = np.array(result["permeability_symmetric_m2"])
    assert result["voxel_size_m"] == pytest.approx([40e-6] * 3)
    assert np.all(np.linalg.eigvalsh(k) > 0) and result["asymmetry"] < 1e-6
    assert k[0, 0] > k[1, 1] == pytest.approx(k[2, 2], rel=1e-8)  # a thick rod along x
    bone = Bone.model_validate(result["scenario"]["bone"])  # feeds a scenario as written
    assert bone.permeability == pytest.approx(tuple(np.diag(k)))
    assert bone.porosity == pytest.approx(1 - result["bone_volume_fraction"])
    # the same block as grey values, thresholded; only the z column
    grey = ["permeability", str(blocks / "grey.npy"), "--voxel-size", "4e-5", "--threshold", "500"]
    assert main([*grey, "--axis-order", "zyx", "--directions", "z", "--out", str(out)]) == 0
    MPI.COMM_WORLD.barrier()
    only_z = json.loads(out.read_text())
    assert only_z["permeability_m2"][2][2] == pytest.approx(k[2, 2], rel=1e-9)
    assert only_z["permeability_m2"][0][0] is None and "scenario" not in only_z


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (["bone.npy", "--segmented"], "needs --voxel-size"),
        (["bone.npy", "--voxel-size", "40 m", "--segmented"], "outside 1e-06-0.01 m"),
        (["bone.npy", "--voxel-size", "40 s", "--segmented"], "expected a length"),
        (["flat.npy", "--voxel-size", "40 um", "--segmented"], "must be a 3-D array"),
        (["closed.npy", "--voxel-size", "40 um", "--segmented"], "no connected pore path"),
        (["missing.npy", "--voxel-size", "40 um", "--segmented"], "not found"),
        (["bone.npy", "--voxel-size", "40 um", "--segmented", "--directions", "w"], "x, y, z"),
        (["bone.npy", "--voxel-size", "40 um", "--segmented", "--out", "no/k.json"], "folder"),
    ],
)
def test_bad_input_exits_2(
    blocks: Path, capsys: pytest.CaptureFixture, case: list[str], message: str
) -> None:
    args = [str(blocks / a) if a.endswith(".npy") or a.endswith(".json") else a for a in case]
    assert main(["permeability", *args]) == EXIT_INVALID
    if ROOT:
        assert message in capsys.readouterr().err
