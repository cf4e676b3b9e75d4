"""Unit tests of the geometric selectors (sim.geometry.selectors).

A gmsh box [0, 2] x [0, 1] x [0, 1] made of two unit cubes (so the mesh conforms to x = 1)
is built on rank 0 and distributed; box, plane and plane-side selections are then exact and
sphere, ellipsoid and patch selections agree with the exact measures within the
discretisation. The L1 body tests read the surface shipped in meshes/.
Runs serially and under ``mpirun -n 2``.
"""

from __future__ import annotations

import math
from pathlib import Path

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import gmsh
import numpy as np
import pytest

from sim.geometry.selectors import (
    Box,
    Ellipsoid,
    NearestPatch,
    Normal,
    Plane,
    PlaneSide,
    SelectorError,
    Sphere,
    apply_cell_selectors,
    apply_facet_selectors,
    outward_facet_normals,
    tag_mesh,
)
from sim.geometry.surface_import import BONE_TAG, SURFACE_TAG, mesh_surface_volume
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh
from sim.shapes.surface import import_surface

COMM = MPI.COMM_WORLD
L1 = (
    Path(__file__).resolve().parents[3]
    / "meshes"
    / "anatomy"
    / "lumbar_L1-L5_S1_artisynth"
    / "L1_body.obj.xz"
)
H = 0.08  # mesh size of the box (m, unitless here)


def build_box() -> None:
    a = gmsh.model.occ.addBox(0, 0, 0, 1, 1, 1)
    b = gmsh.model.occ.addBox(1, 0, 0, 1, 1, 1)
    gmsh.model.occ.fragment([(3, a)], [(3, b)])
    gmsh.model.occ.synchronize()
    volumes = [t for _, t in gmsh.model.getEntities(3)]
    boundary = gmsh.model.getBoundary([(3, v) for v in volumes], oriented=False)
    gmsh.model.addPhysicalGroup(3, volumes, BONE_TAG, "bone")
    gmsh.model.addPhysicalGroup(2, sorted({abs(t) for _, t in boundary}), SURFACE_TAG, "surface")
    gmsh.option.setNumber("Mesh.MeshSizeMax", H)


@pytest.fixture(scope="module")
def box() -> TaggedMesh:
    return mesh_from_gmsh(build_box, COMM, "box")


@pytest.fixture(scope="module")
def l1() -> TaggedMesh:
    surface, _ = import_surface(L1, 1.0)
    return mesh_surface_volume(surface, COMM, h_max=2e-3, h_min=1e-3, name="L1")


# --- measures ---------------------------------------------------------------------------------


def owned(mesh: dolfinx.mesh.Mesh, dim: int, entities: np.ndarray) -> np.ndarray:
    return entities[entities < mesh.topology.index_map(dim).size_local]


def area(mesh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, tag: int) -> float:
    facets = owned(mesh, 2, tags.find(tag))
    local = outward_facet_normals(mesh, facets)[1].sum() if len(facets) else 0.0
    return COMM.allreduce(float(local), op=MPI.SUM)


def mean_normal(mesh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, tag: int) -> np.ndarray:
    """Area-weighted mean outward normal of a tag."""
    facets = owned(mesh, 2, tags.find(tag))
    normals, areas, _ = outward_facet_normals(mesh, facets)
    total = COMM.allreduce((normals * areas[:, None]).sum(axis=0), op=MPI.SUM)
    return total / COMM.allreduce(areas.sum(), op=MPI.SUM)


def volume(mesh: dolfinx.mesh.Mesh, tags: dolfinx.mesh.MeshTags, tag: int) -> float:
    cells = owned(mesh, 3, tags.find(tag))
    x = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 3, cells)]
    e1, e2, e3 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]
    local = np.abs(np.einsum("ij,ij->i", e1, np.cross(e2, e3))).sum() / 6.0
    return COMM.allreduce(float(local), op=MPI.SUM)


