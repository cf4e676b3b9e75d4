"""Unit tests of the idealised vertebral body (sim.geometry.vertebral_body).

gmsh work happens on rank 0 only; the dolfinx conversions are collective. Runs serially and
under ``mpirun -n 2``.

Measured on the coarse sizes below (h_tip 0.6 mm, h_max 4 mm, 2-core machine, gmsh 4.15):
one needle, no feature: 26.5k tets, min SICN 0.35; cortical shell 1.5 mm: 49k tets, 0.27,
3.6 s; cleft: 41k tets, 0.34; lesion: 32k tets, 0.33; posterior defect: 32k, 0.31; endplate
defect: 39k, 0.32; all five together: 85k tets, min SICN 0.27, 6.5 s (build + mesh + Netgen).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx.io.gmsh
import dolfinx.mesh
import gmsh
import numpy as np
import pytest

from sim.geometry.vertebral_body import add_vertebral_body
from sim.shapes.primitives import NeedleTip
from sim.shapes.vertebral_body import (
    OPTIONAL_SURFACE_GROUPS,
    OPTIONAL_VOLUME_GROUPS,
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    boundary_names,
    lumbar_level_dimensions,
    region_names,
    vertebral_body_contains,
)
from sim.shapes.vertebral_features import (
    BasivertebralVein,
    Cleft,
    EndplateDefect,
    Lesion,
    PosteriorDefect,
)

from .conftest import build_on_root

COMM = MPI.COMM_WORLD
ROOT = 0

BODY = {"depth": 35e-3, "width": 45e-3, "height": 28e-3, "posterior_flat": 0.8}
PATCHES = {"foramen_radius": 2.5e-3, "vein_radius": 1.5e-3}
TARGET_FRACTION = 2.0 / 3.0
COARSE = {"h_tip": 0.6e-3, "h_max": 4e-3, "growth": 0.3, "h_outlet": 0.5e-3}
RADIUS = 1.195e-3  # 11 G needle inner radius (m)
TIP = np.array([2e-3, -6e-3, 0.0])  # transpedicular-like, right of the midline (m)
NEEDLE = NeedleTip("needle", TIP, RADIUS)

A = BODY["depth"] / (1.0 + BODY["posterior_flat"])  # x semi-axis of the ellipse (m)
B = BODY["width"] / 2.0  # y semi-axis (m)
X_WALL = -BODY["posterior_flat"] * A
X_SPLIT = A - TARGET_FRACTION * BODY["depth"]
ALL_GROUPS = [*VOLUME_GROUPS, *SURFACE_GROUPS, "needle"]


def segment_area(x_cut: float, a: float = A, b: float = B) -> float:
    """Area (m^2) of the ellipse (x/a)^2 + (y/b)^2 <= 1 with x > x_cut."""
    c = x_cut / a
    return a * b * (math.acos(c) - c * math.sqrt(1.0 - c * c))


def sphere_volume(r: float) -> float:
    """Volume (m^3) of a ball of radius r (m)."""
    return 4.0 / 3.0 * math.pi * r**3


# --- gmsh-side measurements (rank 0) ----------------------------------------------------------


def group_connectivity(dim: int, name: str) -> np.ndarray:
    """Node tags (n_elements, dim + 1) of the linear simplices of a named physical group."""
    tag = next(
        t for d, t in gmsh.model.getPhysicalGroups(dim) if gmsh.model.getPhysicalName(d, t) == name
    )
    blocks = []
    for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
        _, _, nodes = gmsh.model.mesh.getElements(dim, entity)
        blocks.append(np.asarray(nodes[0]).reshape(-1, dim + 1))
    return np.concatenate(blocks)


def node_table() -> tuple[np.ndarray, np.ndarray]:
    """All node coordinates (m) and a lookup array node tag -> row."""
    tags, coords, _ = gmsh.model.mesh.getNodes()
    lookup = np.zeros(int(tags.max()) + 1, dtype=int)
    lookup[tags.astype(int)] = np.arange(len(tags))
    return coords.reshape(-1, 3), lookup


def measure_mesh() -> dict:
    """Group sizes, areas (m^2), volumes (m^3), x-ranges (m) and min SICN of the gmsh mesh."""
    xyz, row = node_table()
    out: dict = {"names": {}, "count": {}, "measure": {}, "x_range": {}}
    for dim, tag in gmsh.model.getPhysicalGroups():
        name = gmsh.model.getPhysicalName(dim, tag)
        p = xyz[row[group_connectivity(dim, name).astype(int)]]
        if dim == 2:
            size = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        else:
            edges = p[:, 1:] - p[:, :1]
            size = np.abs(np.linalg.det(edges)) / 6.0
        out["names"][name] = dim
        out["count"][name] = len(p)
        out["measure"][name] = float(size.sum())
        out["x_range"][name] = (float(p[..., 0].min()), float(p[..., 0].max()))
    _, tet_tags, _ = gmsh.model.mesh.getElements(3)
    tets = np.concatenate(tet_tags)
    out["n_tets"] = len(tets)
    out["min_sicn"] = float(gmsh.model.mesh.getElementQualities(tets, "minSICN").min())
    return out


def generate() -> None:
    """Mesh the current model as a caller of add_vertebral_body would."""
    gmsh.model.mesh.generate(3)
    gmsh.model.mesh.optimize("Netgen")


@pytest.fixture(scope="module")
def one_needle() -> tuple[dict, dolfinx.io.gmsh.MeshData]:
    """Coarse one-needle body: gmsh measurements (broadcast from rank 0) and dolfinx mesh."""

    def make() -> dict:
        add_vertebral_body(
            **BODY, **PATCHES, **COARSE,
            target_fraction=TARGET_FRACTION, needles=[NEEDLE],
        )  # fmt: skip
        generate()
        return measure_mesh()

    return build_on_root("vertebral body", make)


# --- one needle ------------------------------------------------------------------------------


def test_every_group_exists_with_elements(one_needle):
    measured, _ = one_needle
    assert set(measured["names"]) == set(ALL_GROUPS)
    for name in VOLUME_GROUPS:
        assert measured["names"][name] == 3
    for name in [*SURFACE_GROUPS, "needle"]:
        assert measured["names"][name] == 2
    assert all(measured["count"][name] > 0 for name in ALL_GROUPS)


def test_outlet_patch_areas(one_needle):
    measured, _ = one_needle
    foramen = math.pi * PATCHES["foramen_radius"] ** 2
    vein = math.pi * PATCHES["vein_radius"] ** 2
    assert measured["measure"]["basivertebral_foramen"] == pytest.approx(foramen, rel=0.05)
    assert measured["measure"]["segmental_vein_left"] == pytest.approx(vein, rel=0.10)
    assert measured["measure"]["segmental_vein_right"] == pytest.approx(vein, rel=0.10)


def test_needle_cavity_area(one_needle):
    measured, _ = one_needle
    assert measured["measure"]["needle"] == pytest.approx(4.0 * math.pi * RADIUS**2, rel=0.05)


def test_total_volume(one_needle):
    measured, _ = one_needle
    total = measured["measure"]["anterior"] + measured["measure"]["posterior"]
    exact = segment_area(X_WALL) * BODY["height"] - sphere_volume(RADIUS)
    assert total == pytest.approx(exact, rel=0.02)


def test_anterior_region_is_the_target_fraction(one_needle):
    measured, _ = one_needle
    lo, hi = measured["x_range"]["anterior"]
    assert (hi - lo) / BODY["depth"] == pytest.approx(TARGET_FRACTION, rel=0.01)
    assert measured["x_range"]["posterior"][0] == pytest.approx(X_WALL, abs=1e-9)
    anterior = segment_area(X_SPLIT) * BODY["height"] - sphere_volume(RADIUS)  # tip anterior
    total = segment_area(X_WALL) * BODY["height"] - sphere_volume(RADIUS)
    fraction = measured["measure"]["anterior"] / (
        measured["measure"]["anterior"] + measured["measure"]["posterior"]
    )
    assert fraction == pytest.approx(anterior / total, rel=0.02)


def test_min_quality(one_needle):
    measured, _ = one_needle
    assert measured["min_sicn"] > 0.1


def test_dolfinx_conversion(one_needle):
    measured, data = one_needle
    assert set(data.physical_groups) >= set(ALL_GROUPS)
    assert data.mesh.topology.index_map(3).size_global == measured["n_tets"]
    for name in [*SURFACE_GROUPS, "needle"]:
        dim, tag = data.physical_groups[name]
        assert dim == 2
        local = len(data.facet_tags.find(tag))
        assert COMM.allreduce(local, op=MPI.SUM) > 0, name
    for name in VOLUME_GROUPS:
        dim, tag = data.physical_groups[name]
        assert dim == 3
        assert COMM.allreduce(len(data.cell_tags.find(tag)), op=MPI.SUM) > 0, name


def test_left_is_plus_y(one_needle):
    """Right-handed frame (+x anterior, +z cranial): the patient's left is +y."""
    _, data = one_needle
    mesh = data.mesh
    mesh.topology.create_connectivity(2, 0)
    for name, sign in (("segmental_vein_left", 1.0), ("segmental_vein_right", -1.0)):
        facets = data.facet_tags.find(data.physical_groups[name][1])
        vertices = dolfinx.mesh.entities_to_geometry(mesh, 2, facets)
        y = mesh.geometry.x[vertices][..., 1]
        assert COMM.allreduce(bool(np.all(sign * y > 0)), op=MPI.LAND), name


