"""Verification of the heat component (sim.components.heat) against exact solutions.

1. Adiabatic cure: a closed, insulated bone full of cement warms by exactly the reaction heat
   released over its heat capacity, rho_c L phi (alpha_end - alpha_0) / H, and stays uniform.
2. Arrhenius coupling: with the tissue held at 37 C the cement cures faster than at 22 C by
   the ratio of the rate constants, k1(310.15 K) / k1(295.15 K), and exactly as the kinetics
   at that temperature.
3. Conduction: a cosine temperature profile in an insulated bar decays as
   exp(-D (pi / L)^2 t), D = k / (rho c); second order in the mesh size.
4. Advection-diffusion: hot cement entering a bar full of cement, against the flux-inlet
   solution of the 1-D equation (van Genuchten & Alves 1982, USDA Tech. Bull. 1661, solution
   A2); approaching first order (upwind) in the mesh size.
Runs serially and under mpirun -n 2.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from mpi4py import MPI
from scipy.special import erfc

from sim.physics.curing import GAS_CONSTANT
from sim.scenario import validate_scenario

from .conftest import simulate

C37, C22 = 310.15, 295.15


def bar(
    length: float,
    cells: int,
    heat: dict[str, Any],
    across: int = 1,
    width: float = 0.004,
    cement: dict[str, Any] | None = None,
    injection: dict[str, Any] | None = None,
    **extra: Any,
) -> Any:
    data = {
        "name": "heat_bar",
        "geometry": {
            "kind": "column",
            "length": length,
            "width": width,
            "cells_along": cells,
            "cells_across": across,
        },
        "bone": {"porosity": 0.8, "permeability": 1e-9, "initial_saturation": 1.0},
        "cement": cement or {"rheology": {"model": "newtonian", "viscosity": 50.0}},
        "marrow": {"viscosity": 0.01},
        "injection": injection
        or {  # no injection before the time limit: a closed bone
            "needles": [{"inner_diameter": 0.002, "rate": 1e-9, "volume": 1e-9, "start": 3600}],
            "stop": {"time_limit": 600},
        },
        "leak_routes": {"outlet": {"kind": "outlet", "boundary": "outlet"}},
        "heat": {"follow_up": 0.0, **heat},
        "output": {"fields": False, "plots": False, "fluoroscopy": False},
        **extra,
    }
    return validate_scenario(data)


def owned(pb: Any, field: Any) -> np.ndarray:
    return field.x.array[: pb.disc.n_owned]


def global_range(values: np.ndarray) -> tuple[float, float]:
    comm = MPI.COMM_WORLD
    return (
        comm.allreduce(float(values.min(initial=np.inf)), op=MPI.MIN),
        comm.allreduce(float(values.max(initial=-np.inf)), op=MPI.MAX),
    )


def test_adiabatic_cure_releases_exactly_the_reaction_heat():
    sc = bar(
        0.01,
        4,
        {"boundary": {"kind": "insulated"}, "follow_up": 1800.0},
        cement={"preset": "vertebroplasty_low_viscosity"},
        injection={  # no injection: the bone is closed; then the cement sets for 30 min
            "needles": [{"inner_diameter": 0.002, "rate": 1e-9, "volume": 1e-9, "start": 3600}],
            "stop": {"time_limit": 1.0},
        },
    )
    (alpha0,), pb = simulate(sc, [0.0], lambda p: owned(p, p.curing.conversion).copy())
    heat = pb.optional[0]
    alpha = owned(pb, pb.curing.conversion)
    t = owned(pb, heat.temperature)
    spec, phi = sc.heat, 0.8
    capacity = (1 - phi) * spec.bone.heat_capacity + phi * spec.cement.heat_capacity
    rise = spec.cement.density * spec.cement.reaction_heat * phi * (alpha - alpha0) / capacity
    assert global_range(alpha - alpha0)[0] > 0.5  # the cement has set: most of its heat is out
    np.testing.assert_allclose(t - sc.heat.body_temperature, rise, rtol=1e-10)
    t_lo, t_hi = global_range(t)
    assert t_hi - t_lo < 1e-9 * t_hi
    assert heat.energy_balance_error(pb.state) < 1e-12
    pb.destroy()


def test_cure_runs_faster_at_37_than_at_22_celsius_by_the_arrhenius_factor():
    """The preset's two rate constants share one activation energy E, so the cure at T is the
    cure at 22 C with time scaled by k(T) / k(22 C) = exp(E / R (1/295.15 K - 1/T))."""
    alphas = {}
    factor = math.exp(45000.0 / GAS_CONSTANT * (1 / C22 - 1 / C37))
    for body, duration in ((C37, 60.0), (C22, 60.0 * factor)):
        sc = bar(
            0.01,
            4,
            {"body_temperature": body, "cement": {"reaction_heat": 0.0}},
            cement={"preset": "vertebroplasty_low_viscosity"},
            injection={
                "start_after_mixing": 0.0,
                "needles": [{"inner_diameter": 0.002, "rate": 1e-9, "volume": 1e-9, "start": 3600}],
                "stop": {"time_limit": duration},
            },
        )
        _, pb = simulate(sc, [], lambda p: None)
        law = pb.cement.curing
        assert law.k1_activation_energy == law.k2_activation_energy == 45000.0
        alpha = owned(pb, pb.curing.conversion)
        # the kinetics at the tissue temperature, as the single-point law gives them
        np.testing.assert_allclose(alpha, law.advance(np.zeros(1), body, duration)[0], rtol=1e-8)
        alphas[body] = global_range(alpha)
        pb.destroy()
    assert alphas[C37][0] > 0.03  # the cure is under way
    assert alphas[C37][0] == pytest.approx(alphas[C22][0], rel=1e-7)


def cosine_decay_error(cells: int) -> float:
    """Root-mean-square (volume-weighted) error of the cosine mode in an insulated bar 10 mm
    long and 2 mm wide after 20 s (K)."""
    length, amplitude, t_end = 0.01, 5.0, 20.0
    sc = bar(
        length,
        cells,
        {"boundary": {"kind": "insulated"}},
        across=cells // 5,
        width=0.002,
        bone={"porosity": 0.8, "permeability": 1e-9},
        injection={
            "needles": [{"inner_diameter": 0.002, "rate": 1e-9, "volume": 1e-9, "start": 3600}],
            "stop": {"time_limit": t_end},
        },
        numerics={"dt_max": 2.0 * (5 / cells) ** 2, "dt_initial": 2.0 * (5 / cells) ** 2},
    )
    from sim.geometry import build_mesh
    from sim.problem import InjectionProblem

    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    heat = pb.optional[0]
    x = pb.disc.V.tabulate_dof_coordinates()[:, 0]
    body = sc.heat.body_temperature
    heat.temperature.x.array[:] = body + amplitude * np.cos(np.pi * x / length)
    pb.state.temperature = heat.temperature.x.array
    pb.run(lambda p: None)
    spec = sc.heat
    k = 0.2 * spec.bone.conductivity + 0.8 * spec.marrow.conductivity
    c = 0.2 * spec.bone.heat_capacity + 0.8 * spec.marrow.heat_capacity
    decay = math.exp(-k / c * (np.pi / length) ** 2 * t_end)
    exact = body + amplitude * decay * np.cos(np.pi * x[: pb.disc.n_owned] / length)
    volume = pb.disc.bulk_volume
    squared = pb.disc.owned_sum(volume * (owned(pb, heat.temperature) - exact) ** 2)
    assert heat.energy_balance_error(pb.state) < 1e-10
    pb.destroy()
    return math.sqrt(squared / pb.disc.owned_sum(volume))


@pytest.mark.serial  # the partitioned heat solve is checked in test_equivalence
def test_conduction_of_a_cosine_mode_is_second_order():
    """Isotropic refinement (cells 2 mm, 1 mm, 0.5 mm; a bar one cell across converges only
    to first order: its stretched tetrahedra), dt proportional to h^2; orders 2.05, 2.13."""
    errors = [cosine_decay_error(n) for n in (5, 10, 20)]
    orders = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert errors == pytest.approx([0.063479, 0.015299, 0.0034914], rel=1e-3)
    assert min(orders) > 1.9, (errors, orders)


def flux_inlet_solution(x: np.ndarray, t: float, v: float, d: float) -> np.ndarray:
    """Relative temperature of the 1-D advection-diffusion equation on x > 0 with a flux
    inlet v T - D T_x = v T_in at x = 0 (van Genuchten & Alves 1982, A2)."""
    s = 2.0 * np.sqrt(d * t)
    return (
        0.5 * erfc((x - v * t) / s)
        + np.sqrt(v * v * t / (np.pi * d)) * np.exp(-((x - v * t) ** 2) / (4 * d * t))
        - 0.5 * (1 + v * x / d + v * v * t / d) * np.exp(v * x / d) * erfc((x + v * t) / s)
    )


def advection_error(cells: int) -> float:
    """Mean absolute error (relative temperature) over the first half of the bar at 20 s."""
    length, rate, t_end, hot = 0.06, 1e-6 / 60, 20.0, 333.15
    h = length / cells
    materials = {
        "bone": {"density": 1908, "specific_heat": 1313, "conductivity": 2.0},
        "cement": {
            "density": 1100,
            "specific_heat": 1450,
            "conductivity": 2.0,
            "reaction_heat": 0.0,
        },
    }
    sc = bar(
        length,
        cells,
        {"boundary": {"kind": "insulated"}, "cement_temperature": hot, **materials},
        injection={"needles": [{"inner_diameter": 0.002, "rate": rate, "volume": 1e-6}]},
        numerics={"dt_max": 0.5 * h / 1e-3},
    )
    (profile,), pb = simulate(
        sc,
        [t_end],
        lambda p: (
            p.disc.x_owned[:, 0].copy(),
            owned(p, p.optional[0].temperature).copy(),
        ),
    )
    x, t = profile
    spec, phi = sc.heat, 0.8
    capacity = (1 - phi) * spec.bone.heat_capacity + phi * spec.cement.heat_capacity
    v = spec.cement.heat_capacity * rate / 0.004**2 / capacity
    d = 2.0 / capacity
    body = spec.body_temperature
    exact = flux_inlet_solution(x, t_end, v, d)
    near = x < 0.5 * length
    local = np.abs((t - body) / (hot - body) - exact)[near]
    comm = MPI.COMM_WORLD
    total = comm.allreduce(float(local.sum()), op=MPI.SUM)
    count = comm.allreduce(int(near.sum()), op=MPI.SUM)
    pb.destroy()
    return total / count


@pytest.mark.serial
def test_advection_diffusion_matches_the_flux_inlet_solution_to_first_order():
    """Mean error of the relative temperature over the first half of the bar; the order rises
    towards 1 (0.68, then 0.84) as the upwind scheme's numerical diffusion, v h / 2, falls
    below the physical diffusivity."""
    errors = [advection_error(n) for n in (30, 60, 120)]
    orders = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert errors == pytest.approx([0.048687, 0.030330, 0.016999], rel=1e-3)
    assert orders[0] < orders[1] and orders[1] > 0.8, (errors, orders)
