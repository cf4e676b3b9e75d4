"""The shipped CT-driven scenario (vertebroplasty_L1_ct.yaml and its example CT volume)."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from sim import measurements as measure
from sim.cli import main
from sim.ct.synthetic import osteoporotic_vertebra
from sim.ct.volume import read_ct
from sim.run import run_scenario
from sim.scenario import ScenarioError, load_scenario, validate_scenario

from ..conftest import REPO
from ..verification.conftest import run_conservative

COARSE = ["geometry.mesh.size_tip=1 mm", "geometry.mesh.size_max=4 mm"]


def test_the_shipped_ct_volume_is_the_generator_output(scenarios):
    """ct/vertebra_L1_ct.h5 is what ct/make_vertebra_ct.py writes (regenerate it if not)."""
    volume = osteoporotic_vertebra()
    with h5py.File(scenarios / "anatomy" / "ct" / "vertebra_L1_ct.h5") as f:
        np.testing.assert_array_equal(f["hu"][...], volume.values)
        np.testing.assert_allclose(f.attrs["origin"], volume.origin, rtol=0, atol=1e-15)
        np.testing.assert_allclose(f.attrs["voxel_size"], volume.voxel_size, rtol=1e-15)


def test_ct_scenario_maps_the_lesion_and_runs_conservatively(scenarios):
    # trilinear samples at 4 points: exact for the generator's linear porosity field
    scenario = load_scenario(
        scenarios / "anatomy" / "vertebroplasty_L1_ct.yaml",
        [*COARSE, "injection.needles.0.volume=1 mL", "bone.ct.sampling=points"],
    )
    pb = run_conservative(scenario)
    n = pb.disc.n_cells
    phi = pb.medium.porosity.x.array[:n]
    vertices = pb.disc.V.tabulate_dof_coordinates()[pb.disc.cell_dofs[:n]]
    centroid = vertices.mean(axis=1)
    a = 33.7e-3 / 1.8  # the L1 body spans x from -0.8 a to a
    r = np.linalg.norm(vertices - [0.5 * a, 0.2 * 41.2e-3, 0.0], axis=2)
    # away from the lesion's surface by more than a voxel diagonal (trilinear sampling blends)
    lesion, elsewhere = r.max(axis=1) < 4e-3, r.min(axis=1) > 8e-3
    comm = pb.comm
    # the porosity field of the generator: 0.86 -> 0.92 along x, 0.97 in the lesion
    assert comm.allreduce(int(lesion.sum())) > 0
    assert comm.allreduce(float(np.abs(phi[lesion] - 0.97).max(initial=0.0)), MPI.MAX) < 1e-9
    expected = 0.86 + 0.06 * (centroid[elsewhere, 0] + 0.8 * a) / (1.8 * a)
    assert comm.allreduce(float(np.abs(phi[elsewhere] - expected).max(initial=0)), MPI.MAX) < 1e-9
    k = pb.medium.permeability[:n]
    np.testing.assert_allclose(k, scenario.bone.ct.mapping().permeability(phi), rtol=1e-9)
    assert measure.cement_in_bone(pb) == pytest.approx(1e-6, rel=1e-9)


def test_ct_that_misses_the_bone_is_an_input_error(scenarios, shared_tmp_path, capsys):
    code = main(
        [
            "run",
            str(scenarios / "anatomy" / "vertebroplasty_L1_ct.yaml"),
            "--out",
            str(shared_tmp_path / "shifted"),
            "--quiet",
            *("--set", "geometry.mesh.size_tip=2 mm", "--set", "geometry.mesh.size_max=6 mm"),
            *("--set", "bone.ct.origin=[0, 0, 0] mm"),
        ]
    )
    assert code == 2
    assert not (shared_tmp_path / "shifted" / "summary.json").exists()
    if MPI.COMM_WORLD.rank == 0:
        err = capsys.readouterr().err
        assert "bone.ct" in err and "outside the CT volume" in err and "Traceback" not in err


def test_a_voxel_size_written_with_a_unit_is_taken_as_written(scenarios):
    """Once scaled by the file's length unit a second time (19.5 um became 19.5 nm); a plain
    number is in metres, and a size no CT image has is an error naming the field."""
    path = scenarios / "anatomy" / "vertebroplasty_L1_ct.yaml"
    micro = ["bone.ct.length_unit=mm", "bone.ct.voxel_size=[19.5, 19.5, 19.5] um"]
    ct = load_scenario(path, micro).bone.ct
    volume = read_ct(ct.file, ct.length_factor, ct.voxel_size, ct.origin)
    np.testing.assert_allclose(volume.voxel_size, 19.5e-6, rtol=1e-12)
    with pytest.raises(ScenarioError, match=r"bone\.ct\.voxel_size: \['0\.5', '0\.5', '0\.5'\] m"):
        load_scenario(path, ["bone.ct.voxel_size=[0.5, 0.5, 0.5]"])
    with pytest.raises(ScenarioError, match=r"bone\.ct\.axis_order: 'zyx' applies to \.npy"):
        load_scenario(path, ["bone.ct.axis_order=zyx"])


def test_a_ct_file_read_in_the_wrong_length_unit_is_an_input_error(
    scenarios, shared_tmp_path, capsys
):
    code = main(
        [
            "run",
            str(scenarios / "anatomy" / "vertebroplasty_L1_ct.yaml"),
            "--out",
            str(shared_tmp_path / "um"),
            "--quiet",
            *("--set", "geometry.mesh.size_tip=2 mm", "--set", "geometry.mesh.size_max=6 mm"),
            *("--set", "bone.ct.length_unit=um"),  # the file is in metres
        ]
    )
    assert code == 2
    assert not (shared_tmp_path / "um" / "summary.json").exists()
    if MPI.COMM_WORLD.rank == 0:
        err = capsys.readouterr().err
        assert "is not that of a CT image" in err and "bone.ct.length_unit ('um')" in err


def _trabecular_block(n: int, seed: int = 7) -> np.ndarray:
    """HU of a binary trabecular-like block (n^3 voxels): smoothed noise thresholded to a
    bone volume fraction of about 0.2, bone 1784 HU (BV/TV 1 under the default calibration),
    marrow 0 HU."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(np.random.default_rng(seed).standard_normal((n, n, n)), 1.5)
    return np.where(noise > np.quantile(noise, 0.8), 1784.0, 0.0)


