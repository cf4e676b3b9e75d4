"""Unit tests of the random bone properties (sim.heterogeneity, sim.bone).

Statistics on point clouds through the functions the solver uses; reproducibility; the same
cell values on a distributed mesh as on a whole one (under ``mpirun -n 2`` the COMM_WORLD mesh
is split between the ranks, the COMM_SELF one is not).

Sampling tolerances: with MODES = 1000 Fourier modes, one realisation's own covariance
differs from the model's by a few per cent. Measured over 12 seeds with 10000 pairs each: the
correlation at lag L scatters by 0.025 (exponential), 0.016 (gaussian), 0.018 (matern) around
the model's value, the mean BV/TV factor (20000 points) by 0.003, its CV by 0.005. The
assertions average four seeds and allow about four standard deviations.
"""

from __future__ import annotations

import math

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import gstools as gs
import numpy as np
import pytest
from scipy.spatial import cKDTree

from sim.bone import cell_centroids, cell_properties
from sim.geometry.tagged_mesh import TaggedMesh
from sim.heterogeneity import (
    BONE_VOLUME_FRACTION,
    MODES,
    PERMEABILITY,
    angles_of,
    bone_volume_fraction_factor,
    covariance_model,
    gaussian_field,
    permeability_factor,
    property_field,
    trend_factor,
)
from sim.scenario.bone_heterogeneity import Heterogeneity
from sim.scenario.materials import Bone

L = 3e-3  # m
SEEDS = (1, 2, 3, 4)


def spread_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """n points (m) in a cube of 100 correlation lengths: nearly independent samples."""
    return rng.uniform(0.0, 100 * L, (n, 3))


def lagged(points: np.ndarray, lag: float, directions: np.ndarray) -> np.ndarray:
    return points + lag * directions / np.linalg.norm(directions, axis=1)[:, None]


def correlation_at(het: Heterogeneity, lag: float, directions: np.ndarray) -> float:
    """Empirical correlation of g between points and the points `lag` away, averaged over
    SEEDS (each with its own pairs)."""
    rng = np.random.default_rng(0)
    values = []
    for seed in SEEDS:
        x = spread_points(rng, len(directions))
        h = het.model_copy(update={"seed": seed})
        g = property_field(h, BONE_VOLUME_FRACTION, np.vstack([x, lagged(x, lag, directions)]))
        values.append(np.corrcoef(g[: len(x)], g[len(x) :])[0, 1])
    return float(np.mean(values))


# --- statistics ----------------------------------------------------------------------------


@pytest.mark.parametrize("covariance", ["exponential", "gaussian", "matern"])
def test_correlation_at_the_correlation_length_is_the_models(covariance: str) -> None:
    """exp(-1) for the exponential model, exp(-pi/4) for the gaussian (L is the integral
    scale), 0.406 for matern nu = 1.5."""
    het = Heterogeneity(seed=0, covariance=covariance, correlation_length=L)
    expected = covariance_model(het).correlation(L)
    if covariance == "exponential":
        assert expected == pytest.approx(math.exp(-1))
    rho = correlation_at(het, L, np.random.default_rng(1).normal(size=(6000, 3)))
    assert rho == pytest.approx(expected, abs=0.05)


def test_bone_volume_fraction_factor_has_mean_one_and_the_requested_cv() -> None:
    rng = np.random.default_rng(2)
    means, cvs = [], []
    for seed in SEEDS:
        het = Heterogeneity(seed=seed, correlation_length=L, bone_volume_fraction_cv=0.3)
        f = bone_volume_fraction_factor(het, spread_points(rng, 15000), [])
        means.append(f.mean())
        cvs.append(f.std() / f.mean())
        assert np.all(f > 0)
    assert np.mean(means) == pytest.approx(1.0, abs=0.006)
    assert np.mean(cvs) == pytest.approx(0.3, abs=0.012)


