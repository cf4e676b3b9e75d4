"""Injections into the real vertebra and sacrum surfaces shipped in meshes/anatomy."""

from __future__ import annotations

import pytest

from sim import measurements as measure
from sim.scenario import load_scenario

from ..verification.conftest import run_conservative

COARSE = [
    "geometry.mesh.size_max=5 mm",
    "geometry.mesh.size_tip=0.55 mm",
    "cement={rheology: {model: newtonian, viscosity: 100 Pa*s}}",
    "output.fields=false",
]


def test_real_l1_body(scenarios):
    sc = load_scenario(
        scenarios / "anatomy" / "vertebroplasty_L1_real_surface.yaml",
        [*COARSE, "injection.needles.0.volume=1 mL"],
    )
    pb = run_conservative(sc)
    assert pb.needles[0].kind == "source"
    for name in ("basivertebral_foramen", "endplate_upper", "endplate_lower", "surface"):
        assert pb.comm.allreduce(len(pb.tagged.facets(name))) > 0, name
    assert 0 < measure.fill_fraction(pb, "anterior") < 1
    assert measure.cement_in_bone(pb) == pytest.approx(1e-6, rel=1e-6)


def test_real_sacrum_bilateral(scenarios):
    sc = load_scenario(
        scenarios / "anatomy" / "sacroplasty_real_sacrum.yaml",
        [*COARSE, "injection.needles.0.volume=1 mL", "injection.needles.1.volume=1 mL"],
    )
    pb = run_conservative(sc)
    assert [n.protocol.injected for n in pb.needles] == pytest.approx([1e-6, 1e-6], rel=1e-12)
    assert measure.route(pb, "cortical_veins").marrow_out > 0