def facets_of(box: TaggedMesh, selectors: dict) -> tuple[dolfinx.mesh.MeshTags, dict[str, int]]:
    return apply_facet_selectors(box.mesh, box.facet_tags, selectors)


# --- facet selectors on the box ---------------------------------------------------------------


def test_outward_normals_point_out(box: TaggedMesh) -> None:
    facets = box.facet_tags.find(SURFACE_TAG)
    normals, _, corners = outward_facet_normals(box.mesh, facets)
    mid = corners.mean(axis=1)
    probe = mid + 1e-3 * normals  # just outside the box
    outside = np.any((probe < 0) | (probe > [2, 1, 1]), axis=1)
    assert outside.all()
    assert area(box.mesh, box.facet_tags, SURFACE_TAG) == pytest.approx(10.0, rel=1e-12)


def test_exact_facet_selectors(box: TaggedMesh) -> None:
    eps = 1e-9
    tags, names = facets_of(
        box,
        {
            "left": Plane(point=(0, 0, 0), normal=(1, 0, 0), tol=eps),
            "top": Normal(direction=(0, 0, 1), max_angle_deg=10),
            "front_right": Box(min=(1 - eps, -eps, -eps), max=(2 + eps, eps, 1 + eps)),
        },
    )
    assert list(names.values()) == [SURFACE_TAG + 1, SURFACE_TAG + 2, SURFACE_TAG + 3]
    assert area(box.mesh, tags, names["left"]) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(mean_normal(box.mesh, tags, names["left"]), [-1, 0, 0], atol=1e-12)
    assert area(box.mesh, tags, names["top"]) == pytest.approx(2.0, rel=1e-12)
    assert area(box.mesh, tags, names["front_right"]) == pytest.approx(1.0, rel=1e-12)
    assert area(box.mesh, tags, SURFACE_TAG) == pytest.approx(6.0, rel=1e-12)  # the rest


def test_plane_normal_angle_filter(box: TaggedMesh) -> None:
    # near z = 1 only the top face points up; a plane with a huge tolerance takes the rest
    strips = Plane(point=(1, 0, 0), normal=(0, 0, 1), tol=10.0)
    tags, names = facets_of(
        box,
        {
            "z_up": Plane(point=(0, 0, 1), normal=(0, 0, 1), tol=0.01, max_angle_deg=30),
            "everything": strips,
        },
    )
    assert area(box.mesh, tags, names["z_up"]) == pytest.approx(2.0, rel=1e-12)
    assert area(box.mesh, tags, names["everything"]) == pytest.approx(8.0, rel=1e-12)
    with pytest.raises(SelectorError, match=r"'inward'.*smallest angle .* 180 degrees"):
        facets_of(
            box, {"inward": Plane(point=(0, 0, 0), normal=(1, 0, 0), tol=1e-9, max_angle_deg=30)}
        )


def test_sphere_and_nearest_patch(box: TaggedMesh) -> None:
    r = 0.3
    tags, names = facets_of(
        box,
        {
            "disc": Sphere(centre=(0.5, 0.5, 1.0), radius=r),
            "patch": NearestPatch(landmark=(1.5, -0.4, 0.5), radius=r),  # nearest point: y = 0
        },
    )
    exact = math.pi * r**2
    slack = 0.25 * 2 * math.pi * r * H  # midpoints on the circle: a fraction of perimeter * h
    for name in names:
        assert area(box.mesh, tags, names[name]) == pytest.approx(exact, abs=slack)
    np.testing.assert_allclose(mean_normal(box.mesh, tags, names["patch"]), [0, -1, 0], atol=1e-12)


def test_nearest_patch_is_connected_and_stays_on_its_side(box: TaggedMesh) -> None:
    # near the edge y = 0, z = 1 a ball of radius 0.3 around the nearest point also reaches
    # the top face: connected through the edge, the patch is two half discs
    landmark = (1.5, -0.5, 1.2)
    tags, names = facets_of(box, {"corner": NearestPatch(landmark=landmark, radius=0.3)})
    n = mean_normal(box.mesh, tags, names["corner"])
    assert n[1] < -0.3 and n[2] > 0.3
    assert area(box.mesh, tags, names["corner"]) == pytest.approx(math.pi * 0.09, rel=0.15)


