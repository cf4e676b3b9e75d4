"""Unit tests of surface reading, cleaning, checks and the unit trap (sim.shapes.surface) and
of volume meshing (sim.geometry.surface_import).

The file readers run on every rank (each in its own tmp_path); gmsh meshing happens on rank
0 only and the dolfinx conversion is collective. Runs serially and under ``mpirun -n 2``.
The anatomy tests read the surfaces shipped in meshes/.
"""

from __future__ import annotations

import gzip
import lzma
import math
import sys
import time
from pathlib import Path

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import gmsh
import meshio
import numpy as np
import pytest
from skimage.measure import marching_cubes

from sim.errors import MeshError
from sim.geometry.surface_import import BONE_TAG, SURFACE_TAG, mesh_surface_volume
from sim.shapes.primitives import NeedleTip
from sim.shapes.surface import (
    Surface,
    SurfaceError,
    check,
    clean,
    closest_points_on_triangles,
    fill_holes,
    import_surface,
    keep_largest_shell,
    plausible_unit,
    read_surface,
    uncompressed,
    winding_number,
)

COMM = MPI.COMM_WORLD
LUMBAR = Path(__file__).resolve().parents[3] / "meshes" / "anatomy" / "lumbar_L1-L5_S1_artisynth"

RADIUS = 1.195e-3  # 11 G needle inner radius (m)
H_MIN = 0.5e-3  # <= RADIUS / 2

# --- a unit cube ------------------------------------------------------------------------------

CUBE_POINTS = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    dtype=float,
)
#: faces as outward-oriented quads (counter-clockwise seen from outside)
CUBE_QUADS = np.array(
    [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]]
)
CUBE_TRIS = np.concatenate([CUBE_QUADS[:, [0, 1, 2]], CUBE_QUADS[:, [0, 2, 3]]])
NORMALS = np.array([[0, 0, -1], [0, 0, 1], [0, -1, 0], [0, 1, 0], [1, 0, 0], [-1, 0, 0]])


def cube(side: float = 1.0) -> Surface:
    return Surface(CUBE_POINTS * side, CUBE_TRIS.copy())


def write_obj_seams(
    path: Path, side: float = 1.0, *, quads: bool = False, negative: bool = False
) -> None:
    """A cube as OBJ with 4 duplicated vertices per face, vt, vn and `f v/vt/vn` faces.

    `quads`: one `f v//vn` quad per face instead; `negative`: relative (negative) indices.
    """
    lines = ["# cube with seams", "mtllib cube.mtl", "o cube"]
    faces = []
    for k, quad in enumerate(CUBE_QUADS):
        for corner, i in enumerate(quad):
            x, y, z = CUBE_POINTS[i] * side
            lines += [f"v {x:.17g} {y:.17g} {z:.17g}", f"vt {corner % 2} {corner // 2}"]
        lines.append("vn {} {} {}".format(*NORMALS[k]))
        base = 4 * k + 1
        ids = [base, base + 1, base + 2, base + 3]
        if negative:  # relative to the vertices read so far (4 per face, this face last)
            ids = [i - (4 * k + 5) for i in ids]
            n = -1
        else:
            n = k + 1
        if quads:
            lines.append("f " + " ".join(f"{i}//{n}" for i in ids))
        else:
            for tri in ((0, 1, 2), (0, 2, 3)):
                lines.append("f " + " ".join(f"{ids[c]}/{ids[c]}/{n}" for c in tri))
        faces.append(ids)
    path.write_text("\n".join(lines) + "\n")


def write_msh_gmsh(path: Path, side: float) -> None:
    """The cube's triangles as a gmsh 4.1 .msh (discrete surface), one triangle per seam."""
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("cube")
        s = gmsh.model.addDiscreteEntity(2)
        gmsh.model.mesh.addNodes(2, s, np.arange(1, 9), (CUBE_POINTS * side).ravel())
        gmsh.model.mesh.addElementsByType(s, 2, [], (CUBE_TRIS + 1).ravel())
        gmsh.model.addPhysicalGroup(2, [s], 1, "skin")
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def write_meshio(path: Path, side: float, fmt: str, **kwargs: object) -> None:
    # STL stores each triangle's corners separately: repeat the points (seams to merge)
    if fmt == "stl":
        pts = (CUBE_POINTS * side)[CUBE_TRIS].reshape(-1, 3)
        tris = np.arange(len(pts)).reshape(-1, 3)
    else:
        pts, tris = CUBE_POINTS * side, CUBE_TRIS
    tris = tris.astype(np.int32)
    tags = {"gmsh:physical": [np.ones(12, int)], "gmsh:geometrical": [np.ones(12, int)]}
    cell_data = tags if fmt.startswith("gmsh") else {}
    mesh = meshio.Mesh(pts, [("triangle", tris)], cell_data=cell_data)
    meshio.write(path, mesh, file_format=fmt, **kwargs)


