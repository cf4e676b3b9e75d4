"""A segmentation end to end: an injection into the lesion of a synthetic label map runs
conservatively, and `cementsim labels` writes a surface, a mesh with named regions and a
geometry section, or exits with 2 on bad input. In-process, serial and under mpirun."""

from __future__ import annotations

from pathlib import Path

from mpi4py import MPI

# isort: split
import pytest
import yaml

from sim import measurements as measure
from sim.cli import EXIT_INVALID, main
from sim.geometry.tagged_mesh import read_msh
from sim.scenario import load_scenario, validate_scenario

from ..conftest import REPO
from ..unit.geometry.test_label_map import BONE_AND_LESION, scenario, write_label_map
from ..verification.conftest import run_conservative

COMM = MPI.COMM_WORLD


@pytest.fixture(scope="module")
def ball_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") if COMM.rank == 0 else None
    folder = Path(COMM.bcast(str(path) if path else None, root=0))
    return write_label_map(folder / "ball.nii.gz", BONE_AND_LESION)


def test_an_injection_into_the_segmented_lesion_is_conservative(ball_map: Path) -> None:
    data = scenario(ball_map)
    data["geometry"]["mesh"] = {"size_tip": "0.5 mm", "size_max": "3 mm"}
    pb = run_conservative(validate_scenario(data, "test"))
    assert measure.cement_in_bone(pb) == pytest.approx(0.2e-6, rel=1e-9)
    assert 0 < measure.fill_fraction(pb, "lesion") <= 1


def test_the_labels_command_writes_surface_mesh_and_geometry(
    ball_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ball_map.parent / "out"
    args = ["labels", str(ball_map), "--bone", "1,2", "--region", "lesion=2", "--out", str(out)]
    assert main([*args, "--size", "2 mm"]) == 0
    if COMM.rank == 0:
        printed = capsys.readouterr().out
        assert "bone (labels 1, 2)" in printed and "lesion (labels 2)" in printed
        assert "cells" in printed
        assert {p.name for p in out.iterdir()} == {"surface.stl", "mesh.msh", "geometry.yaml"}
        written = read_msh(out / "mesh.msh", MPI.COMM_SELF)
        assert set(written.regions) == {"bone", "lesion"}
        assert set(written.boundaries) == {"surface"}
        section = yaml.safe_load((out / "geometry.yaml").read_text())["geometry"]
        pasted = scenario(ball_map)
        pasted["geometry"] = {**section, "mesh": {"size_tip": "0.5 mm", "size_max": "2 mm"}}
        assert validate_scenario(pasted, "test").geometry.region_names() == {"bone", "lesion"}


def test_the_labels_command_exits_2_on_bad_input(
    ball_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(ball_map.parent / "bad")
    for args, message in (
        ([str(ball_map.parent / "missing.nii.gz"), "--bone", "1"], "LABELMAP: '"),
        ([str(ball_map), "--bone", "1,2", "--region", "lesion=7"], "--region lesion: label 7"),
        ([str(ball_map), "--bone", "one"], "--bone 'one': give labels as whole numbers"),
    ):
        assert main(["labels", *args, "--out", out]) == EXIT_INVALID
        if COMM.rank == 0:
            assert message in capsys.readouterr().err
    assert not Path(out).exists()


def test_the_shipped_segmentation_fills_its_lesion_and_cleft() -> None:
    """scenarios/anatomy/vertebroplasty_L2_segmentation.yaml (a segmented real L2 in the RAS
    frame; coarser, 1 mL a needle): each needle ends in a permeable segmented region, the left
    one in the lytic lesion, the right one in the cleft, and fills it far more than the bone
    around (the regions come from the labels, their properties from bone.regions)."""
    path = REPO / "scenarios" / "anatomy" / "vertebroplasty_L2_segmentation.yaml"
    changes = ["geometry.mesh.size_max=5 mm", "targets.rest={regions: [bone]}"]
    changes += [f"injection.needles.{i}.volume=1 mL" for i in (0, 1)]
    pb = run_conservative(load_scenario(path, changes))
    lesion, cleft = (measure.fill_fraction(pb, r) for r in ("lesion", "cleft"))
    rest = measure.fill_fraction(pb, "rest")
    assert lesion > 10 * rest and cleft > 10 * rest, (lesion, cleft, rest)