# --- two needles, one across the split plane -------------------------------------------------


def test_two_needles_bipedicular(gmsh_model):
    if COMM.rank != ROOT:
        pytest.skip("gmsh-only test, runs on rank 0")
    needles = [
        NeedleTip("needle_right", np.array([X_SPLIT + 0.4e-3, -6e-3, 0.0]), RADIUS),  # splits
        NeedleTip("needle_left", np.array([2e-3, 6e-3, 1e-3]), RADIUS),
    ]
    add_vertebral_body(**BODY, **COARSE, needles=needles)
    generate()
    measured = measure_mesh()
    for n in needles:
        assert measured["names"][n.name] == 2
        assert measured["measure"][n.name] == pytest.approx(4.0 * math.pi * n.radius**2, rel=0.05)
    assert "needle" not in measured["names"]
    assert measured["min_sicn"] > 0.1


# --- analytic inside test and validation -----------------------------------------------------


def test_contains_simple_points():
    assert vertebral_body_contains([0.0, 0.0, 0.0], **BODY)
    assert vertebral_body_contains(TIP, **BODY, margin=RADIUS + COARSE["h_tip"])
    outside = [
        (A + 1e-4, 0.0, 0.0),
        (X_WALL - 1e-4, 0.0, 0.0),
        (0.0, B + 1e-4, 0.0),
        (0.0, -B - 1e-4, 0.0),
        (0.0, 0.0, BODY["height"] / 2 + 1e-4),
        (X_WALL - 1e-4, B * 0.6 + 1e-4, 0.0),
    ]
    for point in outside:
        assert not vertebral_body_contains(point, **BODY), point
    near_wall = (A - 1e-3, 0.0, 0.0)  # 1 mm behind the anterior apex
    assert vertebral_body_contains(near_wall, **BODY)
    assert not vertebral_body_contains(near_wall, **BODY, margin=RADIUS + COARSE["h_tip"])