WRITERS = {
    "stl-ascii": ("cube.stl", lambda p, s: write_meshio(p, s, "stl", binary=False)),
    "stl-binary": ("cube.stl", lambda p, s: write_meshio(p, s, "stl", binary=True)),
    "obj-v/vt/vn": ("cube.obj", write_obj_seams),
    "obj-quads-negative": (
        "cube.obj",
        lambda p, s: write_obj_seams(p, s, quads=True, negative=True),
    ),
    "ply": ("cube.ply", lambda p, s: write_meshio(p, s, "ply")),
    "vtk": ("cube.vtk", lambda p, s: write_meshio(p, s, "vtk")),
    "vtu": ("cube.vtu", lambda p, s: write_meshio(p, s, "vtu")),
    "msh22": ("cube.msh", lambda p, s: write_meshio(p, s, "gmsh22", binary=False)),
    "msh41-gmsh": ("cube.msh", write_msh_gmsh),
    "xdmf": ("cube.xdmf", lambda p, s: write_meshio(p, s, "xdmf")),
}


# --- readers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(WRITERS))
@pytest.mark.parametrize("factor", [1.0, 1e-3])
def test_unit_cube_round_trip(tmp_path: Path, kind: str, factor: float) -> None:
    name, write = WRITERS[kind]
    path = tmp_path / name
    write(path, 1.0)
    surface = clean(read_surface(path, factor))
    report = check(surface)
    assert report.n_points == 8 and len(surface.points) == 8
    assert report.n_triangles == 12
    assert report.closed and report.manifold and report.oriented
    assert report.genus == 0 and report.n_components == 1
    assert report.self_intersections == 0
    assert report.volume == pytest.approx(factor**3, abs=1e-12 * factor**3)
    assert report.area == pytest.approx(6 * factor**2, rel=1e-12)
    np.testing.assert_allclose(report.extent, [factor] * 3, rtol=1e-12)
    assert surface.length_unit_factor == factor


def test_meshio_fallback_for_obj_with_more_normals_than_vertices(tmp_path: Path) -> None:
    # like the *_Schrumpfverpacken.obj files: one vn per face corner, fewer v
    path = tmp_path / "cube.obj"
    lines = [f"v {x} {y} {z}" for x, y, z in CUBE_POINTS]
    lines += [f"vn {x} {y} {z}" for x, y, z in NORMALS[np.repeat(np.arange(6), 6)]]
    lines += [
        "f " + " ".join(f"{i + 1}/{i + 1}/{3 * k + c + 1}" for c, i in enumerate(tri))
        for k, tri in enumerate(CUBE_TRIS)
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="point_data"):
        meshio.read(path)
    report = check(clean(read_surface(path, 1.0)))
    assert report.n_triangles == 12 and report.volume == pytest.approx(1.0, abs=1e-12)


def test_tetrahedra_give_their_boundary(tmp_path: Path) -> None:
    # the cube split into 6 tetrahedra around the diagonal 0-6
    tets = np.array(
        [[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]]
    )
    path = tmp_path / "cube_tets.vtu"
    meshio.write(path, meshio.Mesh(CUBE_POINTS, [("tetra", tets)]))
    report = check(clean(read_surface(path, 1.0)))
    assert report.n_triangles == 12 and report.volume == pytest.approx(1.0, abs=1e-12)


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(SurfaceError, match="does not exist"):
        read_surface(tmp_path / "missing.stl", 1.0)
    (tmp_path / "cube.off2").write_text("")
    with pytest.raises(SurfaceError, match="unknown surface format"):
        read_surface(tmp_path / "cube.off2", 1.0)
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")
    with pytest.raises(SurfaceError, match="line 4"):
        read_surface(bad, 1.0)
    with pytest.raises(ValueError, match="length_unit_factor"):
        read_surface(bad, 0.0)


