"""Frames and transforms of files (sim.scenario.frames): named frames map their axes onto
the project axes, transforms compose in the documented order, bad input names the field."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from sim.scenario.frames import FRAMES, Rotation, Transform, to_project

X, Y, Z = np.eye(3)


def test_named_frames_map_their_directions_onto_the_project_axes() -> None:
    # project: +x anterior, +y left, +z cranial
    lps, ras = FRAMES["LPS"], FRAMES["RAS"]
    np.testing.assert_array_equal(lps @ X, Y)  # L -> left
    np.testing.assert_array_equal(lps @ Y, -X)  # P -> posterior
    np.testing.assert_array_equal(lps @ Z, Z)  # S -> cranial
    np.testing.assert_array_equal(ras @ X, -Y)  # R -> right
    np.testing.assert_array_equal(ras @ Y, X)  # A -> anterior
    np.testing.assert_array_equal(FRAMES["scanner"], lps)
    for m in FRAMES.values():
        assert np.linalg.det(m) == pytest.approx(1.0)  # rotations: handedness kept


def test_a_transform_flips_then_rotates_in_order_then_translates() -> None:
    t = Transform.model_validate(
        {
            "flip": ["x"],
            "rotate": [
                {"axis": [0, 0, 1], "angle": "90 deg"},
                {"axis": [1, 0, 0], "angle": "90 deg"},
            ],
            "translate": "[1, 2, 3] mm",
        }
    )
    a = t.affine()
    # x: flipped to -x, about z to -y, about x to -z; then + (1, 2, 3) mm
    np.testing.assert_allclose(a[:3, :3] @ X, -Z, atol=1e-14)
    np.testing.assert_allclose(a[:3, 3], [1e-3, 2e-3, 3e-3], rtol=1e-15)
    assert np.linalg.det(a[:3, :3]) == pytest.approx(-1.0)  # a mirror
    full = to_project("RAS", t)
    np.testing.assert_allclose(full[:3, :3], a[:3, :3] @ FRAMES["RAS"], atol=1e-14)


def test_rotation_matrices_are_orthogonal_and_follow_the_right_hand_rule() -> None:
    r = Rotation(axis=(1.0, 1.0, 1.0), angle=2 * np.pi / 3).matrix()
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(r @ X, Y, atol=1e-14)  # the cyclic permutation x -> y -> z


def test_bad_transforms_name_the_field() -> None:
    with pytest.raises(ValidationError, match=r"rotate\.0\.axis"):
        Transform.model_validate({"rotate": [{"axis": [0, 0, 0], "angle": 1.0}]})
    with pytest.raises(ValidationError, match=r"rotate\.0\.angle"):
        Transform.model_validate({"rotate": [{"axis": [0, 0, 1], "angle": "3 mm"}]})
    with pytest.raises(ValidationError, match=r"flip\.0"):
        Transform.model_validate({"flip": ["w"]})