@pytest.mark.serial
def test_a_micro_ct_and_its_block_average_give_the_same_tip_pressure(tmp_path):
    """A 0.1 mm micro-CT of a 16 mm ball of bone and the same image averaged over 4 x 4 x 4
    voxel blocks: averaged over each cell's voxels, the tip pressures agree within 10 % (0.2 %
    measured); sampled at points (one voxel's worth of bone or marrow each) they differ by 30 %."""
    fine = _trabecular_block(160)
    coarse = fine.reshape(40, 4, 40, 4, 40, 4).mean(axis=(1, 3, 5))
    np.save(tmp_path / "fine.npy", fine)
    np.save(tmp_path / "coarse.npy", coarse)
    base = yaml.safe_load(
        (REPO / "scenarios" / "verification" / "sphere_newtonian.yaml").read_text()
    )
    base["geometry"] = {
        "kind": "ball",
        "radius": "8 mm",
        "mesh": {"size_tip": "0.4 mm", "size_max": "2 mm", "growth": 0.3},
    }
    base["injection"]["needles"][0]["volume"] = "0.05 mL"
    base["output"] = {"fields": False, "plots": False, "fluoroscopy": False, "report": False}
    pressures = {}
    for name, voxel in (("fine", 0.1), ("coarse", 0.4)):
        for sampling in ("average", "points"):
            data = copy.deepcopy(base)
            data["bone"]["ct"] = {
                "file": str(tmp_path / f"{name}.npy"),
                "voxel_size": f"[{voxel}, {voxel}, {voxel}] mm",
                "origin": f"[{voxel / 2 - 8}, {voxel / 2 - 8}, {voxel / 2 - 8}] mm",
                "sampling": sampling,
            }
            summary = run_scenario(
                validate_scenario(data), tmp_path / f"{name}_{sampling}", MPI.COMM_SELF
            )
            pressures[name, sampling] = summary["tip_pressure_max_pa"]
    assert pressures["fine", "average"] == pytest.approx(pressures["coarse", "average"], rel=0.1)
    # measured: 5.382e4 against 5.393e4 Pa averaged, 6.01e4 against 8.54e4 Pa point-sampled
    assert abs(pressures["fine", "points"] / pressures["coarse", "points"] - 1.0) > 0.25