def test_truncated_stl_files_are_named_as_truncated(tmp_path: Path) -> None:
    _, write = WRITERS["stl-binary"]
    whole = tmp_path / "whole.stl"
    write(whole, 1.0)
    cut = tmp_path / "cut.stl"
    cut.write_bytes(whole.read_bytes()[:-30])
    with pytest.raises(
        SurfaceError,
        match=r"damaged binary STL: 654 bytes, expected 684 bytes for the 12 triangles",
    ):
        read_surface(cut, 1.0)
    _, write = WRITERS["stl-ascii"]
    write(whole, 1.0)
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    with pytest.raises(SurfaceError, match="truncated ASCII STL"):
        read_surface(cut, 1.0)
    ply = tmp_path / "cube.ply"
    WRITERS["ply"][1](ply, 1.0)
    cut_ply = tmp_path / "cut.ply"
    cut_ply.write_bytes(ply.read_bytes()[:-20])
    with pytest.raises(SurfaceError, match=r"cannot read .*cut.ply' as PLY \(truncated, damaged"):
        read_surface(cut_ply, 1.0)


# --- cleaning and checks ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", [[0, 6], [4, 10]])
def test_small_holes_are_filled_and_large_ones_left(missing: list[int]) -> None:
    # one face of the unit cube removed: a square hole sqrt(2) across (planar: exact fill)
    keep = np.setdiff1d(np.arange(12), missing)
    holed = clean(Surface(CUBE_POINTS, CUBE_TRIS[keep]))
    assert check(holed, strict=False).open_edges == 4
    same, filled = fill_holes(holed, 1.41)
    assert filled == 0 and same is holed
    closed, filled = fill_holes(holed, 1.42)
    report = check(clean(closed))
    assert filled == 1 and report.genus == 0
    assert report.volume == pytest.approx(1.0, rel=1e-12)
    assert report.area == pytest.approx(6.0, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Setting the shape:DeprecationWarning")  # skimage 0.26
def test_a_curved_rim_is_closed_by_a_patch_spanning_it() -> None:
    """Polar caps (z > 0.9, z < -0.8) cut off a marching-cubes unit sphere leave ragged,
    non-planar rims 0.87 and 1.2 across; patches close them without new points, taking off
    about the caps' volume (pi h^2 (3 - h) / 3 at h = 0.1 and 0.2). Only holes up to the
    size given are filled."""
    g = np.linspace(-1.2, 1.2, 25)
    x, y, z = np.meshgrid(g, g, g, indexing="ij")
    verts, faces, _, _ = marching_cubes(x**2 + y**2 + z**2, 1.0, spacing=(g[1] - g[0],) * 3)
    sphere = clean(Surface(verts - 1.2, faces))
    centroids = sphere.points[sphere.triangles].mean(axis=1)
    cut = (centroids[:, 2] > 0.9) | (centroids[:, 2] < -0.8)
    holed = clean(Surface(sphere.points, sphere.triangles[~cut]))
    assert check(holed, strict=False).open_edges > 0
    patched, filled = fill_holes(holed, 1.0)
    assert filled == 1
    assert len(patched.points) == len(holed.points)
    with pytest.raises(SurfaceError, match="1 hole"):
        check(clean(patched))  # the large hole stays
    both, filled = fill_holes(holed, 1.3)
    report = check(clean(both))
    assert filled == 2 and report.genus == 0
    caps = np.pi * (0.1**2 * 2.9 + 0.2**2 * 2.8) / 3
    assert report.volume == pytest.approx(check(sphere).volume - caps, rel=2e-3)


def test_filling_holes_without_vtk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vtkmodules.vtkFiltersModeling", None)
    holed = clean(Surface(CUBE_POINTS, CUBE_TRIS[2:]))
    with pytest.raises(SurfaceError, match=r"needs VTK.*cementsim\[repair\]"):
        fill_holes(holed, 2.0)


def test_the_largest_shell_is_kept() -> None:
    small = Surface(CUBE_POINTS * 0.5 + 3.0, CUBE_TRIS)
    pieces = Surface(
        np.concatenate([small.points, CUBE_POINTS]), np.concatenate([CUBE_TRIS, CUBE_TRIS + 8])
    )
    assert check(pieces).n_components == 2
    kept = keep_largest_shell(clean(pieces))
    report = check(kept)
    assert report.n_components == 1 and report.volume == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(report.bbox_min, [0.0, 0.0, 0.0])


def test_inside_out_cube_is_detected_and_flipped() -> None:
    inverted = Surface(CUBE_POINTS, CUBE_TRIS[:, ::-1])
    report = check(inverted, strict=False)
    assert report.inside_out and report.volume == pytest.approx(-1.0)
    with pytest.raises(SurfaceError, match="inside out"):
        check(inverted)
    assert check(clean(inverted)).volume == pytest.approx(1.0, abs=1e-12)


def test_inconsistent_orientation_is_repaired() -> None:
    tris = CUBE_TRIS.copy()
    tris[::3] = tris[::3, ::-1]
    mixed = Surface(CUBE_POINTS, tris)
    assert not check(mixed, strict=False).oriented
    with pytest.raises(SurfaceError, match="inconsistent orientation"):
        check(mixed)
    assert check(clean(mixed)).volume == pytest.approx(1.0, abs=1e-12)


def test_cleaning_merges_near_points_and_drops_bad_triangles() -> None:
    rng = np.random.default_rng(1)
    pts = CUBE_POINTS[CUBE_TRIS].reshape(-1, 3) + rng.uniform(-1e-13, 1e-13, (36, 3))
    tris = np.arange(36).reshape(-1, 3)
    tris = np.concatenate([tris, tris[:2], tris[:1, ::-1], [[0, 0, 1]]])  # dups, degenerate
    surface = clean(Surface(pts, tris))
    report = check(surface)
    assert report.n_points == 8 and report.n_triangles == 12


def test_cavity_is_oriented_inward() -> None:
    # a 3 m cube with a 1 m cubic cavity, both given outward: clean() turns the cavity inward
    pts = np.concatenate([CUBE_POINTS * 3.0, CUBE_POINTS + 1.0])
    both = Surface(pts, np.concatenate([CUBE_TRIS, CUBE_TRIS + 8]))
    report = check(clean(both))
    assert report.n_components == 2 and report.genus == 0
    assert report.volume == pytest.approx(26.0, abs=1e-12)


def test_open_surface_names_open_edges() -> None:
    with pytest.raises(SurfaceError, match=r"not closed: 3 open edges .* 1 hole") as info:
        check(clean(Surface(CUBE_POINTS, CUBE_TRIS[1:])))
    assert " mm" in str(info.value)  # where


def test_nonmanifold_and_self_intersecting_surfaces() -> None:
    # two cubes sharing the edge 5-6 of the first: a non-manifold edge
    shifted = CUBE_POINTS + np.array([1.0, 0.0, 1.0])
    pts = np.concatenate([CUBE_POINTS, shifted])
    both = Surface(pts, np.concatenate([CUBE_TRIS, CUBE_TRIS + 8]))
    report = check(clean(both), strict=False)
    assert report.nonmanifold_edges == 1 and not report.manifold
    with pytest.raises(SurfaceError, match="non-manifold edges"):
        check(clean(both))
    # two overlapping cubes: crossing triangles
    overlap = Surface(
        np.concatenate([CUBE_POINTS, CUBE_POINTS + np.array([0.5, 0.3, 0.2])]),
        np.concatenate([CUBE_TRIS, CUBE_TRIS + 8]),
    )
    with pytest.raises(SurfaceError, match="intersects itself"):
        check(overlap)
    assert check(cube()).genus == 0


def test_unit_trap() -> None:
    # a 40 mm vertebra whose file is in metres (0.04) read as if in mm: 4e-5 m
    tiny = check(Surface(CUBE_POINTS * 0.04 * 1e-3, CUBE_TRIS, 1e-3))
    message = plausible_unit(tiny)
    assert message is not None
    assert "0.04 mm across" in message and "probably in m " in message, message
    # a 40 mm vertebra in mm declared as metres: 40 m
    huge = check(Surface(CUBE_POINTS * 40.0, CUBE_TRIS, 1.0))
    message = plausible_unit(huge)
    assert message is not None and "probably in mm" in message, message
    assert plausible_unit(check(Surface(CUBE_POINTS * 0.04, CUBE_TRIS, 1.0))) is None


def test_closest_points_and_winding_number() -> None:
    rng = np.random.default_rng(7)
    tri = rng.normal(size=(3, 3))
    # dense barycentric samples of the triangle
    u, v = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    keep = u + v <= 1
    samples = tri[0] + u[keep, None] * (tri[1] - tri[0]) + v[keep, None] * (tri[2] - tri[0])
    for p in rng.normal(scale=2.0, size=(40, 3)):
        q = closest_points_on_triangles(p, tri[0:1], tri[1:2], tri[2:3])[0]
        brute = np.min(np.linalg.norm(samples - p, axis=1))
        assert np.linalg.norm(q - p) <= brute + 1e-12
        assert np.linalg.norm(q - p) >= brute - 0.02
    a, b, c = cube().corners()
    assert winding_number(np.array([0.5, 0.4, 0.3]), a, b, c) == pytest.approx(1.0)
    assert winding_number(np.array([1.5, 0.4, 0.3]), a, b, c) == pytest.approx(0.0, abs=1e-12)


# --- volume meshing ---------------------------------------------------------------------------


def local_cell_coordinates(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    n = mesh.topology.index_map(3).size_local
    nodes = dolfinx.mesh.entities_to_geometry(mesh, 3, np.arange(n, dtype=np.int32))
    return mesh.geometry.x[nodes]


def mesh_volume(mesh: dolfinx.mesh.Mesh) -> float:
    x = local_cell_coordinates(mesh)
    e1, e2, e3 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]
    local = np.abs(np.einsum("ij,ij->i", e1, np.cross(e2, e3))).sum() / 6.0
    return COMM.allreduce(local, op=MPI.SUM)


def tip_cell_sizes(mesh: dolfinx.mesh.Mesh, tip: np.ndarray, reach: float) -> tuple[float, float]:
    """Smallest and largest mean edge length (m) of the cells with centroid within reach."""
    x = local_cell_coordinates(mesh)
    near = np.linalg.norm(x.mean(axis=1) - tip, axis=1) <= reach
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    h = np.mean([np.linalg.norm(x[near, i] - x[near, j], axis=1) for i, j in pairs], axis=0)
    small = COMM.allreduce(float(h.min()) if len(h) else math.inf, op=MPI.MIN)
    large = COMM.allreduce(float(h.max()) if len(h) else 0.0, op=MPI.MAX)
    return small, large


@pytest.mark.parametrize("remesh", [True, False])
def test_cube_volume_mesh_with_needle(remesh: bool) -> None:
    side = 10e-3
    tip = np.array([5e-3, 5e-3, 5e-3])
    tagged = mesh_surface_volume(
        cube(side),
        COMM,
        h_max=2e-3,
        h_min=H_MIN,
        needles=[NeedleTip("n", tip, RADIUS)],
        growth=0.3,
        remesh=remesh,
    )
    assert tagged.boundaries == {"surface": SURFACE_TAG}
    assert tagged.regions == {"bone": BONE_TAG}
    assert mesh_volume(tagged.mesh) == pytest.approx(side**3, rel=1e-10)
    assert tagged.info["min_sicn"] > 0.1
    small, large = tip_cell_sizes(tagged.mesh, tip, RADIUS)
    assert small < 1.5 * H_MIN and large < 3 * H_MIN


def test_needle_problems_are_reported() -> None:
    with pytest.raises(MeshError, match=r"needle 'out'.*outside the surface"):
        mesh_surface_volume(
            cube(10e-3),
            COMM,
            h_max=2e-3,
            h_min=H_MIN,
            needles=[NeedleTip("out", np.array([0.02, 0.005, 0.005]), RADIUS)],
        )
    with pytest.raises(MeshError, match=r"needle 'wall'.*less than the needle radius"):
        mesh_surface_volume(
            cube(10e-3),
            COMM,
            h_max=2e-3,
            h_min=H_MIN,
            needles=[NeedleTip("wall", np.array([0.5e-3, 0.005, 0.005]), RADIUS)],
        )
    with pytest.raises(MeshError, match=r"h_min .* at most half"):
        mesh_surface_volume(
            cube(10e-3),
            COMM,
            h_max=2e-3,
            h_min=1e-3,
            needles=[NeedleTip("coarse", np.array([0.005, 0.005, 0.005]), RADIUS)],
        )


@pytest.mark.parametrize(("kind", "compression"), [("stl-binary", "gz"), ("obj-v/vt/vn", "xz")])
def test_compressed_files_read_as_their_contents(
    tmp_path: Path, kind: str, compression: str
) -> None:
    name, write = WRITERS[kind]
    plain = tmp_path / name
    write(plain, 1.0)
    packed = tmp_path / f"{name}.{compression}"
    opener = gzip.open if compression == "gz" else lzma.open
    with opener(packed, "wb") as f:
        f.write(plain.read_bytes())
    a, b = read_surface(plain, 1e-3), read_surface(packed, 1e-3)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.triangles, b.triangles)


