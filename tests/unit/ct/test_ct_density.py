"""Unit tests of the CT density chain (sim.ct.density): HU -> BMD -> BV/TV -> phi -> K.

Closed forms of each law at a few points, exact round trips, the default permeability range,
and the transversely isotropic tensor. Pure NumPy: runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.ct.density import (
    ANCHOR_PERMEABILITY,
    ANCHOR_POROSITY,
    DEFAULT_ANISOTROPY_RATIO,
    DEFAULT_LOG_LINEAR_INTERCEPT,
    DEFAULT_LOG_LINEAR_SLOPE,
    DEFAULT_POWER_COEFFICIENT,
    DEFAULT_POWER_EXPONENT,
    DEFAULT_SPECIFIC_SURFACE,
    CTMapping,
    bmd_to_bone_volume_fraction,
    bmd_to_hu,
    bone_volume_fraction_to_bmd,
    hu_to_bmd,
    kozeny_carman_permeability,
    kozeny_carman_specific_surface,
    log_linear_permeability,
    permeability_tensor,
    porosity_from_bone_volume_fraction,
    power_law_permeability,
    specific_surface_from_thickness,
)

PHI = np.array([0.80, 0.85, 0.90, 0.95])


# --- closed forms ---------------------------------------------------------------------------


def test_hu_to_bmd_by_hand() -> None:
    # Dragomir-Daescu 2011 via Knowles 2016: rho_ash [g/cm3] = -0.009 + 0.0007 HU
    assert hu_to_bmd(0.0) == pytest.approx(-9.0)
    assert hu_to_bmd(200.0) == pytest.approx(131.0)  # kg/m3 = mg/cm3
    assert hu_to_bmd([100.0, 1000.0], slope=0.8, intercept=5.0) == pytest.approx([85.0, 805.0])
    assert bmd_to_hu(hu_to_bmd(np.array([-1000.0, 0.0, 250.0, 1800.0]))) == pytest.approx(
        [-1000.0, 0.0, 250.0, 1800.0], rel=1e-14, abs=1e-12
    )
    with pytest.raises(ValueError, match="nonzero"):
        hu_to_bmd(1.0, slope=0.0)


def test_bone_volume_fraction_and_porosity_by_hand() -> None:
    assert bmd_to_bone_volume_fraction(124.0) == pytest.approx(0.1)  # TMD 1240 kg/m3 (Tassani)
    assert bmd_to_bone_volume_fraction(120.0, tissue_mineral_density=1200.0) == pytest.approx(0.1)
    assert bone_volume_fraction_to_bmd(0.25) == pytest.approx(310.0)
    phi = porosity_from_bone_volume_fraction(np.array([-0.2, 0.0, 0.1, 0.5, 0.99, 1.3]))
    assert phi == pytest.approx([0.98, 0.98, 0.90, 0.50, 0.05, 0.05])
    with pytest.raises(ValueError, match="porosity_min < porosity_max"):
        porosity_from_bone_volume_fraction(0.1, porosity_min=0.9, porosity_max=0.5)
    with pytest.raises(ValueError, match="tissue_mineral_density"):
        bmd_to_bone_volume_fraction(1.0, tissue_mineral_density=0.0)


def test_kozeny_carman_closed_form() -> None:
    # K = phi^3 / (c S^2 (1 - phi)^2); spheres S = 6/d give phi^3 d^2 / (180 (1 - phi)^2)
    d = 0.4e-3
    for phi in PHI:
        k = kozeny_carman_permeability(phi, specific_surface=6.0 / d, kozeny_constant=5.0)
        assert k == pytest.approx(phi**3 * d**2 / (180.0 * (1.0 - phi) ** 2), rel=1e-13)
    assert kozeny_carman_permeability(0.9, 2.0e4, 4.0) == pytest.approx(0.729 / (4.0 * 4e8 * 0.01))
    assert specific_surface_from_thickness(0.1e-3, "rod") == pytest.approx(4e4)
    assert specific_surface_from_thickness(0.1e-3, "plate") == pytest.approx(2e4)
    s = kozeny_carman_specific_surface(2e-8, 0.9)
    assert kozeny_carman_permeability(0.9, s) == pytest.approx(2e-8, rel=1e-13)


def test_power_law_and_log_linear_closed_forms() -> None:
    assert power_law_permeability(0.9, 1e-7, 10.0) == pytest.approx(1e-7 * 0.9**10, rel=1e-14)
    assert power_law_permeability(PHI, 2e-8, 3.0) == pytest.approx(2e-8 * PHI**3, rel=1e-14)
    assert log_linear_permeability(0.9, -30.0, 10.0) == pytest.approx(math.exp(-21.0), rel=1e-14)


@pytest.mark.parametrize(
    "law", [kozeny_carman_permeability, lambda p: power_law_permeability(p, 1e-8, 3.0)]
)
def test_laws_reject_porosity_outside_the_open_unit_interval(law) -> None:
    for bad in (0.0, 1.0, -0.1, 1.2, float("nan")):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            law(np.array([0.9, bad]))


# --- defaults ---------------------------------------------------------------------------------


def test_default_calibration_anchor_and_two_point_fits() -> None:
    # the default Kozeny-Carman curve passes through Baroud's mean SI permeability at phi 0.95
    assert kozeny_carman_permeability(ANCHOR_POROSITY) == pytest.approx(
        ANCHOR_PERMEABILITY, rel=1e-13
    )
    assert DEFAULT_SPECIFIC_SURFACE == pytest.approx(3.926e4, rel=1e-3)
    # the power-law and log-linear defaults are two-point fits at phi 0.80 and 0.95
    for phi in (0.80, 0.95):
        k = kozeny_carman_permeability(phi)
        assert power_law_permeability(
            phi, DEFAULT_POWER_COEFFICIENT, DEFAULT_POWER_EXPONENT
        ) == pytest.approx(k)
        assert log_linear_permeability(
            phi, DEFAULT_LOG_LINEAR_INTERCEPT, DEFAULT_LOG_LINEAR_SLOPE
        ) == pytest.approx(k)


@pytest.mark.parametrize("law", ["kozeny_carman", "power_law", "log_linear"])
def test_default_laws_span_the_expected_range_for_osteoporotic_porosity(law: str) -> None:
    # about 1e-9 .. 5e-8 m^2 over phi 0.80 .. 0.95, rising with porosity
    phi = np.linspace(0.80, 0.95, 31)
    k = CTMapping(law=law).axial_permeability(phi)  # type: ignore[arg-type]
    assert np.all(k >= 1e-9) and np.all(k <= 5e-8), (law, k.min(), k.max())
    assert np.all(np.diff(k) > 0.0)


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping",
    [CTMapping(), CTMapping(hu_slope=0.93, hu_intercept=12.5, tissue_mineral_density=1100.0)],
)
def test_round_trip_hu_phi_hu_is_exact(mapping: CTMapping) -> None:
    phi = np.linspace(mapping.porosity_min, mapping.porosity_max, 101)
    hu = mapping.hu_from_porosity(phi)
    assert mapping.porosity(hu) == pytest.approx(phi, rel=1e-13, abs=1e-14)
    # and HU -> phi -> HU inside the unclipped range
    hu0 = np.linspace(float(hu.min()), float(hu.max()), 57)
    assert mapping.hu_from_porosity(mapping.porosity(hu0)) == pytest.approx(
        hu0, rel=1e-12, abs=1e-9
    )


def test_inverse_refuses_porosity_that_clipping_would_change() -> None:
    with pytest.raises(ValueError, match=r"2 of 3 porosities are outside \[0.05, 0.98\]"):
        CTMapping().hu_from_porosity([0.5, 0.99, 0.01])


def test_properties_shapes_clipping_and_values() -> None:
    m = CTMapping()
    hu = np.array([-1000.0, 0.0, 190.0, 3000.0])  # air, water, osteoporotic, dense cortex
    phi, k = m.properties(hu)
    assert phi.shape == (4,) and k.shape == (4, 3, 3)
    assert phi[0] == phi[1] == 0.98 and phi[3] == 0.05
    assert phi[2] == pytest.approx(1.0 - (0.7 * 190.0 - 9.0) / 1240.0)
    assert k[2, 2, 2] == pytest.approx(float(kozeny_carman_permeability(phi[2])))
    assert k[2, 0, 0] == pytest.approx(DEFAULT_ANISOTROPY_RATIO * k[2, 2, 2])
    with pytest.raises(ValueError, match="not finite"):
        m.properties(np.array([100.0, np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        m.properties(np.zeros((2, 2)))


def test_mapping_validation_names_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        CTMapping(
            hu_slope=0.0, porosity_min=0.9, porosity_max=0.5, law="darcy", anisotropy_ratio=-1.0
        )  # type: ignore[arg-type]
    message = str(info.value)
    for word in ("hu_slope", "porosity_min", "law", "anisotropy_ratio"):
        assert word in message


# --- tensor -----------------------------------------------------------------------------------


def test_tensor_eigenpairs_symmetry_and_definiteness() -> None:
    rng = np.random.default_rng(7)
    n = 50
    k_a = 10.0 ** rng.uniform(-10, -7, n)
    ratio = rng.uniform(0.3, 1.0, n)
    axes = rng.normal(size=(n, 3))
    k = permeability_tensor(k_a, ratio, axes)
    assert k.shape == (n, 3, 3)
    assert np.allclose(k, np.swapaxes(k, 1, 2), rtol=0, atol=1e-25)
    a = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    assert np.einsum("nij,nj->ni", k, a) == pytest.approx(k_a[:, None] * a, rel=1e-12, abs=1e-24)
    w = np.linalg.eigvalsh(k)
    assert np.all(w > 0.0)
    expected = np.sort(np.stack([ratio * k_a, ratio * k_a, k_a], axis=1), axis=1)
    assert w == pytest.approx(expected, rel=1e-10)


def test_tensor_default_axis_and_rotation() -> None:
    k = permeability_tensor(4.45e-8)  # default: axis +z, ratio 3.44/4.45
    assert k == pytest.approx(np.diag([3.44e-8, 3.44e-8, 4.45e-8]), rel=1e-12)
    kx = permeability_tensor(4.45e-8, 0.5, axis=(2.0, 0.0, 0.0))
    assert kx[0, 0] == pytest.approx(4.45e-8) and kx[1, 1] == kx[2, 2] == pytest.approx(2.225e-8)
    # per-cell axes: a 90-degree rotation of the axis swaps the diagonal
    ks = permeability_tensor(np.array([1e-8, 1e-8]), 0.25, np.array([[0, 0, 1.0], [1.0, 0, 0]]))
    assert np.diag(ks[0]) == pytest.approx([2.5e-9, 2.5e-9, 1e-8])
    assert np.diag(ks[1]) == pytest.approx([1e-8, 2.5e-9, 2.5e-9])
    # an oblique axis: K a = k_a a, K b = k_t b for b perpendicular to a
    a = np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)
    ko = permeability_tensor(2e-8, 0.5, a)
    assert ko @ a == pytest.approx(2e-8 * a)
    b = np.array([1.0, -1.0, 0.0]) / math.sqrt(2.0)
    assert ko @ b == pytest.approx(1e-8 * b)


def test_tensor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        permeability_tensor(np.array([1e-8, -1e-9]))
    with pytest.raises(ValueError, match="ratio"):
        permeability_tensor(1e-8, 0.0)
    with pytest.raises(ValueError, match="nonzero"):
        permeability_tensor(1e-8, 0.5, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="shape"):
        permeability_tensor(1e-8, 0.5, (1.0, 0.0))
