"""Write L2_lesion_cleft_labels.nii.gz, the segmentation of `vertebroplasty_L2_segmentation.yaml`.

Run: .venv/bin/python scenarios/anatomy/segmentation/make_L2_label_map.py

A label map as a segmentation tool (3D Slicer, ITK-SNAP) exports it from a clinical CT:
NIfTI, millimetres, RAS world frame (+x right, +y anterior, +z superior), voxels
0.5 x 0.5 x 0.75 mm on the scanner axes. The bone is the real L2 vertebral body shipped in
meshes/anatomy (NLM Visible Human Male via the ArtiSynth model, BSD-3-Clause), voxelised by
ray parity along the slice axis (a voxel is labelled when its centre is inside the surface);
inside it two regions are painted over the body (label 1):

- label 2, a lytic lesion: the ellipsoid centred at (12, 9, 144) mm in the project frame with
  semi-axes 7, 6, 5 mm (anterior, lateral, cranial) in the patient's left half;
- label 3, a fracture cleft: the slab 1.5 mm thick just below the upper endplate, at
  z 156.5-158 mm, within 11 mm of (12, -4) mm in the transverse plane.

The output is deterministic (no random numbers): rerunning rewrites the same voxels.
"""

from pathlib import Path

import numpy as np

from sim.ct.synthetic import write_ct_nifti
from sim.ct.volume import CTVolume
from sim.scenario.frames import FRAMES
from sim.shapes.surface import clean, read_surface

HERE = Path(__file__).parent
SURFACE = HERE / "../../../meshes/anatomy/lumbar_L1-L5_S1_artisynth/L2_body.obj.xz"
OUT = HERE / "L2_lesion_cleft_labels.nii.gz"
VOXEL = np.array([0.5e-3, 0.5e-3, 0.75e-3])  # m, RAS axes
MARGIN = 2e-3  # m of background around the bone
LESION = (np.array([12e-3, 9e-3, 144e-3]), np.array([7e-3, 6e-3, 5e-3]))
CLEFT = (np.array([12e-3, -4e-3]), 11e-3, (156.5e-3, 158e-3))  # centre (x, y), radius, z range


def inside(
    points: np.ndarray, tris: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Mask [i, j, k] of the grid points (x[i], y[j], z[k]) inside the closed surface, by the
    parity of its crossings of the ray from each point along +z."""
    a, b, c = (points[tris[:, m]] for m in range(3))
    mask = np.zeros((len(x), len(y), len(z)), dtype=bool)
    for t in range(len(tris)):
        lo, hi = np.minimum(np.minimum(a[t], b[t]), c[t]), np.maximum(np.maximum(a[t], b[t]), c[t])
        i = np.flatnonzero((x >= lo[0]) & (x < hi[0]))
        j = np.flatnonzero((y >= lo[1]) & (y < hi[1]))
        if not (len(i) and len(j)):
            continue
        px, py = np.meshgrid(x[i], y[j], indexing="ij")
        # barycentric coordinates in the xy projection
        d = (b[t, 1] - c[t, 1]) * (a[t, 0] - c[t, 0]) + (c[t, 0] - b[t, 0]) * (a[t, 1] - c[t, 1])
        if abs(d) < 1e-30:
            continue
        l1 = ((b[t, 1] - c[t, 1]) * (px - c[t, 0]) + (c[t, 0] - b[t, 0]) * (py - c[t, 1])) / d
        l2 = ((c[t, 1] - a[t, 1]) * (px - c[t, 0]) + (a[t, 0] - c[t, 0]) * (py - c[t, 1])) / d
        l3 = 1.0 - l1 - l2
        hit = (l1 >= 0) & (l2 >= 0) & (l3 > 0) | (l1 > 0) & (l2 > 0) & (l3 >= 0)
        zc = l1 * a[t, 2] + l2 * b[t, 2] + l3 * c[t, 2]
        for ii, jj in zip(*np.nonzero(hit), strict=True):
            mask[i[ii], j[jj], :] ^= z < zc[ii, jj]  # a crossing above flips the parity
    return mask


def main(out: Path = OUT) -> Path:
    """Write the label map to `out`; its path."""
    surface = clean(read_surface(SURFACE, 1.0))
    to_ras = FRAMES["RAS"].T  # x_RAS = M^T x_project
    points = surface.points @ to_ras.T  # RAS, m
    lower = np.floor((points.min(axis=0) - MARGIN) / VOXEL) * VOXEL
    shape = np.ceil((points.max(axis=0) + MARGIN - lower) / VOXEL).astype(int) + 1
    axes = [lower[d] + VOXEL[d] * np.arange(shape[d]) for d in range(3)]
    # nudge the rays off the triangulation's vertices and edges (exact ties double-count)
    labels = inside(points, surface.triangles, *(ax + 1e-9 for ax in axes)).astype(np.uint8)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) @ to_ras  # project frame
    body = labels == 1
    centre, radii = LESION
    labels[body & (np.sum(((grid - centre) / radii) ** 2, axis=-1) <= 1.0)] = 2
    (cx, cy), radius, (z0, z1) = CLEFT
    slab = (grid[..., 2] >= z0) & (grid[..., 2] <= z1)
    labels[body & slab & (np.hypot(grid[..., 0] - cx, grid[..., 1] - cy) <= radius)] = 3
    write_ct_nifti(out, CTVolume(labels, VOXEL, lower, np.eye(3)), 1e-3, "uint8")
    counts = np.bincount(labels.ravel(), minlength=4)
    voxel = float(np.prod(VOXEL)) * 1e6  # cm³
    print(
        f"written: {out} {tuple(int(n) for n in shape)} voxels; cm³ of label 1: "
        f"{counts[1] * voxel:.2f}, 2: {counts[2] * voxel:.3f}, 3: {counts[3] * voxel:.3f}"
    )
    return out


if __name__ == "__main__":
    main()
