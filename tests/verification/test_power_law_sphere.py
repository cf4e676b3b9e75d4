"""Power-law spherical injection (case A with a shear-thinning cement), and the cannula.

With a porous closure the Darcy law of a power-law cement is |grad p| = C u^n, so the radial
flow u = Q / (4 pi r^2) from the cavity r0 to the front r_f gives the tip pressure

    dp = C (Q/4 pi)^n (r0^(1-2n) - r_f^(1-2n)) / (2n - 1) + mu_m Q/(4 pi k) (1/r_f - 1/R),

with C from each closure's own published form (not from the code's shift factor):
Christopher & Middleman (1965), C = H / k, H = (K/12)(9 + 3/n)^n (150 k phi)^((1-n)/2);
a bundle of straight tubes of radius R_t = sqrt(8k/phi), C = (2K/R_t)((3n+1)/(n phi R_t))^n;
a fixed shift factor alpha, C = K alpha^(n-1) (k phi)^((1-n)/2) / k. Asserted within 3 % at 1
and 2 mL for constant n and while the consistency and n change with cure (a rheometer table
of K and n); the syringe pressure equals tip + the closed-form power-law cannula drop in every
step.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import measurements as measure
from sim.physics.cannula import power_law_pressure_drop
from sim.scenario import Scenario, load_scenario

from .conftest import simulate

#: cement age (s), consistency (Pa s^n), flow index: n falls from 0.7 to 0.4 while 2 mL go in
CURE_TABLE = [[0.0, 100.0, 0.7], [20.0, 160.0, 0.55], [40.0, 250.0, 0.4]]
VOLUMES = (1e-6, 2e-6)
#: a 25 mm ball injected with 2 mL (the front reaches 8.1 mm): the runs of the suite
SMALL = ["geometry.radius=25 mm", "injection.needles.0.volume=2 mL"]


def darcy_coefficient(sc: Scenario, K: float, n: float) -> float:
    """C in |grad p| = C u^n (SI) of the scenario's closure, from its published form."""
    phi, k = sc.bone.porosity, sc.bone.permeability
    closure = sc.cement.rheology.closure
    if closure == "christopher_middleman":
        return K / 12 * (9 + 3 / n) ** n * (150 * k * phi) ** ((1 - n) / 2) / k
    if closure == "capillary_bundle":
        r_t = np.sqrt(8 * k / phi)
        return 2 * K / r_t * ((3 * n + 1) / (n * phi * r_t)) ** n
    alpha = sc.cement.rheology.shift_factor
    return K * alpha ** (n - 1) * (k * phi) ** ((1 - n) / 2) / k


def consistency_and_index(sc: Scenario, age: float) -> tuple[float, float]:
    """K (Pa s^n) and n of the cement at `age` (s): the table's log-linear K, linear n."""
    curing = sc.cement.curing
    if curing.law == "table":
        n = float(np.interp(age, [p[0] for p in curing.points], [p[2] for p in curing.points]))
        return curing.value_at(age), n
    return sc.cement.rheology.consistency, sc.cement.rheology.n


def exact_tip_pressure(sc: Scenario, volume: float) -> float:
    needle = sc.injection.needles[0]
    q, r0, big_r = needle.rate, needle.inner_radius, sc.geometry.radius
    phi, k = sc.bone.porosity, sc.bone.permeability
    K, n = consistency_and_index(sc, volume / q)
    r_f = (r0**3 + 3 * volume / (4 * np.pi * phi)) ** (1 / 3)
    integral = (r0 ** (1 - 2 * n) - r_f ** (1 - 2 * n)) / (2 * n - 1)
    cement = darcy_coefficient(sc, K, n) * (q / (4 * np.pi)) ** n * integral
    marrow = sc.marrow.viscosity * q / (4 * np.pi * k) * (1 / r_f - 1 / big_r)
    return cement + marrow


def check_sphere(sc: Scenario, volumes: tuple[float, ...]) -> None:
    needle = sc.injection.needles[0]
    rows = []

    def each(pb):
        rows.append(
            (
                pb.state.age,
                pb.state.rates[0],
                measure.tip_pressure(pb, pb.needles[0].name),
                pb.state.syringe_pressures[0],
            )
        )
        assert measure.mass_balance_error(pb) <= 1e-10

    samples, pb = simulate(
        sc,
        [v / needle.rate for v in volumes],
        lambda p: (measure.injected(p), measure.tip_pressure(p, p.needles[0].name)),
        each,
    )
    closure = sc.cement.rheology.closure
    for (injected, tip), volume in zip(samples, volumes, strict=True):
        assert injected == pytest.approx(volume, rel=1e-12)
        exact = exact_tip_pressure(sc, volume)
        print(
            f"{closure} ({sc.cement.curing.law}): {volume * 1e6:.0f} mL tip {tip:.5g} Pa, "
            f"exact {exact:.5g} Pa, error {100 * (tip - exact) / exact:+.2f} %"
        )
        assert tip == pytest.approx(exact, rel=0.03), (volume, closure)
    # syringe = tip + closed-form power-law cannula drop (cement of the syringe's age)
    for age, rate, tip, syringe in rows:
        K, n = consistency_and_index(sc, age)
        drop = power_law_pressure_drop(rate, needle.cannula_length, needle.inner_radius, K, n)
        assert syringe == pytest.approx(tip + drop, rel=1e-9)
    assert pb.state.counters.picard_failures == 0


@pytest.mark.serial  # under MPI the curing case below checks the same closure
@pytest.mark.parametrize("n", [0.4, 0.7])
def test_christopher_middleman_tip_pressure_within_3_percent(scenarios, n):
    sc = load_scenario(
        scenarios / "verification/sphere_power_law.yaml",
        [f"cement.rheology.n={n}", f"cement.rheology.consistency=100 Pa*s^{n}", *SMALL],
    )
    check_sphere(sc, VOLUMES)


@pytest.mark.parametrize(
    "closure",
    [
        "{closure: christopher_middleman}",
        # the other closures differ only in alpha(n): checked serially (shorter MPI suite)
        pytest.param("{closure: capillary_bundle}", marks=pytest.mark.serial),
        pytest.param("{closure: shift_factor, shift_factor: 2.5}", marks=pytest.mark.serial),
    ],
)
def test_each_closure_while_n_changes_with_cure(scenarios, closure):
    sc = load_scenario(
        scenarios / "verification/sphere_power_law.yaml",
        [
            f"cement.rheology={{model: power_law, n: 0.7, {closure[1:-1]}}}",
            f"cement.curing={{law: table, reference_age: 0 s, points: {CURE_TABLE}}}",
            *SMALL,
        ],
    )
    check_sphere(sc, VOLUMES)
