"""The cells' distribution over MPI ranks (sim.geometry.partition): shells around the
injection sites, rank 0 nearest.

- the partitioner orders cells by their centroid's distance to the nearest site and cuts
  them into equal consecutive parts;
- under MPI, every rank's cells are at least as far from the needle tip as every cell of the
  rank before it: generated meshes, a mesh file in mm in another frame (the sites are mapped
  into the file's coordinates), and a needle injecting through a boundary (its centroid);
  `numerics.partition: graph` leaves DOLFINx's graph partition;
- the point of it: while the cement stays on rank 0 a step takes one sweep of the transport.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

# isort: split
import dolfinx
import gmsh

from sim.geometry import build_mesh
from sim.geometry.partition import shells
from sim.problem import InjectionProblem
from sim.scenario import load_scenario, validate_scenario

from ...conftest import REPO

COMM = MPI.COMM_WORLD
under_mpi = pytest.mark.skipif(COMM.size == 1, reason="one rank holds every cell")
QUIET = ["output.fields=false", "output.plots=false", "output.fluoroscopy=false"]
QUIET += ["output.report=false"]


def destinations(nodes: np.ndarray, cells: np.ndarray, centres: np.ndarray, parts: int):
    partition = shells(nodes, centres)
    tet = [dolfinx.mesh.CellType.tetrahedron]
    return partition(MPI.COMM_SELF, parts, tet, [cells.ravel()]).array


def test_cells_are_cut_into_equal_shells_around_the_nearest_site():
    rng = np.random.default_rng(3)
    nodes = rng.uniform(-1.0, 1.0, (400, 3))
    cells = rng.integers(0, 400, (1001, 4)).astype(np.int64)
    centres = np.array([[-0.5, 0.0, 0.0], [0.6, 0.2, 0.0]])
    to = destinations(nodes, cells, centres, parts=3)
    assert sorted(np.bincount(to).tolist()) == [333, 334, 334]
    centroids = nodes[cells].mean(axis=1)
    nearest = np.min(np.linalg.norm(centroids[:, None] - centres[None], axis=2), axis=1)
    for part in range(2):
        assert nearest[to == part].max() <= nearest[to == part + 1].min()
    # one site: the distance to it alone
    alone = destinations(nodes, cells, centres[:1], parts=2)
    far = np.linalg.norm(centroids - centres[0], axis=1)
    assert far[alone == 0].max() <= far[alone == 1].min()


def distances_by_rank(tagged, tip: np.ndarray) -> np.ndarray:
    """(nearest, farthest) distance (m) of the cell centroids from `tip`, per rank."""
    mesh = tagged.mesh
    cells = np.arange(mesh.topology.index_map(3).size_local, dtype=np.int32)
    centroids = dolfinx.mesh.compute_midpoints(mesh, 3, cells)
    d = np.linalg.norm(centroids - tip, axis=1)
    return np.array(COMM.allgather((d.min(), d.max())))


def shells_in_rank_order(ranges: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Whether each rank's nearest cell is no nearer than the last rank's farthest, to
    `tolerance` (m; 1 um: cells equally far on both sides of a cut)."""
    return bool(np.all(ranges[1:, 0] >= ranges[:-1, 1] - tolerance))


@under_mpi
def test_a_generated_mesh_is_cut_in_shells_around_the_tip_unless_graph_is_asked(scenarios):
    tip = ["injection.needles.0.tip=[-6, 3, 2] mm"]
    coarse = ["geometry.mesh.size_tip=1 mm", "geometry.mesh.size_max=4 mm"]
    ranges = {}
    for how in ("injection", "graph"):
        scenario = load_scenario(
            scenarios / "vertebroplasty.yaml", [*tip, *coarse, f"numerics.partition={how}"]
        )
        ranges[how] = distances_by_rank(build_mesh(scenario, COMM), np.array([-6e-3, 3e-3, 2e-3]))
    assert shells_in_rank_order(ranges["injection"])
    assert not shells_in_rank_order(ranges["graph"])


