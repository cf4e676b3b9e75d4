"""Verification of the virtual fluoroscopy and the CT-like sections (sim.outputs.imaging).

An image holds the exact line integral of the finite-element field along one ray per pixel
(1e-7 pixel off the pixel centre: `Detector.rays`); a section holds the field at the points
where those rays cross a plane. Checked against closed forms: a linear field through a box
(exact), a ball of cement (chord length 2 phi sqrt(R^2 - rho^2), converging with the mesh),
the total of the image against the integral of phi S, sections against the field, and the
same images on 1 and on all MPI ranks. Every test also runs under `mpirun -n 2`.
"""

from __future__ import annotations

import itertools

from mpi4py import MPI  # before dolfinx

# isort: split
import dolfinx
import gmsh
import numpy as np
import pytest

from sim import measurements as measure
from sim.geometry.tagged_mesh import TaggedMesh, mesh_from_gmsh
from sim.outputs.imaging import (
    VIEWS,
    Detector,
    FluoroscopyRecorder,
    project,
    projection_matrix,
    section,
    side_markers,
)
from sim.problem import InjectionProblem

from .conftest import cube_of_bone

COMM = MPI.COMM_WORLD
L = 0.02  # box edge (m)
LO = np.array([0.013, -0.021, 0.05])  # box corner, off the origin (m)
GRAD = np.array([30.0, 70.0, -50.0])  # g(x) = 1 + GRAD . (x - LO): between 0 and 3 in the box
R, PHI = 5e-3, 0.8  # cement ball radius (m) and porosity
BALL_SIZES = (1.0e-3, 0.7e-3, 0.5e-3)  # mesh size at the ball's surface (m)
BALL_PIXEL = R / 20


def linear(x: np.ndarray) -> np.ndarray:
    return 1.0 + (x - LO) @ GRAD


def box(comm: MPI.Comm, n: int) -> dolfinx.mesh.Mesh:
    """[LO, LO + L] in n^3 cubes of six tetrahedra."""
    return dolfinx.mesh.create_box(
        comm, [LO, LO + L], [n, n, n], cell_type=dolfinx.mesh.CellType.tetrahedron
    )


