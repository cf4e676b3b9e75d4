"""Is a spine surface in the project frame? Its shape moments against the shipped anatomy's.

The project frame: +x anterior, +y the patient's left, +z cranial. The mirror test
(sim.shapes.surface.mirror_asymmetry) finds the lateral axis of a symmetric bone; this one
finds the cranial and anterior axes too. A surface is described by the area-weighted second
and third moments of its triangle centroids about their centroid, scaled to unit RMS radius:
the second moments fix the principal axes (a lumbar body is flattest cranio-caudally and
widest laterally; a whole vertebra is longest antero-posteriorly), the third moments their
directions (the posterior arch, the concave posterior wall of a body). Among the 24 turns of
the axes onto each other, the one that brings the moments closest to those of one of the
shipped lumbar and sacral surfaces (meshes/anatomy, in the project frame) is the surface's
likely orientation; when that is clearly not the identity, the surface is probably not in
the project frame. Shapes that resemble none of them (a ball, a femur) are not judged.

Measured on the shipped surfaces, each judged against the others only (as a user's bone
would be; tests/unit/geometry/test_orientation.py): as they are, none is doubted; turned by
90 degrees about y (the anterior axis along the cranial one), the identity fits 2.0 to 6.7
times worse than the best turn for the L1-L4 vertebrae and bodies and 1.6 times for L5, all
doubted with the turn that undoes it; the L5 and S1 bodies (1.27, 1.32) are not, and the
sacrum, like nothing else shipped, is not judged. A miss is silence, not a false alarm.
"""

from __future__ import annotations

import itertools
import json
from functools import cache
from pathlib import Path

import numpy as np

from sim.shapes.surface import Surface, mirror_asymmetry

#: the identity must fit this many times worse than the best turn to be doubted ...
RATIO = 1.5
#: ... and worse by this much (moment distance of unit-radius shapes)
MARGIN = 0.05
#: shapes whose best fit is farther than this from every reference are not judged
RESEMBLANCE = 0.3
REFERENCES = Path(__file__).resolve().parents[1] / "data" / "anatomy" / "shape_moments.json"


def shape_moments(surface: Surface) -> tuple[np.ndarray, np.ndarray]:
    """Second (3, 3) and third (3, 3, 3) area-weighted moments of the triangle centroids
    about their centroid, for a shape scaled to unit RMS radius (dimensionless)."""
    a, b, c = surface.corners()
    x = (a + b + c) / 3.0
    w = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    w = w / w.sum()
    x = x - w @ x
    x = x / np.sqrt(np.einsum("n,ni,ni->", w, x, x))
    return np.einsum("n,ni,nj->ij", w, x, x), np.einsum("n,ni,nj,nk->ijk", w, x, x, x)


def signed_permutations() -> list[np.ndarray]:
    """The 48 orthogonal matrices that map the coordinate axes onto each other (rotations
    and mirrorings), the identity first."""
    out = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            p = np.zeros((3, 3))
            p[range(3), order] = signs
            out.append(p)
    return out


def turns() -> list[np.ndarray]:
    """The 24 rotations that map the coordinate axes onto each other (signed permutations
    of determinant +1)."""
    return [p for p in signed_permutations() if np.linalg.det(p) > 0]