def test_overlapping_selectors_resolve_in_order(box: TaggedMesh) -> None:
    eps = 1e-9
    right_top = Box(min=(1 - eps, -eps, 1 - eps), max=(2 + eps, 1 + eps, 1 + eps))
    top = Normal(direction=(0, 0, 1), max_angle_deg=10)
    tags, names = facets_of(box, {"right_top": right_top, "top": top})
    assert area(box.mesh, tags, names["right_top"]) == pytest.approx(1.0, rel=1e-12)
    assert area(box.mesh, tags, names["top"]) == pytest.approx(1.0, rel=1e-12)  # what is left
    taken = r"'right_top'.*already taken by earlier selectors \('top'\)"
    with pytest.raises(SelectorError, match=taken):
        facets_of(box, {"top": top, "right_top": right_top})


def test_within_intersects(box: TaggedMesh) -> None:
    eps = 1e-9
    right_half = Box(min=(1 - eps, -1, -1), max=(3, 2, 2))
    tags, names = facets_of(
        box,
        {
            "top_right": Normal(direction=(0, 0, 1), max_angle_deg=10, within=right_half),
            "right_sides": Normal(
                direction=(0, 1, 0),
                max_angle_deg=100,
                within=PlaneSide(point=(1.0, 0, 0), normal=(1, 0, 0)),
            ),
        },
    )
    assert area(box.mesh, tags, names["top_right"]) == pytest.approx(1.0, rel=1e-12)
    # right half with normals within 100 degrees of +y: back (y=1), bottom, x=2 end (90 deg)
    assert area(box.mesh, tags, names["right_sides"]) == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(SelectorError, match=r"'apart'.*none is in both"):
        facets_of(
            box,
            {
                "apart": Normal(
                    direction=(0, 0, 1),
                    max_angle_deg=10,
                    within=Normal(direction=(0, 0, -1), max_angle_deg=10),
                )
            },
        )


def test_empty_selection_names_the_selector(box: TaggedMesh) -> None:
    with pytest.raises(SelectorError, match=r"'far' \(Sphere\).*3 m from the centre") as info:
        facets_of(
            box,
            {
                "near": Sphere(centre=(0, 0, 0), radius=0.2),
                "far": Sphere(centre=(-3, 0.5, 0.5), radius=0.1),
            },
        )
    assert "'near'" not in str(info.value)
    with pytest.raises(SelectorError, match=r"'nowhere' \(Box\).*outside the box"):
        facets_of(box, {"nowhere": Box(min=(5, 5, 5), max=(6, 6, 6))})
    with pytest.raises(SelectorError, match=r"cannot select cells"):
        apply_cell_selectors(
            box.mesh, box.cell_tags, {"p": Plane(point=(0, 0, 0), normal=(1, 0, 0), tol=1)}
        )
    with pytest.raises(ValueError, match="radius"):
        Sphere(centre=(0, 0, 0), radius=-1.0)


# --- cell selectors on the box ----------------------------------------------------------------