def test_a_damaged_compressed_file_is_named(tmp_path: Path) -> None:
    name, write = WRITERS["obj-v/vt/vn"]
    plain = tmp_path / name
    write(plain, 1.0)
    packed = tmp_path / f"{name}.xz"
    packed.write_bytes(lzma.compress(plain.read_bytes())[:-40])  # cut short
    with pytest.raises(SurfaceError, match=f"cannot decompress '{packed}'"):
        read_surface(packed, 1.0)
    zipped = tmp_path / f"{name}.zip"
    zipped.write_bytes(b"PK")
    with pytest.raises(SurfaceError, match=r"unknown surface format \(known: .stl.*\.xz\)"):
        read_surface(zipped, 1.0)


# --- real anatomy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "genus", "volume_cm3"),
    [("L1_body.obj.xz", 0, 43.5), ("S1_Schrumpfverpacken.obj.xz", 11, 245.0)],
)
def test_anatomy_surfaces(name: str, genus: int, volume_cm3: float) -> None:
    _, report = import_surface(LUMBAR / name, 1.0)
    assert report.closed and report.manifold and report.oriented
    assert report.genus == genus and report.n_components == 1
    assert report.self_intersections == 0
    assert report.volume * 1e6 == pytest.approx(volume_cm3, rel=0.02)
    assert plausible_unit(report) is None
    # the same file declared in mm is 1000 times too small: the trap names metres
    message = plausible_unit(check(read_surface(LUMBAR / name, 1e-3), strict=False))
    assert message is not None and "probably in m " in message


