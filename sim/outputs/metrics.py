"""Shape and position of the cement: cloud geometry, coverage, distances to leak routes.

The cloud is the bone where the cement saturation S >= 1/2, represented by the vertices'
median-dual boxes. Its equivalent ellipsoid has the same second moments: semi-axes
sqrt(5 lambda_i) with lambda_i the eigenvalues of the covariance of the cloud's volume.
Sphericity is that of the equivalent ellipsoid, pi^(1/3) (6V)^(2/3) / A(ellipsoid), with the
ellipsoid area from Knud Thomsen's formula (p = 1.6075, relative error below 1.1 %).
Distances: from the nearest cement vertex to the nearest vertex of each leak route's boundary
(or region) and of the outer bone surface (the cortex), in metres.
All functions are collective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI
from scipy.spatial import cKDTree

from sim import measurements as measure

if TYPE_CHECKING:
    from sim.problem import InjectionProblem

CLOUD_THRESHOLD = 0.5


def _sum(comm: MPI.Comm, value: np.ndarray | float) -> np.ndarray:
    out = np.zeros(np.shape(value))
    comm.Allreduce(np.asarray(value, dtype=float), out, op=MPI.SUM)
    return out


def cloud_shape(pb: InjectionProblem, threshold: float = CLOUD_THRESHOLD) -> dict[str, object]:
    """Volume (m³), extent along x, y, z (m), equivalent-ellipsoid semi-axes (m, largest
    first) and sphericity (-) of the cement cloud; zeros when there is no cloud."""
    inside = pb.state.S.x.array[: pb.disc.n_owned] >= threshold
    w, x = pb.disc.bulk_volume[inside], pb.disc.x_owned[inside]
    volume = float(_sum(pb.comm, w.sum()))
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    pb.comm.Allreduce(x.min(axis=0, initial=np.inf), lo, op=MPI.MIN)
    pb.comm.Allreduce(x.max(axis=0, initial=-np.inf), hi, op=MPI.MAX)
    if volume <= 0.0:
        return {
            "volume_m3": 0.0,
            "extent_m": [0.0, 0.0, 0.0],
            "ellipsoid_axes_m": [0.0] * 3,
            "sphericity": 0.0,
        }
    centre = _sum(pb.comm, (w[:, None] * x).sum(axis=0)) / volume
    d = x - centre
    covariance = _sum(pb.comm, np.einsum("i,ij,ik->jk", w, d, d)) / volume
    axes = np.sqrt(5.0 * np.clip(np.linalg.eigvalsh(covariance), 0.0, None))[::-1]
    return {
        "volume_m3": volume,
        "extent_m": (hi - lo).tolist(),
        "centre_m": centre.tolist(),
        "ellipsoid_axes_m": axes.tolist(),
        "sphericity": ellipsoid_sphericity(*axes),
    }


def ellipsoid_sphericity(a: float, b: float, c: float) -> float:
    """pi^(1/3) (6V)^(2/3) / A of an ellipsoid with semi-axes a, b, c (1 for a sphere)."""
    if min(a, b, c) <= 0.0:
        return 0.0
    p = 1.6075
    area = 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    volume = 4 / 3 * np.pi * a * b * c
    return float(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area)


def coverage(pb: InjectionProblem, target: str, threshold: float = CLOUD_THRESHOLD) -> float:
    """Share of a target region's volume where S >= threshold (-)."""
    bulk = pb.medium.target_bulk_volume[target]
    inside = pb.state.S.x.array[: pb.disc.n_owned] >= threshold
    return float(_sum(pb.comm, bulk[inside].sum()) / _sum(pb.comm, bulk.sum()))


class FrontDistances:
    """Distances (m) from the cement cloud to each leak route and to the outer surface."""

    def __init__(self, pb: InjectionProblem) -> None:
        self.pb = pb
        self.trees: dict[str, cKDTree] = {}
        outer = measure.outer_boundary_vertices(pb)
        x = pb.disc.x_owned
        for route in pb.routes:
            if route.region_pore_volume is not None:
                points = x[route.region_pore_volume > 0]
            else:
                points = x[route.dofs]
            self.trees[route.name] = self._tree(points)
        self.trees["cortex"] = self._tree(x[outer])

    def _tree(self, points: np.ndarray) -> cKDTree:
        gathered = self.pb.comm.allgather(points)
        return cKDTree(np.concatenate(gathered) if gathered else np.zeros((0, 3)))

    def __call__(self, threshold: float = CLOUD_THRESHOLD) -> dict[str, float]:
        """Distances now (inf without cement); computed once per step."""
        state = self.pb.state
        key = (state.counters.steps, state.t, threshold)
        if getattr(self, "_key", None) == key:
            return self._last
        cloud = self.pb.disc.x_owned[state.S.x.array[: self.pb.disc.n_owned] >= threshold]
        out = {}
        for name, tree in self.trees.items():
            local = float(tree.query(cloud)[0].min()) if len(cloud) and tree.n else np.inf
            out[name] = self.pb.comm.allreduce(local, op=MPI.MIN)
        self._key, self._last = key, out
        return out