def test_cell_selectors(box: TaggedMesh) -> None:
    eps = 1e-9
    r = 0.3
    tags, names = apply_cell_selectors(
        box.mesh,
        box.cell_tags,
        {
            "ball": Sphere(centre=(0.5, 0.5, 0.5), radius=r),
            "egg": Ellipsoid(centre=(1.5, 0.5, 0.5), radii=(0.4, 0.3, 0.2)),
            "right": PlaneSide(point=(1, 0, 0), normal=(1, 0, 0)),  # minus the egg
            "lower_left": Box(min=(-eps, -eps, -eps), max=(1 + eps, 1 + eps, 0.5)),
        },
    )
    bone = BONE_TAG
    assert names == {"ball": bone + 1, "egg": bone + 2, "right": bone + 3, "lower_left": bone + 4}
    ball, egg = 4 / 3 * math.pi * r**3, 4 / 3 * math.pi * 0.4 * 0.3 * 0.2
    slack = 0.5 * 4 * math.pi * r**2 * H  # centroids near the sphere: a fraction of area * h
    assert volume(box.mesh, tags, names["ball"]) == pytest.approx(ball, abs=slack)
    assert volume(box.mesh, tags, names["egg"]) == pytest.approx(egg, rel=0.3)
    right = volume(box.mesh, tags, names["right"]) + volume(box.mesh, tags, names["egg"])
    assert right == pytest.approx(1.0, rel=1e-12)
    total = sum(volume(box.mesh, tags, t) for t in [bone, *names.values()])
    assert total == pytest.approx(2.0, rel=1e-12)
    assert volume(box.mesh, tags, names["lower_left"]) < 0.5


def test_tag_mesh(box: TaggedMesh) -> None:
    tagged = tag_mesh(
        box,
        facets={"left": Plane(point=(0, 0, 0), normal=(1, 0, 0), tol=1e-9)},
        cells={"right": PlaneSide(point=(1, 0, 0), normal=(1, 0, 0))},
    )
    assert set(tagged.boundaries) == {"surface", "left"}
    assert set(tagged.regions) == {"bone", "right"}
    tagged.check_names({"surface", "left"}, {"bone", "right"})
    assert area(tagged.mesh, tagged.facet_tags, tagged.boundaries["left"]) == pytest.approx(1.0)
    assert box.boundaries == {"surface": SURFACE_TAG}  # the input is unchanged
    with pytest.raises(SelectorError, match="already exist"):
        tag_mesh(box, facets={"surface": Normal(direction=(0, 0, 1), max_angle_deg=10)})


@pytest.mark.parametrize(
    "ghost_mode", [dolfinx.mesh.GhostMode.none, dolfinx.mesh.GhostMode.shared_facet]
)
def test_ghost_facets_and_cells_agree_with_their_owners(ghost_mode) -> None:
    mesh = dolfinx.mesh.create_unit_cube(COMM, 8, 8, 8, ghost_mode=ghost_mode)
    mesh.topology.create_connectivity(2, 3)
    imap = mesh.topology.index_map(2)
    n_local = imap.size_local + imap.num_ghosts
    f2c = mesh.topology.connectivity(2, 3)
    one_cell = np.flatnonzero(np.diff(f2c.offsets) == 1).astype(np.int32)
    mid = dolfinx.mesh.compute_midpoints(mesh, 2, one_cell)
    boundary = one_cell[np.any(np.isclose(mid, 0) | np.isclose(mid, 1), axis=1)]
    facet_tags = dolfinx.mesh.meshtags(mesh, 2, boundary, np.full(len(boundary), 1, np.int32))
    tags, names = apply_facet_selectors(
        mesh,
        facet_tags,
        {
            "x0": Plane(point=(0, 0, 0), normal=(1, 0, 0), tol=1e-9),
            "patch": NearestPatch(landmark=(0.5, 0.5, 1.3), radius=0.3),
            "back": Normal(direction=(0, 1, 0), max_angle_deg=1),
        },
    )
    # the owner's tag of every facet, sent to its ghosts, equals the ghost's own tag
    owner = dolfinx.la.vector(imap, 1)
    owner.array[:] = 0
    owner.array[tags.indices] = tags.values
    owner.scatter_forward()
    assert np.all(owner.array[:n_local][tags.indices] == tags.values)
    assert area(mesh, tags, names["x0"]) == pytest.approx(1.0)
    assert area(mesh, tags, names["back"]) == pytest.approx(1.0)
    assert area(mesh, tags, names["patch"]) == pytest.approx(math.pi * 0.09, rel=0.15)
    n_cells = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
    all_cells = np.arange(n_cells, dtype=np.int32)
    cell_tags = dolfinx.mesh.meshtags(mesh, 3, all_cells, np.full(n_cells, 1, np.int32))
    ctags, cnames = apply_cell_selectors(
        mesh, cell_tags, {"half": PlaneSide(point=(0.5, 0, 0), normal=(1, 0, 0))}
    )
    assert volume(mesh, ctags, cnames["half"]) == pytest.approx(0.5)