def test_anisotropic_correlation_is_longer_along_the_axis() -> None:
    """along 4 mm, across 2 mm about a tilted axis: at a lag of 2 mm the correlation is
    exp(-1/2) along the axis and exp(-1) across it."""
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    section = {"along_axis": 4e-3, "across": 2e-3, "axis": axis.tolist()}
    het = Heterogeneity(seed=0, correlation_length=section)
    n = 6000
    across = np.cross(axis, np.random.default_rng(3).normal(size=(n, 3)))
    rho_along = correlation_at(het, 2e-3, np.broadcast_to(axis, (n, 3)))
    rho_across = correlation_at(het, 2e-3, across)
    assert rho_along == pytest.approx(math.exp(-0.5), abs=0.05)
    assert rho_across == pytest.approx(math.exp(-1.0), abs=0.05)
    assert rho_along > rho_across + 0.15


@pytest.mark.parametrize("axis", [(0, 0, 1), (0, 0, -1), (0, 1, 0), (1, 0, 0), (0.6, -0.48, 0.64)])
def test_angles_turn_gstools_main_axis_onto_the_axis(axis: tuple[float, float, float]) -> None:
    main = gs.Exponential(dim=3, len_scale=[2, 1, 1], angles=angles_of(axis)).main_axes()[0]
    np.testing.assert_allclose(main, axis, atol=1e-15)


def test_field_is_gstools_srf() -> None:
    """The elementwise isometrisation gives gstools' own field (to BLAS round-off)."""
    section = {"along_axis": 4e-3, "across": 2e-3, "axis": [0.0, 0.6, 0.8]}
    model = covariance_model(Heterogeneity(seed=0, correlation_length=section))
    points = np.random.default_rng(4).uniform(-0.02, 0.02, (500, 3))
    expected = gs.SRF(model, seed=11, mode_no=MODES)(points.T)
    np.testing.assert_allclose(gaussian_field(model, 11, points), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("covariance", ["exponential", "gaussian", "matern"])
def test_field_in_metres_is_the_field_in_millimetres(covariance: str) -> None:
    """No trouble with SI lengths: L = 3e-3 m at x (m) gives the field of L = 3 at 1000 x, up
    to the round-off of gstools' MCMC sampling of the spectrum (measured at most 3e-4)."""
    points = np.random.default_rng(9).uniform(0.0, 0.05, (1000, 3))
    metres = Heterogeneity(seed=3, covariance=covariance, correlation_length=L)
    millimetres = metres.model_copy(update={"correlation_length": L * 1e3})
    np.testing.assert_allclose(
        property_field(metres, BONE_VOLUME_FRACTION, points),
        property_field(millimetres, BONE_VOLUME_FRACTION, points * 1e3),
        atol=1e-3,
    )


def test_trend_goes_linearly_from_one_end_to_the_other() -> None:
    het = Heterogeneity(seed=0, trend=[{"axis": [1, 0, 0], "change": -0.2}])
    points = np.array([[0.0, 5.0, 0.0], [0.01, 0.0, 0.0], [0.02, 0.0, 3.0]])
    np.testing.assert_allclose(
        trend_factor(points, het.trend, [(0.0, 0.02)]), [1.1, 1.0, 0.9], rtol=1e-15
    )


def test_permeability_follows_the_porosity_law_and_the_scatter() -> None:
    phi, base = np.array([0.8, 0.9, 0.95]), np.array([0.9, 0.9, 0.9])
    points = np.zeros((3, 3))
    kc = Heterogeneity(seed=0)
    expected = (phi / base) ** 3 * ((1 - base) / (1 - phi)) ** 2
    np.testing.assert_allclose(permeability_factor(kc, points, phi, base), expected, rtol=1e-14)
    power = Heterogeneity(seed=0, permeability={"law": "power_law", "exponent": 4})
    np.testing.assert_allclose(
        permeability_factor(power, points, phi, base), (phi / base) ** 4, rtol=1e-14
    )
    scatter = Heterogeneity(seed=5, permeability_log_std=0.5)
    many = spread_points(np.random.default_rng(5), 20000)
    same = np.full(len(many), 0.9)
    k = permeability_factor(scatter, many, same, same)
    assert np.std(np.log(k)) == pytest.approx(0.5, rel=0.05)
    assert np.mean(k) == pytest.approx(1.0, abs=0.03)


# --- reproducibility -----------------------------------------------------------------------


def test_same_seed_same_values_different_seed_different_values() -> None:
    points = spread_points(np.random.default_rng(6), 2000)
    het = Heterogeneity(seed=7, permeability_log_std=0.3)
    first = bone_volume_fraction_factor(het, points, [])
    np.testing.assert_array_equal(bone_volume_fraction_factor(het, points, []), first)
    other = bone_volume_fraction_factor(het.model_copy(update={"seed": 8}), points, [])
    assert np.max(np.abs(other - first)) > 0.3
    g, h = (property_field(het, stream, points) for stream in (BONE_VOLUME_FRACTION, PERMEABILITY))
    assert abs(np.corrcoef(g, h)[0, 1]) < 0.1  # independent fields of one seed


def test_a_point_gets_the_same_bits_alone_and_among_many() -> None:
    section = {"along_axis": 4e-3, "across": 2e-3, "axis": [0.0, 0.6, 0.8]}
    het = Heterogeneity(seed=7, correlation_length=section)
    points = spread_points(np.random.default_rng(7), 300)
    whole = property_field(het, BONE_VOLUME_FRACTION, points)
    alone = [property_field(het, BONE_VOLUME_FRACTION, points[i : i + 1])[0] for i in range(5)]
    np.testing.assert_array_equal(alone, whole[:5])
    reverse = property_field(het, BONE_VOLUME_FRACTION, points[::-1])
    np.testing.assert_array_equal(reverse[::-1], whole)


def test_centroid_does_not_depend_on_the_vertex_order() -> None:
    x = np.random.default_rng(8).uniform(0, 0.03, (1000, 4, 3))
    turned = x[:, [2, 0, 3, 1]]
    np.testing.assert_array_equal(cell_centroids(turned), cell_centroids(x))


# --- partition independence ----------------------------------------------------------------


def box(comm: MPI.Comm) -> TaggedMesh:
    """A 12 mm cube of 3072 cells; region `left` (x < 6 mm) and `bone`, every local cell."""
    mesh = dolfinx.mesh.create_box(
        comm, [np.zeros(3), np.full(3, 12e-3)], [8, 8, 8], dolfinx.mesh.CellType.tetrahedron
    )
    imap = mesh.topology.index_map(3)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    x = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)]
    values = np.where(x[:, :, 0].mean(axis=1) < 6e-3, 2, 1).astype(np.int32)
    cell_tags = dolfinx.mesh.meshtags(mesh, 3, cells, values)
    facet_tags = dolfinx.mesh.meshtags(mesh, 2, np.zeros(0, np.int32), np.zeros(0, np.int32))
    return TaggedMesh(mesh, cell_tags, facet_tags, {}, {"bone": 1, "left": 2})