def owned_cells_x(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """(n, 4, 3) vertex coordinates of the owned cells (each cell on exactly one rank)."""
    n = mesh.topology.index_map(3).size_local
    nodes = dolfinx.mesh.entities_to_geometry(mesh, 3, np.arange(n, dtype=np.int32))
    return mesh.geometry.x[nodes]


def volumes(cells_x: np.ndarray) -> np.ndarray:
    e = cells_x[:, 1:] - cells_x[:, :1]
    return np.abs(np.linalg.det(e)) / 6.0


def plane_points(detector: Detector, depth: float) -> np.ndarray:
    """(nb, na, 3) points where the detector's rays cross the plane at `depth` on the beam."""
    beam, ia, ib = VIEWS[detector.view]
    a, b = detector.rays()
    x = np.empty((len(b), len(a), 3))
    x[..., ia], x[..., ib] = np.meshgrid(a, b)
    x[..., beam] = depth
    return x


def inside_box(detector: Detector) -> np.ndarray:
    """Pixels whose whole square lies on the box's projection."""
    _, ia, ib = VIEWS[detector.view]
    a, b = detector.centres()
    h = detector.pixel / 2 * (1 + 1e-9)
    ok_a = (a - h >= LO[ia]) & (a + h <= LO[ia] + L)
    ok_b = (b - h >= LO[ib]) & (b + h <= LO[ib] + L)
    return ok_b[:, None] & ok_a[None, :]


def box_detector(view: str, pixel: float, offset: float = 0.0) -> Detector:
    """Pixels over the box's projection, the first centre `offset` + pixel/2 from its edge."""
    _, ia, ib = VIEWS[view]
    return Detector(
        view,
        pixel,
        (LO[ia] + offset, LO[ia] + L - offset),
        (LO[ib] + offset, LO[ib] + L - offset),
    )


# (a) exactness for a linear field ------------------------------------------------------------


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize(
    ("pixel", "offset"),
    [(L / 16, -L / 32), (L / 37, 0.0)],
    ids=["centres-on-cell-faces", "generic-pixels"],
)
def test_projection_of_a_linear_field_is_exact(view, pixel, offset):
    """Through the box, int g dt = L g(a, b, middle): exact, also for rays in shared faces."""
    cells_x = owned_cells_x(box(COMM, 8))
    detector = box_detector(view, pixel, offset)
    image = project(cells_x, linear(cells_x), np.ones(len(cells_x)), detector, COMM)
    beam = VIEWS[view][0]
    exact = L * linear(plane_points(detector, LO[beam] + L / 2))
    inside = inside_box(detector)
    assert inside.sum() >= 100
    error = np.abs(image - exact)[inside].max() / np.abs(exact[inside]).max()
    assert error <= 1e-12, error
    # at the pixel centres themselves the ray offset costs at most 1e-7 pixel x |grad g| L
    a, b = detector.centres()
    x = plane_points(detector, LO[beam] + L / 2)
    x[..., VIEWS[view][1]], x[..., VIEWS[view][2]] = np.meshgrid(a, b)
    off_centre = np.abs(image - L * linear(x))[inside].max()
    assert off_centre <= 3e-7 * pixel * np.linalg.norm(GRAD) * L


# (b) a ball of cement ------------------------------------------------------------------------


def ball_in_box(comm: MPI.Comm, h: float) -> TaggedMesh:
    """A ball of radius R (region ``ball``) in a cube of edge 2.8 R (region ``outside``),
    with cells of size h at the sphere, growing to 4 h away from it."""

    def build() -> None:
        occ = gmsh.model.occ
        half = 1.4 * R
        cube = occ.addBox(-half, -half, -half, 2 * half, 2 * half, 2 * half)
        ball = occ.addSphere(0, 0, 0, R)
        occ.fragment([(3, cube)], [(3, ball)])
        occ.synchronize()
        parts = [t for _, t in gmsh.model.getEntities(3)]
        inner = [t for t in parts if abs(occ.getMass(3, t) - 4 / 3 * np.pi * R**3) < 1e-3 * R**3]
        outer = [t for t in parts if t not in inner]
        gmsh.model.addPhysicalGroup(3, inner, 1, "ball")
        gmsh.model.addPhysicalGroup(3, outer, 2, "outside")
        faces = gmsh.model.getBoundary([(3, t) for t in outer], oriented=False)
        gmsh.model.addPhysicalGroup(2, [t for _, t in faces], 1, "faces")
        size = gmsh.model.mesh.field.add("MathEval")
        gmsh.model.mesh.field.setString(
            size, "F", f"Min({4 * h}, {h} + 0.5 * Abs(Sqrt(x*x + y*y + z*z) - {R}))"
        )
        gmsh.model.mesh.field.setAsBackgroundMesh(size)
        for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
            gmsh.option.setNumber(f"Mesh.{option}", 0)

    return mesh_from_gmsh(build, comm, "ball_in_box")


@pytest.fixture(scope="module")
def balls() -> dict[float, tuple[TaggedMesh, np.ndarray, np.ndarray]]:
    """Mesh, owned cells' coordinates and cement indicator (1 in the ball) per mesh size."""
    out = {}
    for h in BALL_SIZES:
        tagged = ball_in_box(COMM, h)
        cells_x = owned_cells_x(tagged.mesh)
        indicator = np.zeros(len(cells_x))
        ball = tagged.cells("ball")
        indicator[ball[ball < len(cells_x)]] = 1.0
        out[h] = (tagged, cells_x, indicator)
    return out


def test_projection_of_a_ball_converges_to_the_chord_length(balls):
    """S = 1 in the ball's cells, 0 outside: the image is the exact projection of the
    polyhedral ball, whose surface lies within O(h^2) of the sphere, so the error falls as h^2.
    Exact image: 2 phi sqrt(R^2 - rho^2) along every ray."""
    extent = (-1.4 * R, 1.4 * R)
    l1, totals = [], []
    for h in BALL_SIZES:
        _, cells_x, indicator = balls[h]
        values = np.repeat(indicator[:, None], 4, axis=1)
        for view in VIEWS:
            detector = Detector(view, BALL_PIXEL, extent, extent)
            image = project(cells_x, values, np.full(len(cells_x), PHI), detector, COMM)
            a, b = detector.rays()
            exact = 2 * PHI * np.sqrt(np.maximum(R**2 - a[None, :] ** 2 - b[:, None] ** 2, 0))
            if view == "ap":
                l1.append(np.abs(image - exact).sum() / exact.sum())
                totals.append(image.sum() * BALL_PIXEL**2 / (PHI * 4 / 3 * np.pi * R**3) - 1)
            else:  # the same ball seen from elsewhere: same error level
                assert np.abs(image - exact).sum() / exact.sum() < 1.5 * l1[-1]
    order = np.polyfit(np.log(BALL_SIZES), np.log(l1), 1)[0]
    print(
        f"\nball R = {R * 1e3} mm, pixel {BALL_PIXEL * 1e3} mm; surface mesh size (mm), "
        "L1 error of the image, error of the total:"
    )
    for h, e, t in zip(BALL_SIZES, l1, totals, strict=True):
        print(f"  h = {h * 1e3:.2f}  L1 {e:.2e}  total {t:+.2e}")
    print(f"  observed order {order:.2f}")
    assert l1[-1] <= 0.01 and abs(totals[-1]) <= 0.01
    assert all(e1 < e0 for e0, e1 in itertools.pairwise(l1))
    assert order > 1.5


# (c) conservation ----------------------------------------------------------------------------


def test_image_total_is_the_integral_of_the_field_where_pixel_sums_are_exact():
    """phi varies from cube to cube, S is linear: along the beam each cube's column of cells
    contributes h g(a, b, middle), linear in (a, b), so with pixels tiling the columns the
    pixel sum x pixel area is the integral of phi S exactly. Catches cells counted twice (rays
    in shared faces, ghost cells) or missed, on any number of ranks."""
    n = 6
    h = L / n
    cells_x = owned_cells_x(box(COMM, n))
    cube = np.floor((cells_x.mean(axis=1) - LO) / h).astype(int) @ np.array([1, n, n * n])
    phi = np.random.default_rng(5).uniform(0.2, 1.0, n**3)[cube]
    values = linear(cells_x)
    integral = COMM.allreduce(float((phi * volumes(cells_x) * values.mean(axis=1)).sum()))
    for view in VIEWS:
        detector = box_detector(view, h / 2)
        image = project(cells_x, values, phi, detector, COMM)
        total = image.sum() * detector.pixel**2
        assert total == pytest.approx(integral, rel=1e-12), view


def test_image_total_converges_to_the_integral_of_the_field(balls):
    """In general the pixels sample the projection at their rays (a point detector), so the
    image total approximates the integral of phi S by the midpoint rule: about second order
    in the pixel size (not monotonically: the projection has kinks along the projected cell
    edges). Smooth cement cloud S(r) on the unstructured mesh, phi varying per cell; the
    error is the RMS over the three views."""
    _, cells_x, _ = balls[BALL_SIZES[0]]
    r = np.linalg.norm(cells_x - np.array([0.2, -0.1, 0.1]) * R, axis=2)
    values = 0.5 * (1 - np.tanh((r - 0.6 * R) / (0.08 * R)))  # < 1e-6 at the cube's faces
    phi = 0.6 + 0.3 * np.sin(cells_x.mean(axis=1) @ np.array([300.0, 200.0, -100.0]))
    integral = COMM.allreduce(float((phi * volumes(cells_x) * values.mean(axis=1)).sum()))
    extent = (-1.4 * R, 1.4 * R)
    counts = (10, 20, 40, 80, 160)  # pixels across the cube
    pixels = [2.8 * R / k for k in counts]
    errors = []
    for pixel in pixels:
        totals = [
            project(cells_x, values, phi, Detector(v, pixel, extent, extent), COMM).sum() * pixel**2
            for v in VIEWS
        ]
        errors.append(np.sqrt(np.mean((np.array(totals) / integral - 1) ** 2)))
    order = np.polyfit(np.log(pixels), np.log(errors), 1)[0]
    print("\nimage total against the integral of phi S (pixels across: relative error):")
    print("  " + ", ".join(f"{k}: {e:.1e}" for k, e in zip(counts, errors, strict=True)))
    print(f"  observed order {order:.2f}")
    assert errors[-1] < 2e-5 and order > 1.5


# (d) sections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "name"), [("ap", "coronal"), ("lateral", "sagittal"), ("axial", "axial")]
)
@pytest.mark.parametrize(
    ("on_cell_faces", "pixel", "pad"),
    [(False, L / 23, 0.1 * L), (True, L / 16, L / 8 + L / 32)],
    ids=["generic", "on-cell-faces"],
)
def test_section_reproduces_a_linear_field(view, name, on_cell_faces, pixel, pad):
    """Through the point p: the field at every sample point in the box, NaN outside; also
    with p and the sample points on the planes of the cells' faces."""
    n = 8
    cells_x = owned_cells_x(box(COMM, n))
    p = LO + (np.array([2, 4, 6]) / n if on_cell_faces else np.array([0.31, 0.55, 0.72])) * L
    beam, ia, ib = VIEWS[view]
    detector = Detector(
        view, pixel, (LO[ia] - pad, LO[ia] + L + pad), (LO[ib] - pad, LO[ib] + L + pad)
    )
    image = section(cells_x, linear(cells_x), detector, float(p[beam]), COMM)
    x = plane_points(detector, p[beam])
    exact = linear(x)
    inside = np.all((x > LO) & (x < LO + L), axis=2)
    outside = np.any((x < LO - 1e-9 * L) | (x > LO + L + 1e-9 * L), axis=2)
    assert inside.sum() >= 225, name
    assert np.abs(image - exact)[inside].max() <= 1e-12 * np.abs(exact).max(), name
    assert np.isnan(image[outside]).all() and outside.any(), name


