"""Sacroplasty physics on the idealised sacrum (geometry kind `sacrum`), coarse meshes.

The L5-S1 disc is a leak region on the S1 endplate: cement injected just below the endplate
enters it, cement injected deep in the ala (same volume) does not. Runs serially and under
``mpirun -n 2``; the full runs of the shipped scenarios are marked slow.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sim import measurements as measure
from sim.scenario import load_scenario, validate_scenario
from sim.shapes.sacrum import DEFAULTS, needle_path

from ..verification.conftest import run_conservative as _run

ANATOMY = Path(__file__).resolve().parents[2] / "scenarios" / "anatomy"
SHIPPED = ["sacroplasty_short_axis", "sacroplasty_long_axis", "sacroplasty_metastasis"]
FAST = {"rheology": {"model": "newtonian", "viscosity": 100.0}}
COARSE = {"size_tip": 1.2e-3, "size_max": 10e-3, "growth": 0.5, "size_outlet": 3e-3}
VOLUME = 2e-6  # m^3 (2 mL), the same for both tips
#: 4 mm below the centre of the S1 endplate, in the S1 body (sacral frame u = 0, w = -4 mm)
BELOW_ENDPLATE = [-2.571e-3, 0.0, -3.064e-3]


def _one_needle(tip: list[float] | None = None, path: dict[str, str] | None = None) -> Any:
    """The metastasis scenario without its tumours, one needle of 2 mL (tip or path)."""
    data = yaml.safe_load((ANATOMY / "sacroplasty_metastasis.yaml").read_text())
    data["cement"] = copy.deepcopy(FAST)
    del data["heat"]  # the flow only
    geo = data["geometry"]
    geo["mesh"] = dict(COARSE)
    geo["tumours"] = []
    for tumour in ("metastasis_left", "metastasis_right"):
        del data["bone"]["regions"][tumour]
    data["targets"] = {}
    needle: dict[str, Any] = {"name": "n", "gauge": 11, "rate": "2 mL/min", "volume": VOLUME}
    if tip is not None:
        needle["tip"] = tip
    if path is not None:
        geo["needle_paths"] = {"n": path}
    data["injection"]["needles"] = [needle]
    scenario = validate_scenario(data, "sacroplasty_disc")
    assert "l5_s1_disc" in scenario.leak_routes
    assert scenario.leak_routes["l5_s1_disc"].regions == ["disc_l5s1"]
    return scenario


@pytest.mark.serial  # the sacrum runs on 2 ranks in test_shipped_sacroplasty_scenario_runs
def test_cement_reaches_the_disc_only_from_a_tip_below_the_endplate():
    near = _run(_one_needle(tip=BELOW_ENDPLATE))
    deep = _run(_one_needle(path={"approach": "short_axis", "side": "left", "level": "S1"}))
    for pb in (near, deep):
        assert pb.injector.finished()
        assert pb.needles[0].protocol.injected == pytest.approx(VOLUME, rel=1e-12)
        assert pb.needles[0].kind == "cavity"
    threshold = near.scenario.output.leak_threshold
    first = measure.first_leak_times(near)["l5_s1_disc"]
    assert measure.route(near, "l5_s1_disc").leaked > 10 * threshold
    assert first is not None and 0.0 < first < near.state.t
    assert measure.route(deep, "l5_s1_disc").leaked < 1e-6 * VOLUME  # none beyond round-off
    assert measure.first_leak_times(deep)["l5_s1_disc"] is None
    # the deep tip is where the short-axis path puts it, in the left ala
    _, tip = needle_path("short_axis", "left", "S1", **DEFAULTS)
    np.testing.assert_allclose(deep.needles[0].tip, tip, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sacroplasty_scenario_validates(name):
    scenario = load_scenario(ANATOMY / f"{name}.yaml")
    assert scenario.name == name
    assert scenario.geometry.kind == "sacrum"
    total = sum(n.total_volume for n in scenario.injection.needles)
    assert 4e-6 <= total <= 8e-6  # 2-4 mL per side


#: under MPI one shipped file is enough to check the partitioned run (shorter suite)
RUN_UNDER_MPI = "sacroplasty_short_axis"


@pytest.mark.parametrize("as_shipped", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    "name",
    [n if n == RUN_UNDER_MPI else pytest.param(n, marks=pytest.mark.serial) for n in SHIPPED],
)
def test_shipped_sacroplasty_scenario_runs(name, as_shipped):
    """Each shipped file runs, coarse with a Newtonian cement (and as shipped when slow tests
    are asked for): every needle's volume in, conservative at every step, the cement mostly
    kept in the alae, where the needles are."""
    path = ANATOMY / f"{name}.yaml"
    if as_shipped:
        scenario = load_scenario(path)
    else:
        data = yaml.safe_load(path.read_text())
        data["cement"] = copy.deepcopy(FAST)
        data["geometry"]["mesh"] = dict(COARSE)
        data["heat"]["follow_up"] = 0.0  # heat on while the cement flows
        scenario = validate_scenario(data, str(path))
    pb = _run(scenario)
    assert pb.injector.finished()
    for needle, spec in zip(pb.needles, scenario.injection.needles, strict=True):
        assert needle.protocol.injected == pytest.approx(spec.total_volume, rel=1e-12)
    assert measure.fill_fraction(pb, "alae") > 0
    assert measure.leaked(pb) < 0.5 * sum(n.total_volume for n in scenario.injection.needles)
    heat = pb.optional[0]
    assert heat.energy_balance_error(pb.state) < 1e-10
    # this cement has no exotherm and enters at 22 C: the roots and the canal can only cool
    # (to within 1 uK: P1 conduction on tetrahedra is not monotone; measured 5e-10 K above)
    roots = heat.probe_temperatures()
    assert set(roots) == {"s1_root_left", "s1_root_right", "s2_root_left", "s2_root_right", "canal"}
    assert max(roots.values()) <= scenario.heat.body_temperature + 1e-6
