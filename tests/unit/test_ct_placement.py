"""The CT placement check (sim.ct.placement): a CT of a bone laid on the mesh of that bone
in the wrong frame (axes swapped, a flip) is doubted with the change that undoes it; the
right placement, a flip the bone's symmetry hides, and an image without structure on the
mesh's scale are not. Serially and under mpirun -n 2 (each rank holds part of the cells)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from sim.ct.placement import placement_scores, placement_warning
from sim.ct.volume import CTVolume

COMM = MPI.COMM_WORLD
N = 64  # voxels along each axis, 1 mm
H = 1e-3


def bone(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A body (m) like a vertebra's: a flat ellipsoid, long along x, with a posterior knob
    above its middle (-x, +z); mirror-symmetric across y = 0 only."""
    body = (x / 20e-3) ** 2 + (y / 14e-3) ** 2 + (z / 8e-3) ** 2 <= 1.0
    knob = (x + 18e-3) ** 2 + y**2 + (z - 5e-3) ** 2 <= (8e-3) ** 2
    return body | knob


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = (np.arange(N) - (N - 1) / 2) * H
    return np.meshgrid(c, c, c, indexing="ij")


def image(values: np.ndarray) -> CTVolume:
    return CTVolume(values, [H] * 3, [-(N - 1) / 2 * H] * 3)


def ct_of_bone() -> np.ndarray:
    """HU: trabecular bone 250 in soft tissue 40 (fat and air around would only help)."""
    return np.where(bone(*grid()), 250.0, 40.0)


def mesh_cells() -> tuple[np.ndarray, np.ndarray]:
    """This rank's share of 'cells' filling the bone: centroids on a 0.7 mm lattice (not the
    voxel grid) and their volumes (m³)."""
    c = np.arange(-25e-3, 25e-3, 0.7e-3) + 0.13e-3
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    points = np.stack([x, y, z], axis=-1)[bone(x, y, z)]
    mine = points[COMM.rank :: COMM.size]
    return mine, np.full(len(mine), 0.7e-3**3)


def warning_for(values: np.ndarray) -> str | None:
    return placement_warning(image(values), *mesh_cells(), COMM, "bone.ct")


def test_a_ct_in_the_frame_of_its_mesh_is_not_doubted() -> None:
    scored = placement_scores(image(ct_of_bone()), *mesh_cells(), COMM)
    warning = warning_for(ct_of_bone())  # collective: before any rank's assertion
    assert warning is None
    if COMM.rank == 0:
        as_placed, scores, _ = scored
        assert as_placed > 0.8 * (250.0 - 40.0)  # bone inside, soft tissue around
        assert scores.max() == pytest.approx(as_placed)  # no laying does better
        assert scores.min() < 0.3 * (250.0 - 40.0)  # the worst: edges across the bone


@pytest.mark.parametrize(
    ("wrong", "undo"),
    [
        (lambda v: v.transpose(2, 1, 0), "x -> z, z -> x"),  # a stack read as zyx
        (lambda v: v[:, :, ::-1], "z -> -z"),  # cranial and caudal exchanged
        (lambda v: v[::-1, ::-1, :], "x -> -x"),  # RAS read as LPS (y cannot tell)
    ],
    ids=["axes-swapped", "flipped-cranially", "ras-as-lps"],
)
def test_a_ct_in_another_frame_is_doubted_with_the_change_that_undoes_it(wrong, undo: str) -> None:
    message = warning_for(np.ascontiguousarray(wrong(ct_of_bone())))
    assert message is not None
    assert message.startswith("bone.ct: ") and f"({undo}, about the mesh's centre" in message
    assert "bone.ct.frame" in message and "bone.ct.transform" in message


def test_the_change_named_moves_the_ct_onto_the_mesh() -> None:
    """An image whose x, y, z show the bone's y, z, x: the bone's point p appears at
    (p_y, p_z, p_x), so moving the image's x onto y, y onto z and z onto x undoes it (the
    move, not its inverse, is named)."""
    cyclic = np.ascontiguousarray(ct_of_bone().transpose(1, 2, 0))
    message = warning_for(cyclic)
    assert message is not None and "(x -> y, y -> z, z -> x, about" in message


def test_a_flip_the_bone_is_symmetric_to_and_a_structureless_image_are_not_judged() -> None:
    assert warning_for(np.ascontiguousarray(ct_of_bone()[:, ::-1, :])) is None  # left-right
    noise = np.random.default_rng(7).normal(150.0, 60.0, (N, N, N))  # trabecular texture
    assert warning_for(noise) is None