def test_meshio_failure_on_schrumpfverpacken_is_handled() -> None:
    path = LUMBAR / "S1_Schrumpfverpacken.obj.xz"
    with uncompressed(path) as plain, pytest.raises(ValueError, match="obj:vn"):
        meshio.read(plain)
    surface = read_surface(path, 1.0)
    assert len(surface.triangles) == 26550


def _mesh_anatomy(name: str, h_max: float, tip: np.ndarray | None) -> tuple:
    surface, report = import_surface(LUMBAR / name, 1.0)
    tip = surface.centroid() if tip is None else tip
    start = time.perf_counter()
    tagged = mesh_surface_volume(
        surface,
        COMM,
        h_max=h_max,
        h_min=H_MIN,
        needles=[NeedleTip("needle", tip, RADIUS)],
        growth=0.3,
        name=name,
    )
    seconds = time.perf_counter() - start
    print(
        f"{name}: {tagged.num_cells_global()} cells, min SICN {tagged.info['min_sicn']:.3f}, "
        f"gmsh {tagged.info['mesh_seconds']:.1f} s, with distribution {seconds:.1f} s"
    )
    return tagged, report, tip


def test_l1_body_volume_mesh_with_needle() -> None:
    tagged, report, tip = _mesh_anatomy("L1_body.obj.xz", 2.5e-3, None)
    assert tagged.info["min_sicn"] > 0.1
    assert mesh_volume(tagged.mesh) == pytest.approx(report.volume, rel=0.01)
    small, large = tip_cell_sizes(tagged.mesh, tip, RADIUS)
    assert small < 1.5 * H_MIN and large < 3 * H_MIN
    _, far = tip_cell_sizes(tagged.mesh, tip, 1.0)
    assert far > 1.5e-3  # coarse away from the tip


def test_sacrum_volume_mesh_with_needle_in_the_ala() -> None:
    tip = np.array([-21.4e-3, -40.0e-3, -13.1e-3])  # left ala of S1, ~11 mm from the cortex
    tagged, report, _ = _mesh_anatomy("S1_Schrumpfverpacken.obj.xz", 4e-3, tip)
    assert tagged.info["min_sicn"] > 0.1
    assert mesh_volume(tagged.mesh) == pytest.approx(report.volume, rel=0.02)
    small, _ = tip_cell_sizes(tagged.mesh, tip, RADIUS)
    assert small < 1.5 * H_MIN
