"""Virtual fluoroscopy and CT-like sections of the finite-element fields.

Projections: parallel-beam images of the cement (and faintly the bone).

The projection of a field g along a beam direction d is the line integral
P(a, b) = int g(a, b, t) dt on a pixel grid of the image plane (a, b). For the cement, g is
the cement volume fraction phi S (phi per cell, S linear per cell); for the bone, 1 - phi.
Inside a tetrahedron the beam's chord is found from the barycentric coordinates, which are
linear along the ray, and the integral of a linear function over the chord is its length
times the value at the chord's midpoint, so the projection of the finite-element field is
exact at the pixel centres. Units: metres of cement (or bone) along the beam.

Sections: the field on a plane normal to a beam axis, evaluated exactly at the pixel
centres from the cells that cross the plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse
from mpi4py import MPI

from sim import measurements as measure

if TYPE_CHECKING:
    from sim.problem import InjectionProblem

#: beam views: name -> (beam axis, image horizontal axis, image vertical axis); frame +x
#: anterior, y lateral, +z cranial
VIEWS = {"ap": (0, 1, 2), "lateral": (1, 0, 2), "axial": (2, 1, 0)}
_NUDGE = (1.4142135e-7, 1.7320508e-7)
_SLACK = 1e-6  # pixels
_TITLES = {"ap": "AP", "lateral": "lateral", "axial": "axial"}
#: anatomical direction at the low and high end of each axis (+x anterior, +y the patient's
#: left, +z cranial)
_ENDS = (("P", "A"), ("R", "L"), ("I", "S"))


def side_markers(view: str) -> tuple[str, str, str, str]:
    """Markers for the left, right, bottom and top edges of a `view` image, as on radiographs
    (the AP image has the patient's right on the viewer's left)."""
    _, ia, ib = VIEWS[view]
    return (*_ENDS[ia], *_ENDS[ib])


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

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the beams cross the image plane: the pixel centres moved by 1e-7 pixel so that
        no ray runs exactly along a face shared by two cells (counted twice on structured
        meshes). Images are the exact line integrals along these rays."""
        nb, na = self.shape
        a = self.a_range[0] + (np.arange(na) + 0.5 + _NUDGE[0]) * self.pixel
        b = self.b_range[0] + (np.arange(nb) + 0.5 + _NUDGE[1]) * self.pixel
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


@dataclass
class _CellGeometry:
    """Barycentric coordinates of the cells as affine functions of the image coordinates:
    lambda_k(a, b, t) = base_k + a grad_a_k + b grad_b_k + t slope_k (k = 0..3)."""

    base: np.ndarray
    grad_a: np.ndarray
    grad_b: np.ndarray
    slope: np.ndarray

    @classmethod
    def of(cls, cells_x: np.ndarray, view: str) -> _CellGeometry:
        beam, ia, ib = VIEWS[view]
        jac = np.stack([cells_x[:, k] - cells_x[:, 0] for k in (1, 2, 3)], axis=2)
        inverse = np.linalg.inv(jac)  # rows: gradients of lambda_1..3

        def with_lambda0(g: np.ndarray, constant: float = 0.0) -> np.ndarray:
            out = np.empty((len(g), 4))
            out[:, 1:] = g
            out[:, 0] = constant - g.sum(axis=1)
            return out

        base = with_lambda0(-np.einsum("cij,cj->ci", inverse, cells_x[:, 0]), 1.0)
        return cls(
            base,
            with_lambda0(inverse[:, :, ia]),
            with_lambda0(inverse[:, :, ib]),
            with_lambda0(inverse[:, :, beam]),
        )


