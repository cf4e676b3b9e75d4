"""Verification case A (DESIGN §5): spherical piston displacement from a needle-tip cavity.

A Newtonian cement displaces marrow radially from a cavity of radius r0 at constant rate Q in
a ball of radius R with a fixed pressure outside. With linear relative permeabilities and
mu_c >> mu_m the displacement is piston-like and

    r_f(t) = (r0^3 + 3 Q t / (4 pi phi))^(1/3),
    dp(t)  = Q / (4 pi k) [mu_c (1/r0 - 1/r_f) + mu_m (1/r_f - 1/R)].

Asserted: the tip pressure and the front radius within 5 % at two viscosity/permeability
pairs, mass balance to round-off, 0 <= S <= 1, and an observed order of convergence of the
tip-pressure error under mesh refinement.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import measurements as measure
from sim.scenario import load_scenario

from .conftest import simulate

SCENARIO = "verification/sphere_newtonian.yaml"
VOLUMES = (1e-6, 5e-6)  # m³: 1 mL and 5 mL


def exact(sc, volume: float) -> tuple[float, float]:
    """Front radius (m) and tip pressure (Pa) of case A after injecting `volume` (m³)."""
    needle = sc.injection.needles[0]
    q, r0, big_r = needle.rate, needle.inner_radius, sc.geometry.radius
    phi, k = sc.bone.porosity, sc.bone.permeability
    mu_c, mu_m = sc.cement.rheology.viscosity, sc.marrow.viscosity
    r_f = (r0**3 + 3 * volume / (4 * np.pi * phi)) ** (1 / 3)
    dp = q / (4 * np.pi * k) * (mu_c * (1 / r0 - 1 / r_f) + mu_m * (1 / r_f - 1 / big_r))
    return r_f, dp


def sample(pb):
    needle = pb.needles[0]
    volume, _ = measure.cloud(pb, 0.5)
    return {
        "injected": measure.injected(pb),
        "tip_pressure": measure.tip_pressure(pb, needle.name),
        "cloud_volume": volume,
        "mass_balance": measure.mass_balance_error(pb),
        "s_range": measure.saturation_range(pb),
    }


def run_case(scenarios, overrides):
    sc = load_scenario(scenarios / SCENARIO, overrides)
    q = sc.injection.needles[0].rate
    every = {"mb": 0.0, "smin": 1.0, "smax": 0.0}

    def each(pb):
        every["mb"] = max(every["mb"], measure.mass_balance_error(pb))
        lo, hi = measure.saturation_range(pb)
        every["smin"], every["smax"] = min(every["smin"], lo), max(every["smax"], hi)

    samples, problem = simulate(sc, [v / q for v in VOLUMES], sample, each)
    return sc, samples, problem, every


@pytest.mark.parametrize(
    ("mu_c", "k"),
    [("100 Pa*s", "1e-9 m^2"), ("1000 Pa*s", "2e-8 m^2")],
    ids=["mu100-k1e-9", "mu1000-k2e-8"],
)
def test_tip_pressure_and_front_radius_within_5_percent(scenarios, mu_c, k):
    sc, samples, _, every = run_case(
        scenarios, [f"cement.rheology.viscosity={mu_c}", f"bone.permeability={k}"]
    )
    r0 = sc.injection.needles[0].inner_radius
    for volume, s in zip(VOLUMES, samples, strict=True):
        r_f, dp = exact(sc, volume)
        assert s["injected"] == pytest.approx(volume, rel=1e-12)
        assert s["tip_pressure"] == pytest.approx(dp, rel=0.05), (volume, s["tip_pressure"], dp)
        # front radius: the ball of the same volume as the bone where S >= 1/2, plus the cavity
        r_num = (r0**3 + 3 * s["cloud_volume"] / (4 * np.pi)) ** (1 / 3)
        assert r_num == pytest.approx(r_f, rel=0.05), (volume, r_num, r_f)
    assert every["mb"] <= 1e-10
    assert every["smin"] >= 0.0 and every["smax"] <= 1.0


@pytest.mark.serial  # the order is a property of the discretisation, not of the partition
def test_tip_pressure_error_converges_under_refinement(scenarios):
    """Refine by a factor 1.4 twice (size at the tip and growth rate together)."""
    errors, sizes = [], []
    for growth in (0.4, 0.28, 0.2):
        sc, samples, problem, _ = run_case(
            scenarios,
            [f"geometry.mesh.growth={growth}", f"geometry.mesh.size_tip={1.2 * growth} mm"],
        )
        _, dp = exact(sc, VOLUMES[0])
        errors.append(abs(samples[0]["tip_pressure"] - dp) / dp)
        sizes.append(problem.tagged.num_cells_global() ** (-1 / 3))
    orders = np.diff(np.log(errors)) / np.diff(np.log(sizes))
    assert errors[0] > errors[1] > errors[2]
    print(f"case A tip-pressure errors {errors}, observed orders {orders}")
    assert np.all(orders > 1.0), (errors, orders)
