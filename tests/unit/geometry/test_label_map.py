"""Label maps (geometry kind `label_map`): a synthetic segmentation, a ball of bone (label 1,
radius 10 mm) holding a ball-shaped lesion (label 2, radius 3 mm) in 0.5 mm voxels, becomes a
checked surface, a tetrahedral mesh and the region `lesion`; bad label maps are errors of
`validate` naming the field. Serial and under ``mpirun -n 2``."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from mpi4py import MPI

# isort: split
import highdicom as hd
import numpy as np
import pydicom
import pytest

from sim.ct.synthetic import write_ct_dicom, write_ct_nifti, write_dicom_seg
from sim.ct.volume import CTVolume, read_ct
from sim.geometry import build_mesh
from sim.geometry.mesh_cache import key_of
from sim.geometry.surface_file import LabelRegion
from sim.geometry.tagged_mesh import TaggedMesh, read_msh
from sim.scenario import Scenario, validate_scenario
from sim.scenario.frames import FRAMES
from tests.unit.scenario_support import assert_mentions, invalid

COMM = MPI.COMM_WORLD
VOXEL = 0.5e-3
#: the bone ball and the lesion ball inside it: centres and radii (m), project frame
BALL = (np.array([1e-3, -2e-3, 3e-3]), 10e-3)
LESION = (np.array([3e-3, -1e-3, 2e-3]), 3e-3)


def ball_volume(radius: float) -> float:
    return 4.0 / 3.0 * math.pi * radius**3


def labels(
    balls: list[tuple[np.ndarray, float, int]], lower: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """A label array of `shape` (voxels of VOXEL from `lower`, m): each (centre, radius,
    label) painted over the earlier ones."""
    axes = [lower[i] + VOXEL * np.arange(n) for i, n in enumerate(shape)]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    out = np.zeros(shape, dtype=np.uint8)
    for centre, radius, label in balls:
        out[np.linalg.norm(x - centre, axis=-1) <= radius] = label
    return out


def write_label_map(
    path: Path, balls: list[tuple[np.ndarray, float, int]], frame: str = "project"
) -> Path:
    """A NIfTI label map (mm) of `balls` (see `labels`) around the bone ball, its affine in
    `frame` (the project frame's points mapped into it)."""
    lower = BALL[0] - 11e-3
    values = labels(balls, lower, (45, 45, 45))
    to_frame = FRAMES[frame].T  # x_frame = M^T x_project
    if COMM.rank == 0:
        write_ct_nifti(path, CTVolume(values, VOXEL, to_frame @ lower, to_frame))
    COMM.barrier()
    return path


BONE_AND_LESION = [(BALL[0], BALL[1], 1), (LESION[0], LESION[1], 2)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") if COMM.rank == 0 else None
    return Path(COMM.bcast(str(path) if path else None, root=0))


@pytest.fixture(scope="module")
def ball_map(folder: Path) -> Path:
    return write_label_map(folder / "ball.nii.gz", BONE_AND_LESION)


def scenario(path: Path, **geometry: Any) -> dict[str, Any]:
    """A small injection into the lesion of the label map at `path`."""
    tip = [round(float(c) * 1e3, 6) for c in LESION[0]]
    return {
        "name": "label_map",
        "geometry": {
            "kind": "label_map",
            "path": str(path),
            "bone": [1, 2],
            "regions": {"lesion": [2]},
            "mesh": {"size_tip": "0.5 mm", "size_max": "1.5 mm"},
            **geometry,
        },
        "bone": {"porosity": 0.9, "permeability": "1e-9 m^2"},
        "cement": {"rheology": {"model": "newtonian", "viscosity": "100 Pa*s"}},
        "marrow": {"viscosity": "0.05 Pa*s"},
        "injection": {
            "needles": [
                {
                    "name": "needle",
                    "tip": f"{tip} mm",
                    "inner_diameter": "2 mm",
                    "rate": "6 mL/min",
                    "volume": "0.2 mL",
                }
            ]
        },
        "leak_routes": {"surface": {"kind": "outlet", "boundary": "surface"}},
        "targets": {"lesion": {"regions": ["lesion"]}},
        "output": {"fields": False, "plots": False, "fluoroscopy": False, "report": False},
    }


def centroid(tagged: TaggedMesh, region: str | None = None) -> np.ndarray:
    """The volume centroid (m) of a region or of the whole mesh (collective)."""
    mesh = tagged.mesh
    n = mesh.topology.index_map(3).size_local
    cells = np.arange(n, dtype=np.int32) if region is None else tagged.cells(region)
    cells = cells[cells < n]
    import dolfinx

    x = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)][:, :4]
    v = np.abs(np.linalg.det(x[:, 1:] - x[:, :1])) / 6.0
    moment = COMM.allreduce(v @ x.mean(axis=1), op=MPI.SUM)
    return moment / COMM.allreduce(float(v.sum()), op=MPI.SUM)