def _best_cell(cells_x: np.ndarray, candidates: np.ndarray, point: np.ndarray) -> tuple:
    """(smallest barycentric coordinate at `point`, cell) of the candidate cell where that
    coordinate is largest: the cell that contains the point best."""
    x = cells_x[candidates]
    jacobian = np.swapaxes(x[:, 1:] - x[:, :1], 1, 2)
    lam = np.linalg.solve(jacobian, (point - x[:, 0])[:, :, None])[:, :, 0]
    lowest = np.minimum(1 - lam.sum(axis=1), lam.min(axis=1))
    return lowest.max(), np.int32(candidates[np.argmax(lowest)])


def test_section_of_a_p1_field_matches_dolfinx_evaluation(balls):
    """A non-linear field interpolated in P1 on the unstructured mesh, laid out as in the
    simulator (dof coordinates, dofmap): sections equal dolfinx's own point evaluation."""
    tagged, _, _ = balls[BALL_SIZES[0]]
    mesh = tagged.mesh
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    u = dolfinx.fem.Function(V)
    u.interpolate(lambda x: np.sin(400 * x[0]) * np.cos(300 * x[1]) + 2e4 * x[2] ** 2)
    n = mesh.topology.index_map(3).size_local
    dofs = V.dofmap.list[:n]
    cells_x = V.tabulate_dof_coordinates()[dofs]
    tree = dolfinx.geometry.bb_tree(mesh, 3, entities=np.arange(n, dtype=np.int32))
    p = np.array([0.3, -0.45, 0.2]) * R
    extent = (-1.4 * R, 1.4 * R)
    for view in VIEWS:
        beam = VIEWS[view][0]
        detector = Detector(view, 2.8 * R / 41, extent, extent)
        image = section(cells_x, u.x.array[dofs], detector, float(p[beam]), COMM)
        points = plane_points(detector, p[beam]).reshape(-1, 3)
        hits = dolfinx.geometry.compute_colliding_cells(
            mesh, dolfinx.geometry.compute_collisions_points(tree, points), points
        )
        # dolfinx accepts cells up to a distance of about 1e-6 (m here): per point, the
        # owned cell (over all ranks) that contains it best
        found = np.nonzero(np.diff(hits.offsets) > 0)[0]
        best = [_best_cell(cells_x, hits.links(i), points[i]) for i in found]
        fit, value = np.full(len(points), -np.inf), np.full(len(points), np.nan)
        if len(found):
            fit[found] = [b[0] for b in best]
            value[found] = u.eval(points[found], np.array([b[1] for b in best])).ravel()
        fits, values = np.array(COMM.allgather(fit)), np.array(COMM.allgather(value))
        pick = np.argmax(fits, axis=0)
        expected = values[pick, np.arange(len(points))]
        assert np.isfinite(expected).sum() > 1000
        np.testing.assert_allclose(image.ravel(), expected, rtol=0, atol=1e-10, equal_nan=True)