@cache
def references() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The moments of the shipped surfaces (sim/data/anatomy/shape_moments.json, written by
    write_references from meshes/anatomy)."""
    stored = json.loads(REFERENCES.read_text())
    return {k: (np.array(v["second"]), np.array(v["third"])) for k, v in stored.items()}


def _turned(moments: tuple[np.ndarray, np.ndarray], turn: np.ndarray) -> tuple:
    """The second and third moments of the shape turned by `turn`."""
    second, third = moments
    return turn @ second @ turn.T, np.einsum("ai,bj,ck,ijk->abc", turn, turn, turn, third)


def _nearest(turned: tuple[np.ndarray, np.ndarray]) -> tuple[float, str]:
    """The moment distance to the nearest reference, and its name."""
    return min(
        (float(np.linalg.norm(turned[0] - r[0]) + np.linalg.norm(turned[1] - r[1])), name)
        for name, r in references().items()
    )


def best_turn(surface: Surface) -> tuple[np.ndarray, str, float, float]:
    """The turn of the axes that fits the surface best to a shipped surface: (turn, name of
    that surface, its distance, the distance without a turn)."""
    moments = shape_moments(surface)
    fits = [(_nearest(_turned(moments, t)), t) for t in turns()]  # each turn computed once
    (distance, name), turn = min(fits, key=lambda f: f[0][0])
    identity = next(fit for fit, t in fits if np.array_equal(t, np.eye(3)))[0]
    return turn, name, distance, identity


def describe_turn(turn: np.ndarray) -> str:
    """'x -> -z, z -> x' for the axes the turn moves."""
    parts = []
    for i in range(3):
        j = int(np.argmax(np.abs(turn[:, i])))
        if j != i or turn[j, i] < 0:
            parts.append(f"{'xyz'[i]} -> {'-' if turn[j, i] < 0 else ''}{'xyz'[j]}")
    return ", ".join(parts)


def orientation_warning(surface: Surface) -> str | None:
    """A warning when a spine surface fits the shipped anatomy clearly better turned than as
    it is (None when it fits as it is, or resembles none of it)."""
    turn, name, distance, identity = best_turn(surface)
    if distance > RESEMBLANCE or identity <= max(RATIO * distance, distance + MARGIN):
        return None
    return (
        f"geometry: the surface's shape fits the shipped {name} surface best after turning its "
        f"axes {describe_turn(turn)} (moment distance {distance:.2f}, as it is {identity:.2f}): "
        "its cranial (+z) and anterior (+x) axes are probably not those of the project frame; "
        "give geometry.frame (LPS, RAS) or geometry.transform"
    )


def frame_warnings(surface: Surface) -> list[str]:
    """Warnings that a bone surface is probably not in the project frame: mirror-symmetric
    across another plane than the midsagittal one (sim.shapes.surface.mirror_asymmetry),
    else a spine shape that fits the shipped anatomy clearly better turned."""
    asymmetry = mirror_asymmetry(surface)
    best = int(np.argmin(asymmetry))
    if best != 1 and asymmetry[best] < 0.5 * asymmetry[1]:
        return [
            f"geometry: the surface is most nearly mirror-symmetric across the plane normal to "
            f"{'xyz'[best]} ({asymmetry[best]:.1%} of its size off) rather than the midsagittal "
            f"plane normal to y ({asymmetry[1]:.1%}): it is probably not in the project frame "
            "(+x anterior, +y left, +z cranial); give geometry.frame (LPS, RAS) or "
            "geometry.transform"
        ]
    turned = orientation_warning(surface)
    return [] if turned is None else [turned]


def reference_moments(folder: Path) -> dict[str, dict[str, list]]:
    """The moments of the shipped surfaces in `folder` (meshes/anatomy/...), by a readable
    name ("L2 vertebra", "L2 vertebral body", "sacrum"), as REFERENCES stores them."""
    from sim.shapes.surface import import_surface

    out = {}
    for path in sorted(folder.glob("*.obj.xz")):
        level, part = path.name.split(".")[0].split("_", 1)
        name = f"{level} vertebral body" if part == "body" else f"{level} vertebra"
        second, third = shape_moments(import_surface(path, 1e-3)[0])
        out["sacrum" if name == "S1 vertebra" else name] = {
            "second": second.tolist(),
            "third": third.tolist(),
        }
    return out


if __name__ == "__main__":  # python -m sim.shapes.orientation meshes/anatomy/lumbar_...
    import sys

    REFERENCES.write_text(json.dumps(reference_moments(Path(sys.argv[1])), indent=1) + "\n")
