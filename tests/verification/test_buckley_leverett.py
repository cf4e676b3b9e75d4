"""Verification case D (DESIGN §5): 1-D Buckley-Leverett displacement, Corey exponents 2.

With a = mu_c / mu_m the exact solution is a rarefaction f'(S) = x phi / (u t) behind a shock
of saturation S_f = sqrt(a / (1 + a)) at x_f = (1 + sqrt((1 + a) / a)) / 2 * u t / phi.

Measured on the numerical profile (vertex saturations averaged over each cross-section):
- front position: where S falls through S_f / 2;
- front saturation: S at a distance sqrt(h x_f) behind that point. The numerical shock is
  smeared over a few cells and, because the Buckley-Leverett shock is sonic on its upstream
  side (f'(S_f) equals the shock speed), its shoulder approaches S_f only algebraically; the
  offset sqrt(h x_f) shrinks with h while staying outside the shoulder;
- L1 distance to the exact profile.
Asserted: tolerances at each resolution, monotone convergence, and an observed L1 order
(between each pair of meshes; for front_courant over the whole refinement: its step sequence
changes by whole steps with the set of vertices the front crosses, and moved the L1 error at
200 cells by 5 % when the pressure solve changed by 1e-6 relative, CG against Cholesky, so
the order between neighbouring meshes was 0.35 then 1.64, over the whole range 1.0).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from sim import measurements as measure
from sim.scenario import load_scenario

from .conftest import simulate

MU_M = 0.04  # Pa·s, as in the scenario file


def exact_profile(x: np.ndarray, a: float, travel: float) -> np.ndarray:
    """Exact S(x) for Corey 2/2 and mobility ratio a, `travel` = u t / phi (m)."""
    s_f = np.sqrt(a / (1 + a))

    def df(s: float) -> float:
        d = s**2 + a * (1 - s) ** 2
        return 2 * a * s * (1 - s) / d**2

    out = np.zeros_like(x)
    for i, xi in enumerate(x / travel):
        if xi < df(s_f):
            out[i] = (
                1.0 if xi <= df(1 - 1e-14) else brentq(lambda s, xi=xi: df(s) - xi, s_f, 1 - 1e-14)
            )
    return out


def crossing(x: np.ndarray, s: np.ndarray, level: float) -> float:
    k = int(np.nonzero(s < level)[0][0])
    return float(x[k - 1] + (level - s[k - 1]) * (x[k] - x[k - 1]) / (s[k] - s[k - 1]))


def run(scenarios, a: float, n: int, step_rule: str) -> dict[str, float]:
    sc = load_scenario(
        scenarios / "verification/buckley_leverett.yaml",
        [
            f"cement.rheology.viscosity={a * MU_M}",
            f"geometry.cells_along={n}",
            f"numerics.{step_rule}",
        ],
    )
    needle, length = sc.injection.needles[0], sc.geometry.length
    t_end = needle.volume / needle.rate
    h = length / n

    def profile(pb):
        plane = np.round(pb.disc.x_owned[:, 0] / h).astype(int)
        s = pb.state.S.x.array[: pb.disc.n_owned]
        total = pb.comm.allreduce(np.bincount(plane, s, n + 1))
        count = pb.comm.allreduce(np.bincount(plane, None, n + 1))
        return total / count, measure.mass_balance_error(pb)

    ((s_num, mass_error),), _ = simulate(sc, [t_end], profile)
    x = np.linspace(0.0, length, n + 1)
    travel = needle.rate / sc.geometry.width**2 * t_end / sc.bone.porosity
    s_f = np.sqrt(a / (1 + a))
    x_f = (1 + np.sqrt((1 + a) / a)) / 2 * travel
    front = crossing(x, s_num, 0.5 * s_f)
    return {
        "front_error": abs(front - x_f) / x_f,
        "front_saturation_error": abs(np.interp(front - np.sqrt(h * x_f), x, s_num) - s_f) / s_f,
        "l1": float(np.sum(np.abs(s_num - exact_profile(x, a, travel))) * h),
        "h": h,
        "mass_error": mass_error,
    }


@pytest.mark.parametrize(
    ("a", "step_rule", "front_tol", "saturation_tol"),
    [
        # one ratio and rule are enough under MPI (shorter suite)
        pytest.param(
            0.5, "max_saturation_change=0.05", (0.04, 0.025, 0.015), 0.01, marks=pytest.mark.serial
        ),
        (100.0, "max_saturation_change=0.25", (0.01, 0.01, 0.01), 0.005),
        # the front of a viscous cement sharpens itself: accurate at 4 cells a step
        pytest.param(100.0, "front_courant=4", (0.01, 0.01, 0.01), 0.006, marks=pytest.mark.serial),
    ],
    ids=["a=0.5", "a=100", "a=100,front_courant=4"],
)
def test_front_position_and_saturation_converge(scenarios, a, step_rule, front_tol, saturation_tol):
    results = [run(scenarios, a, n, step_rule) for n in (100, 200, 400)]
    for r, tol in zip(results, front_tol, strict=True):
        assert r["front_error"] <= tol, results
        assert r["front_saturation_error"] <= saturation_tol, results
        assert r["mass_error"] <= 1e-10
    l1 = np.array([r["l1"] for r in results])
    h = np.array([r["h"] for r in results])
    orders = np.diff(np.log(l1)) / np.diff(np.log(h))
    if step_rule.startswith("front_courant"):
        orders = np.log(l1[0] / l1[-1]) / np.log(h[0] / h[-1])
    assert np.all(np.diff(l1) < 0), l1
    assert np.all(orders > 0.4), orders
    if a < 1:  # the weak shock: position and saturation errors fall too
        assert np.all(np.diff([r["front_error"] for r in results]) < 0), results
        assert np.all(np.diff([r["front_saturation_error"] for r in results]) < 0), results
