"""Virtual fluoroscopy: parallel-beam projections of the cement (and faintly the bone).

The projection of a field g along a beam direction d is the line integral
P(a, b) = int g(a, b, t) dt on a pixel grid of the image plane (a, b). For the cement, g is
the cement volume fraction phi S (phi per cell, S linear per cell); for the bone, 1 - phi.
Inside a tetrahedron the beam's chord is found from the barycentric coordinates, which are
linear along the ray, and the integral of a linear function over the chord is its length
times the value at the chord's midpoint, so the projection of the finite-element field is
exact at the pixel centres. Units: metres of cement (or bone) along the beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

#: beam views: name -> (beam axis, image horizontal axis, image vertical axis); frame +x
#: anterior, y lateral, +z cranial
VIEWS = {"ap": (0, 1, 2), "lateral": (1, 0, 2), "axial": (2, 1, 0)}
_NUDGE = (1.4142135e-7, 1.7320508e-7)


@dataclass(frozen=True)
class Detector:
    """A pixel grid on the image plane: pixel size (m) and the covered ranges (m)."""

    view: str
    pixel: float
    a_range: tuple[float, float]
    b_range: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        na = max(1, int(np.ceil((self.a_range[1] - self.a_range[0]) / self.pixel)))
        nb = max(1, int(np.ceil((self.b_range[1] - self.b_range[0]) / self.pixel)))
        return nb, na

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        nb, na = self.shape
        a = self.a_range[0] + (np.arange(na) + 0.5) * self.pixel
        b = self.b_range[0] + (np.arange(nb) + 0.5) * self.pixel
        return a, b


def detector_for(
    view: str, lo: np.ndarray, hi: np.ndarray, pixel: float, margin: float = 0.05
) -> Detector:
    """A detector covering the box [lo, hi] (m) seen in `view`, with a relative margin."""
    _, ia, ib = VIEWS[view]
    pad = margin * (hi - lo)
    return Detector(
        view, pixel, (lo[ia] - pad[ia], hi[ia] + pad[ia]), (lo[ib] - pad[ib], hi[ib] + pad[ib])
    )


def project(
    cells_x: np.ndarray,
    vertex_values: np.ndarray,
    cell_factor: np.ndarray,
    detector: Detector,
    comm: MPI.Comm,
    chunk: int = 200_000,
) -> np.ndarray:
    """Line integrals of cell_factor * (linear field with vertex_values) along the beam.

    cells_x: (n, 4, 3) vertex coordinates of the local cells to project (owned cells only,
    so that the sum over ranks counts every cell once); vertex_values: (n, 4); cell_factor:
    (n,). Returns the (nb, na) image on every rank (collective).
    """
    beam, ia, ib = VIEWS[detector.view]
    nb, na = detector.shape
    image = np.zeros(nb * na)
    if len(cells_x):
        a0, b0 = detector.a_range[0], detector.b_range[0]
        px = detector.pixel
        # pixel index ranges of each cell's projected bounding box (pixel centres inside)
        ja0 = np.ceil((cells_x[:, :, ia].min(axis=1) - a0) / px - 0.5).astype(int).clip(0, na)
        ja1 = np.floor((cells_x[:, :, ia].max(axis=1) - a0) / px - 0.5).astype(int).clip(-1, na - 1)
        jb0 = np.ceil((cells_x[:, :, ib].min(axis=1) - b0) / px - 0.5).astype(int).clip(0, nb)
        jb1 = np.floor((cells_x[:, :, ib].max(axis=1) - b0) / px - 0.5).astype(int).clip(-1, nb - 1)
        counts_a = np.maximum(ja1 - ja0 + 1, 0)
        counts_b = np.maximum(jb1 - jb0 + 1, 0)
        counts = counts_a * counts_b
        jac = np.stack([cells_x[:, k] - cells_x[:, 0] for k in (1, 2, 3)], axis=2)
        inverse = np.linalg.inv(jac)  # rows: gradients of lambda_1..3
        direction = np.zeros(3)
        direction[beam] = 1.0
        slope = np.empty((len(cells_x), 4))
        slope[:, 1:] = inverse @ direction
        slope[:, 0] = -slope[:, 1:].sum(axis=1)
        cells = np.repeat(np.arange(len(cells_x)), counts)
        start = np.cumsum(counts) - counts
        for lo in range(0, len(cells), chunk):
            c = cells[lo : lo + chunk]
            k = np.arange(lo, lo + len(c)) - start[c]
            ka, kb = k % counts_a[c], k // counts_a[c]
            pa, pb = ja0[c] + ka, jb0[c] + kb
            origin = np.zeros((len(c), 3))
            # rays nudged off the pixel centres by 1e-7 pixel so that none runs exactly along
            # a face shared by two cells (which would count it twice on structured meshes)
            origin[:, ia] = a0 + (pa + 0.5 + _NUDGE[0]) * px
            origin[:, ib] = b0 + (pb + 0.5 + _NUDGE[1]) * px
            lam = np.empty((len(c), 4))
            lam[:, 1:] = np.einsum("cij,cj->ci", inverse[c], origin - cells_x[c, 0])
            lam[:, 0] = 1.0 - lam[:, 1:].sum(axis=1)
            s = slope[c]
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = -lam / s
            t_in = np.where(s > 0, bound, -np.inf).max(axis=1)
            t_out = np.where(s < 0, bound, np.inf).min(axis=1)
            parallel_outside = np.any((s == 0) & (lam < 0), axis=1)
            length = np.where(parallel_outside, 0.0, np.maximum(t_out - t_in, 0.0))
            length = np.where(np.isfinite(length), length, 0.0)
            mid = 0.5 * (t_in + t_out)
            mid = np.where(np.isfinite(mid), mid, 0.0)
            value = np.einsum("ck,ck->c", vertex_values[c], lam + mid[:, None] * s)
            image += np.bincount(pb * na + pa, length * value * cell_factor[c], nb * na)
    comm.Allreduce(MPI.IN_PLACE, image, op=MPI.SUM)
    return image.reshape(nb, na)


def radiograph(
    cement_path: np.ndarray,
    bone_path: np.ndarray,
    cement_attenuation: float = 600.0,
    bone_attenuation: float = 60.0,
) -> np.ndarray:
    """Detector intensity exp(-mu_c c - mu_b b) (1: no attenuation) for paths in m and
    attenuation coefficients in 1/m (PMMA with barium sulphate opacifier is about ten times
    as attenuating as trabecular bone tissue at fluoroscopy energies; the defaults give a
    clinician's picture: dark cement, faint bone)."""
    return np.exp(-cement_attenuation * cement_path - bone_attenuation * bone_path)
