"""CT volumes in their own frame and in other image modes, mapped onto a mesh (issue 11):

- a DICOM series in the patient frame (LPS, mm) gives the cells the porosity the same
  volume gives in the project frame (.h5, m): the frame is honoured, not guessed;
- a grey 8-bit micro-CT with `image: segmented` and a threshold gives each cell the bone
  fraction of its voxels: the same porosities as the exact bone mask read as `bone_fraction`;
- values that cannot be what `image` says are input errors (at validate where the header
  tells, else before the run).
Serially and under mpirun -n 2 (files written by rank 0).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from mpi4py import MPI
from scipy.ndimage import gaussian_filter

from sim.bone import CTMappingError, cell_properties
from sim.ct.density import CTMapping
from sim.ct.synthetic import (
    linear_porosity_gradient,
    synthetic_ct,
    write_ct_dicom,
    write_ct_h5,
)
from sim.ct.volume import CTVolume
from sim.geometry import build_mesh
from sim.scenario import ScenarioError, validate_scenario
from sim.scenario.frames import to_project

from ..conftest import REPO

BASE = yaml.safe_load((REPO / "scenarios" / "verification" / "sphere_newtonian.yaml").read_text())
BASE["geometry"] = {
    "kind": "ball",
    "radius": "8 mm",
    "mesh": {"size_tip": "0.5 mm", "size_max": "2.5 mm", "growth": 0.4},
}
BASE["injection"]["needles"][0]["volume"] = "0.05 mL"


def with_ct(ct: dict) -> dict:
    data = copy.deepcopy(BASE)
    data["bone"]["ct"] = ct
    return data


def porosity(data: dict) -> np.ndarray:
    """The owned cells' porosity of the scenario, in the order of the mesh's input cells."""
    scenario = validate_scenario(data)
    tagged = build_mesh(scenario, MPI.COMM_WORLD)
    phi, _ = cell_properties(scenario.bone, tagged)
    n = tagged.mesh.topology.index_map(3).size_local
    order = tagged.mesh.topology.original_cell_index[:n]
    gathered = MPI.COMM_WORLD.allgather((order, phi[:n]))
    out = np.empty(sum(len(o) for o, _ in gathered))
    for o, p in gathered:
        out[o] = p
    return out


def on_root(path: Path, write) -> Path:
    if MPI.COMM_WORLD.rank == 0:
        write(path)
    MPI.COMM_WORLD.barrier()
    return path


def test_a_dicom_series_in_the_patient_frame_maps_like_the_project_frame(
    shared_tmp_path: Path,
) -> None:
    # porosity rising towards anterior (+x): a frame taken wrongly changes every cell
    grid = synthetic_ct(
        (22, 20, 18),
        1e-3,
        [-10.5e-3, -9.5e-3, -8.5e-3],
        linear_porosity_gradient(0.80, 0.95, axis=0, start=-10e-3, end=10e-3),
    )
    hu = CTVolume(np.rint(grid.values), grid.voxel_size, grid.origin)  # DICOM stores integers
    h5 = on_root(shared_tmp_path / "project.h5", lambda p: write_ct_h5(p, hu))
    lps = hu.placed(np.linalg.inv(to_project("LPS", None)))
    series = on_root(shared_tmp_path / "series", lambda p: write_ct_dicom(p, lps))
    project = porosity(with_ct({"file": str(h5)}))
    patient = porosity(with_ct({"file": str(series)}))  # frame: LPS, the DICOM default
    assert np.ptp(project) > 0.1
    np.testing.assert_allclose(patient, project, rtol=1e-12, atol=0)
    wrong = porosity(with_ct({"file": str(series), "frame": "project"}))
    assert np.abs(wrong - project).max() > 0.05


def _grey_micro_ct(n: int = 96, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(bone mask, its 8-bit grey image): smoothed noise thresholded to BV/TV about 0.2;
    bone about 200, marrow about 40, with noise that never crosses 120."""
    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.standard_normal((n, n, n)), 1.5)
    mask = noise > np.quantile(noise, 0.8)
    grey = np.where(mask, 200, 40) + rng.integers(-30, 31, size=mask.shape)
    return mask, grey.astype(np.uint8)


