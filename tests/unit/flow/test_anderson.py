"""Anderson acceleration of depth 1 (sim.flow.anderson.Anderson), as used by the Picard loop.

For a linear map G(x) = A x + b: the first call returns G(x) unchanged; the second call
lands exactly on the fixed point for a scalar map (1-D, here held on rank 0 with an empty
part on the others) and for A = a I in any dimension; for a diagonal A with different
entries it equals the secant formula evaluated on the whole (gathered) vector, i.e. the dot
products are reduced over all ranks; a residual that does not change gives G(x) (gamma 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.flow.anderson import Anderson

from .conftest import COMM


def split(full: np.ndarray) -> np.ndarray:
    """This rank's contiguous part of a vector that every rank knows in full."""
    parts = np.array_split(np.arange(len(full)), COMM.size)
    return full[parts[COMM.rank]]


def test_first_call_returns_the_map_value():
    acc = Anderson(COMM)
    x, gx = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    out = acc(x, gx)
    assert np.array_equal(out, [3.0, -1.0])
    assert acc.previous is not None


def test_one_dimensional_linear_map_converges_in_one_secant_step():
    a, b = 0.6, 2.0  # fixed point b / (1 - a) = 5
    mine = COMM.rank == 0
    acc = Anderson(COMM)
    x0 = np.array([0.0] if mine else [])
    x1 = acc(x0, a * x0 + b)
    assert np.array_equal(x1, [2.0] if mine else [])
    x2 = acc(x1, a * x1 + b)
    assert np.allclose(x2, [5.0] if mine else [], rtol=1e-14, atol=0)


def test_scalar_contraction_exact_in_any_dimension():
    rng = np.random.default_rng(7)
    b_full = rng.normal(size=11)
    x0_full = rng.normal(size=11)
    a = -0.4
    b, x0 = split(b_full), split(x0_full)
    acc = Anderson(COMM)
    x1 = acc(x0, a * x0 + b)
    x2 = acc(x1, a * x1 + b)
    assert np.allclose(x2, b / (1 - a), rtol=1e-13, atol=1e-14)


def test_diagonal_map_uses_global_dot_products():
    rng = np.random.default_rng(3)
    a_full = rng.uniform(-0.8, 0.8, size=9)
    b_full = rng.normal(size=9)
    x0_full = rng.normal(size=9)

    def g(a, b, x):
        return a * x + b

    # reference on the whole vector
    x1_full = g(a_full, b_full, x0_full)
    f0, f1 = x1_full - x0_full, g(a_full, b_full, x1_full) - x1_full
    gamma = f1 @ (f1 - f0) / ((f1 - f0) @ (f1 - f0))
    expected = g(a_full, b_full, x1_full) - gamma * (g(a_full, b_full, x1_full) - x1_full)
    a, b, x0 = split(a_full), split(b_full), split(x0_full)
    acc = Anderson(COMM)
    x1 = acc(x0, g(a, b, x0))
    x2 = acc(x1, g(a, b, x1))
    assert np.allclose(x2, split(expected), rtol=1e-13, atol=1e-14)
    # not the fixed point (different contraction factors), but closer than plain iteration
    fixed = b_full / (1 - a_full)
    plain = g(a_full, b_full, x1_full)
    error = COMM.allreduce(float(np.sum((x2 - split(fixed)) ** 2)))
    assert 0.0 < error < float(np.sum((plain - fixed) ** 2))


def test_unchanged_residual_falls_back_to_the_map():
    acc = Anderson(COMM)
    shift = split(np.full(5, 0.5))
    x0 = split(np.arange(5.0))
    acc(x0, x0 + shift)
    x1 = x0 + shift
    out = acc(x1, x1 + shift)  # same residual: df = 0, gamma = 0
    assert np.array_equal(out, x1 + shift)
    assert out == pytest.approx(x0 + 2 * shift)