def test_contains_margin_matches_brute_force_distance():
    t = np.linspace(0.0, 2.0 * math.pi, 400_001)
    ellipse = np.stack([A * np.cos(t), B * np.sin(t)], axis=1)
    rng = np.random.default_rng(7)
    for _ in range(20):
        p = rng.uniform([X_WALL, -B, -BODY["height"] / 2], [A, B, BODY["height"] / 2])
        if (p[0] / A) ** 2 + (p[1] / B) ** 2 > 1.0:
            continue
        d_ellipse = np.min(np.linalg.norm(ellipse - p[:2], axis=1))  # >= exact, by < 1 um
        clearance = min(d_ellipse, p[0] - X_WALL, BODY["height"] / 2 - abs(p[2]))
        assert vertebral_body_contains(p, **BODY, margin=clearance - 1e-6)
        assert not vertebral_body_contains(p, **BODY, margin=clearance + 1e-9)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"posterior_flat": 1.5}, "posterior_flat"),
        ({"target_fraction": 1.2}, "target_fraction"),
        ({"foramen_radius": 20e-3}, "foramen_radius"),
        ({"needles": [NeedleTip("needle", np.array([A - 1e-3, 0.0, 0.0]), RADIUS)]}, "needle"),
        (
            {"needles": [NeedleTip("needle", np.array([X_SPLIT + RADIUS, 0.0, 0.0]), RADIUS)]},
            "split",
        ),
    ],
)
def test_invalid_input_raises_naming_the_parameter(gmsh_model, change, named):
    kwargs = {**BODY, **COARSE, "needles": [NEEDLE], **change}
    with pytest.raises(ValueError, match=named):
        add_vertebral_body(**kwargs)