def test_a_segmented_grey_micro_ct_gives_the_bone_fraction_of_each_cell(
    shared_tmp_path: Path,
) -> None:
    mask, grey = _grey_micro_ct()
    on_root(shared_tmp_path / "grey.npy", lambda p: np.save(p, grey))
    on_root(shared_tmp_path / "mask.npy", lambda p: np.save(p, mask.astype(np.float32)))
    voxel = 0.2  # mm: 96 voxels span the 16 mm ball and a little more
    place = {
        "voxel_size": f"[{voxel}, {voxel}, {voxel}] mm",
        "origin": f"[{voxel / 2 - 9.6}, {voxel / 2 - 9.6}, {voxel / 2 - 9.6}] mm",
        "porosity_limits": [0.01, 0.99],
    }
    grey_file, mask_file = str(shared_tmp_path / "grey.npy"), str(shared_tmp_path / "mask.npy")
    segmented = porosity(
        with_ct({"file": grey_file, "image": "segmented", "threshold": 120, **place})
    )
    exact = porosity(with_ct({"file": mask_file, "image": "bone_fraction", **place}))
    np.testing.assert_allclose(segmented, exact, rtol=0, atol=1e-7)
    assert np.ptp(segmented) > 0.2  # cells see their own part of the structure
    assert np.mean(segmented) == pytest.approx(1 - mask.mean(), abs=0.03)
    # an 8-bit image is no HU, found from the header at validate
    with pytest.raises(ScenarioError, match=r"bone\.ct\.image: 'hu', but .* holds uint8 values"):
        validate_scenario(with_ct({"file": grey_file, **place}))
    with pytest.raises(ScenarioError, match=r"bone\.ct\.threshold: give it with image: segmented"):
        validate_scenario(with_ct({"file": mask_file, "threshold": 0.5, **place}))
    # bone fractions outside [0, 1] are found when the volume is read
    scenario = validate_scenario(with_ct({"file": grey_file, "image": "bone_fraction", **place}))
    with pytest.raises(CTMappingError, match=r"bone_fraction, but .* holds values from"):
        cell_properties(scenario.bone, build_mesh(scenario, MPI.COMM_WORLD))


def test_mapping_of_bone_fractions_skips_the_calibration() -> None:
    mapping = CTMapping(image="bone_fraction", hu_slope=123.0)
    np.testing.assert_allclose(mapping.porosity(np.array([0.1, 0.25])), [0.9, 0.75])


def test_the_bone_statistics_are_volume_weighted_over_all_ranks(shared_tmp_path: Path) -> None:
    """The summary's bone_porosity mean is the integral of the porosity over the volume."""
    import ufl
    from dolfinx import fem

    from sim.discretisation import discretise
    from sim.medium import porous_medium

    grid = synthetic_ct(
        (22, 20, 18),
        1e-3,
        [-10.5e-3, -9.5e-3, -8.5e-3],
        linear_porosity_gradient(0.80, 0.95, axis=2, start=-9e-3, end=9e-3),
    )
    h5 = on_root(shared_tmp_path / "gradient.h5", lambda p: write_ct_h5(p, grid))
    scenario = validate_scenario(with_ct({"file": str(h5)}))
    disc = discretise(build_mesh(scenario, MPI.COMM_WORLD))
    medium = porous_medium(scenario, disc)
    comm = MPI.COMM_WORLD
    integral = comm.allreduce(fem.assemble_scalar(fem.form(medium.porosity * ufl.dx)))
    volume = comm.allreduce(
        fem.assemble_scalar(fem.form(fem.Constant(disc.mesh, 1.0) * ufl.dx(domain=disc.mesh)))
    )
    stats = medium.statistics["porosity"]
    assert stats["mean"] == pytest.approx(integral / volume, rel=1e-12)
    assert 0.80 <= stats["min"] < stats["mean"] < stats["max"] <= 0.95
    n = disc.n_cells
    assert stats["max"] == comm.allreduce(float(medium.porosity.x.array[:n].max()), MPI.MAX)
    assert stats["cv"] > 0.01


def test_a_ct_in_the_wrong_frame_is_doubted_in_the_log(shared_tmp_path: Path, caplog) -> None:
    """A CT of a vertebral body (250 HU inside an ellipsoid of its size, 40 HU around) on the
    generated L1 body: as written, no doubt; with its x and z axes swapped (a stack read in
    the wrong axis order), the run's log names the swap (sim.ct.placement)."""
    c = (np.arange(51) - 25) * 1e-3
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    body = np.where((x / 17e-3) ** 2 + (y / 20.6e-3) ** 2 + (z / 11.9e-3) ** 2 <= 1, 250, 40)
    data = yaml.safe_load((REPO / "scenarios/anatomy/vertebroplasty_L1_ct.yaml").read_text())
    data["geometry"]["mesh"] = {"size_tip": "2 mm", "size_max": "4 mm", "size_outlet": "1.5 mm"}
    for name, values, doubted in (("right", body, False), ("swapped", body.transpose(), True)):
        volume = CTVolume(np.ascontiguousarray(values), [1e-3] * 3, [-25e-3] * 3)
        data["bone"]["ct"]["file"] = str(
            on_root(shared_tmp_path / f"{name}.h5", lambda p, v=volume: write_ct_h5(p, v))
        )
        scenario = validate_scenario(data)
        tagged = build_mesh(scenario, MPI.COMM_WORLD)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sim.bone"):
            cell_properties(scenario.bone, tagged)
        if MPI.COMM_WORLD.rank == 0:
            assert ("(x -> z, z -> x, about" in caplog.text) is doubted, caplog.text
