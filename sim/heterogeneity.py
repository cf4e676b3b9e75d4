"""Spatially correlated random bone properties: the fields and laws of `bone.heterogeneity`.

Pure functions of points (m) and porosities, no mesh:

    BV/TV factor = trend(x) exp(sigma g(x) - sigma²/2),   sigma² = ln(1 + cv²)
    k factor     = law(phi) / law(phi_base) exp(s h(x) - s²/2)

g and h are independent unit-variance Gaussian random fields (gstools' randomization method,
`MODES` Fourier modes drawn from the covariance model's spectrum with a seed derived from the
scenario's seed), so each factor has mean 1 and the BV/TV factor has the requested CV.

Partition independence: the value at a point depends only on its coordinates and the seed.
gstools sums the modes point by point in a fixed order (its Cython summator; no OpenMP in
the PyPI wheel, and only points, not modes, are split between threads where there is), but
it rotates and scales the points with numpy.dot, that is BLAS, whose rounding depends on how
many points there are (measured with OpenBLAS: a point alone differs in the last bit from the
same point among many). So the points are transformed here, with gstools' own matrix, by
elementwise numpy arithmetic, and handed to the generator: the same bits on every rank.
sim.bone.cell_centroids makes the centroids independent of the order of a cell's vertices.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import gstools as gs
import numpy as np

from sim.scenario.bone_heterogeneity import (
    AxialCorrelation,
    Heterogeneity,
    KozenyCarmanScaling,
    Trend,
)

#: Fourier modes of the randomization method (set explicitly: a change of gstools' default
#: would change every realisation). The sample variance of one realisation over a large
#: domain is within about 1/sqrt(MODES) (3 %) of 1.
MODES = 1000

#: Streams of derived seeds: one independent field per property.
BONE_VOLUME_FRACTION, PERMEABILITY = 0, 1

_MODELS = {"exponential": gs.Exponential, "gaussian": gs.Gaussian, "matern": gs.Matern}


def covariance_model(het: Heterogeneity) -> gs.CovModel:
    """The unit-variance gstools covariance model of the section: integral scale
    `correlation_length` along the principal axis, rotated onto it (angles from the axis)."""
    kwargs: dict[str, object] = {"nu": het.smoothness} if het.covariance == "matern" else {}
    length = c = het.correlation_length
    if isinstance(c, AxialCorrelation):
        ratio = c.across / c.along_axis  # of the integral scales as of the length scales
        kwargs |= {"anis": [ratio, ratio], "angles": angles_of(c.axis)}
        length = c.along_axis
    return _MODELS[het.covariance](dim=3, var=1.0, integral_scale=length, **kwargs)


def angles_of(axis: Sequence[float]) -> list[float]:
    """gstools' rotation angles (rad) whose first main axis is the unit vector `axis` (the
    roll about it is left 0: the correlation is transversely isotropic)."""
    ax, ay, az = axis
    return [math.atan2(ay, math.hypot(ax, az)), -math.atan2(az, ax), 0.0]


def field_seed(seed: int, stream: int) -> int:
    """The gstools seed of one property's field, derived from the scenario's seed."""
    return int(np.random.SeedSequence(seed, spawn_key=(stream,)).generate_state(1)[0])


def gaussian_field(model: gs.CovModel, seed: int, points: np.ndarray) -> np.ndarray:
    """A unit-variance Gaussian random field of `model` at points (n, 3) (m); the value at a
    point depends on nothing but its coordinates, the model and the seed."""
    generator = gs.SRF(model, seed=seed, mode_no=MODES).generator
    m = gs.tools.matrix_isometrize(model.dim, model.angles, model.anis)
    x = np.asarray(points, dtype=float)
    iso = m[:, 0, None] * x[:, 0] + m[:, 1, None] * x[:, 1] + m[:, 2, None] * x[:, 2]
    with _serial_cython():
        return generator(iso, add_nugget=False)


def property_field(het: Heterogeneity, stream: int, points: np.ndarray) -> np.ndarray:
    """The unit-variance Gaussian field of one property (BONE_VOLUME_FRACTION or PERMEABILITY)
    of the section at points (n, 3) (m)."""
    return gaussian_field(covariance_model(het), field_seed(het.seed, stream), points)


@contextlib.contextmanager
def _serial_cython() -> Iterator[None]:
    """gstools' Cython summator on one thread: the same code path everywhere (gstools-core,
    where installed, would be another one), and no threads competing with MPI ranks."""
    saved = gs.config.USE_GSTOOLS_CORE, gs.config.NUM_THREADS
    gs.config.USE_GSTOOLS_CORE, gs.config.NUM_THREADS = False, 1
    try:
        yield
    finally:
        gs.config.USE_GSTOOLS_CORE, gs.config.NUM_THREADS = saved


def lognormal_factor(g: np.ndarray, cv: float) -> np.ndarray:
    """exp(sigma g - sigma²/2) with sigma² = ln(1 + cv²): mean 1, coefficient of variation cv
    for a standard normal g."""
    sigma2 = math.log1p(cv * cv)
    return np.exp(math.sqrt(sigma2) * g - 0.5 * sigma2)


def along(points: np.ndarray, axis: Sequence[float]) -> np.ndarray:
    """Coordinates of points (n, 3) along a unit axis (m), elementwise (no BLAS)."""
    x = np.asarray(points, dtype=float)
    return x[:, 0] * axis[0] + x[:, 1] * axis[1] + x[:, 2] * axis[2]


def trend_factor(
    points: np.ndarray, trends: Sequence[Trend], extents: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Product of the linear trends at points (n, 3) (m): 1 + change (t - 1/2), t from 0 at
    the -axis end to 1 at the +axis end of each trend's extent (m, along its axis)."""
    factor = np.ones(len(points))
    for trend, (lo, hi) in zip(trends, extents, strict=True):
        if hi > lo:
            t = (along(points, trend.axis) - lo) / (hi - lo)
            factor *= 1.0 + trend.change * (t - 0.5)
    return factor


def bone_volume_fraction_factor(
    het: Heterogeneity, points: np.ndarray, extents: Sequence[tuple[float, float]]
) -> np.ndarray:
    """The BV/TV multiplier at points (n, 3) (m): trend times the log-normal random factor;
    extents: of the heterogeneity regions along each trend's axis (m)."""
    factor = trend_factor(points, het.trend, extents)
    if het.bone_volume_fraction_cv > 0:
        g = property_field(het, BONE_VOLUME_FRACTION, points)
        factor *= lognormal_factor(g, het.bone_volume_fraction_cv)
    return factor


def permeability_factor(
    het: Heterogeneity, points: np.ndarray, porosity: np.ndarray, base_porosity: np.ndarray
) -> np.ndarray:
    """The permeability multiplier at points (n, 3) (m): the law's ratio at the new vs the
    base porosity times the independent log-normal scatter."""
    law = het.permeability
    if isinstance(law, KozenyCarmanScaling):
        factor = (porosity / base_porosity) ** 3 * ((1 - base_porosity) / (1 - porosity)) ** 2
    else:
        factor = (porosity / base_porosity) ** law.exponent
    s = het.permeability_log_std
    if s > 0:
        h = property_field(het, PERMEABILITY, points)
        factor = factor * np.exp(s * h - 0.5 * s * s)
    return factor


__all__ = [
    "MODES",
    "bone_volume_fraction_factor",
    "covariance_model",
    "gaussian_field",
    "permeability_factor",
    "property_field",
    "trend_factor",
]
