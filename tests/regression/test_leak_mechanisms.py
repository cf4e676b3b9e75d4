"""Mechanisms that make the cement's viscosity matter for leakage.

Viscosity ratio with the displaced phase (Trivedi et al. 2023, Biomech Model Mechanobiol
22:1253, abstract: "the marrow viscosity is identified as the crucial reference to
categorize bone cements as high- or low-viscosity"): with a displaced phase much less viscous
than the cement the cloud grows compactly and reaches the veins late; as the ratio falls
towards 1 the cement follows the displaced phase's own path to the veins, so it leaks
earlier and more. Threshold openings (pressure-dependent opening) are tested with the other
leak routes (test_leak_routes.py).
"""

from __future__ import annotations

import pytest

from sim.scenario import load_scenario

from ..verification.conftest import run_conservative

#: displaced-phase viscosity (Pa s) -> (leaked mL, injected mL at the first leak) pinned from
#: a run of this set-up (cement 65 Pa s: viscosity ratios 1300, 10 and 1)
PINNED = {0.05: (0.01263, 2.259), 6.5: (0.3565, 0.9854), 65.0: (1.132, 0.3949)}


def test_leakage_grows_as_the_viscosity_ratio_falls(scenarios):
    results = {}
    for marrow in PINNED:
        sc = load_scenario(
            scenarios / "vertebroplasty.yaml",
            [
                "geometry.mesh={size_tip: 1 mm, size_max: 5 mm, growth: 0.25, size_outlet: 1 mm}",
                "injection.needles.0.tip=[-8, 0, 0] mm",
                "cement={rheology: {model: newtonian, viscosity: 65 Pa*s}}",
                f"marrow.viscosity={marrow} Pa*s",
                "leak_routes={basivertebral: {kind: vein, boundary: basivertebral_foramen, "
                "diameter: 2 mm, length: 10 mm, pressure: 1 kPa}, segmental_veins: {kind: vein, "
                "boundary: [segmental_vein_left, segmental_vein_right], diameter: 1.5 mm, "
                "length: 10 mm, pressure: 1 kPa}}",
                "output.leak_threshold=1 uL",
            ],
        )
        pb = run_conservative(sc)
        volume = pb.route("basivertebral").leaked
        first = pb.first_leak_times()["basivertebral"]
        results[marrow] = (1e6 * volume, 1e6 * sc.injection.needles[0].rate * first)
    print(results)
    leaked = [results[m][0] for m in PINNED]
    at_first = [results[m][1] for m in PINNED]
    assert leaked[0] < leaked[1] < leaked[2]
    assert at_first[0] > at_first[1] > at_first[2]
    for marrow, (volume, first) in PINNED.items():
        assert results[marrow][0] == pytest.approx(volume, rel=0.02)
        assert results[marrow][1] == pytest.approx(first, rel=0.02)


def test_a_resolved_basivertebral_vein_is_a_low_resistance_path(scenarios):
    """The vein's intraosseous trunk resolved as a channel (Poiseuille-equivalent
    permeability r^2/8, a `region` leak route) draws the cement: it leaks after less
    injected volume than the same bone draining through the foramen alone."""
    radius = 1e-3
    common = [
        "geometry.mesh={size_tip: 1 mm, size_max: 5 mm, growth: 0.25, size_outlet: 1 mm}",
        "injection.needles.0.tip=[-2, 0, 0] mm",
        "injection.needles.0.volume=2 mL",
        "cement={rheology: {model: newtonian, viscosity: 100 Pa*s}}",
    ]
    without = run_conservative(load_scenario(scenarios / "vertebroplasty.yaml", common))
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            *common,
            f"geometry.basivertebral_vein={{radius: {radius}, length: 10 mm}}",
            f"bone.regions={{basivertebral_vein: {{porosity: 0.99, "
            f"permeability: {radius**2 / 8}}}}}",
            "leak_routes.vein_trunk={kind: region, regions: [basivertebral_vein]}",
        ],
    )
    with_vein = run_conservative(sc)
    rate = sc.injection.needles[0].rate
    first_without = without.first_leak_times()["basivertebral"]
    first_with = with_vein.first_leak_times()["vein_trunk"]
    print(f"first leak: {rate * (first_without or float('inf')) * 1e6:.3f} mL without the "
          f"vein, {rate * first_with * 1e6:.3f} mL into it")  # fmt: skip
    assert first_with is not None
    assert first_without is None or first_with < 0.5 * first_without
    assert with_vein.route("vein_trunk").leaked > 10 * without.route("basivertebral").leaked
