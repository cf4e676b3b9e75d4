"""Sensible physics on the shipped anatomy scenarios (coarse meshes, Newtonian cement)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim import measurements as measure
from sim.scenario import validate_scenario

from ..verification.conftest import run_conservative as _run

FAST = {"rheology": {"model": "newtonian", "viscosity": 100.0}}
COARSE = {"size_tip": 1.0e-3, "size_max": 5e-3, "size_outlet": 1.0e-3}


def _scenario(path: Path, edit: Any = None) -> Any:
    data = yaml.safe_load(path.read_text())
    data["cement"] = copy.deepcopy(FAST)
    data["geometry"]["mesh"] = {**data["geometry"].get("mesh", {}), **COARSE}
    if edit is not None:
        edit(data)
    return validate_scenario(data, str(path))


def _first_leak(pb) -> float:
    """Earliest time (s) any route reached the leak threshold (inf: never)."""
    return min(
        (t for t in measure.first_leak_times(pb).values() if t is not None), default=float("inf")
    )


@pytest.mark.serial  # a physics trend; these meshes run on 2 ranks in test_vertebral_body
def test_a_posterior_defect_near_the_tip_leaks_earlier(scenarios):
    path = scenarios / "anatomy" / "vertebroplasty_posterior_defect.yaml"

    def no_defect(d: dict) -> None:
        del d["geometry"]["posterior_defect"]
        del d["leak_routes"]["spinal_canal"]

    with_defect = _run(_scenario(path))
    without = _run(_scenario(path, no_defect))
    assert measure.route(with_defect, "spinal_canal").leaked > 0
    assert _first_leak(with_defect) < _first_leak(without)


@pytest.mark.serial  # a physics trend; these meshes run on 2 ranks in test_vertebral_body
def test_a_permeable_cleft_draws_the_cement_into_it(scenarios):
    path = scenarios / "anatomy" / "vertebroplasty_cleft.yaml"

    def cleft_k(k: float):
        def edit(d: dict) -> None:
            d["geometry"]["cleft"]["thickness"] = "3 mm"
            d["bone"]["regions"]["cleft"]["permeability"] = k

        return edit

    permeable = _run(_scenario(path, cleft_k(1e-6)))
    like_bone = _run(_scenario(path, cleft_k(4e-8)))
    assert measure.fill_fraction(permeable, "cleft") > 1.5 * measure.fill_fraction(
        like_bone, "cleft"
    )


@pytest.mark.parametrize(
    "name",
    [
        "vertebroplasty_L1_unipedicular",
        "vertebroplasty_L1_bipedicular",
        "vertebroplasty_lytic_lesion",
    ],
)
def test_shipped_anatomy_scenarios_run(scenarios, name):
    pb = _run(_scenario(scenarios / "anatomy" / f"{name}.yaml"))
    assert pb.injector.finished()
    if name == "vertebroplasty_lytic_lesion":
        # the open lesion around the tip fills first
        assert measure.fill_fraction(pb, "lesion") > 3 * measure.fill_fraction(pb, "anterior")
    elif name == "vertebroplasty_L1_unipedicular":
        # one needle, from the left pedicle to just past the midline
        assert [n.name for n in pb.needles] == ["left"]
        assert pb.needles[0].protocol.injected == pytest.approx(3e-6, rel=1e-12)
        assert measure.fill_fraction(pb, "anterior") > 0
    else:
        assert {n.name for n in pb.needles} == {"left", "right"}
        assert all(n.protocol.injected == pytest.approx(1.5e-6, rel=1e-12) for n in pb.needles)
