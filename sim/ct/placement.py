"""Is a CT volume placed on the bone it images? The mesh against the CT under each way of
laying the axes onto each other.

A CT read in the wrong frame (a DICOM series taken as RAS, a TIFF stack with its axes in
another order, a missing flip) may still cover the mesh and map without error, while the
mesh samples the image of some other region. Bone is denser than what surrounds it, so on a
well-placed CT the mean value inside the mesh exceeds that in a shell around it by about the
bone's contrast, and no other laying of the image does better. This check measures that
contrast for the placement given and, for each of the 48 signed permutations of the axes
(the 24 turns and their mirror images) about the mesh's centroid, the best over shifts of
up to the mesh's radius; it warns, naming the turn or mirroring (and shift) that fits best,
when the placement given falls clearly short of it and the layings differ by a sizeable part
of the image's own contrast.

What it can tell, measured on a synthetic bone (tests/unit/test_ct_placement.py: a flat
ellipsoid with a posterior knob, 250 HU in 40 HU): axes swapped, a cranio-caudal flip and
an antero-posterior flip are doubted with the change that undoes them; the right placement
and a left-right flip (which a mirror-symmetric bone cannot show) are not. A flip along an
axis the bone is nearly symmetric about, an origin off by more than the mesh's radius, and
an image with no bone edge on the mesh's scale (a micro-CT block inside the bone, the
shipped example CT, which is a smooth gradient) are not judged: a miss is silence, not a
false alarm.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI
from scipy import fft, ndimage

from sim.ct.volume import CTVolume, sample
from sim.shapes.orientation import describe_turn, signed_permutations

#: the 48 placements must spread the mean CT value over the mesh by this fraction of the
#: CT's own contrast (its 1st to 99th percentile) for the check to judge
CONTRAST = 0.1
#: the placement given is doubted when its contrast falls short of the best laying's by
#: this fraction of the range the 48 layings give
DOUBT = 0.15
#: voxels of the volume looked at for its contrast (a regular subsample)
CONTRAST_SAMPLE = 200_000
#: layings within this fraction of the range from the best tie (a symmetry of the bone)
TIE = 0.02
#: grid spacings of the shell around the mesh whose mean the mean inside is compared with
SHELL = 3
#: points of the comparison grid along each axis (odd: the mesh's centroid is its middle)
GRID = 65


def axis_changes() -> list[np.ndarray]:
    """The 48 signed permutations of the axes, those that move fewer axes first (the
    identity first)."""
    return sorted(signed_permutations(), key=lambda p: int(np.sum(np.diag(p) != 1.0)))


def percentiles(volume: CTVolume) -> tuple[float, float]:
    """The CT's 1st and 99th percentile values (a regular subsample of its voxels)."""
    values = volume.values.ravel()
    lo, hi = np.percentile(values[:: max(1, values.size // CONTRAST_SAMPLE)], [1.0, 99.0])
    return float(lo), float(hi)


def placement_scores(
    volume: CTVolume, centroids: np.ndarray, weights: np.ndarray, comm: MPI.Comm
) -> tuple[float, np.ndarray, np.ndarray] | None:
    """How well the CT's edges lie on the mesh's (cells: centroids (n, 3) m, weights (n,)
    m³, this rank's owned cells): the contrast, mean CT value inside the mesh less that in a
    shell SHELL grid spacings thick around it, as placed; for each signed permutation P
    (axis_changes order) about the mesh's weighted centroid c the largest contrast
    over shifts t of up to the mesh's radius R (the CT at c + P (x - c) + t for a point x),
    and that shift t (m).

    On a grid of GRID points along each axis spanning c +- 2R: FFT cross-correlations of the
    mesh's and the shell's masks with the CT sampled there and with the image's extent
    (points off the image do not count; a laying with less than half of the mesh or of the
    shell on the image is NaN). A shift into a denser part of
    the image raises the means inside and around alike; only the bone's edges on the mesh's
    raise the contrast. Collective; the answer on rank 0, None on the others."""
    total = comm.allreduce(float(weights.sum()), op=MPI.SUM)
    centre = comm.allreduce(weights @ centroids, op=MPI.SUM) / total
    local = np.max(np.linalg.norm(centroids - centre, axis=1), initial=0.0)
    radius = comm.allreduce(float(local), op=MPI.MAX)
    half = (GRID - 1) // 2
    h = 2.0 * radius / half
    mesh = np.zeros((GRID,) * 3)
    np.add.at(mesh, tuple((np.rint((centroids - centre) / h).astype(int) + half).T), weights)
    mesh = comm.reduce(mesh, op=MPI.SUM, root=0)
    if comm.rank != 0:
        return None
    inside = ndimage.binary_fill_holes(ndimage.binary_closing(mesh > 0.0, iterations=2))
    shell = ndimage.binary_dilation(inside, iterations=SHELL) & ~inside
    ijk = np.indices((GRID,) * 3).reshape(3, -1) - half
    image = sample(volume, centre + ijk.T * h, "linear", outside="nan").reshape(mesh.shape)
    imaged = np.isfinite(image)
    spectra = fft.rfftn(np.where(imaged, image, 0.0)), fft.rfftn(imaged.astype(float))
    reach = half // 2  # shifts up to R: the moved mesh (within R of c) stays on the grid
    window = (slice(0, 2 * reach + 1),) * 3

    def mean_over(mask: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The mean CT value over the imaged points of the mask moved by p, at every shift
        (NaN where less than half of it is imaged)."""
        moved = mask[tuple(p.T.astype(int) @ ijk + half)].reshape(mask.shape)
        conjugate = np.conj(fft.rfftn(moved.astype(float)))
        total, count = (fft.irfftn(conjugate * s, mask.shape) for s in spectra)
        count = np.roll(count, reach, axis=(0, 1, 2))[window]
        mean = np.roll(total, reach, axis=(0, 1, 2))[window] / np.maximum(count, 1.0)
        return np.where(count >= 0.5 * mask.sum(), mean, np.nan)

    scores, shifts = [], []
    for p in axis_changes():
        contrast = np.nan_to_num(mean_over(inside, p) - mean_over(shell, p), nan=-np.inf)
        best = np.unravel_index(int(np.argmax(contrast)), contrast.shape)
        scores.append(float(contrast[best]))
        shifts.append((np.asarray(best) - reach) * h)
        if len(scores) == 1:  # the identity comes first
            as_placed = float(contrast[(reach,) * 3])
    return as_placed, np.asarray(scores), np.asarray(shifts)


def placement_warning(
    volume: CTVolume, centroids: np.ndarray, weights: np.ndarray, comm: MPI.Comm, where: str
) -> str | None:
    """A warning naming the turn or mirroring (and shift) that lays the CT on the mesh
    clearly better than the placement given, None when it fits as given or the image cannot
    tell; `where` is the scenario's section ("bone.ct"). Collective; the same on every
    rank."""
    scored = placement_scores(volume, centroids, weights, comm)
    message = None if scored is None else _judgement(volume, *scored, where)
    return comm.bcast(message, root=0)


def _judgement(
    volume: CTVolume, as_placed: float, scores: np.ndarray, shifts: np.ndarray, where: str
) -> str | None:
    """The warning of placement_warning from the scores of placement_scores."""
    measured = np.isfinite(scores)
    if not np.isfinite(as_placed) or measured.sum() < 2:
        return None
    lo, hi = float(scores[measured].min()), float(scores[measured].max())
    dark, bright = percentiles(volume)
    if hi - lo <= CONTRAST * (bright - dark) or as_placed >= hi - DOUBT * (hi - lo):
        return None
    best = int(np.argmax(scores >= hi - TIE * (hi - lo)))  # of a tie, the smallest change
    # the CT at c + P (x - c) + t images the mesh's x: the CT moves by P^T about c, less t
    turn = axis_changes()[best].T
    shift = np.round(-turn @ shifts[best] * 1e3, 1).tolist()
    return (
        f"{where}: the CT lies on the mesh much better with its axes moved "
        f"({describe_turn(turn) or 'not turned'}, about the mesh's centre, then shifted by "
        f"{shift} mm) than as placed (mean value inside the mesh less that around it "
        f"{hi:.4g} against {as_placed:.4g}; the 48 ways of laying the axes give {lo:.4g} to "
        f"{hi:.4g}): it is probably not in the project frame (+x anterior, +y left, "
        f"+z cranial); check {where}.frame, {where}.transform and {where}.axis_order"
    )
