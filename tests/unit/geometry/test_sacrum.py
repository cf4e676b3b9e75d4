"""Unit tests of the idealised sacrum (sim.geometry.sacrum).

gmsh work happens on rank 0 only; the dolfinx conversion is collective. Runs serially and
under ``mpirun -n 2``. Coarse sizes keep each mesh at a few seconds.
"""

from __future__ import annotations

import math

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx.io.gmsh
import dolfinx.mesh
import gmsh
import numpy as np
import pytest

from sim.geometry.sacrum import add_sacrum
from sim.shapes.primitives import NeedleTip
from sim.shapes.sacrum import (
    APPROACHES,
    DEFAULTS,
    FIRST_LESION_TAG,
    FIRST_NEEDLE_TAG,
    LEVELS,
    SIDES,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    Ellipsoid,
    FractureLine,
    boundary_names,
    needle_path,
    region_names,
    sacrum_contains,
)

from .conftest import build_on_root

COMM = MPI.COMM_WORLD
ROOT = 0

COARSE = {"h_tip": 1.0e-3, "h_max": 8e-3, "growth": 0.4, "h_outlet": 3e-3}
RADIUS = 1.195e-3  # 11 G needle inner radius (m)
TILT = math.radians(DEFAULTS["tilt"])
#: sacral-frame unit vectors in the global frame: antero-posterior (u) and long axis (w)
E_U = np.array([math.cos(TILT), 0.0, -math.sin(TILT)])
E_W = np.array([math.sin(TILT), 0.0, math.cos(TILT)])
BONE = ("body_s1", "body_s2", "body_s3", "posterior_arch", "ala_left", "ala_right")
#: the whole reference sacrum S1-S5 (shared/data/anatomy, a large male): 245 cm^3
REFERENCE_VOLUME = 245e-6


def sacral(u: float, y: float, w: float) -> np.ndarray:
    """Global point (m) from sacral-frame coordinates (m) of the default geometry."""
    return u * E_U + np.array([0.0, y, 0.0]) + w * E_W


# --- gmsh-side measurements (rank 0) ----------------------------------------------------------


def group_elements(dim: int, tag: int) -> tuple[np.ndarray, np.ndarray]:
    """Element tags and node tags (n, dim + 1) of a physical group's linear simplices."""
    tags, nodes = [], []
    for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
        _, etags, enodes = gmsh.model.mesh.getElements(dim, entity)
        tags.append(np.asarray(etags[0]))
        nodes.append(np.asarray(enodes[0]).reshape(-1, dim + 1))
    return np.concatenate(tags), np.concatenate(nodes)