# (e) parallel --------------------------------------------------------------------------------


def rough(cells_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex values and cell factors that depend on the position only (not on the ranks)."""
    values = np.sin(cells_x @ np.array([700.0, -400.0, 900.0])) ** 2
    factor = 0.5 + 0.4 * np.cos(cells_x.mean(axis=1) @ np.array([-300.0, 800.0, 500.0]))
    return values, factor


def test_images_and_sections_on_all_ranks_equal_the_single_rank_ones():
    """The mesh distributed over COMM_WORLD against the whole mesh on each rank alone."""
    results = {}
    for label, comm in (("world", COMM), ("self", MPI.COMM_SELF)):
        cells_x = owned_cells_x(box(comm, 10))
        values, factor = rough(cells_x)
        results[label] = [
            project(cells_x, values, factor, box_detector(v, L / 53, -0.05 * L), comm)
            for v in VIEWS
        ] + [
            section(cells_x, values, box_detector(v, L / 53, -0.05 * L), depth, comm)
            for v, depth in zip(VIEWS, LO + np.array([0.3, 0.6, 0.45]) * L, strict=True)
        ]
    for world, alone in zip(results["world"], results["self"], strict=True):
        scale = np.nanmax(np.abs(alone))
        np.testing.assert_allclose(world, alone, rtol=0, atol=1e-13 * scale, equal_nan=True)
    # the parallel image is the same on every rank
    gathered = COMM.allgather(results["world"][0])
    assert all(np.array_equal(g, gathered[0]) for g in gathered)


def test_projection_matrix_gives_the_projection(balls):
    """The recorder's precomputed sparse matrix (sum over ranks of M @ values) is `project`."""
    _, cells_x, _ = balls[BALL_SIZES[0]]
    values, factor = rough(cells_x)
    extent = (-1.5 * R, 1.5 * R)
    for view in VIEWS:
        detector = Detector(view, 2.8 * R / 97, extent, (-1.2 * R, 1.6 * R))
        matrix = projection_matrix(cells_x, detector)
        assert matrix.shape == (detector.shape[0] * detector.shape[1], 4 * len(cells_x))
        image = matrix @ (factor[:, None] * values).ravel()
        COMM.Allreduce(MPI.IN_PLACE, image, op=MPI.SUM)
        expected = project(cells_x, values, factor, detector, COMM)
        np.testing.assert_allclose(image.reshape(detector.shape), expected, rtol=0, atol=1e-14)
        assert expected.max() > 1e-3


@pytest.fixture(scope="module")
def cube_problem() -> InjectionProblem:
    return cube_of_bone(L, 10, 0.85)


def test_fluoroscopy_recorder_projects_phi_s_and_the_bone(cube_problem):
    """The recorder as used in runs (dofs, porosity, owned cells), on a cube [0, L]^3 of bone
    with S linear: cement = phi L S(middle), bone = (1 - phi) L through the cube."""
    pb = cube_problem
    slope = np.array([10.0, 20.0, -15.0])  # S between 0.1 and 0.9

    def saturation(x: np.ndarray) -> np.ndarray:
        return 0.5 + (x - L / 2) @ slope

    pb.state.S.x.array[:] = saturation(pb.disc.V.tabulate_dof_coordinates())
    recorder = FluoroscopyRecorder(pb, pixel=L / 40)  # pixel edges on the cube's faces
    recorder.record()
    _, _, images = recorder.frames[-1]
    for view, detector in recorder.detectors.items():
        _, ia, ib = VIEWS[view]
        a, b = detector.rays()
        x = np.full((len(b), len(a), 3), L / 2)
        x[..., ia], x[..., ib] = np.meshgrid(a, b)
        inside = np.all((x > detector.pixel) & (x < L - detector.pixel), axis=2)
        assert inside.sum() > 1000
        cement = 0.85 * L * saturation(x)
        assert np.abs(images[view] - cement)[inside].max() <= 1e-12 * L
        assert np.abs(recorder.bone[view] - 0.15 * L)[inside].max() <= 1e-12 * L
        # the cement volume of the image is the cement in the bone (the pixels tile the
        # cube's projection, so the pixel sums are exact here)
        assert images[view].sum() * detector.pixel**2 == pytest.approx(
            measure.cement_in_bone(pb), rel=1e-12
        )


def test_side_markers_follow_the_radiographic_convention():
    """AP: the patient's right (-y) on the viewer's left; lateral: anterior (+x) on the right;
    cranial up in both."""
    assert side_markers("ap") == ("R", "L", "I", "S")
    assert side_markers("lateral") == ("P", "A", "I", "S")
    detector = Detector("ap", 1e-3, (-0.01, 0.01), (-0.01, 0.01))
    a, _ = detector.rays()
    assert a[0] < a[-1]  # image columns run along +y, the patient's left, to the right
