"""Leak numbers against an exact solution: Buckley-Leverett breakthrough through an outlet.

The 1-D column of case D (Corey 2/2, a = mu_c / mu_m = 100) injected past breakthrough. With
tau the pore volumes injected, the outlet saturation S_o after breakthrough solves
f'(S_o) = 1 / tau and Welge's mean saturation gives the leaked (produced) cement exactly:

    leaked / PV = tau f(S_o) - S_o,     breakthrough at tau = 1 / f'(S_f), S_f = sqrt(a/(1+a)).

The first-leak time is when the leaked volume reaches output.leak_threshold. Asserted: both
converge under refinement with an observed order above 0.5 (measured on 50/100/200 cells:
errors 0.050/0.030/0.019 % leaked volume, orders 0.77 and 0.68; 0.079/0.036/0.017 % first-leak
time, orders 1.15 and 1.08), and the finest column is within 0.05 % of exact for both.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from sim import measurements as measure
from sim.scenario import load_scenario

from .conftest import simulate

A = 100.0
MU_M = 0.04  # Pa·s, as in the scenario file
VOLUME = 0.5e-6  # m³ injected: about 1.5 pore volumes
THRESHOLD = 5e-9  # m³: 1.5 % of the pore volume


def fractional(s: float) -> float:
    return s * s / (s * s + A * (1 - s) ** 2)


def d_fractional(s: float) -> float:
    return 2 * A * s * (1 - s) / (s * s + A * (1 - s) ** 2) ** 2


def exact_leaked(tau: float) -> float:
    """Leaked cement in pore volumes after `tau` pore volumes injected."""
    s_f = np.sqrt(A / (1 + A))
    if tau <= 1 / d_fractional(s_f):
        return 0.0
    s_o = brentq(lambda s: d_fractional(s) - 1 / tau, s_f, 1 - 1e-12)
    return tau * fractional(s_o) - s_o


def run(scenarios, n: int) -> tuple[float, float, float, float]:
    """(leaked m³, first-leak time s, pore volume m³, rate m³/s) on n cells."""
    sc = load_scenario(
        scenarios / "verification/buckley_leverett.yaml",
        [
            f"cement.rheology.viscosity={A * MU_M}",
            f"geometry.cells_along={n}",
            f"injection.needles.0.volume={VOLUME}",
            f"output.leak_threshold={THRESHOLD}",
        ],
    )
    _, pb = simulate(sc, [], lambda p: None)
    assert measure.mass_balance_error(pb) <= 1e-10
    pore = sc.geometry.length * sc.geometry.width**2 * sc.bone.porosity
    return (
        measure.leaked(pb),
        measure.first_leak_times(pb)["outlet"],
        pore,
        sc.injection.needles[0].rate,
    )


@pytest.mark.serial  # 1-D order of convergence; partitions are checked on 3-D runs
def test_leaked_volume_and_first_leak_time_converge_to_buckley_leverett(scenarios):
    rows = [run(scenarios, n) for n in (50, 100, 200)]
    _, _, pore, rate = rows[0]
    leaked_exact = pore * exact_leaked(VOLUME / pore)
    tau_first = brentq(lambda tau: exact_leaked(tau) * pore - THRESHOLD, 0.5, VOLUME / pore)
    first_exact = tau_first * pore / rate
    leak_errors = np.array([abs(r[0] - leaked_exact) / leaked_exact for r in rows])
    time_errors = np.array([abs(r[1] - first_exact) / first_exact for r in rows])
    print(f"leaked {[r[0] for r in rows]} exact {leaked_exact}, errors {leak_errors}")
    print(f"first leak {[r[1] for r in rows]} exact {first_exact}, errors {time_errors}")
    for errors, finest in ((leak_errors, 5e-4), (time_errors, 5e-4)):
        orders = np.log2(errors[:-1] / errors[1:])
        assert np.all(orders > 0.5), (errors, orders)
        assert errors[-1] <= finest, errors