# --- optional features -----------------------------------------------------------------------

Z_AXIS = np.array([0.0, 0.0, 1.0])
CLEFT = Cleft(centre=np.array([5e-3, 0.0, 3e-3]), normal=Z_AXIS, thickness=1.5e-3, radius=8e-3)
LESION = Lesion(centre=np.array([6e-3, 5e-3, -4e-3]), radii=np.array([7e-3, 6e-3, 5e-3]))
VEIN = BasivertebralVein(radius=1e-3, length=10e-3)
SHELL = 1.5e-3  # cortical shell thickness (m): coarse, to keep the test fast
FEATURES = {
    "cortical_shell": {"cortical_shell": SHELL},
    "posterior_defect": {"posterior_defect": PosteriorDefect(y=6e-3, z=4e-3, radius=2e-3)},
    "endplate_defect": {"endplate_defect": EndplateDefect("upper", x=3e-3, y=4e-3, radius=3e-3)},
    "cleft": {"cleft": CLEFT},
    "lesion": {"lesion": LESION},
    "basivertebral_vein": {"basivertebral_vein": VEIN},
}
ALL_FEATURES = {key: value for case in FEATURES.values() for key, value in case.items()}
# the needle's cavity inside a lesion that overlaps a cleft (lesion wins), with a shell
IN_REGIONS = {
    "cortical_shell": SHELL,
    "cleft": Cleft(centre=TIP, normal=Z_AXIS, thickness=1.5e-3, radius=8e-3),
    "lesion": Lesion(centre=TIP, radii=np.array([5e-3, 5e-3, 4e-3])),
}
CASES = {**FEATURES, "all": ALL_FEATURES, "needle_in_regions": IN_REGIONS}
PATCHES_ON_WALLS = ["basivertebral_foramen", "segmental_vein_left", "segmental_vein_right"]


def face_keys(tri: np.ndarray) -> np.ndarray:
    """One int64 key per triangle (node tags, any order)."""
    t = np.sort(tri.astype(np.int64), axis=1)
    return (t[:, 0] << 42) | (t[:, 1] << 21) | t[:, 2]


def measure_features() -> dict:
    """`measure_mesh` plus region of the cells next to each boundary group, cell tags per region
    and the edge lengths (m) of the cortex cells."""
    out = measure_mesh()
    regions = [gmsh.model.getPhysicalName(3, t) for _, t in gmsh.model.getPhysicalGroups(3)]
    keys, owner, cells = [], [], {}
    xyz, row = node_table()
    for i, name in enumerate(regions):
        tets = group_connectivity(3, name).astype(np.int64)
        tag = next(t for _, t in gmsh.model.getPhysicalGroups(3)
                   if gmsh.model.getPhysicalName(3, t) == name)  # fmt: skip
        cells[name] = np.concatenate([
            np.concatenate(gmsh.model.mesh.getElements(3, e)[1])
            for e in gmsh.model.getEntitiesForPhysicalGroup(3, tag)
        ])  # fmt: skip
        for face in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
            keys.append(face_keys(tets[:, face]))
            owner.append(np.full(len(tets), i))
        if name == "cortex":
            p = xyz[row[tets]]
            pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
            out["cortex_edges"] = np.concatenate(
                [np.linalg.norm(p[:, i] - p[:, j], axis=1) for i, j in pairs]
            )
    keys_all, owner_all = np.concatenate(keys), np.concatenate(owner)
    order = np.argsort(keys_all)
    keys_all, owner_all = keys_all[order], owner_all[order]
    out["next_to"] = {}
    for dim, tag in gmsh.model.getPhysicalGroups(2):
        name = gmsh.model.getPhysicalName(dim, tag)
        k = face_keys(group_connectivity(2, name))
        at = np.searchsorted(keys_all, k)
        assert np.all(keys_all[at] == k), name
        out["next_to"][name] = {regions[i] for i in np.unique(owner_all[at])}
    out["cells"] = cells
    return out


