"""From CT numbers to porosity and permeability: HU -> BMD -> BV/TV -> phi -> K.

Pure, vectorised functions in SI units (densities in kg/m³, lengths in m, permeability in
m²), and `CTMapping`, which holds every parameter of the chain and maps an array of HU to
porosity and 3x3 permeability tensors.

Note on units: 1 mg/cm³ = 1 kg/m³, so a phantom calibration quoted in mg/cm³ per HU is used
unchanged as (kg/m³) per HU.

The chain, with its defaults and their sources (details in each function):

    BMD   = slope * HU + intercept                      slope 0.7 (kg/m³)/HU, intercept -9 kg/m³
    BV/TV = BMD / TMD                                   TMD 1240 kg/m³
    phi   = clip(1 - BV/TV, phi_min, phi_max)           0.05 .. 0.98
    k_a   = law(phi)   (along the principal axis)       Kozeny-Carman, see DEFAULT_SPECIFIC_SURFACE
    K     = k_t I + (k_a - k_t) a a^T, k_t = ratio k_a  ratio 3.44/4.45 (Baroud 2004), a = +z

What the sources are, and how much of them we saw (only stored public copies were consulted):

- Calibration HU -> ash density: Dragomir-Daescu et al. 2011 (femur, K2HPO4 Mindways phantom,
  Siemens Somatom Definition, 120 kVp), rho_ash [g/cm³] = -0.009 + 0.0007 HU, as tabulated
  in the review of Knowles, Reeves & Ferreira 2016, J Exp Orthop, "Quantitative computed
  tomography (QCT) derived bone mineral density (BMD) in finite element studies: a review
  of the literature", doi:10.1186/s40634-016-0072-2 (we saw the review's table, not the
  original paper). A calibration belongs to one scanner, protocol and phantom: replace it
  with the user's own phantom fit. The same review stresses that most studies mix
  relations from different sites and scanners.
- Tissue mineral (ash) density: Tassani, Öhman, Baruffaldi, Baleani & Viceconti 2011,
  J Biomech 44:103-108, "Volume to density relation in adult human bone tissue":
  TMD = rho_ash / (BV/TV) = 1.24 ± 0.16 g/cm³ for trabecular (1.19 ± 0.06 cortical) bone,
  and rho_ash vs BV/TV linear with r² = 0.99 (abstract only).
- Permeability magnitude and anisotropy: Baroud, Falk, Crookshank, Sponagel & Steffen 2004,
  J Biomech 37:189-196: lumbar vertebral cores, silicone oil, mean permeability
  4.45 ± 1.72e-8 m² superior-inferior and 3.44 ± 1.26e-8 m² antero-posterior (AP about 78 %
  of SI at about equal porosity); BMD a weak predictor of permeability. They fitted a
  porosity-permeability model, but its form and coefficients were not in the material
  available to us (abstract only), nor were the mean porosities of the cores.
  Nauman, Fong & Keaveny 1999, Ann Biomed Eng 27:517-524: intertrabecular permeability
  2.68e-11 to 2.00e-8 m² over human vertebral body, human proximal femur and bovine tibia;
  significant negative nonlinear relations with volume fraction; longitudinal/transverse
  ratio 2.05 for the human vertebral body (abstract only: no fit coefficients).
  Kohles & Roberts 2002 (J Biomech Eng 124:521) fitted a Kozeny equation to bovine data
  (C = 0.022), but the form of their equation was not available to us, so it is not used.
- Kozeny-Carman: K = phi³ / (c S² (1 - phi)²), S the solid surface per solid volume,
  c = 5 (Carman's value of the Kozeny constant for packed beds; equivalently
  K = phi³ d² / (180 (1 - phi)²) for spheres of diameter d, S = 6/d).

Because no published porosity-permeability fit for vertebral bone was available to us, the
default Kozeny-Carman specific surface is a *calibration*, not a literature fit: the curve is
anchored so that K(0.95) equals Baroud's mean SI permeability, 4.45e-8 m², at the upper end of
the osteoporotic porosity range 0.85-0.95 of DESIGN.md §2. That placement is our assumption.
It gives K = 1.66e-9 m² at phi 0.80, 3.5e-9 at 0.85, 9.5e-9 at 0.90 and 4.45e-8 at 0.95, and
S = 3.93e4 1/m (= 4/d for rod-like trabeculae of d ≈ 0.10 mm). The power-law and log-linear
defaults are two-point fits of that same curve at phi 0.80 and 0.95, provided so that a user
can drop in published coefficients; they are not independent evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike

# ---------------------------------------------------------------- defaults and their sources

#: HU -> BMD slope, (kg/m³) per HU (= mg/cm³ per HU). Dragomir-Daescu et al. 2011 via the
#: review of Knowles et al. 2016 (rho_ash = -0.009 + 0.0007 HU g/cm³). Scanner-specific.
DEFAULT_HU_SLOPE = 0.7
#: HU -> BMD intercept (kg/m³), same source.
DEFAULT_HU_INTERCEPT = -9.0
#: Tissue mineral (ash) density of trabecular bone (kg/m³): 1.24 ± 0.16 g/cm³, Tassani 2011.
DEFAULT_TISSUE_MINERAL_DENSITY = 1240.0
#: Porosity limits. The lower one keeps cortical voxels (porosity 3-10 % in the usual
#: histomorphometric range) as a nearly impermeable, still positive pore space; the upper one
#: keeps Kozeny-Carman finite where the CT shows marrow, fat, air or a lytic void (BV/TV <= 0).
DEFAULT_POROSITY_MIN = 0.05
DEFAULT_POROSITY_MAX = 0.98
#: Carman's Kozeny constant (packed beds).
DEFAULT_KOZENY_CONSTANT = 5.0
#: Calibration anchor of the default permeability law (see the module docstring).
ANCHOR_POROSITY = 0.95
ANCHOR_PERMEABILITY = 4.45e-8  # m², Baroud 2004 mean superior-inferior
#: AP / SI permeability ratio, Baroud 2004: 3.44e-8 / 4.45e-8 = 0.773.
DEFAULT_ANISOTROPY_RATIO = 3.44 / 4.45
#: Principal (cranio-caudal) axis: +z.
DEFAULT_PRINCIPAL_AXIS = (0.0, 0.0, 1.0)

PermeabilityLaw = Literal["kozeny_carman", "power_law", "log_linear"]
_LAWS: tuple[PermeabilityLaw, ...] = ("kozeny_carman", "power_law", "log_linear")


def _as_float_array(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _check_open_unit(phi: np.ndarray, what: str) -> None:
    bad = ~((phi > 0.0) & (phi < 1.0))
    if np.any(bad):
        values = phi[bad]
        finite = values[np.isfinite(values)]
        span = f"min {finite.min():g}, max {finite.max():g}" if finite.size else "none finite"
        raise ValueError(
            f"{what} needs porosity strictly between 0 and 1; {int(bad.sum())} of {phi.size} "
            f"values are not ({span}; {int(np.isnan(values).sum())} NaN)"
        )


# ---------------------------------------------------------------- HU <-> BMD


def hu_to_bmd(
    hu: ArrayLike, slope: float = DEFAULT_HU_SLOPE, intercept: float = DEFAULT_HU_INTERCEPT
) -> np.ndarray:
    """Bone mineral density (kg/m³) from CT numbers by a linear phantom calibration.

    BMD = slope * HU + intercept, slope in (kg/m³)/HU and intercept in kg/m³ (numerically the
    same as mg/cm³ per HU and mg/cm³).

    Default: Dragomir-Daescu et al. 2011, rho_ash = -0.009 + 0.0007 HU (g/cm³), i.e. slope
    0.7 and intercept -9 kg/m³ (femur, K2HPO4 phantom, Siemens Somatom Definition, 120 kVp),
    as tabulated in Knowles, Reeves & Ferreira 2016, J Exp Orthop (review). It gives ash
    density, which is what the default tissue density (Tassani 2011, also ash-based)
    expects. Calibrations are scanner- and protocol-specific: pass your own.
    """
    if slope == 0.0:
        raise ValueError("the HU -> BMD slope must be nonzero")
    return slope * _as_float_array(hu) + intercept


def bmd_to_hu(
    bmd: ArrayLike, slope: float = DEFAULT_HU_SLOPE, intercept: float = DEFAULT_HU_INTERCEPT
) -> np.ndarray:
    """CT number from BMD (kg/m³): the inverse of `hu_to_bmd`, HU = (BMD - intercept) / slope."""
    if slope == 0.0:
        raise ValueError("the HU -> BMD slope must be nonzero")
    return (_as_float_array(bmd) - intercept) / slope


# ---------------------------------------------------------------- BMD <-> BV/TV <-> phi


def bmd_to_bone_volume_fraction(
    bmd: ArrayLike, tissue_mineral_density: float = DEFAULT_TISSUE_MINERAL_DENSITY
) -> np.ndarray:
    """Bone volume fraction BV/TV (-) from BMD (kg/m³): BV/TV = BMD / TMD.

    TMD is the mineral (ash) density of the bone tissue itself. Default 1240 kg/m³:
    Tassani et al. 2011, J Biomech 44:103-108 (abstract): TMD = rho_ash / (BV/TV) =
    1.24 ± 0.16 g/cm³ in adult human trabecular bone, not different from cortical bone
    (1.19 ± 0.06), with rho_ash linear in BV/TV (r² = 0.99). Not clipped: values outside
    [0, 1] (fat, air, metal) are left for `porosity_from_bone_volume_fraction` to clip.
    """
    if tissue_mineral_density <= 0.0:
        raise ValueError(f"tissue_mineral_density must be > 0 kg/m^3, got {tissue_mineral_density}")
    return _as_float_array(bmd) / tissue_mineral_density


def bone_volume_fraction_to_bmd(
    bone_volume_fraction: ArrayLike, tissue_mineral_density: float = DEFAULT_TISSUE_MINERAL_DENSITY
) -> np.ndarray:
    """BMD (kg/m³) from BV/TV: the inverse of `bmd_to_bone_volume_fraction`."""
    if tissue_mineral_density <= 0.0:
        raise ValueError(f"tissue_mineral_density must be > 0 kg/m^3, got {tissue_mineral_density}")
    return _as_float_array(bone_volume_fraction) * tissue_mineral_density


def porosity_from_bone_volume_fraction(
    bone_volume_fraction: ArrayLike,
    porosity_min: float = DEFAULT_POROSITY_MIN,
    porosity_max: float = DEFAULT_POROSITY_MAX,
) -> np.ndarray:
    """Porosity phi = 1 - BV/TV, clipped to [porosity_min, porosity_max].

    Defaults 0.05 and 0.98: the minimum keeps cortical bone (3-10 % porosity) a positive but
    nearly impermeable pore space; the maximum keeps the permeability laws finite (Kozeny-
    Carman diverges as phi -> 1) where the CT shows marrow, fat, air or a lytic cavity
    (BV/TV <= 0 with the default calibration: water, HU 0, maps to BMD -9 kg/m³).
    """
    if not 0.0 < porosity_min < porosity_max < 1.0:
        raise ValueError(
            "porosity limits must satisfy 0 < porosity_min < porosity_max < 1, got "
            f"{porosity_min} and {porosity_max}"
        )
    return np.clip(1.0 - _as_float_array(bone_volume_fraction), porosity_min, porosity_max)


# ---------------------------------------------------------------- permeability laws


def specific_surface_from_thickness(
    thickness: float, shape: Literal["rod", "plate"] = "rod"
) -> float:
    """Solid surface per solid volume S (1/m) of cylindrical rods (4/d) or flat plates (2/t).

    With S = 6/d for spheres, Kozeny-Carman becomes the familiar K = phi³ d² / (180 (1-phi)²).
    """
    if thickness <= 0.0:
        raise ValueError(f"trabecular thickness must be > 0 m, got {thickness}")
    factors = {"rod": 4.0, "plate": 2.0}
    if shape not in factors:
        raise ValueError(f"shape must be 'rod' or 'plate', got {shape!r}")
    return factors[shape] / thickness


def kozeny_carman_specific_surface(
    k_ref: float, phi_ref: float, kozeny_constant: float = DEFAULT_KOZENY_CONSTANT
) -> float:
    """The specific surface S (1/m) for which Kozeny-Carman passes through (phi_ref, k_ref).

    S = sqrt(phi_ref³ / (c k_ref (1 - phi_ref)²)).
    """
    if k_ref <= 0.0 or kozeny_constant <= 0.0:
        raise ValueError("k_ref and kozeny_constant must be > 0")
    _check_open_unit(np.asarray([phi_ref], dtype=float), "kozeny_carman_specific_surface")
    return math.sqrt(phi_ref**3 / (kozeny_constant * k_ref * (1.0 - phi_ref) ** 2))


#: Default Kozeny-Carman specific surface (1/m): the calibration through
#: (ANCHOR_POROSITY, ANCHOR_PERMEABILITY) with c = 5; about 3.93e4 1/m.
DEFAULT_SPECIFIC_SURFACE = kozeny_carman_specific_surface(
    ANCHOR_PERMEABILITY, ANCHOR_POROSITY, DEFAULT_KOZENY_CONSTANT
)


def kozeny_carman_permeability(
    phi: ArrayLike,
    specific_surface: float = DEFAULT_SPECIFIC_SURFACE,
    kozeny_constant: float = DEFAULT_KOZENY_CONSTANT,
) -> np.ndarray:
    """Kozeny-Carman permeability (m²): K = phi³ / (c S² (1 - phi)²).

    phi: porosity in (0, 1); S: solid surface per solid volume (1/m, BS/BV in bone
    histomorphometry); c: Kozeny constant, 5 for packed beds (Carman). Defaults: c = 5 and
    S = DEFAULT_SPECIFIC_SURFACE, a calibration (not a literature fit) that puts Baroud et
    al.'s 2004 mean cranio-caudal vertebral permeability, 4.45e-8 m², at phi = 0.95; see the
    module docstring. Default values: 1.66e-9 m² at phi 0.80, 4.45e-8 m² at 0.95.
    """
    if specific_surface <= 0.0 or kozeny_constant <= 0.0:
        raise ValueError("specific_surface and kozeny_constant must be > 0")
    p = _as_float_array(phi)
    _check_open_unit(p, "Kozeny-Carman")
    return p**3 / (kozeny_constant * specific_surface**2 * (1.0 - p) ** 2)


def power_law_permeability(phi: ArrayLike, coefficient: float, exponent: float) -> np.ndarray:
    """Power-law permeability (m²): K = a phi^b, a in m².

    The usual form of empirical porosity fits of trabecular-bone permeability. Defaults in
    `CTMapping` (DEFAULT_POWER_COEFFICIENT, DEFAULT_POWER_EXPONENT) are a two-point fit of the
    default Kozeny-Carman curve at phi 0.80 and 0.95, not a published fit: put published
    coefficients here when you have them.
    """
    if coefficient <= 0.0:
        raise ValueError(f"power-law coefficient must be > 0 m^2, got {coefficient}")
    p = _as_float_array(phi)
    _check_open_unit(p, "the power law")
    return coefficient * p**exponent


def log_linear_permeability(phi: ArrayLike, intercept: float, slope: float) -> np.ndarray:
    """Exponential (log-linear) permeability (m²): ln K = c0 + c1 phi, K in m².

    Log-linear regressions of permeability on structural parameters are used for vertebral
    bone by Widmer & Ferguson 2013 (Comput Methods Biomech Biomed Engin 16:908; abstract
    only, coefficients not available to us). Defaults in `CTMapping` are a two-point fit of
    the default Kozeny-Carman curve at phi 0.80 and 0.95.
    """
    p = _as_float_array(phi)
    _check_open_unit(p, "the log-linear law")
    return np.exp(intercept + slope * p)


def _two_point_fits() -> tuple[float, float, float, float]:
    lo, hi = 0.80, ANCHOR_POROSITY
    k_lo, k_hi = (float(kozeny_carman_permeability(p)) for p in (lo, hi))
    exponent = math.log(k_hi / k_lo) / math.log(hi / lo)
    coefficient = k_hi / hi**exponent
    slope = math.log(k_hi / k_lo) / (hi - lo)
    intercept = math.log(k_hi) - slope * hi
    return coefficient, exponent, intercept, slope


#: Two-point fits of the default Kozeny-Carman curve at phi 0.80 and 0.95 (K = a phi^b with
#: a ≈ 1.2e-7 m², b ≈ 19.1; ln K = c0 + c1 phi with c0 ≈ -37.75, c1 ≈ 21.9).
(
    DEFAULT_POWER_COEFFICIENT,
    DEFAULT_POWER_EXPONENT,
    DEFAULT_LOG_LINEAR_INTERCEPT,
    DEFAULT_LOG_LINEAR_SLOPE,
) = _two_point_fits()


# ---------------------------------------------------------------- anisotropy


def _unit_axes(axis: ArrayLike) -> np.ndarray:
    a = _as_float_array(axis)
    if a.shape[-1:] != (3,):
        raise ValueError(f"axis must have shape (3,) or (n, 3), got {a.shape}")
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm == 0.0):
        raise ValueError("every principal axis must be a finite, nonzero vector")
    return a / norm


def permeability_tensor(
    k_principal_axis: ArrayLike,
    ratio: ArrayLike = DEFAULT_ANISOTROPY_RATIO,
    axis: ArrayLike = DEFAULT_PRINCIPAL_AXIS,
) -> np.ndarray:
    """Transversely isotropic permeability tensor(s): K = k_t I + (k_a - k_t) a a^T.

    k_a = k_principal_axis is the permeability along the unit principal axis a (normalised
    here), k_t = ratio * k_a the permeability in every direction across it. Vectorised:
    k_principal_axis of shape (n,) (or scalar), ratio scalar or (n,), axis (3,) or (n, 3)
    (one axis per cell: a rotated principal direction); returns (n, 3, 3) ((3, 3) for all
    scalar inputs). Eigenvalues: k_a (eigenvector a) and k_t twice; symmetric positive
    definite when k_a > 0 and ratio > 0.

    Default: ratio = 3.44/4.45 = 0.773 (antero-posterior / superior-inferior means of Baroud
    et al. 2004, J Biomech 37:189) and a = +z (cranio-caudal). Nauman et al. 1999 report a
    longitudinal/transverse ratio of 2.05 for the human vertebral body (ratio 0.49).
    """
    k_a = _as_float_array(k_principal_axis)
    r = _as_float_array(ratio)
    if np.any(~(k_a > 0.0)):
        raise ValueError("the principal permeability must be > 0 m^2 everywhere")
    if np.any(~(r > 0.0)):
        raise ValueError("the anisotropy ratio k_transverse / k_axial must be > 0")
    a = _unit_axes(axis)
    k_a, r = np.broadcast_arrays(k_a, r)
    lead = np.broadcast_shapes(k_a.shape, a.shape[:-1])
    k_a = np.broadcast_to(k_a, lead)
    r = np.broadcast_to(r, lead)
    a = np.broadcast_to(a, (*lead, 3))
    k_t = r * k_a
    outer = a[..., :, None] * a[..., None, :]
    eye = np.broadcast_to(np.eye(3), (*lead, 3, 3))
    return k_t[..., None, None] * eye + (k_a - k_t)[..., None, None] * outer


# ---------------------------------------------------------------- the whole chain


@dataclass(frozen=True)
class CTMapping:
    """Parameters of the chain HU -> BMD -> BV/TV -> phi -> K, with literature defaults.

    hu_slope ((kg/m³)/HU), hu_intercept (kg/m³): phantom calibration BMD = slope HU + intercept.
    tissue_mineral_density (kg/m³): BV/TV = BMD / TMD.
    porosity_min, porosity_max: clipping of phi = 1 - BV/TV.
    law: "kozeny_carman" (specific_surface 1/m, kozeny_constant), "power_law"
    (power_coefficient m², power_exponent) or "log_linear" (log_linear_intercept,
    log_linear_slope); the law gives the permeability along the principal axis.
    anisotropy_ratio: k_transverse / k_axial; principal_axis: the axis (normalised).
    image: what the values are: "hu" (CT numbers, the whole chain) or "bone_fraction" (BV/TV
    itself, e.g. the cell means of a segmented micro-CT; the calibration is not used).
    See the module docstring for the sources and what each default is.
    """

    hu_slope: float = DEFAULT_HU_SLOPE
    hu_intercept: float = DEFAULT_HU_INTERCEPT
    tissue_mineral_density: float = DEFAULT_TISSUE_MINERAL_DENSITY
    porosity_min: float = DEFAULT_POROSITY_MIN
    porosity_max: float = DEFAULT_POROSITY_MAX
    law: PermeabilityLaw = "kozeny_carman"
    kozeny_constant: float = DEFAULT_KOZENY_CONSTANT
    specific_surface: float = DEFAULT_SPECIFIC_SURFACE
    power_coefficient: float = DEFAULT_POWER_COEFFICIENT
    power_exponent: float = DEFAULT_POWER_EXPONENT
    log_linear_intercept: float = DEFAULT_LOG_LINEAR_INTERCEPT
    log_linear_slope: float = DEFAULT_LOG_LINEAR_SLOPE
    anisotropy_ratio: float = DEFAULT_ANISOTROPY_RATIO
    principal_axis: tuple[float, float, float] = field(default=DEFAULT_PRINCIPAL_AXIS)
    image: Literal["hu", "bone_fraction"] = "hu"

    def __post_init__(self) -> None:
        problems = []
        if not (np.isfinite(self.hu_slope) and self.hu_slope != 0.0):
            problems.append(f"hu_slope must be finite and nonzero, got {self.hu_slope}")
        if not np.isfinite(self.hu_intercept):
            problems.append(f"hu_intercept must be finite, got {self.hu_intercept}")
        if not self.tissue_mineral_density > 0.0:
            problems.append(
                f"tissue_mineral_density must be > 0 kg/m^3, got {self.tissue_mineral_density}"
            )
        if not 0.0 < self.porosity_min < self.porosity_max < 1.0:
            problems.append(
                "need 0 < porosity_min < porosity_max < 1, got "
                f"{self.porosity_min} and {self.porosity_max}"
            )
        if self.law not in _LAWS:
            problems.append(
                f"law must be 'kozeny_carman', 'power_law' or 'log_linear', got {self.law!r}"
            )
        for name in ("power_exponent", "log_linear_intercept", "log_linear_slope"):
            if not np.isfinite(getattr(self, name)):
                problems.append(f"{name} must be finite, got {getattr(self, name)}")
        for name in (
            "kozeny_constant",
            "specific_surface",
            "power_coefficient",
            "anisotropy_ratio",
        ):
            if not getattr(self, name) > 0.0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        axis = np.asarray(self.principal_axis, dtype=float)
        if axis.shape != (3,) or not np.all(np.isfinite(axis)) or not np.any(axis != 0.0):
            problems.append(f"principal_axis must be a nonzero 3-vector, got {self.principal_axis}")
        if problems:
            raise ValueError("invalid CTMapping: " + "; ".join(problems))
        object.__setattr__(self, "principal_axis", tuple(float(v) for v in axis))

    # --- forward
    def bmd(self, hu: ArrayLike) -> np.ndarray:
        """BMD (kg/m³) of CT numbers."""
        return hu_to_bmd(hu, self.hu_slope, self.hu_intercept)

    def bone_volume_fraction(self, hu: ArrayLike) -> np.ndarray:
        """BV/TV (-) of CT numbers (or of bone fractions, which are that), unclipped."""
        if self.image == "bone_fraction":
            return _as_float_array(hu)
        return bmd_to_bone_volume_fraction(self.bmd(hu), self.tissue_mineral_density)

    def porosity(self, hu: ArrayLike) -> np.ndarray:
        """Porosity (-) of CT numbers, clipped to [porosity_min, porosity_max]."""
        return porosity_from_bone_volume_fraction(
            self.bone_volume_fraction(hu), self.porosity_min, self.porosity_max
        )

    def axial_permeability(self, phi: ArrayLike) -> np.ndarray:
        """Permeability (m²) along the principal axis by the chosen law."""
        if self.law == "kozeny_carman":
            return kozeny_carman_permeability(phi, self.specific_surface, self.kozeny_constant)
        if self.law == "power_law":
            return power_law_permeability(phi, self.power_coefficient, self.power_exponent)
        return log_linear_permeability(phi, self.log_linear_intercept, self.log_linear_slope)

    def permeability(self, phi: ArrayLike, axis: ArrayLike | None = None) -> np.ndarray:
        """Permeability tensors (m², shape phi.shape + (3, 3)) of porosities.

        axis: None (principal_axis for every cell) or an (n, 3) array of per-cell axes.
        """
        return permeability_tensor(
            self.axial_permeability(phi),
            self.anisotropy_ratio,
            self.principal_axis if axis is None else axis,
        )

    def properties(
        self, hu: ArrayLike, axis: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Porosity (n,) and permeability tensors (n, 3, 3) of CT numbers hu (n,)."""
        h = _as_float_array(hu)
        if h.ndim != 1:
            raise ValueError(
                f"properties() expects a 1-D array of HU (one per cell), got {h.shape}"
            )
        if not np.all(np.isfinite(h)):
            raise ValueError(f"{int((~np.isfinite(h)).sum())} of {h.size} HU values are not finite")
        phi = self.porosity(h)
        return phi, self.permeability(phi, axis)

    # --- inverse (for synthetic volumes)
    def hu_from_porosity(self, phi: ArrayLike) -> np.ndarray:
        """CT numbers that map back to porosity phi: phi -> BV/TV -> BMD -> HU.

        Exact inverse (to round-off) for porosities inside [porosity_min, porosity_max];
        ValueError for any outside, since clipping would not give them back.
        """
        p = _as_float_array(phi)
        outside = ~((p >= self.porosity_min) & (p <= self.porosity_max))
        if np.any(outside):
            raise ValueError(
                f"{int(outside.sum())} of {p.size} porosities are outside "
                f"[{self.porosity_min}, {self.porosity_max}] (the mapping's clipping range), "
                "so no CT number maps back to them"
            )
        bmd = bone_volume_fraction_to_bmd(1.0 - p, self.tissue_mineral_density)
        return bmd_to_hu(bmd, self.hu_slope, self.hu_intercept)


def describe_defaults(porosities: Sequence[float] = (0.80, 0.85, 0.90, 0.95)) -> str:
    """A short table of the default laws at a few porosities (for logs and docs)."""
    rows = [f"{'phi':>5} {'HU':>8} {'K_KC':>10} {'K_power':>10} {'K_loglin':>10}"]
    for p in porosities:
        hu = float(CTMapping().hu_from_porosity(p))
        ks = [float(CTMapping(law=law).axial_permeability(p)) for law in _LAWS]
        rows.append(f"{p:5.2f} {hu:8.1f} " + " ".join(f"{k:10.3e}" for k in ks))
    return "\n".join(rows)
