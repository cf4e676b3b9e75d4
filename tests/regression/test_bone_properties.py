"""Bone properties from a CT volume, random heterogeneity and anisotropic permeability, through
the scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpi4py import MPI

from sim import measurements as measure
from sim.bone import CTMappingError, cell_centroids
from sim.ct.density import CTMapping
from sim.ct.synthetic import linear_porosity_gradient, synthetic_ct, write_ct_h5
from sim.geometry import build_mesh
from sim.heterogeneity import BONE_VOLUME_FRACTION, property_field
from sim.problem import InjectionProblem
from sim.scenario import load_scenario

from ..verification.conftest import simulate


def _column_problem(scenarios, overrides):
    sc = load_scenario(
        scenarios / "verification/column_curing.yaml", ["cement.curing={law: none}", *overrides]
    )
    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    return sc, pb


def test_synthetic_ct_reproduces_porosity_and_permeability_on_the_mesh(scenarios, shared_tmp_path):
    """A porosity gradient along the column, written as HU, comes back on the cells."""
    length = 0.02
    mapping = CTMapping()
    field = linear_porosity_gradient(0.80, 0.95, axis=0, start=0.0, end=length)
    path = shared_tmp_path / "ct.h5"
    if MPI.COMM_WORLD.rank == 0:
        volume = synthetic_ct((44, 24, 24), 0.5e-3, (-0.5e-3, -0.5e-3, -0.5e-3), field, mapping)
        write_ct_h5(path, volume)
    MPI.COMM_WORLD.barrier()
    _, pb = _column_problem(scenarios, [f"bone.ct={{file: {path}, sampling: points}}"])
    n = pb.disc.n_cells
    centroid = pb.disc.V.tabulate_dof_coordinates()[pb.disc.cell_dofs[:n]].mean(axis=1)
    expected = field(centroid[:, 0], centroid[:, 1], centroid[:, 2])
    # linear in x: trilinear sampling and the 4-point rule are exact
    np.testing.assert_allclose(pb.medium.porosity.x.array[:n], expected, rtol=1e-10)
    k = pb.medium.permeability[:n]
    np.testing.assert_allclose(k, mapping.permeability(expected), rtol=1e-9)
    assert np.all(k[:, 2, 2] > k[:, 0, 0])  # cranio-caudal (z) is the principal axis


def test_heterogeneity_multiplies_the_ct_bone_volume_fraction(scenarios, shared_tmp_path):
    """CT first, then BV/TV_ct x trend x exp(sigma g - sigma²/2) at the cell centroids, and
    K_ct(phi_ct) x KC(phi) / KC(phi_ct)."""
    length, cv, change = 0.02, 0.3, 0.3
    mapping = CTMapping()
    field = linear_porosity_gradient(0.80, 0.95, axis=0, start=0.0, end=length)
    path = shared_tmp_path / "ct.h5"
    if MPI.COMM_WORLD.rank == 0:
        volume = synthetic_ct((44, 24, 24), 0.5e-3, (-0.5e-3, -0.5e-3, -0.5e-3), field, mapping)
        write_ct_h5(path, volume)
    MPI.COMM_WORLD.barrier()
    heterogeneity = (
        f"{{seed: 5, correlation_length: 3 mm, bone_volume_fraction_cv: {cv}, "
        f"trend: [{{axis: [1, 0, 0], change: {change}}}]}}"
    )
    sc, pb = _column_problem(
        scenarios,
        [f"bone.ct={{file: {path}, sampling: points}}", f"bone.heterogeneity={heterogeneity}"],
    )
    n = pb.disc.n_cells
    centroid = cell_centroids(pb.disc.V.tabulate_dof_coordinates()[pb.disc.cell_dofs[:n]])
    phi_ct = field(centroid[:, 0], centroid[:, 1], centroid[:, 2])
    g = property_field(sc.bone.heterogeneity, BONE_VOLUME_FRACTION, centroid)
    sigma2 = math.log(1 + cv**2)
    trend = 1 + change * (centroid[:, 0] / length - 0.5)
    factor = trend * np.exp(math.sqrt(sigma2) * g - sigma2 / 2)
    assert np.std(factor) > 0.2
    phi = np.clip(1 - (1 - phi_ct) * factor, 0.05, 0.98)
    np.testing.assert_allclose(pb.medium.porosity.x.array[:n], phi, rtol=1e-10)
    kc_ratio = (phi / phi_ct) ** 3 * ((1 - phi_ct) / (1 - phi)) ** 2
    expected = mapping.permeability(phi_ct) * kc_ratio[:, None, None]
    np.testing.assert_allclose(pb.medium.permeability[:n], expected, rtol=1e-9)


def test_ct_that_misses_the_mesh_is_an_error(scenarios, shared_tmp_path):
    path = shared_tmp_path / "small.h5"
    if MPI.COMM_WORLD.rank == 0:
        volume = synthetic_ct(
            (4, 4, 4),
            1e-3,
            (0.0, 0.0, 0.0),
            linear_porosity_gradient(0.8, 0.9, 0, 0.0, 0.004),
            CTMapping(),
        )
        write_ct_h5(path, volume)
    MPI.COMM_WORLD.barrier()
    with pytest.raises(CTMappingError, match="outside the CT volume"):
        _column_problem(scenarios, [f"bone.ct={{file: {path}, sampling: points}}"])


@pytest.mark.parametrize("ratio", [0.78, 0.5])
def test_anisotropy_rotates_with_the_principal_axis(scenarios, ratio):
    """Same rate through a cement-filled column: the pressure drop scales with the
    permeability along the column, k_a with the axis along it, ratio * k_a across it."""
    drops = {}
    for axis in ("[1, 0, 0]", "[0, 1, 0]"):
        sc = load_scenario(
            scenarios / "verification/column_curing.yaml",
            [
                "cement.curing={law: none}",
                f"bone.permeability={{along_axis: 1e-9, ratio: {ratio}, axis: {axis}}}",
            ],
        )
        (drop,), _ = simulate(sc, [10.0], lambda p: measure.tip_pressure(p, p.needles[0].name))
        drops[axis] = drop
    assert drops["[1, 0, 0]"] / drops["[0, 1, 0]"] == pytest.approx(ratio, rel=1e-9)