def _measured_case(kwargs: dict) -> dict:
    """Coarse body with one needle and the features ``kwargs`` in the current gmsh model,
    meshed and measured, with the time it took (s)."""
    start = time.perf_counter()
    add_vertebral_body(**BODY, **PATCHES, **COARSE, needles=[NEEDLE],
                       **kwargs)  # fmt: skip
    generate()
    measured = measure_features()
    measured["seconds"] = time.perf_counter() - start
    return measured


def build_case(kwargs: dict) -> dict:
    """`_measured_case` in a gmsh session of its own (rank 0 only)."""
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("vertebral_body")
        return _measured_case(kwargs)
    finally:
        gmsh.finalize()


@pytest.fixture(scope="module")
def all_features() -> tuple[dict, dolfinx.io.gmsh.MeshData]:
    """Every optional feature at once: measured on rank 0, converted to dolfinx on all ranks."""
    return build_on_root("vertebral body", lambda: _measured_case(ALL_FEATURES))


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, dict, dict]:
    """(case name, its keyword arguments, its measurements); gmsh-only, rank 0."""
    name = request.param
    if name == "all":
        measured, _ = request.getfixturevalue("all_features")  # collective: before the skip
    if COMM.rank != ROOT:
        pytest.skip("gmsh-only test, runs on rank 0")
    if name != "all":
        if COMM.size > 1:
            pytest.skip("gmsh-only test: the serial run checks this case")
        measured = build_case(CASES[name])
    return name, CASES[name], measured


def test_feature_groups_match_the_names_known_before_meshing(case):
    _, kwargs, measured = case
    needles = [NEEDLE]
    surfaces = {n for n, dim in measured["names"].items() if dim == 2}
    volumes = {n for n, dim in measured["names"].items() if dim == 3}
    assert surfaces == boundary_names(**kwargs, needles=needles)
    assert volumes == region_names(**kwargs)
    assert surfaces - {"needle"} <= set(SURFACE_GROUPS) | set(OPTIONAL_SURFACE_GROUPS)
    assert volumes <= set(VOLUME_GROUPS) | set(OPTIONAL_VOLUME_GROUPS)
    assert all(count > 0 for count in measured["count"].values()), measured["count"]


def test_feature_regions_are_disjoint_and_fill_the_body(case):
    _, _, measured = case
    cells = np.concatenate(list(measured["cells"].values()))
    assert len(np.unique(cells)) == len(cells) == measured["n_tets"]
    total = sum(measured["measure"][n] for n in measured["cells"])
    exact = segment_area(X_WALL) * BODY["height"] - sphere_volume(RADIUS)
    assert total == pytest.approx(exact, rel=0.02)


def test_feature_quality(case):
    name, _, measured = case
    assert measured["min_sicn"] > 0.1, (name, measured["min_sicn"])


def test_feature_sizes(case):
    name, kwargs, measured = case
    area = measured["measure"]
    if "posterior_defect" in kwargs:
        r = kwargs["posterior_defect"].radius
        assert area["posterior_defect"] == pytest.approx(math.pi * r * r, rel=0.05)
    if "endplate_defect" in kwargs:
        r = kwargs["endplate_defect"].radius
        assert area["endplate_defect"] == pytest.approx(math.pi * r * r, rel=0.05)
    if name in ("cleft", "all"):  # fully inside the body and clear of the lesion
        t, r = CLEFT.thickness, CLEFT.radius
        assert area["cleft"] == pytest.approx(math.pi * r * r * t, rel=0.05)
    if "lesion" in kwargs:
        a, b, c = kwargs["lesion"].radii
        cavity = sphere_volume(RADIUS) if name == "needle_in_regions" else 0.0
        assert area["lesion"] == pytest.approx(4.0 / 3.0 * math.pi * a * b * c - cavity, rel=0.03)
    if "basivertebral_vein" in kwargs:  # the channel opens into the foramen
        r, length = VEIN.radius, VEIN.length
        assert area["basivertebral_vein"] == pytest.approx(math.pi * r * r * length, rel=0.05)
        assert "basivertebral_vein" in measured["next_to"]["basivertebral_foramen"]


