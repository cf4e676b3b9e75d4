"""`cementsim validate` opens surface files: unreadable, open, several-piece surfaces, a
length unit that makes the bone implausibly small or large and needle tips outside the bone
are errors naming the field, before any mesh is built; holes and extra pieces can be
repaired on request. Serial and under ``mpirun -n 2`` (pure reading)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import meshio
import numpy as np
import pytest

from sim.scenario import validate_scenario
from sim.shapes.surface import clean, read_surface
from tests.unit.scenario_support import assert_mentions, invalid, read

ROOT = Path(__file__).resolve().parents[2]
L1 = ROOT / "meshes" / "anatomy" / "lumbar_L1-L5_S1_artisynth" / "L1_body.obj.xz"
BASE = read(ROOT / "scenarios" / "anatomy" / "vertebroplasty_L1_real_surface.yaml")


def scenario(path: Path, **geometry: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["geometry"].update(path=str(path), **geometry)
    return data


@pytest.fixture(scope="module")
def l1_points_and_triangles() -> tuple[np.ndarray, np.ndarray]:
    s = clean(read_surface(L1, 1.0))
    return s.points, s.triangles


def write_stl(path: Path, points: np.ndarray, triangles: np.ndarray) -> Path:
    meshio.write(path, meshio.Mesh(points, [("triangle", triangles)]), binary=True)
    return path


def test_the_shipped_surface_validates_and_tells_inside_from_outside() -> None:
    s = validate_scenario(scenario(L1), "test")
    assert s.geometry.surface()[1].genus == 0
    assert s.geometry.contains(s.injection.needles[0].tip, 1e-3)
    assert not s.geometry.contains([0.0, 0.0, 0.0], 0.0)  # far below L1


def test_a_wrong_length_unit_names_the_field() -> None:
    assert_mentions(
        invalid(scenario(L1, length_unit="mm")),
        "geometry.length_unit:",
        "0.0487 mm across",
        "probably in m",
    )


def test_a_tip_outside_the_surface_names_the_needle() -> None:
    data = scenario(L1)
    data["injection"]["needles"][0]["tip"] = "[2, -3, 260] mm"
    assert_mentions(invalid(data), "injection.needles.0.tip:", "outside the bone")


def test_a_tip_size_too_coarse_for_the_needle_is_refused_before_meshing() -> None:
    """An 11-gauge needle (inner diameter 2.39 mm) spreads its inflow over the control
    volumes around its tip only with cells of at most half its inner radius."""
    data = scenario(L1, mesh={"size_tip": "0.6 mm"})
    data["injection"]["needles"][0]["gauge"] = 11
    assert_mentions(invalid(data), "geometry.mesh.size_tip: 0.6 mm", "needle 'right' (0.5975 mm)")
    data["geometry"]["mesh"]["size_tip"] = "0.59 mm"
    assert validate_scenario(data, "test").geometry.mesh.size_tip == pytest.approx(0.59e-3)


def test_an_open_surface_is_refused_unless_its_holes_are_small_enough(
    tmp_path: Path, l1_points_and_triangles: tuple[np.ndarray, np.ndarray]
) -> None:
    points, triangles = l1_points_and_triangles
    holed = write_stl(tmp_path / "holed.stl", points, triangles[5:])
    message = invalid(scenario(holed))
    assert_mentions(message, "geometry.path:", "not closed", "1 hole(s)", "fill_holes")
    assert_mentions(invalid(scenario(holed, fill_holes="1 mm")), "geometry.path:", "not closed")
    repaired = validate_scenario(scenario(holed, fill_holes="20 mm"), "test")
    volume = repaired.geometry.surface()[1].volume
    whole = validate_scenario(scenario(L1), "test").geometry.surface()[1].volume
    assert volume == pytest.approx(whole, rel=1e-3)


def test_a_second_piece_is_refused_unless_the_largest_is_kept(
    tmp_path: Path, l1_points_and_triangles: tuple[np.ndarray, np.ndarray]
) -> None:
    points, triangles = l1_points_and_triangles
    cube = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1],
                     [0, 1, 1]], float) * 5e-3 + [0.2, 0.0, 0.18]  # fmt: skip
    quads = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5],
                      [0, 4, 7, 3]])  # fmt: skip
    box = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]) + len(points)
    two = write_stl(tmp_path / "two.stl", np.vstack([points, cube]), np.vstack([triangles, box]))
    assert_mentions(invalid(scenario(two)), "geometry.path:", "2 separate pieces", "keep_largest")
    kept = validate_scenario(scenario(two, keep_largest_shell=True), "test")
    assert kept.geometry.surface()[1].n_components == 1


def test_a_damaged_file_is_named(tmp_path: Path) -> None:
    cut = tmp_path / "L1_body.obj.xz"
    cut.write_bytes(L1.read_bytes()[:5000])
    assert_mentions(invalid(scenario(cut)), "geometry.path:", "cannot decompress", str(cut))
    stl = tmp_path / "short.stl"
    stl.write_bytes(b"\0" * 80 + (100).to_bytes(4, "little") + b"\0" * 60)
    assert_mentions(invalid(scenario(stl)), "geometry.path:", "damaged binary STL")


SACRUM = read(ROOT / "scenarios" / "anatomy" / "sacroplasty_real_sacrum.yaml")
SACRUM_FILE = (
    ROOT / "meshes" / "anatomy" / "lumbar_L1-L5_S1_artisynth" / "S1_Schrumpfverpacken.obj.xz"
)


def sacrum_with_landmark(**patch: Any) -> dict[str, Any]:
    data = copy.deepcopy(SACRUM)
    data["geometry"]["path"] = str(SACRUM_FILE)
    data["geometry"]["boundaries"]["s1_endplate"].update(patch)
    return data


def test_a_landmark_far_from_the_surface_is_refused() -> None:
    # the landmark the shipped sacroplasty once had: 21.9 mm above the endplate
    message = invalid(sacrum_with_landmark(landmark="[-10, 0, 30] mm"))
    assert_mentions(
        message,
        "geometry.boundaries.s1_endplate.landmark:",
        "21.9 mm from the surface",
        "[-19.8, -14.6, 17.0] mm",
        "farther than max_distance 10 mm",
    )


def test_a_landmark_nearly_as_close_to_two_patches_is_ambiguous() -> None:
    message = invalid(sacrum_with_landmark(landmark="[-10, 0, 30] mm", max_distance="30 mm"))
    assert_mentions(
        message,
        "geometry.boundaries.s1_endplate.landmark:",
        "is ambiguous: 3 separate parts",
        "[-19.8, -14.6, 17.0] mm at 21.9 mm",
        "[-11.3, 0.3, 8.1] mm at 21.9 mm",
    )
    validate_scenario(sacrum_with_landmark(landmark="[-11, 0, 10] mm"), "test")  # 1.9 mm above
