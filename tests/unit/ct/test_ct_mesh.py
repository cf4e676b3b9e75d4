"""Mapping a synthetic CT onto the cells of a DOLFINx mesh (sim.ct with dolfinx).

A synthetic CT of a known porosity field is sampled at the cells of a small box mesh; the
porosity must come back at the cell centroids within the interpolation error, and the
permeability must be the law of that porosity. Every rank checks its own (owned + ghost)
cells: runs serially and under ``mpirun -n 2``.

Error bounds. Trilinear interpolation between voxel centres reproduces a linear field
exactly, and both quadrature rules average a linear field to its centroid value, so for a
linear gradient only round-off remains (checked at 1e-12). For a field varying only along x
with |phi''| = M, trilinear interpolation reduces to 1-D linear interpolation, whose error is
at most M h² / 8 (h the voxel size): checked for a quadratic field sampled at the centroids.
"""

from __future__ import annotations

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import numpy as np
import pytest

from sim.ct import (
    CTMapping,
    PointsOutsideVolumeError,
    kozeny_carman_permeability,
    linear_porosity_gradient,
    permeability_tensor,
    sample_cells,
    synthetic_ct,
)

L = 10e-3  # box edge (m)
H = 0.5e-3  # voxel size (m)
ORIGIN = (-1e-3, -1e-3, -1e-3)  # the CT covers the box with a 1 mm margin
SHAPE = (25, 25, 25)  # voxel centres from -1 to 11 mm


@pytest.fixture(scope="module")
def cell_vertices() -> np.ndarray:
    mesh = dolfinx.mesh.create_box(
        MPI.COMM_WORLD, [np.zeros(3), np.full(3, L)], [6, 6, 6], dolfinx.mesh.CellType.tetrahedron
    )
    imap = mesh.topology.index_map(3)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    return mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)]


@pytest.mark.parametrize("n_points", [1, 4])
def test_linear_gradient_is_reproduced_at_cell_centroids(
    cell_vertices: np.ndarray, n_points: int
) -> None:
    mapping = CTMapping()
    field = linear_porosity_gradient(0.80, 0.95, axis=0, start=0.0, end=L)
    volume = synthetic_ct(SHAPE, H, ORIGIN, field, mapping)
    phi, k = mapping.properties(sample_cells(volume, cell_vertices, n_points=n_points))
    c = cell_vertices.mean(axis=1)
    expected = field(c[:, 0], c[:, 1], c[:, 2])
    assert phi.shape == (cell_vertices.shape[0],) and k.shape == (cell_vertices.shape[0], 3, 3)
    assert np.max(np.abs(phi - expected)) <= 1e-12
    assert k == pytest.approx(permeability_tensor(kozeny_carman_permeability(expected)), rel=1e-9)
    # cranio-caudal (z) permeability is the law; across it, the Baroud ratio
    assert k[:, 2, 2] == pytest.approx(kozeny_carman_permeability(expected), rel=1e-9)
    assert k[:, 0, 0] == pytest.approx(mapping.anisotropy_ratio * k[:, 2, 2], rel=1e-12)


def test_quadratic_field_within_the_linear_interpolation_bound(cell_vertices: np.ndarray) -> None:
    b, x0 = 1000.0, 4e-3  # phi = 0.85 + b (x - x0)^2: phi'' = 2b
    mapping = CTMapping()

    def field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return 0.85 + b * (np.asarray(x) - x0) ** 2 + 0.0 * np.asarray(y)

    volume = synthetic_ct(SHAPE, H, ORIGIN, field, mapping)
    phi, _ = mapping.properties(sample_cells(volume, cell_vertices, n_points=1))
    c = cell_vertices.mean(axis=1)
    error = np.abs(phi - field(c[:, 0], c[:, 1], c[:, 2]))
    bound = 2.0 * b * H**2 / 8.0  # M h^2 / 8 = 6.25e-5
    assert np.max(error) <= bound * (1.0 + 1e-9)
    assert np.max(error) > 0.05 * bound  # the bound is not vacuous: centroids fall between centres


def test_mesh_outside_the_volume_is_reported(cell_vertices: np.ndarray) -> None:
    volume = synthetic_ct((3, 25, 25), H, ORIGIN, 0.9)  # covers x < 0.25 mm only
    with pytest.raises(PointsOutsideVolumeError, match=r"cells.*outside the CT volume"):
        sample_cells(volume, cell_vertices)