def write_ball(path: Path) -> None:
    """The ball of the sphere scenarios (radius 20 mm, the cavity 'needle' at its centre,
    the surface 'outer') written in mm, its centre at file x = 100 mm."""
    from sim.geometry.ball import add_ball

    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        gmsh.model.add("ball")
        add_ball(
            radius=0.02, inlet_radius=0.0012, inlet_name="needle", h_tip=0.001, h_max=0.006,
            growth=0.4,
        )  # fmt: skip
        gmsh.model.mesh.generate(3)
        gmsh.model.mesh.affineTransform([1000, 0, 0, 100, 0, 1000, 0, 0, 0, 0, 1000, 0])
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


@under_mpi
def test_a_mesh_file_is_cut_around_the_tip_in_the_project_frame(shared_tmp_path):
    """The file is in mm, in the LPS frame (file x, right to left, is project y), its ball
    100 mm off along file x; placed so that the ball's centre is the project origin, where
    the needle's tip is. Cut in the file's coordinates, the shells would be slabs across x."""
    path = shared_tmp_path / "ball.msh"
    if COMM.rank == 0:
        write_ball(path)
    COMM.barrier()
    needle = {"name": "needle", "inner_diameter": "2.4 mm", "rate": "1 mL/min", "volume": "1 mL"}
    scenario = validate_scenario(
        {
            "name": "ball",
            "geometry": {
                "kind": "mesh_file",
                "path": str(path),
                "length_unit": "mm",
                "frame": "LPS",
                "transform": {"translate": "[0, -100, 0] mm"},
            },
            "bone": {"porosity": 0.85, "permeability": "1e-9 m^2"},
            "cement": {"rheology": {"model": "newtonian", "viscosity": "100 Pa*s"}},
            "marrow": {"viscosity": "0.04 Pa*s"},
            "injection": {"needles": [{**needle, "tip": [0, 0, 0]}]},
            "leak_routes": {"outer": {"kind": "outlet", "boundary": "outer"}},
        }
    )
    tagged = build_mesh(scenario, COMM)
    x = tagged.mesh.geometry.x
    lo = np.min(COMM.allgather(x.min(axis=0)), axis=0)
    hi = np.max(COMM.allgather(x.max(axis=0)), axis=0)
    assert ((lo + hi) / 2).tolist() == pytest.approx([0, 0, 0], abs=1e-4)  # centred at 0
    assert shells_in_rank_order(distances_by_rank(tagged, np.zeros(3)))


@under_mpi
def test_a_needle_without_a_tip_is_a_site_at_its_inlet_boundary(scenarios):
    """The ball's needle has no tip: it injects through the cavity at the centre. The site
    is the mean of the cavity's nodes, off the centre by a fraction of its 1.2 mm radius."""
    coarse = ["geometry.mesh.size_tip=1 mm", "geometry.mesh.size_max=10 mm"]
    scenario = load_scenario(scenarios / "verification" / "sphere_newtonian.yaml", coarse)
    assert scenario.injection.needles[0].tip is None
    ranges = distances_by_rank(build_mesh(scenario, COMM), np.zeros(3))
    assert shells_in_rank_order(ranges, tolerance=0.3e-3)


@under_mpi
def test_a_step_takes_one_sweep_while_the_cement_stays_on_rank_0():
    """1 mL of the default scenario: the cement stays in the shell nearest the tip, so each
    rank's sweep has the final values of everything upstream of it; with the graph
    partition the cut runs through the cement and the sweeps iterate across it."""
    counts = {}
    for how in ("injection", "graph"):
        overrides = ["injection.needles.0.volume=1 mL", f"numerics.partition={how}", *QUIET]
        scenario = load_scenario(REPO / "scenarios" / "vertebroplasty.yaml", overrides)
        problem = InjectionProblem(scenario, build_mesh(scenario, COMM))
        problem.initialise()
        problem.run(lambda pb: None)
        counts[how] = (problem.state.counters.steps, problem.transport.sweep_count)
    steps, sweeps = counts["injection"]
    assert steps > 20 and sweeps == steps
    assert counts["graph"][1] > 2 * counts["graph"][0]
