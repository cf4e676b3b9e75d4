"""Unit tests of the `sacrum` geometry kind of scenario files (sim.scenario.geometry).

Every bad input must give a ScenarioError naming the field, the bad value and what is
allowed, before any mesh is built (the sacrum's own checks are analytic). Scenarios are the
shipped sacroplasty files, modified as dicts and validated with `validate_scenario`.

Pure Python (no gmsh model, no dolfinx): runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from mpi4py import MPI  # noqa: F401  (before anything that may import dolfinx)

# isort: split
import numpy as np
import pytest

from sim.scenario import Scenario, load_scenario, validate_scenario
from sim.scenario.geometry import SacrumGeometry
from sim.shapes.sacrum import (
    DEFAULTS,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    needle_path,
    sacrum_contains,
)

from .scenario_support import assert_mentions, invalid, read

ANATOMY = Path(__file__).resolve().parents[2] / "scenarios" / "anatomy"
SHORT = ANATOMY / "sacroplasty_short_axis.yaml"
LONG = ANATOMY / "sacroplasty_long_axis.yaml"
METASTASIS = ANATOMY / "sacroplasty_metastasis.yaml"
TILT = math.radians(DEFAULTS["tilt"])


def sacral(u: float, y: float, w: float) -> list[float]:
    """Global point (m) of the sacral-frame point (u anterior, y, w cranial; mm) of the default
    sacrum (tilted by 40 deg about y)."""
    c, s = math.cos(TILT), math.sin(TILT)
    return [1e-3 * (u * c + w * s), 1e-3 * y, 1e-3 * (-u * s + w * c)]


#: points of the default sacrum (global, m) in each of its holes
IN_S1_LEFT_FORAMEN = sacral(-10.0, DEFAULTS["foramen_offsets"][0] * 1e3, -30.0)
IN_CANAL = sacral(-22.0, 0.0, -10.0)
IN_DISC = sacral(0.0, 0.0, 5.0)


@pytest.fixture
def short() -> dict[str, Any]:
    return read(SHORT)


@pytest.fixture
def metastasis() -> dict[str, Any]:
    return read(METASTASIS)


# --- good input ------------------------------------------------------------------------------


def test_values_with_units_are_in_si(short):
    short["geometry"].update(
        {
            "tilt": "35 deg",
            "endplate_width": "45 mm",
            "segment_heights": ["3 cm", "24 mm", 0.02],
            "foramen_offsets": ["25 mm", "21 mm"],
        }
    )
    geo = validate_scenario(short).geometry
    assert isinstance(geo, SacrumGeometry)
    assert geo.tilt == pytest.approx(math.radians(35.0), rel=1e-14)
    assert geo.shape_params()["tilt"] == pytest.approx(35.0, rel=1e-14)  # the builder's degrees
    assert geo.endplate_width == 0.045
    assert geo.segment_heights == (0.03, 0.024, 0.02)
    assert geo.foramen_offsets == (0.025, 0.021)
    assert [(f.side, f.offset, f.thickness, f.length) for f in geo.fracture_lines] == [
        ("left", 0.037, 0.004, None),
        ("right", 0.037, 0.004, None),
    ]
    assert (geo.mesh.size_tip, geo.mesh.size_max, geo.mesh.size_outlet) == (0.0012, 0.008, 0.004)


def test_defaults_are_the_builders(short):
    for key in [k for k in DEFAULTS if k in short["geometry"]]:
        del short["geometry"][key]
    params = validate_scenario(short).geometry.shape_params()
    assert params["tilt"] == pytest.approx(DEFAULTS["tilt"], rel=1e-14)
    for key, value in DEFAULTS.items():
        if key != "tilt":
            assert params[key] == pytest.approx(value, rel=1e-14), key


@pytest.mark.parametrize("path", [SHORT, LONG, METASTASIS], ids=lambda p: p.stem)
def test_shipped_sacroplasty_scenarios_validate(path):
    s = load_scenario(path)
    assert isinstance(s.geometry, SacrumGeometry)
    assert {n.name for n in s.injection.needles} == {"left", "right"}
    for n in s.injection.needles:
        assert sacrum_contains(n.tip, n.inner_radius + s.geometry.mesh.size_tip)
        assert n.entry is not None
    assert s.referenced_boundaries() <= s.geometry.boundary_names()
    assert s.referenced_regions() <= s.geometry.region_names()


@pytest.mark.parametrize("approach", ["short_axis", "long_axis"])
@pytest.mark.parametrize("level", ["S1", "S2"])
def test_needle_paths_set_tip_and_entry(short, approach, level):
    short["geometry"]["needle_paths"]["right"] = {
        "approach": approach,
        "side": "right",
        "level": level,
    }
    short["geometry"]["tilt"] = "30 deg"
    short["geometry"]["fracture_lines"] = []
    short["targets"] = {}
    for side in ("left", "right"):
        del short["bone"]["regions"][f"fracture_{side}"]
    s = validate_scenario(short)
    right = next(n for n in s.injection.needles if n.name == "right")
    entry, tip = needle_path(approach, "right", level, **{**DEFAULTS, "tilt": 30.0})
    np.testing.assert_allclose(right.tip, tip, rtol=0, atol=1e-12)
    np.testing.assert_allclose(right.entry, entry, rtol=0, atol=1e-12)


def test_resolved_scenario_validates_again(short):
    """The resolved scenario holds both the paths and the tips they gave: they agree."""
    s = validate_scenario(short)
    again = Scenario.model_validate(s.model_dump(mode="json"))
    assert again == s


def test_regions_follow_the_features(metastasis):
    geo = validate_scenario(metastasis).geometry
    base = {n for n in VOLUME_GROUPS if not n.startswith("fracture")}
    assert geo.region_names() == base | {"metastasis_left", "metastasis_right"}
    assert geo.boundary_names() == set(SURFACE_GROUPS)
    metastasis["geometry"]["fracture_lines"] = [{"side": "right", "offset": "40 mm"}]
    metastasis["geometry"]["alar_voids"] = [
        {"name": "void", "centre": "[-22, -37, -13] mm", "radii": ["3 mm", "3 mm", "3 mm"]}
    ]
    metastasis["geometry"]["tumours"] = []
    del metastasis["bone"]["regions"]["metastasis_left"]
    del metastasis["bone"]["regions"]["metastasis_right"]
    metastasis["targets"] = {"void": {"regions": ["void"]}}
    geo = validate_scenario(metastasis).geometry
    assert geo.region_names() == base | {"fracture_right", "void"}


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("side", "middle", "'left' or 'right'"),
        ("level", "S3", "'S1' or 'S2'"),
        ("approach", "oblique", "'short_axis' or 'long_axis'"),
    ],
)
def test_bad_needle_path_is_named(short, key, value, allowed):
    short["geometry"]["needle_paths"]["left"][key] = value
    assert_mentions(invalid(short), f"geometry.needle_paths.left.{key}", allowed, repr(value))


def test_bad_fracture_side_is_named(short):
    short["geometry"]["fracture_lines"][0]["side"] = "top"
    assert_mentions(invalid(short), "geometry.fracture_lines.0.side", "'left' or 'right'", "'top'")


def test_fracture_outside_the_ala_is_rejected(short):
    short["geometry"]["fracture_lines"][1]["offset"] = "10 mm"
    message = invalid(short)
    assert_mentions(message, "fracture_lines.1", "offset = 0.01", "between the foramina and the")


def test_needle_path_of_no_needle_is_rejected(short):
    short["geometry"]["needle_paths"]["third"] = {
        "approach": "short_axis",
        "side": "left",
        "level": "S2",
    }
    assert_mentions(invalid(short), "geometry.needle_paths", "'third'", "'left', 'right'")


def test_tip_given_besides_a_different_path_is_rejected(short):
    short["injection"]["needles"][0]["tip"] = "[-18, -41, -4] mm"
    assert_mentions(invalid(short), "injection.needles.0.tip", "geometry.needle_paths.left")


def test_sacrum_needle_needs_a_tip_or_a_path(short):
    del short["geometry"]["needle_paths"]["left"]
    assert_mentions(invalid(short), "injection.needles.0.tip", "required")


@pytest.mark.parametrize(
    ("tip", "where"),
    [
        (IN_S1_LEFT_FORAMEN, "in the S1 left foramen"),
        (IN_CANAL, "in the sacral canal"),
        (IN_DISC, "in the L5-S1 disc"),
        (sacral(40.0, 0.0, -30.0), "outside the bone"),
    ],
    ids=["foramen", "canal", "disc", "outside"],
)
def test_tip_in_a_hole_is_rejected_naming_it(metastasis, tip, where):
    needle = metastasis["injection"]["needles"][1]
    needle["tip"], needle["entry"] = tip, None
    assert_mentions(invalid(metastasis), "injection.needles.1.tip", "needle 'right'", where)


def test_entry_that_is_no_approach_is_rejected(metastasis):
    metastasis["injection"]["needles"][0]["entry"] = "[-22, 20, -13] mm"  # from the side
    assert_mentions(
        invalid(metastasis), "injection.needles.0.entry", "short_axis approach", "long_axis"
    )


def test_cavities_too_close_are_rejected(metastasis):
    # 2 mm from the left needle's tip: the two 11 G cavities (radius 1.2 mm) overlap
    metastasis["injection"]["needles"][1].update(tip="[-22, 35, -13] mm", entry=None)
    assert_mentions(
        invalid(metastasis), "injection.needles.1.tip", "from the cavity of needle 'left'"
    )


def test_needle_named_like_a_tag_is_rejected(metastasis):
    metastasis["injection"]["needles"][0]["name"] = "sacral_canal"
    assert_mentions(invalid(metastasis), "injection.needles.0.name", "'sacral_canal'")


def test_tumour_outside_the_bone_is_rejected(metastasis):
    metastasis["geometry"]["tumours"][0]["centre"] = "[30, 0, 0] mm"
    assert_mentions(
        invalid(metastasis), "geometry", "tumour 'metastasis_left'", "inside the bone", "outside"
    )


@pytest.mark.parametrize(
    ("section", "edit", "field", "missing"),
    [
        ("leak_routes", {"kind": "outlet", "boundary": "foramen_s3_anterior_left"}, "boundary",
         "'foramen_s3_anterior_left'"),
        ("leak_routes", {"kind": "region", "regions": "disc_l4l5"}, "regions", "'disc_l4l5'"),
        ("targets", {"regions": ["fracture_left"]}, "regions", "'fracture_left'"),
    ],
    ids=["boundary", "leak-region", "target"],
)  # fmt: skip
def test_route_or_target_naming_a_missing_tag_lists_the_names(
    metastasis, section, edit, field, missing
):
    metastasis[section]["extra"] = edit
    message = invalid(metastasis)
    assert_mentions(message, f"{section}.extra.{field}", missing, "geometry 'sacrum'")
    allowed = "foramen_s1_anterior_left" if field == "boundary" else "disc_l5s1"
    assert_mentions(message, allowed)


def test_bone_region_naming_a_missing_tag_is_rejected(short):
    short["bone"]["regions"]["tumour"] = {"porosity": 0.97}
    assert_mentions(invalid(short), "bone.regions", "'tumour'", "fracture_left", "ala_left")


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("tilt", 40, "deg"),
        ("tilt", "100 deg", "[0, 80] deg"),
        ("tilt", "40 mm", "an angle"),
        ("endplate_width", "-4 mm", "greater than 0"),
        ("segment_heights", "[30, 24] mm", "segment_heights"),
        ("foramen_offsets", "[10, 21] mm", "foramen_offsets"),
        ("auricular_height", "10 mm", "auricular_height"),
        ("disk_height", "10 mm", "did you mean 'disc_height'"),
    ],
)
def test_bad_shape_is_named(short, key, value, named):
    short["geometry"][key] = value
    message = invalid(short)
    assert_mentions(message, "geometry", key if key != "disk_height" else "unknown key", named)


def test_outlet_size_above_the_largest_size_is_rejected(short):
    short["geometry"]["mesh"]["size_outlet"] = "9 mm"
    assert_mentions(invalid(short), "geometry.mesh", "size_outlet", "size_max")


def test_validation_does_not_touch_the_input(short):
    before = copy.deepcopy(short)
    validate_scenario(short)
    assert short == before