@pytest.fixture(scope="module")
def ball(ball_map: Path, folder: Path) -> tuple[Scenario, TaggedMesh]:
    sc = validate_scenario(scenario(ball_map), "test")
    return sc, build_mesh(sc, COMM, msh_path=folder / "ball.msh" if COMM.rank == 0 else None)


def test_the_meshed_bone_and_lesion_have_the_volumes_of_their_balls(
    ball: tuple[Scenario, TaggedMesh], folder: Path
) -> None:
    """Measured (smoothing 1 voxel, size_max 1.5 mm, 0.5 mm at the tip in the lesion): the
    marching-cubes surface encloses 0.988 of the ball (the Gaussian shrinks a convex mask),
    the mesh 0.980 (remeshing cuts chords), the lesion 1.018 of its ball (cells by the
    label at their centroid)."""
    sc, tagged = ball
    assert sc.geometry.volume() / ball_volume(BALL[1]) == pytest.approx(0.988, abs=0.004)
    assert tagged.volume() / ball_volume(BALL[1]) == pytest.approx(0.980, abs=0.006)
    assert tagged.volume("lesion") / ball_volume(LESION[1]) == pytest.approx(1.018, abs=0.02)
    assert np.linalg.norm(centroid(tagged) - BALL[0]) < 0.05e-3
    assert np.linalg.norm(centroid(tagged, "lesion") - LESION[0]) < 0.1e-3
    assert set(tagged.regions) == {"bone", "lesion"}
    if COMM.rank == 0:  # the regions are physical groups of the written mesh
        written = read_msh(folder / "ball.msh", MPI.COMM_SELF)
        assert set(written.regions) == {"bone", "lesion"}
        assert written.num_cells_global() == tagged.num_cells_global()


def test_a_label_map_in_the_scanner_frame_meshes_like_the_project_frame_one(
    ball: tuple[Scenario, TaggedMesh], folder: Path
) -> None:
    """The same labels with an LPS affine, read with frame: LPS: the same surface and, up to
    gmsh's remeshing, the same mesh."""
    lps = write_label_map(folder / "ball_lps.nii.gz", BONE_AND_LESION, frame="LPS")
    sc = validate_scenario(scenario(lps, frame="LPS"), "test")
    reference, tagged = ball
    assert sc.geometry.volume() == pytest.approx(reference.geometry.volume(), rel=1e-9)
    assert sc.geometry.surface()[0].centroid() == pytest.approx(
        reference.geometry.surface()[0].centroid(), abs=1e-9
    )
    moved = build_mesh(sc, COMM)
    assert moved.volume() == pytest.approx(tagged.volume(), rel=2e-3)
    assert moved.volume("lesion") == pytest.approx(tagged.volume("lesion"), rel=0.03)
    assert np.linalg.norm(centroid(moved) - centroid(tagged)) < 0.02e-3