def _pixel_pairs(
    cells_x: np.ndarray, detector: Detector, cells: np.ndarray, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(cell, pixel index, a, b) for every ray (`Detector.rays`, 1e-7 pixel off the pixel
    centre) inside the projected bounding box of each of `cells`, in chunks."""
    _, ia, ib = VIEWS[detector.view]
    nb, na = detector.shape
    a0, b0, px = detector.a_range[0], detector.b_range[0], detector.pixel
    ray_a, ray_b = detector.rays()
    x = cells_x[cells]

    def span(axis: int, origin: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        # pixel indices of the rays within each cell's extent, with a slack larger than the
        # nudge: a ray through a cell's extreme vertex or edge (common on structured meshes)
        # must not be lost to round-off (the cells it misses give it length 0)
        u = (x[:, :, axis] - origin) / px - 0.5
        return (
            np.ceil(u.min(axis=1) - _SLACK).astype(int).clip(0, n),
            np.floor(u.max(axis=1) + _SLACK).astype(int).clip(-1, n - 1),
        )

    ja0, ja1 = span(ia, a0, na)
    jb0, jb1 = span(ib, b0, nb)
    counts_a = np.maximum(ja1 - ja0 + 1, 0)
    counts = counts_a * np.maximum(jb1 - jb0 + 1, 0)
    owner = np.repeat(np.arange(len(cells)), counts)
    start = np.cumsum(counts) - counts
    for lo in range(0, len(owner), chunk):
        c = owner[lo : lo + chunk]
        k = np.arange(lo, lo + len(c)) - start[c]
        pa, pb = ja0[c] + k % counts_a[c], jb0[c] + k // counts_a[c]
        yield cells[c], pb * na + pa, ray_a[pa], ray_b[pb]


def _chords(
    cells_x: np.ndarray, detector: Detector, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(cell, pixel index, chord length, barycentric coordinates of the chord's midpoint)
    for every ray and cell whose bounding boxes overlap, in chunks (length 0 if the ray
    misses the cell)."""
    if not len(cells_x):
        return
    geo = _CellGeometry.of(cells_x, detector.view)
    for c, pixel, a, b in _pixel_pairs(cells_x, detector, np.arange(len(cells_x)), chunk):
        lam = geo.base[c] + a[:, None] * geo.grad_a[c] + b[:, None] * geo.grad_b[c]
        s = geo.slope[c]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -lam / s
        t_in = np.where(s > 0, bound, -np.inf).max(axis=1)
        t_out = np.where(s < 0, bound, np.inf).min(axis=1)
        parallel_outside = np.any((s == 0) & (lam < 0), axis=1)
        length = np.where(parallel_outside, 0.0, np.maximum(t_out - t_in, 0.0))
        length = np.where(np.isfinite(length), length, 0.0)
        mid = np.where(np.isfinite(t_in + t_out), 0.5 * (t_in + t_out), 0.0)
        yield c, pixel, length, lam + mid[:, None] * s


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
    nb, na = detector.shape
    image = np.zeros(nb * na)
    for c, pixel, length, weights in _chords(cells_x, detector, chunk):
        value = np.einsum("ck,ck->c", vertex_values[c], weights)
        image += np.bincount(pixel, length * value * cell_factor[c], nb * na)
    comm.Allreduce(MPI.IN_PLACE, image, op=MPI.SUM)
    return image.reshape(nb, na)


def projection_matrix(
    cells_x: np.ndarray, detector: Detector, chunk: int = 200_000
) -> scipy.sparse.csr_matrix:
    """The local part of `project` as a sparse (pixels, 4 n) matrix M: for the same cells,
    project(cells_x, v, f, detector, comm) = sum over ranks of M @ (f[:, None] * v).ravel()
    (to round-off). For projecting many fields on one mesh without redoing the geometry."""
    nb, na = detector.shape
    rows, cols, data = [], [], []
    for c, pixel, length, weights in _chords(cells_x, detector, chunk):
        hit = length > 0
        rows.append(np.repeat(pixel[hit], 4))
        cols.append((4 * c[hit, None] + np.arange(4)).ravel())
        data.append((length[hit, None] * weights[hit]).ravel())
    if not rows:
        return scipy.sparse.csr_matrix((nb * na, 4 * len(cells_x)))
    return scipy.sparse.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(nb * na, 4 * len(cells_x)),
    )