def measure_mesh() -> dict:
    """Group dims, element counts, measures (m^2, m^3), disjointness and quality."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    xyz = coords.reshape(-1, 3)
    row = np.zeros(int(node_tags.max()) + 1, dtype=int)
    row[node_tags.astype(int)] = np.arange(len(node_tags))
    out: dict = {"dim": {}, "count": {}, "measure": {}, "tag": {}, "entities": {}}
    cells_seen: list[np.ndarray] = []
    for dim, tag in gmsh.model.getPhysicalGroups():
        name = gmsh.model.getPhysicalName(dim, tag)
        etags, enodes = group_elements(dim, tag)
        p = xyz[row[enodes.astype(int)]]
        if dim == 2:
            size = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        else:
            size = np.abs(np.linalg.det(p[:, 1:] - p[:, :1])) / 6.0
            cells_seen.append(etags)
        out["dim"][name] = dim
        out["tag"][name] = tag
        out["count"][name] = len(etags)
        out["measure"][name] = float(size.sum())
        out["entities"][name] = [int(e) for e in gmsh.model.getEntitiesForPhysicalGroup(dim, tag)]
    _, tet_tags, _ = gmsh.model.mesh.getElements(3)
    tets = np.concatenate(tet_tags)
    grouped = np.concatenate(cells_seen)
    out["n_tets"] = len(tets)
    out["tets_grouped_once"] = bool(
        len(grouped) == len(tets) and len(np.unique(grouped)) == len(tets)
    )
    out["volumes_in_model"] = sorted(t for _, t in gmsh.model.getEntities(3))
    out["min_sicn"] = float(gmsh.model.mesh.getElementQualities(tets, "minSICN").min())
    out["bbox"] = (xyz.min(axis=0).tolist(), xyz.max(axis=0).tolist())
    return out


def build(**kwargs) -> tuple[dict, dolfinx.io.gmsh.MeshData]:
    """add_sacrum + mesh + Netgen on rank 0; measurements broadcast; dolfinx mesh on all."""

    def make() -> dict:
        add_sacrum(**COARSE, **kwargs)
        gmsh.model.mesh.generate(3)
        gmsh.model.mesh.optimize("Netgen")
        return measure_mesh()

    return build_on_root("sacrum", make)


def paths(approach: str) -> list[NeedleTip]:
    """One needle per side and level for ``approach``, with its entry point."""
    out = []
    for side in SIDES:
        for level in LEVELS:
            entry, tip = needle_path(approach, side, level)
            out.append(NeedleTip(f"{approach}_{side}_{level}", tip, RADIUS, entry))
    return out


_, TIP_LEFT_S2 = needle_path("short_axis", "left", "S2")
_, TIP_RIGHT_S1 = needle_path("short_axis", "right", "S1")
LESIONS = {
    # a body tumour, an alar tumour around a needle tip and an alar void around another
    "tumours": [
        Ellipsoid("tumour_body_s1", sacral(2e-3, 0.0, -15e-3), np.array([8e-3, 9e-3, 7e-3])),
        Ellipsoid("tumour_ala_left_s2", TIP_LEFT_S2, np.array([8e-3, 8e-3, 8e-3])),
    ],
    "alar_voids": [Ellipsoid("void_ala_right_s1", TIP_RIGHT_S1, np.array([6e-3, 5e-3, 7e-3]))],
}
FRACTURES = [FractureLine("left", 0.037, 3e-3, 0.03), FractureLine("right", 0.037, 3e-3, 0.03)]

CASES = {
    "default": {},
    "fractures": {"fracture_lines": FRACTURES},
    "lesions_short_axis": {**LESIONS, "needles": paths("short_axis")},
    "long_axis": {"needles": paths("long_axis")},
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> tuple[str, dict, dict, dolfinx.io.gmsh.MeshData]:
    name = request.param
    measured, data = build(**CASES[name])
    return name, CASES[name], measured, data


# --- every case -------------------------------------------------------------------------------


def test_every_group_exists_with_elements(case):
    _, features, measured, _ = case
    surfaces, regions = boundary_names(**features), region_names(**features)
    assert set(measured["dim"]) == surfaces | regions
    for name in surfaces:
        assert measured["dim"][name] == 2, name
    for name in regions:
        assert measured["dim"][name] == 3, name
    empty = [name for name, count in measured["count"].items() if count == 0]
    assert not empty


def test_regions_are_disjoint_and_cover_the_mesh(case):
    _, features, measured, _ = case
    assert measured["tets_grouped_once"]
    entities = [e for name in region_names(**features) for e in measured["entities"][name]]
    assert sorted(entities) == measured["volumes_in_model"]


def test_tags_follow_the_fixed_numbering(case):
    _, features, measured, _ = case
    for name in region_names(**features) & set(VOLUME_GROUPS):
        assert measured["tag"][name] == VOLUME_GROUPS[name]
    for name in SURFACE_GROUPS:
        assert measured["tag"][name] == SURFACE_GROUPS[name]
    lesions = [e.name for e in features.get("tumours", [])]
    lesions += [e.name for e in features.get("alar_voids", [])]
    for k, name in enumerate(lesions):
        assert measured["tag"][name] == FIRST_LESION_TAG + k
    for k, needle in enumerate(features.get("needles", [])):
        assert measured["tag"][needle.name] == FIRST_NEEDLE_TAG + k


def test_min_quality_after_netgen(case):
    _, _, measured, _ = case
    assert measured["min_sicn"] > 0.1


def test_total_volume_is_sensible(case):
    _, _, measured, _ = case
    bone = sum(measured["measure"][name] for name in measured["dim"]
               if measured["dim"][name] == 3 and name != "disc_l5s1")  # fmt: skip
    # S1-S3 only: well below the whole reference sacrum (S1-S5), well above a single body
    assert 0.4 * REFERENCE_VOLUME < bone < 0.8 * REFERENCE_VOLUME
    a, b = DEFAULTS["endplate_depth"] / 2.0, DEFAULTS["endplate_width"] / 2.0
    disc = math.pi * a * b * DEFAULTS["disc_height"]
    assert measured["measure"]["disc_l5s1"] == pytest.approx(disc, rel=0.03)
    assert measured["measure"]["disc_top"] == pytest.approx(math.pi * a * b, rel=0.03)
    lo, hi = (np.array(v) for v in measured["bbox"])
    assert hi[1] - lo[1] == pytest.approx(DEFAULTS["sacral_width"], rel=1e-6)
    assert 0.06 < hi[0] - lo[0] < 0.11  # reference sacrum: 110 mm in x (S1-S5)
    assert 0.06 < hi[2] - lo[2] < 0.159  # 159 mm in z


def test_dolfinx_conversion(case):
    _, features, measured, data = case
    assert data.mesh.topology.index_map(3).size_global == measured["n_tets"]
    # sorted: set order differs between processes (hash seeds) and allreduce must pair up
    for name in sorted(boundary_names(**features)):
        dim, tag = data.physical_groups[name]
        assert dim == 2
        assert COMM.allreduce(len(data.facet_tags.find(tag)), op=MPI.SUM) > 0, name
    for name in sorted(region_names(**features)):
        dim, tag = data.physical_groups[name]
        assert dim == 3
        assert COMM.allreduce(len(data.cell_tags.find(tag)), op=MPI.SUM) > 0, name


def test_left_is_plus_y(case):
    """Right-handed frame (+x anterior, +z cranial): the patient's left is +y, for the ala,
    the sacroiliac joint and the foramina."""
    _, _, _, data = case
    mesh = data.mesh
    cells = {
        name: data.cell_tags.find(data.physical_groups[name][1])
        for name in ("ala_left", "ala_right")
    }
    for name, sign in (("ala_left", 1.0), ("ala_right", -1.0)):
        y = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells[name])][..., 1]
        assert COMM.allreduce(bool(np.all(sign * y > -1e-9)), op=MPI.LAND), name
    mesh.topology.create_connectivity(2, 0)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for name in (f"si_joint_{side}", f"foramen_s1_anterior_{side}"):
            facets = data.facet_tags.find(data.physical_groups[name][1])
            y = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 2, facets)][..., 1]
            assert COMM.allreduce(bool(np.all(sign * y > 0)), op=MPI.LAND), name


def test_needle_cavities_have_the_sphere_area(case):
    _, features, measured, _ = case
    for needle in features.get("needles", []):
        area = 4.0 * math.pi * needle.radius**2
        assert measured["measure"][needle.name] == pytest.approx(area, rel=0.15), needle.name


def test_foramina_and_joints_are_sized_like_the_defaults(case):
    _, _, measured, _ = case
    for side in SIDES:
        for level, r_a, r_p in zip(("s1", "s2"), DEFAULTS["anterior_foramen_radii"],
                                   DEFAULTS["posterior_foramen_radii"], strict=True):  # fmt: skip
            anterior = measured["measure"][f"foramen_{level}_anterior_{side}"]
            posterior = measured["measure"][f"foramen_{level}_posterior_{side}"]
            assert anterior > posterior  # the anterior half is the wider one
            # channel walls: a few cm^2 (2 pi r x half the alar depth)
            assert 2.0 * math.pi * r_p * 5e-3 < posterior < anterior < 2.0 * math.pi * r_a * 25e-3
        si = measured["measure"][f"si_joint_{side}"]
        assert si == pytest.approx(measured["measure"]["si_joint_left"], rel=0.02)
        assert 5e-4 < si < 2.5e-3  # auricular surface: order 10-20 cm^2


# --- needle paths, inside test and validation -------------------------------------------------


@pytest.mark.parametrize("approach", APPROACHES)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("level", LEVELS)
def test_needle_path_tips_are_in_bone(approach, side, level):
    entry, tip = needle_path(approach, side, level)
    assert sacrum_contains(tip, margin=RADIUS + COARSE["h_tip"])
    assert sacrum_contains(tip, margin=RADIUS + 0.4e-3)  # default h_tip
    assert not sacrum_contains(entry, margin=1e-3)  # on the dorsal surface, not inside
    assert (tip[1] > 0.0) == (side == "left")  # +y is the patient's left
    d = (tip - entry) / np.linalg.norm(tip - entry)
    axis = E_U if approach == "short_axis" else E_W
    assert math.degrees(math.acos(float(d @ axis))) < 30.0


def test_contains_simple_points():
    assert sacrum_contains(sacral(0.0, 0.0, -15e-3))  # S1 body
    assert sacrum_contains(sacral(-10e-3, 40e-3, -20e-3), margin=5e-3)  # left ala
    assert not sacrum_contains(sacral(0.0, 0.0, 5e-3))  # in the disc
    assert not sacrum_contains(sacral(-23e-3, 0.0, -10e-3))  # in the canal
    assert not sacrum_contains(sacral(-13e-3, 24.5e-3, -30e-3))  # in the S1 left foramen
    assert not sacrum_contains(sacral(40e-3, 0.0, -30e-3))  # in front of the sacrum
    assert not sacrum_contains(sacral(-10e-3, 60e-3, -20e-3))  # beyond the SI joint
    assert not sacrum_contains(sacral(0.0, 0.0, -80e-3))  # below S3
    assert sacrum_contains(sacral(0.0, 0.0, -15e-3), margin=10e-3)
    assert not sacrum_contains(sacral(0.0, 0.0, -15e-3), margin=16e-3)


def test_names_follow_the_features():
    needles = [NeedleTip("a", np.zeros(3), 1e-3), NeedleTip("b", np.zeros(3), 1e-3)]
    assert boundary_names() == set(SURFACE_GROUPS)
    assert boundary_names(needles=needles) == set(SURFACE_GROUPS) | {"a", "b"}
    base = set(VOLUME_GROUPS) - {"fracture_left", "fracture_right"}
    assert region_names() == base
    assert region_names(fracture_lines=[FractureLine("left", 0.037)], **LESIONS) == base | {
        "fracture_left", "tumour_body_s1", "tumour_ala_left_s2", "void_ala_right_s1"}  # fmt: skip


@pytest.mark.parametrize(
    ("tip", "where"),
    [
        (sacral(-13e-3, 24.5e-3, -30e-3), "S1 left foramen"),
        (sacral(-10e-3, -21e-3, -54e-3), "S2 right foramen"),
        (sacral(0.0, 0.0, 5e-3), "disc"),
        (sacral(-22e-3, 0.0, -20e-3), "canal"),
    ],
)
def test_tip_outside_bone_is_rejected_naming_the_needle(gmsh_model, tip, where):
    with pytest.raises(ValueError, match=rf"needle 'probe'.*{where}"):
        add_sacrum(**COARSE, needles=[NeedleTip("probe", tip, RADIUS)])


def test_entry_through_a_foramen_is_rejected(gmsh_model):
    # long axis at the foramina's lateral position: passes through the S2 and S1 foramina
    tip = sacral(-12e-3, -24.5e-3, -15e-3)
    entry = sacral(-25e-3, -24.5e-3, -68e-3)
    with pytest.raises(ValueError, match=r"needle 'probe'.*foramen"):
        add_sacrum(**COARSE, needles=[NeedleTip("probe", tip, RADIUS, entry)])


def test_entry_that_is_no_approach_is_rejected(gmsh_model):
    _, tip = needle_path("short_axis", "left", "S1")
    lateral = tip + np.array([0.0, -0.05, 0.0])  # from the side, through the SI joint
    with pytest.raises(ValueError, match=r"needle 'probe'.*short_axis.*long_axis"):
        add_sacrum(**COARSE, needles=[NeedleTip("probe", tip, RADIUS, lateral)])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tilt": 95.0}, "tilt"),
        ({"foramen_offsets": (0.012, 0.021)}, "foramen_offsets"),
        ({"auricular_height": 0.09}, "auricular_height"),
        ({"fracture_lines": [FractureLine("left", 0.026)]}, "fracture offset"),
        ({"fracture_lines": [FractureLine("middle", 0.037)]}, "fracture side"),
        ({"tumours": [Ellipsoid("t", sacral(0.0, 0.0, 5e-3), np.full(3, 5e-3))]}, "tumour 't'"),
        ({"needles": [NeedleTip("disc_top", TIP_RIGHT_S1, RADIUS)]}, "needle name"),
    ],
)
def test_invalid_input_raises_naming_the_parameter(gmsh_model, change, named):
    with pytest.raises(ValueError, match=named):
        add_sacrum(**{**COARSE, **change})