def test_cortical_shell_is_resolved_and_open_under_the_outlets(case):
    name, kwargs, measured = case
    if "cortical_shell" not in kwargs:
        pytest.skip("no cortical shell in this case")
    edges = measured["cortex_edges"]
    assert edges.mean() <= SHELL, edges.mean()
    assert np.quantile(edges, 0.95) <= 1.5 * SHELL
    assert measured["next_to"]["lateral_wall"] >= {"cortex"}
    for patch in [*PATCHES_ON_WALLS, "posterior_defect"]:
        if patch in measured["next_to"]:
            assert "cortex" not in measured["next_to"][patch], patch
    if name == "needle_in_regions":
        assert measured["next_to"]["needle"] == {"lesion"}


def test_all_features_dolfinx_conversion(all_features):
    measured, data = all_features
    names = boundary_names(**ALL_FEATURES, needles=[NEEDLE])
    regions = region_names(**ALL_FEATURES)
    assert set(data.physical_groups) == names | regions
    assert COMM.allreduce(data.mesh.topology.index_map(3).size_local, op=MPI.SUM) == (
        COMM.bcast(None if measured is None else measured["n_tets"], root=ROOT)
    )
    for name in sorted(names):  # the same order on every rank: the sums are collective
        dim, tag = data.physical_groups[name]
        assert dim == 2
        assert COMM.allreduce(len(data.facet_tags.find(tag)), op=MPI.SUM) > 0, name
    for name in sorted(regions):
        dim, tag = data.physical_groups[name]
        assert dim == 3
        assert COMM.allreduce(len(data.cell_tags.find(tag)), op=MPI.SUM) > 0, name


def test_default_call_keeps_the_old_tags(one_needle):
    measured, _ = one_needle
    old = {"anterior": 1, "posterior": 2, "endplate_upper": 11, "endplate_lower": 12,
           "basivertebral_foramen": 13, "posterior_wall": 14, "segmental_vein_left": 15,
           "segmental_vein_right": 16, "lateral_wall": 17}  # fmt: skip
    assert {**VOLUME_GROUPS, **SURFACE_GROUPS} == old
    assert set(measured["names"]) == {*old, "needle"}
    assert boundary_names() == set(SURFACE_GROUPS)
    assert region_names() == set(VOLUME_GROUPS)
    assert boundary_names(needles=[NEEDLE], **BODY) == {*SURFACE_GROUPS, "needle"}


# --- lumbar level presets --------------------------------------------------------------------

LEVEL_SIZES = {"h_tip": 0.8e-3, "h_max": 5e-3, "growth": 0.4, "h_outlet": 0.6e-3}


@pytest.mark.parametrize("level", ["L1", "L2", "L3", "L4", "L5"])
def test_level_preset_meshes_with_every_tag(gmsh_model, level):
    dims = lumbar_level_dimensions(level)
    assert set(dims) == {"width", "depth", "height"}
    assert 0.030 < dims["width"] < 0.060 and 0.025 < dims["depth"] < 0.045
    assert 0.018 < dims["height"] < 0.035
    if COMM.rank != ROOT:
        pytest.skip("gmsh-only test, runs on rank 0")
    add_vertebral_body(**dims, **LEVEL_SIZES, needles=[NEEDLE])
    generate()
    measured = measure_mesh()
    assert set(measured["names"]) == set(ALL_GROUPS)
    assert all(count > 0 for count in measured["count"].values())
    a = dims["depth"] / 1.8  # posterior_flat 0.8
    exact = segment_area(-0.8 * a, a, dims["width"] / 2) * dims["height"] - sphere_volume(RADIUS)
    volume = measured["measure"]["anterior"] + measured["measure"]["posterior"]
    assert volume == pytest.approx(exact, rel=0.02)
    assert measured["min_sicn"] > 0.1


def test_unknown_level_names_the_known_ones():
    with pytest.raises(ValueError, match=r"L1.*L5"):
        lumbar_level_dimensions("L6")
    assert lumbar_level_dimensions("l3") == lumbar_level_dimensions("L3")