def section(
    cells_x: np.ndarray,
    vertex_values: np.ndarray,
    detector: Detector,
    depth: float,
    comm: MPI.Comm,
    chunk: int = 200_000,
) -> np.ndarray:
    """The linear field on the plane normal to the beam at `depth` (m along the beam axis),
    at the pixel centres; NaN outside the mesh (a CT-like slice; collective)."""
    beam, _, _ = VIEWS[detector.view]
    nb, na = detector.shape
    total, hits = np.zeros(nb * na), np.zeros(nb * na)
    along = cells_x[:, :, beam] if len(cells_x) else np.zeros((0, 4))
    crossing = np.nonzero((along.min(axis=1) <= depth) & (along.max(axis=1) >= depth))[0]
    geo = _CellGeometry.of(cells_x, detector.view) if len(cells_x) else None
    for c, pixel, a, b in _pixel_pairs(cells_x, detector, crossing, chunk):
        lam = (
            geo.base[c]
            + a[:, None] * geo.grad_a[c]
            + b[:, None] * geo.grad_b[c]
            + depth * geo.slope[c]
        )
        inside = lam.min(axis=1) >= -1e-12
        value = np.einsum("ck,ck->c", vertex_values[c], lam)
        total += np.bincount(pixel[inside], value[inside], nb * na)
        hits += np.bincount(pixel[inside], None, nb * na)
    comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
    comm.Allreduce(MPI.IN_PLACE, hits, op=MPI.SUM)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hits > 0, total / np.maximum(hits, 1), np.nan).reshape(nb, na)


def radiograph(
    cement_path: np.ndarray,
    bone_path: np.ndarray,
    cement_attenuation: float = 250.0,
    bone_attenuation: float = 60.0,
) -> np.ndarray:
    """Detector intensity exp(-mu_c c - mu_b b) (1: no attenuation) for paths in m and
    attenuation coefficients in 1/m (PMMA with barium sulphate opacifier is about ten times
    as attenuating as trabecular bone tissue at fluoroscopy energies; the defaults give a
    clinician's picture: dark cement, faint bone)."""
    return np.exp(-cement_attenuation * cement_path - bone_attenuation * bone_path)