def test_distributed_mesh_gets_the_values_of_the_whole_mesh() -> None:
    bone = Bone.model_validate(
        {
            "porosity": 0.85,
            "permeability": {"along_axis": 4e-8, "ratio": 0.78},
            "heterogeneity": {
                "seed": 3,
                "covariance": "matern",
                "correlation_length": {"along_axis": 4e-3, "across": 2e-3, "axis": [1, 1, 0]},
                "permeability_log_std": 0.4,
                "trend": [{"axis": [0, 0, 1], "change": -0.2}],
                "regions": ["left"],
            },
        }
    )
    results = {}
    for name, comm in (("distributed", MPI.COMM_WORLD), ("whole", MPI.COMM_SELF)):
        tagged = box(comm)
        imap = tagged.mesh.topology.index_map(3)
        cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        x = tagged.mesh.geometry.x[dolfinx.mesh.entities_to_geometry(tagged.mesh, 3, cells)]
        results[name] = (cell_centroids(x), *cell_properties(bone, tagged))
    centroids, phi, k = results["distributed"]
    whole_centroids, whole_phi, whole_k = results["whole"]
    distance, match = cKDTree(whole_centroids).query(centroids)
    assert np.max(distance) == 0.0
    assert np.std(whole_phi) > 0.01  # the field is really there
    np.testing.assert_allclose(phi, whole_phi[match], rtol=1e-14, atol=0)
    np.testing.assert_allclose(k, whole_k[match], rtol=1e-14, atol=1e-30)