def test_a_dicom_seg_reads_as_its_label_map_in_the_patient_frame(
    ball: tuple[Scenario, TaggedMesh], folder: Path
) -> None:
    """A DICOM-SEG (one BINARY segment per label, LPS, mm) gives back the labels and their
    placement, and, read with its default frame LPS, the surface of the NIfTI label map."""
    rng = np.random.default_rng(1)
    values = rng.integers(0, 4, (7, 5, 6)).astype(np.uint8)
    small = CTVolume(values, [0.5e-3, 0.6e-3, 0.7e-3], [0.01, 0.02, -0.03], FRAMES["LPS"].T)
    seg = folder / "small_seg.dcm"
    lower = BALL[0] - 11e-3
    to_lps = FRAMES["LPS"].T
    ball_seg = folder / "ball_seg.dcm"
    if COMM.rank == 0:
        write_dicom_seg(seg, small)
        whole = labels(BONE_AND_LESION, lower, (45, 45, 45))
        write_dicom_seg(ball_seg, CTVolume(whole, VOXEL, to_lps @ lower, to_lps))
    COMM.barrier()
    back = read_ct(seg)
    assert np.array_equal(back.values, values)
    assert back.origin == pytest.approx(small.origin, abs=1e-12)
    assert back.axes == pytest.approx(small.axes, abs=1e-12)
    reference = ball[0].geometry
    geometry = validate_scenario(scenario(ball_seg), "test").geometry
    if COMM.rank == 0:  # a frame off the slice grid
        shifted = pydicom.dcmread(seg)
        shifted.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0].ImagePositionPatient[
            2
        ] += 0.3
        shifted.save_as(folder / "off_grid.dcm")
    COMM.barrier()
    assert_mentions(
        invalid(scenario(folder / "off_grid.dcm")),
        "geometry.path:",
        "the frames do not lie on one grid of 0.7 mm slices",
    )
    assert geometry.volume() == pytest.approx(reference.volume(), rel=1e-9)
    assert geometry.surface()[0].centroid() == pytest.approx(
        reference.surface()[0].centroid(), abs=1e-9
    )


