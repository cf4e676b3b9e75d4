"""Power-law spherical injection (case A with a shear-thinning cement), and the cannula.

Exact tip pressure for the documented shear-rate closure (sim.physics.rheology.shear_rate):
    dp = (K_e/k) (Q/4 pi)^n (r0^(1-2n) - r_f^(1-2n)) / (2n - 1) + mu_m Q/(4 pi k) (1/r_f - 1/R)
    K_e = K (alpha (3n+1)/(4n) / sqrt(k phi))^(n-1).
Asserted within 3 % for n = 0.4 and 0.7; the syringe pressure equals tip + the closed-form
power-law cannula drop in every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.physics.cannula import power_law_pressure_drop
from sim.scenario import load_scenario

from .conftest import simulate

VOLUMES = (1e-6, 5e-6)


def exact_tip_pressure(sc, volume: float) -> float:
    needle = sc.injection.needles[0]
    q, r0, big_r = needle.rate, needle.inner_radius, sc.geometry.radius
    phi, k = sc.bone.porosity, sc.bone.permeability
    rh = sc.cement.rheology
    n, alpha = rh.n, rh.shift_factor
    r_f = (r0**3 + 3 * volume / (4 * np.pi * phi)) ** (1 / 3)
    k_e = rh.consistency * (alpha * (3 * n + 1) / (4 * n) / np.sqrt(k * phi)) ** (n - 1)
    cement = (
        k_e / k * (q / (4 * np.pi)) ** n * (r0 ** (1 - 2 * n) - r_f ** (1 - 2 * n)) / (2 * n - 1)
    )
    marrow = sc.marrow.viscosity * q / (4 * np.pi * k) * (1 / r_f - 1 / big_r)
    return cement + marrow


@pytest.mark.parametrize("n", [0.4, 0.7])
def test_power_law_tip_pressure_within_3_percent(scenarios, n):
    sc = load_scenario(
        scenarios / "verification/sphere_power_law.yaml",
        [f"cement.rheology.n={n}", f"cement.rheology.consistency=100 Pa*s^{n}"],
    )
    needle = sc.injection.needles[0]
    rows = []

    def each(pb):
        rate = pb.rates[0]
        tip, syringe = pb.tip_pressure(pb.needles[0]), pb.syringe_pressures[0]
        rows.append((rate, tip, syringe, pb.mass_balance_error()))

    samples, pb = simulate(
        sc,
        [v / needle.rate for v in VOLUMES],
        lambda p: (p.injected(), p.tip_pressure(p.needles[0])),
        each,
    )
    for (injected, tip), volume in zip(samples, VOLUMES, strict=True):
        assert injected == pytest.approx(volume, rel=1e-12)
        exact = exact_tip_pressure(sc, volume)
        print(
            f"power law n={n}: {volume * 1e6:.0f} mL tip {tip:.5g} Pa, exact {exact:.5g} Pa, "
            f"error {100 * (tip - exact) / exact:+.2f} %"
        )
        assert tip == pytest.approx(exact, rel=0.03), (volume, n)
    # syringe = tip + closed-form power-law cannula drop, in every step
    for rate, tip, syringe, mass in rows:
        drop = power_law_pressure_drop(
            rate, needle.cannula_length, needle.inner_radius, sc.cement.rheology.consistency, n
        )
        assert syringe == pytest.approx(tip + drop, rel=1e-12)
        assert mass <= 1e-10
    assert pb.picard_iterations < sc.numerics.picard_max_iterations
