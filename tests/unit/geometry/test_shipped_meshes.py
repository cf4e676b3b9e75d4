"""The anatomy shipped in meshes/: byte-identical to the published files once decompressed,
and every surface closed, manifold, in one piece, of the genus and volume it should have.
Pure reading: runs serially and under ``mpirun -n 2``."""

from __future__ import annotations

import hashlib
import importlib.util
import lzma
from pathlib import Path

from mpi4py import MPI  # noqa: F401  (before dolfinx, which the importer loads)

# isort: split
import numpy as np
import pytest

from sim.shapes.surface import import_surface, plausible_unit

FOLDER = Path(__file__).resolve().parents[3] / "meshes" / "anatomy" / "lumbar_L1-L5_S1_artisynth"

#: file -> (genus, volume in cm^3): bodies genus 0, whole vertebrae 1 (the vertebral foramen),
#: the whole sacrum 11 (foramina and canal); volumes as imported (pinned to 1e-4)
SURFACES = {
    "L1_body.obj": (0, 43.451),
    "L2_body.obj": (0, 45.189),
    "L3_body.obj": (0, 44.931),
    "L4_body.obj": (0, 45.63),
    "L5_body.obj": (0, 43.682),
    "S1_body.obj": (0, 28.22),
    "L1_Schrumpfverpacken.obj": (1, 68.771),
    "L2_Schrumpfverpacken.obj": (1, 73.761),
    "L3_Schrumpfverpacken.obj": (1, 80.568),
    "L4_Schrumpfverpacken.obj": (1, 72.609),
    "L5_Schrumpfverpacken.obj": (1, 76.209),
    "S1_Schrumpfverpacken.obj": (11, 244.615),
}


def recorded_hashes() -> dict[str, str]:
    lines = (FOLDER / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def test_every_shipped_file_is_the_published_one() -> None:
    hashes = recorded_hashes()
    shipped = sorted(p.name.removesuffix(".xz") for p in FOLDER.glob("*.obj.xz"))
    assert shipped == sorted(hashes) == sorted(SURFACES)
    for name, digest in hashes.items():
        data = lzma.decompress((FOLDER / f"{name}.xz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == digest, name


@pytest.mark.parametrize("name", list(SURFACES))
def test_every_shipped_surface_is_a_closed_bone_in_metres(name: str) -> None:
    genus, volume_cm3 = SURFACES[name]
    _, report = import_surface(FOLDER / f"{name}.xz", 1.0)
    assert report.closed and report.manifold and report.oriented
    assert report.n_components == 1 and report.genus == genus
    assert report.volume * 1e6 == pytest.approx(volume_cm3, rel=1e-4)
    assert plausible_unit(report) is None


def test_the_shipped_label_map_is_what_its_script_writes(tmp_path: Path) -> None:
    """scenarios/anatomy/segmentation: the label map rewritten by its script has the shipped
    voxels, affine and unit, and its bone (all labels) the volume of the L2 surface (0.2 %)."""
    nibabel = pytest.importorskip("nibabel")
    script = FOLDER.parents[2] / "scenarios" / "anatomy" / "segmentation" / "make_L2_label_map.py"
    spec = importlib.util.spec_from_file_location("make_L2_label_map", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped, written = (nibabel.load(p) for p in (module.OUT, module.main(tmp_path / "l.nii.gz")))
    np.testing.assert_array_equal(written.get_fdata(), shipped.get_fdata())
    np.testing.assert_array_equal(written.affine, shipped.affine)
    assert shipped.header.get_xyzt_units()[0] == "mm"
    assert shipped.get_data_dtype() == np.uint8
    labels = np.asarray(shipped.dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    bone = np.count_nonzero(labels) * abs(np.linalg.det(shipped.affine[:3, :3])) * 1e-3  # cm³
    assert bone == pytest.approx(SURFACES["L2_body.obj"][1], rel=2e-3)