@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_a_highdicom_segmentation_lands_on_the_ct_voxels_it_was_drawn_on(
    tmp_path: Path, kind: str
) -> None:
    """A DICOM-SEG written by highdicom (the reference implementation, not our writer) over a
    CT series (LPS, anisotropic voxels): each label lands on the CT voxels it was drawn on.
    highdicom leaves out frames without a label, so the grid spans the labelled slices."""
    rng = np.random.default_rng(3)
    ct = CTVolume(
        rng.normal(300.0, 50.0, (12, 10, 8)),
        [0.5e-3, 0.6e-3, 0.7e-3],
        [0.01, 0.02, -0.03],
        FRAMES["LPS"].T,
    )
    write_ct_dicom(tmp_path / "ct", ct)
    sources = [pydicom.dcmread(p) for p in sorted((tmp_path / "ct").glob("*.dcm"))]
    drawn = np.zeros(ct.shape, dtype=np.uint8)  # [i, j, k] like the CT
    drawn[2:9, 3:7, 2:6] = 1
    drawn[4:6, 4:6, 3:5] = 2
    category = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name,
            segmented_property_category=category,
            segmented_property_type=hd.sr.CodedConcept(code, "SCT", name),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, name, code in ((1, "vertebra", "51282000"), (2, "lesion", "52988006"))
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.transpose(drawn, (2, 1, 0)),  # [frame, row, column]
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="cementsim tests",
        manufacturer_model_name="highdicom",
        software_versions=hd.__version__,
        device_serial_number="0",
    )
    seg.save_as(tmp_path / "seg.dcm")
    back = read_ct(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(back.values, drawn[:, :, 2:6])
    assert back.voxel_size == pytest.approx(ct.voxel_size, rel=1e-9)
    assert back.axes == pytest.approx(ct.axes, abs=1e-12)
    corners = np.array([[0, 0, 0], [11, 9, 3]])
    assert back.world_coordinates(corners) == pytest.approx(
        ct.world_coordinates(corners + np.array([0, 0, 2])), abs=1e-9
    )


def test_label_regions_key_the_mesh_cache_by_the_labels() -> None:
    """A region test digests its label map: the same labels give the same key, another
    layout or another label another key (a cached mesh never has another's regions)."""
    lower = BALL[0] - 11e-3
    maps = [
        CTVolume(labels(balls, lower, (45, 45, 45)), VOXEL, lower)
        for balls in (BONE_AND_LESION, BONE_AND_LESION, [(BALL[0], BALL[1], 1), (BALL[0], 3e-3, 2)])
    ]
    keys = [key_of(("regions", [("lesion", LabelRegion(m, (2,)))])) for m in maps]
    keys.append(key_of(("regions", [("lesion", LabelRegion(maps[0], (1,)))])))
    assert keys[0] is not None and keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_absent_labels_are_errors_naming_the_field(ball_map: Path) -> None:
    assert_mentions(
        invalid(scenario(ball_map, bone=[1, 7])),
        "geometry.bone: label 7 is not in 'ball.nii.gz' (labels present: 0, 1, 2)",
    )
    assert_mentions(
        invalid(scenario(ball_map, regions={"lesion": [3]})),
        "geometry.regions.lesion: label 3 is not in 'ball.nii.gz' (labels present: 0, 1, 2)",
    )
    assert_mentions(
        invalid(scenario(ball_map, bone=[1], regions={"lesion": [2]})),
        "geometry.regions.lesion: label 2 is not a bone label (bone: [1])",
    )


def test_an_empty_segmentation_is_an_error(folder: Path) -> None:
    empty = write_label_map(folder / "empty.nii.gz", [])
    assert_mentions(
        invalid(scenario(empty, regions={})),
        "geometry.bone: none of the labels [1, 2] is in 'empty.nii.gz' (labels present: 0)",
        "the bone is empty",
    )


def test_a_needle_tip_outside_the_bone_is_an_error(ball_map: Path) -> None:
    data = scenario(ball_map)
    data["injection"]["needles"][0]["tip"] = "[12, -2, 3] mm"
    assert_mentions(invalid(data), "injection.needles.0.tip: [12.0, -2.0, 3.0] mm is outside")


def test_bone_in_pieces_is_an_error_unless_the_largest_is_kept(folder: Path) -> None:
    pieces = [(BALL[0], 6e-3, 1), (BALL[0] + np.array([0, 0, 8.5e-3]), 2e-3, 1)]
    path = write_label_map(folder / "pieces.nii.gz", pieces)
    data = scenario(path, bone=[1], regions={})
    data["injection"]["needles"][0]["tip"] = f"{[float(c) * 1e3 for c in BALL[0]]} mm"
    data["targets"] = {}
    assert_mentions(
        invalid(data),
        "geometry.bone: the bone (labels [1]) of 'pieces.nii.gz' holds 2 separate pieces",
        "keep_largest_shell: true",
    )
    data["geometry"]["keep_largest_shell"] = True
    kept = validate_scenario(data, "test").geometry  # measured 0.963 of the larger ball
    assert kept.volume() / ball_volume(6e-3) == pytest.approx(0.963, abs=0.01)


def test_grey_values_and_a_wrong_unit_are_errors(folder: Path, ball_map: Path) -> None:
    grey = folder / "grey.nii.gz"
    if COMM.rank == 0:
        write_ct_nifti(grey, CTVolume(np.full((8, 8, 8), 0.5), VOXEL, np.zeros(3)))
    COMM.barrier()
    assert_mentions(
        invalid(scenario(grey)), "geometry.path: 'grey.nii.gz' holds values that are not integer"
    )
    assert_mentions(
        invalid(scenario(ball_map, length_unit="m")),
        "geometry.path:",
        "its header gives lengths in mm",
    )
    npy = folder / "ball.npy"
    if COMM.rank == 0:
        np.save(npy, labels(BONE_AND_LESION, BALL[0] - 11e-3, (45, 45, 45)))
    COMM.barrier()
    as_npy = scenario(npy, voxel_size="[0.5, 0.5, 0.5] m", origin="[0, 0, 0] m")
    assert_mentions(invalid(as_npy), "geometry.voxel_size:", "is not that of a CT image")
    unitless = copy.deepcopy(as_npy)
    unitless["geometry"].update(voxel_size="[2, 2, 2] um")
    assert_mentions(invalid(unitless), "geometry.length_unit: the surface is", "across")
