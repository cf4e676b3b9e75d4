"""Unit tests of the idealised vertebral body (sim.geometry.vertebral_body).

gmsh work happens on rank 0 only; the dolfinx conversion is collective. Runs serially and
under ``mpirun -n 2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx.io.gmsh
import gmsh
import numpy as np
import pytest

from sim.geometry.vertebral_body import (
    SURFACE_GROUPS,
    VOLUME_GROUPS,
    add_vertebral_body,
    vertebral_body_contains,
)

COMM = MPI.COMM_WORLD
ROOT = 0

BODY = {"depth": 35e-3, "width": 45e-3, "height": 28e-3, "posterior_flat": 0.8}
PATCHES = {"foramen_radius": 2.5e-3, "vein_radius": 1.5e-3}
TARGET_FRACTION = 2.0 / 3.0
COARSE = {"h_tip": 0.6e-3, "h_max": 4e-3, "growth": 0.3, "h_outlet": 0.5e-3}
RADIUS = 1.195e-3  # 11 G needle inner radius (m)
TIP = np.array([2e-3, -6e-3, 0.0])  # transpedicular-like, left of the midline (m)

A = BODY["depth"] / (1.0 + BODY["posterior_flat"])  # x semi-axis of the ellipse (m)
B = BODY["width"] / 2.0  # y semi-axis (m)
X_WALL = -BODY["posterior_flat"] * A
X_SPLIT = A - TARGET_FRACTION * BODY["depth"]
ALL_GROUPS = [*VOLUME_GROUPS, *SURFACE_GROUPS, "needle"]


def segment_area(x_cut: float) -> float:
    """Area (m^2) of the ellipse (x/A)^2 + (y/B)^2 <= 1 with x > x_cut."""
    c = x_cut / A
    return A * B * (math.acos(c) - c * math.sqrt(1.0 - c * c))


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
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        measured, error = None, None
        if COMM.rank == ROOT:
            try:
                gmsh.model.add("vertebral_body")
                add_vertebral_body(
                    **BODY, **PATCHES, **COARSE,
                    target_fraction=TARGET_FRACTION, needles=[("needle", TIP, RADIUS)],
                )  # fmt: skip
                generate()
                measured = measure_mesh()
            except Exception as exc:  # reported on every rank below: no MPI deadlock
                error = repr(exc)
        error = COMM.bcast(error, root=ROOT)
        if error is not None:
            pytest.fail(f"building the vertebral body failed on rank 0: {error}")
        data = dolfinx.io.gmsh.model_to_mesh(gmsh.model, COMM, ROOT, gdim=3)
    finally:
        gmsh.finalize()
    return COMM.bcast(measured, root=ROOT), data


@pytest.fixture
def gmsh_model() -> Iterator[None]:
    """A fresh gmsh session with one empty model, finalised afterwards."""
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("vertebral_body")
    try:
        yield
    finally:
        gmsh.finalize()


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


# --- two needles, one across the split plane -------------------------------------------------


def test_two_needles_bipedicular(gmsh_model):
    if COMM.rank != ROOT:
        pytest.skip("gmsh-only test, runs on rank 0")
    needles = [
        ("needle_left", np.array([X_SPLIT + 0.4e-3, -6e-3, 0.0]), RADIUS),  # crosses the split
        ("needle_right", np.array([2e-3, 6e-3, 1e-3]), RADIUS),
    ]
    add_vertebral_body(**BODY, **COARSE, needles=needles)
    generate()
    measured = measure_mesh()
    for name, _, r in needles:
        assert measured["names"][name] == 2
        assert measured["measure"][name] == pytest.approx(4.0 * math.pi * r**2, rel=0.05)
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
        ({"needles": [("needle", np.array([A - 1e-3, 0.0, 0.0]), RADIUS)]}, "needle"),
        ({"needles": [("needle", np.array([X_SPLIT + RADIUS, 0.0, 0.0]), RADIUS)]}, "split"),
    ],
)
def test_invalid_input_raises_naming_the_parameter(gmsh_model, change, named):
    kwargs = {**BODY, **COARSE, "needles": [("needle", TIP, RADIUS)], **change}
    with pytest.raises(ValueError, match=named):
        add_vertebral_body(**kwargs)