class FluoroscopyRecorder:
    """Records AP and lateral projections of the cement during a run and writes them as
    radiograph-like PNGs, a GIF animation and the raw line integrals (collective)."""

    def __init__(
        self,
        problem: InjectionProblem,
        pixel: float | None = None,
        views: tuple[str, ...] = ("ap", "lateral"),
    ) -> None:
        self.problem = problem
        disc = problem.disc
        n = disc.n_cells
        self.cell_dofs = disc.cell_dofs[:n]
        self.cells_x = disc.V.tabulate_dof_coordinates()[self.cell_dofs]
        self.porosity = problem.medium.porosity.x.array[:n]
        comm = problem.comm
        lo, hi = np.empty(3), np.empty(3)
        # the mesh's own coordinates: the same bits on any number of ranks (the tabulated
        # dof coordinates differ in the last bit, which can change the number of pixels)
        x = disc.mesh.geometry.x
        comm.Allreduce(x.min(axis=0, initial=np.inf), lo, op=MPI.MIN)
        comm.Allreduce(x.max(axis=0, initial=-np.inf), hi, op=MPI.MAX)
        pixel = pixel or float((hi - lo).max()) / 120.0
        self.detectors = {v: detector_for(v, lo, hi, pixel) for v in views}
        # the geometry does not change during a run: per view, one sparse matrix from the
        # local saturation dofs to this rank's part of the image, porosity folded in
        porosity_to_dofs = scipy.sparse.csr_matrix(
            (np.repeat(self.porosity, 4), (np.arange(4 * n), self.cell_dofs.ravel())),
            shape=(4 * n, len(problem.state.S.x.array)),
        )
        self.bone, self._cement = {}, {}
        for view, detector in self.detectors.items():
            matrix = projection_matrix(self.cells_x, detector)
            self.bone[view] = self._sum(matrix @ np.repeat(1.0 - self.porosity, 4), detector)
            self._cement[view] = (matrix @ porosity_to_dofs).tocsr()
        self.frames: list[tuple[float, float, dict[str, np.ndarray]]] = []

    def _sum(self, local: np.ndarray, detector: Detector) -> np.ndarray:
        image = np.array(local, dtype=float)
        self.problem.comm.Allreduce(MPI.IN_PLACE, image, op=MPI.SUM)
        return image.reshape(detector.shape)

    def record(self) -> None:
        """Project the current cement volume fraction phi S (collective)."""
        pb = self.problem
        images = {
            v: self._sum(self._cement[v] @ pb.state.S.x.array, d) for v, d in self.detectors.items()
        }
        self.frames.append((pb.state.t, measure.injected(pb), images))

    def checkpoint(self) -> dict[str, np.ndarray]:
        """The frames recorded: times (s), injected volumes (m³), images per view (m)."""
        n = len(self.frames)
        saved = {
            "times": np.array([f[0] for f in self.frames]),
            "injected": np.array([f[1] for f in self.frames]),
        }
        for view, d in self.detectors.items():
            saved[f"view:{view}"] = np.array([f[2][view] for f in self.frames]).reshape(n, *d.shape)
        return saved

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        """Take up the frames of a `checkpoint()`."""
        self.frames = [
            (float(t), float(v), {view: saved[f"view:{view}"][k] for view in self.detectors})
            for k, (t, v) in enumerate(zip(saved["times"], saved["injected"], strict=True))
        ]

    def write(self, folder: Path) -> None:
        """fluoroscopy_<view>.png (final state), fluoroscopy.gif (every frame) and
        fluoroscopy.npz (the line integrals in m) on rank 0."""
        if self.problem.comm.rank != 0 or not self.frames:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        views = list(self.detectors)
        np.savez_compressed(
            folder / "fluoroscopy.npz",
            times_s=np.array([f[0] for f in self.frames]),
            injected_m3=np.array([f[1] for f in self.frames]),
            pixel_m=self.detectors[views[0]].pixel,
            **{f"bone_{v}": self.bone[v] for v in views},
            **{f"cement_{v}": np.array([f[2][v] for f in self.frames]) for v in views},
        )
        t, injected, images = self.frames[-1]
        for view in views:
            d = self.detectors[view]
            fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
            extent = (*(1e3 * r for r in d.a_range), *(1e3 * r for r in d.b_range))
            ax.imshow(
                radiograph(images[view], self.bone[view]),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
                origin="lower",
                extent=extent,
            )
            ax.set_title(f"{_TITLES[view]}: t = {t:.1f} s, {injected * 1e6:.2f} mL")
            ax.set_xlabel("mm")
            ax.set_ylabel("mm")
            where = ((0.03, 0.5, "left"), (0.97, 0.5, "right"), (0.5, 0.03, "center"),
                     (0.5, 0.97, "center"))  # fmt: skip
            for (x, y, align), mark in zip(where, side_markers(view), strict=True):
                ax.text(x, y, mark, transform=ax.transAxes, ha=align, va="center",
                        color="tab:orange", fontsize=12, fontweight="bold")  # fmt: skip
            fig.savefig(folder / f"fluoroscopy_{view}.png", dpi=120)
            plt.close(fig)
        self._animation(folder / "fluoroscopy.gif", views)

    def _animation(self, path: Path, views: list[str]) -> None:
        """All frames, the views side by side, as an animated GIF (Pillow)."""
        from PIL import Image, ImageDraw

        frames = []
        for t, injected, images in self.frames:
            panels = [
                np.flipud(radiograph(images[v], self.bone[v])) for v in views
            ]  # image rows run downwards
            height = max(p.shape[0] for p in panels)
            row = np.ones((height, sum(p.shape[1] for p in panels) + 4 * (len(panels) - 1)))
            col = 0
            for p in panels:
                row[: p.shape[0], col : col + p.shape[1]] = p
                col += p.shape[1] + 4
            frame = Image.fromarray((255 * row).astype(np.uint8), mode="L")
            frame = frame.resize((2 * frame.width, 2 * frame.height + 24))
            ImageDraw.Draw(frame).text(
                (4, frame.height - 20),
                f"{' | '.join(_TITLES[v] for v in views)}   t = {t:.1f} s   "
                f"{injected * 1e6:.2f} mL",
                fill=0,
            )
            frames.append(frame)
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=400, loop=0)