# --- the L1 body ------------------------------------------------------------------------------


def test_l1_upper_endplate(l1: TaggedMesh) -> None:
    # the body was cut from the vertebra by planes: its upper endplate is one plane, tilted
    # ~15 degrees (lordosis), spanning ~9 mm in z
    z = l1.mesh.geometry.x[:, 2]
    z_top = COMM.allreduce(float(z.max()), op=MPI.MAX)
    tags, names = apply_facet_selectors(
        l1.mesh,
        l1.facet_tags,
        {
            "endplate_upper": Plane(
                point=(0, 0, z_top - 6e-3), normal=(0, 0, 1), tol=6e-3, max_angle_deg=45
            ),
        },
    )
    n = mean_normal(l1.mesh, tags, names["endplate_upper"])
    a = area(l1.mesh, tags, names["endplate_upper"])
    up, up_names = apply_facet_selectors(
        l1.mesh, l1.facet_tags, {"up": Normal(direction=(0, 0, 1), max_angle_deg=45)}
    )
    print(f"L1 upper endplate: {a * 1e4:.2f} cm2, mean normal {n}")
    assert n[2] > 0.9
    assert a == pytest.approx(area(l1.mesh, up, up_names["up"]), rel=1e-12)
    assert 12e-4 < a < 18e-4  # ~45 x 49 mm, elliptic: ~15 cm2 (the surface file: 14.8 cm2)


def test_l1_posterior_nearest_patch(l1: TaggedMesh) -> None:
    x = l1.mesh.geometry.x
    lo, hi = np.empty(3), np.empty(3)
    COMM.Allreduce(x.min(axis=0), lo, op=MPI.MIN)
    COMM.Allreduce(x.max(axis=0), hi, op=MPI.MAX)
    mid = 0.5 * (lo + hi)
    landmark = (lo[0] - 5e-3, mid[1], mid[2])  # behind the posterior wall (-x)
    r = 5e-3
    tags, names = apply_facet_selectors(
        l1.mesh, l1.facet_tags, {"foramen": NearestPatch(landmark=landmark, radius=r)}
    )
    a = area(l1.mesh, tags, names["foramen"])
    n = mean_normal(l1.mesh, tags, names["foramen"])
    print(f"L1 posterior patch: {a * 1e6:.1f} mm2 (pi r^2 {math.pi * r**2 * 1e6:.1f}), normal {n}")
    assert a == pytest.approx(math.pi * r**2, rel=0.1)
    assert n[0] < -0.8
    assert connected_pieces(l1.mesh, tags.find(names["foramen"])) == 1


def connected_pieces(mesh: dolfinx.mesh.Mesh, facets: np.ndarray) -> int:
    """Number of edge-connected pieces of a set of facets (gathered over ranks)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mesh.topology.create_connectivity(2, 0)
    local = mesh.topology.connectivity(2, 0).array.reshape(-1, 3)[facets]
    glob = mesh.topology.index_map(0).local_to_global(local.ravel()).reshape(-1, 3)
    keys = np.unique(np.sort(np.concatenate(COMM.allgather(glob)), axis=1), axis=0)
    edges = np.concatenate([keys[:, [0, 1]], keys[:, [1, 2]], keys[:, [0, 2]]])
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    n_f = len(keys)
    rows = np.tile(np.arange(n_f), 3)
    n = n_f + edge_id.max() + 1
    graph = coo_matrix((np.ones(3 * n_f), (rows, n_f + edge_id.ravel())), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return len(np.unique(label[:n_f]))