# --- validation of the features and of the needle path ---------------------------------------

ENTRY_POSTERIOR = np.array([-60e-3, -30e-3, 0.0])  # right transpedicular (m)


def test_transpedicular_entry_is_accepted(gmsh_model):
    if COMM.rank != ROOT:
        pytest.skip("gmsh-only test, runs on rank 0")
    add_vertebral_body(**BODY, **COARSE, needles=[replace(NEEDLE, entry=ENTRY_POSTERIOR)])
    assert gmsh.model.getPhysicalGroups(2)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((60e-3, -6e-3, 0.0), "path of needle 'right_needle'.*posterior half"),  # anterior
        ((2e-3, -60e-3, 0.0), "path of needle 'right_needle'.*posterior half"),  # lateral, x > 0
        ((0.0, 0.0, 0.0), "entry point of needle 'right_needle'.*outside"),  # inside the body
    ],
)
def test_invalid_entry_path_names_the_needle(gmsh_model, entry, message):
    needles = [NeedleTip("right_needle", TIP, RADIUS, np.array(entry))]
    with pytest.raises(ValueError, match=message):
        add_vertebral_body(**BODY, **COARSE, needles=needles)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"posterior_defect": PosteriorDefect(3e-3, 0.0, 1.5e-3)}, "basivertebral foramen"),
        ({"posterior_defect": PosteriorDefect(13e-3, 0.0, 2e-3)}, "posterior_defect"),  # off wall
        ({"endplate_defect": EndplateDefect("middle", 0.0, 0.0, 2e-3)}, "endplate_defect"),
        ({"endplate_defect": EndplateDefect("upper", 18e-3, 0.0, 3e-3)}, "endplate_defect"),
        ({"cleft": replace(CLEFT, normal=np.array([0.0, 0.0, 2.0]))}, "cleft normal"),
        ({"cleft": replace(CLEFT, centre=np.array([0.0, 0.0, 20e-3]))}, "cleft centre"),
        ({"lesion": replace(LESION, centre=np.array([30e-3, 0.0, 0.0]))}, "lesion centre"),
        ({"lesion": replace(LESION, radii=np.array([1e-3, 0.0, 1e-3]))}, "lesion radii"),
        ({"cortical_shell": -1e-3}, "cortical_shell"),
        ({"basivertebral_vein": replace(VEIN, radius=3e-3)}, "basivertebral_vein radius"),
        ({"basivertebral_vein": replace(VEIN, length=40e-3)}, "basivertebral_vein length"),
        ({"basivertebral_vein": replace(VEIN, length=11.67e-3)}, "split plane"),
        (
            {
                "basivertebral_vein": VEIN,
                "needles": [NeedleTip("needle", np.array([-9e-3, 1e-3, 0.0]), RADIUS)],
            },
            "clear of the basivertebral vein",
        ),
        (
            {
                "cortical_shell": 3e-3,
                "needles": [NeedleTip("needle", np.array([2e-3, -18e-3, 0.0]), RADIUS)],
            },
            "trabecular core",
        ),
    ],
)
def test_invalid_feature_raises_naming_it(gmsh_model, change, named):
    kwargs = {**BODY, **COARSE, "needles": [NEEDLE], **change}
    with pytest.raises(ValueError, match=named):
        add_vertebral_body(**kwargs)


def test_contains_with_a_cortical_shell_means_inside_the_core():
    near_side = (0.0, B - 2e-3, 0.0)  # 2 mm inside the lateral wall
    assert vertebral_body_contains(near_side, **BODY, margin=1e-3)
    assert not vertebral_body_contains(near_side, **BODY, margin=1e-3, cortical_shell=1.5e-3)
    assert vertebral_body_contains(near_side, **BODY, margin=0.4e-3, cortical_shell=1.5e-3)
    near_plate = (0.0, 0.0, BODY["height"] / 2 - 2e-3)  # the endplates have no shell
    assert vertebral_body_contains(near_plate, **BODY, margin=1e-3, cortical_shell=1.5e-3)


def test_names_reject_unknown_keywords():
    with pytest.raises(TypeError, match="cortex_thickness"):
        boundary_names(cortex_thickness=1e-3)
