"""The standard two-phase displacement benchmark, for side-by-side comparison with other
porous-media simulators (e.g. DuMux, OPM, MRST).

Common data: mu_c = 100 Pa·s, mu_m = 0.04 Pa·s, phi = 0.85, K = 1e-9 m² isotropic, Corey
exponents 2, no capillarity, no gravity, cement displacing marrow from S = 0.

(a) column 0.1 m, 1000 cells, Darcy velocity 1e-4 m/s at the inlet face, fixed pressure at
    the outlet face, to t = 600 s. Exact: front at 0.07060 m, inlet dp 7.057e5 Pa.
(b) cube 30 mm, about 110 000 cells, 0.1 mL/s through a 7.5 x 7.5 mm patch centred on the
    bottom face, the whole top face at fixed pressure, to t = 5 s (the figures other
    simulators reported: volume with S >= 0.5, height of that volume above the inlet, its
    reach along the bottom from the patch centre, the largest pressure) and to t = 100 s.

Each case runs with each step rule (numerics.max_saturation_change 0.25, the default,
numerics.front_courant 4 and 8, and 8 without the default limit of 5 % of the volume per step,
numerics.volume_per_step null). The cube's height, reach and largest pressure are printed as
vertex values (the last vertex with S >= 0.5, the largest vertex pressure), as a contour filter
sees them (the S = 0.5 iso-surface interpolated along the edges, the largest cell mean) and as
a cell-centred code stores them (cells whose mean S >= 0.5, their centroids; the reach from
the centroids of the cells on the bottom face). The reach is also read on lines through the
patch centre along its sides and along its diagonals, as a line plot reads vertex and cell
data: the front on the bottom face reaches about 7 % further toward the patch's corners.

Run: .venv/bin/python benchmarks/two_phase_benchmark.py [a|b|ab] [rule] [--size MM]
     [--partition graph]
     (or under mpirun -n N; rule: the step rules whose name contains it, e.g. "courant 8";
     --size: the cube's cell size in mm, 1.06 by default; --partition: how the cube's cells
     are distributed over the ranks, numerics.partition, `injection` by default)
Prints front error, dp, steps and wall time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gmsh
import numpy as np
from matplotlib import tri
from mpi4py import MPI
from scipy.integrate import quad
from scipy.optimize import brentq

from sim import measurements as measure
from sim.geometry import build_mesh
from sim.problem import InjectionProblem
from sim.scenario import validate_scenario

MU_C, MU_M, PHI, K = 100.0, 0.04, 0.85, 1e-9
COMMON = {
    "bone": {
        "porosity": PHI,
        "permeability": K,
        "relative_permeability": {"model": "corey", "cement_exponent": 2, "marrow_exponent": 2},
    },
    "cement": {"rheology": {"model": "newtonian", "viscosity": MU_C}},
    "marrow": {"viscosity": MU_M},
    "output": {"fields": False, "plots": False},
}


def buckley_leverett(u: float, t: float) -> tuple[float, float]:
    """Exact front position (m) and inlet pressure drop (Pa) for case (a)."""
    a = MU_C / MU_M
    s_f = np.sqrt(a / (1 + a))
    lam = lambda s: s**2 / MU_C + (1 - s) ** 2 / MU_M  # noqa: E731
    df = lambda s: 2 * a * s * (1 - s) / (s**2 + a * (1 - s) ** 2) ** 2  # noqa: E731
    travel = u * t / PHI
    x_f = df(s_f) * travel
    s_of_x = lambda x: brentq(lambda s: df(s) - x / travel, s_f, 1 - 1e-15)  # noqa: E731
    behind = quad(lambda x: 1 / lam(s_of_x(x)), 1e-12, x_f, limit=200)[0]
    return x_f, u / K * (behind + (0.1 - x_f) * MU_M)


def run(data: dict, until: float) -> tuple[InjectionProblem, float]:
    scenario = validate_scenario(data)
    start = time.perf_counter()
    problem = InjectionProblem(scenario, build_mesh(scenario, MPI.COMM_WORLD))
    problem.initialise()
    problem.run(lambda pb: None)
    assert abs(problem.state.t - until) < 1e-9 * until
    return problem, time.perf_counter() - start


def petsc_share(pb: InjectionProblem) -> str:
    """Time in PETSc's linear solves and in the compiled transport sweeps against the time of
    the steps (output excluded)."""
    tm = pb.timings
    stepping = tm.assembly_and_pressure + tm.fluxes + tm.transport
    inside = pb.flow.solver.solver_seconds + pb.transport.solver_seconds
    swept = pb.transport.sweeps.seconds
    return (
        f"{inside:.2f} s of {stepping:.2f} s stepping in PETSc's linear solves "
        f"({inside / stepping:.0%}), {swept:.2f} s in the compiled sweeps "
        f"(together {(inside + swept) / stepping:.0%})"
    )


def iterations(pb: InjectionProblem) -> str:
    """Steps and the transport's iterations."""
    tr = pb.transport
    return (
        f"{pb.state.counters.steps} steps ({pb.state.counters.rejected} rejected), "
        f"{tr.sweep_count} sweeps + {tr.newton_count} Newton iterations"
    )


#: the step rules compared: the default and the front's Courant number
STEP_RULES = {
    "max_saturation_change 0.25": {},
    "front_courant 4": {"front_courant": 4.0},
    "front_courant 8": {"front_courant": 8.0},
    "front_courant 8, no volume limit": {"front_courant": 8.0, "volume_per_step": None},
}


def column(rule: str) -> None:
    u, t_end, width = 1e-4, 600.0, 1e-3
    data = {
        **COMMON,
        "numerics": STEP_RULES[rule],
        "name": "benchmark_column",
        "geometry": {"kind": "column", "length": 0.1, "width": width, "cells_along": 1000},
        "injection": {
            "needles": [
                {
                    "name": "inlet",
                    "inner_diameter": width,
                    "rate": u * width**2,
                    "volume": u * width**2 * t_end,
                }
            ]
        },
        "leak_routes": {"outlet": {"kind": "outlet", "boundary": "outlet"}},
    }
    pb, wall = run(data, t_end)
    x = pb.disc.x_owned[:, 0]
    s = pb.state.S.x.array[: pb.disc.n_owned]
    a = MU_C / MU_M
    s_f = np.sqrt(a / (1 + a))
    ahead = x[s < 0.5 * s_f]
    front = pb.comm.allreduce(float(ahead.min(initial=np.inf)), op=MPI.MIN)
    behind = x[s >= 0.5 * s_f]
    front = 0.5 * (front + pb.comm.allreduce(float(behind.max(initial=-np.inf)), op=MPI.MAX))
    dp = measure.tip_pressure(pb, pb.needles[0].name)
    mass = measure.mass_balance_error(pb)  # collective: never inside `if rank == 0`
    x_f, dp_exact = buckley_leverett(u, t_end)
    if pb.comm.rank == 0:
        print(f"(a) column, 1000 cells, {pb.comm.size} rank(s), {rule}")
        print(
            f"    front {front:.5f} m (exact {x_f:.5f}, error {100 * (front - x_f) / x_f:+.2f} %)"
        )
        print(
            f"    inlet dp {dp:.4e} Pa (exact {dp_exact:.4e}, "
            f"error {100 * (dp - dp_exact) / dp_exact:+.2f} %)"
        )
        print(f"    {iterations(pb)}, {wall:.1f} s wall, mass balance {mass:.1e}")
        print(f"    {petsc_share(pb)}")


def cube_mesh(path: Path, h: float) -> None:
    """30 mm cube; bottom patch 7.5 x 7.5 mm tagged 'inlet', top face 'top'."""
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        occ = gmsh.model.occ
        box = occ.addBox(0, 0, 0, 0.03, 0.03, 0.03)
        patch = occ.addRectangle(0.01125, 0.01125, 0, 0.0075, 0.0075)
        occ.fragment([(3, box)], [(2, patch)])
        occ.synchronize()
        inlet, top, walls = [], [], []
        for _, tag in gmsh.model.getEntities(2):
            z = occ.getCenterOfMass(2, tag)[2]
            area = occ.getMass(2, tag)
            if z < 1e-9 and area < 0.0075**2 * 1.01:
                inlet.append(tag)
            elif z > 0.03 - 1e-9:
                top.append(tag)
            else:
                walls.append(tag)
        gmsh.model.addPhysicalGroup(3, [v for _, v in gmsh.model.getEntities(3)], 1, "bone")
        gmsh.model.addPhysicalGroup(2, inlet, 1, "inlet")
        gmsh.model.addPhysicalGroup(2, top, 2, "top")
        gmsh.model.addPhysicalGroup(2, walls, 3, "walls")
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h)
        gmsh.model.mesh.generate(3)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


def iso_surface_extent(pb: InjectionProblem) -> tuple[float, float]:
    """Height above the bottom (m) and reach along the bottom from the patch centre (m) of the
    S >= 0.5 region bounded by the S = 0.5 iso-surface of the P1 saturation (linear along the
    mesh edges), as cell-centred codes interpolate, rather than the last vertex inside."""
    fx, n = pb.flow.fluxes, pb.disc.n_owned
    s_row = pb.state.S.x.array[:n][fx.rows]
    s_col = fx.to_columns(pb.state.S.x.array[:n])[fx.cols]
    x_row = pb.disc.x_owned[fx.rows]
    x_col = np.stack([fx.to_columns(pb.disc.x_owned[:, k])[fx.cols] for k in range(3)], axis=1)
    cross = (s_row >= 0.5) & (s_col < 0.5)
    w = ((s_row[cross] - 0.5) / (s_row[cross] - s_col[cross]))[:, None]
    points = np.vstack([x_row[s_row >= 0.5], x_row[cross] + w * (x_col[cross] - x_row[cross])])
    on_bottom = points[points[:, 2] < 1e-9]
    height = points[:, 2].max(initial=0.0)
    along = np.hypot(on_bottom[:, 0] - 0.015, on_bottom[:, 1] - 0.015).max(initial=0.0)
    local = np.array([height, along])
    pb.comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)
    return float(local[0]), float(local[1])


def cell_centred_extent(pb: InjectionProblem) -> tuple[float, float, float]:
    """Volume (m³) of the cells whose mean saturation is at least 0.5, the height of their
    highest centroid (m) and the reach of the centroids of those on the bottom face from the
    patch centre (m): the benchmark quantities as a cell-centred code stores its unknowns."""
    fx = pb.flow.fluxes
    x = pb.disc.V.tabulate_dof_coordinates()[fx.cell_dofs]  # (cells, 4, 3)
    inside = pb.state.S.x.array[fx.cell_dofs].mean(axis=1) >= 0.5
    volume = fx.cell_volume
    centroid = x.mean(axis=1)
    on_bottom = inside & ((x[:, :, 2] < 1e-9).sum(axis=1) == 3)
    along = np.hypot(centroid[on_bottom, 0] - 0.015, centroid[on_bottom, 1] - 0.015)
    total = pb.comm.allreduce(float(volume[inside].sum()), op=MPI.SUM)
    local = np.array([centroid[inside, 2].max(initial=0.0), along.max(initial=0.0)])
    pb.comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)
    return total, float(local[0]), float(local[1])


def line_reach(pb: InjectionProblem) -> dict[str, np.ndarray]:
    """Reach of the S >= 0.5 region from the patch centre along rays on the bottom face (m), in
    the directions of the patch's sides (0, 90, 180, 270 degrees) and of its corners (45, 135,
    225, 315 degrees), as a line plot along each ray reads it: 'vertex' from the P1 saturation
    interpolated on the bottom face (vertex data), 'cell' from the mean saturation of the cell
    each point lies in (cell data). The front on the bottom face is not a circle: the patch's
    corners push it further along the diagonals."""
    fx = pb.flow.fluxes
    dofs = fx.cell_dofs
    x = pb.disc.V.tabulate_dof_coordinates()[dofs]  # (cells, 4, 3)
    s = pb.state.S.x.array[dofs]
    on_bottom = (x[:, :, 2] < 1e-9).sum(axis=1) == 3
    corners = np.argsort(x[on_bottom, :, 2], axis=1, kind="stable")[:, :3]  # the face's three
    rows = np.arange(on_bottom.sum())[:, None]
    local = (x[on_bottom][rows, corners, :2], s[on_bottom][rows, corners], s[on_bottom].mean(1))
    gathered = pb.comm.gather(local, root=0)
    if pb.comm.rank != 0:
        return {}
    xy = np.vstack([g[0] for g in gathered]).reshape(-1, 2)
    s_face = np.concatenate([g[1] for g in gathered]).ravel()
    s_cell = np.concatenate([g[2] for g in gathered])
    points, index = np.unique(np.round(xy, 12), axis=0, return_inverse=True)
    mesh = tri.Triangulation(points[:, 0], points[:, 1], index.reshape(-1, 3))
    at_vertex = np.zeros(len(points))
    at_vertex[index.ravel()] = s_face
    vertex = tri.LinearTriInterpolator(mesh, at_vertex)
    find = mesh.get_trifinder()
    r = np.arange(0.0, 0.015, 2e-6)
    reach: dict[str, np.ndarray] = {"vertex": np.empty(8), "cell": np.empty(8)}
    for k, angle in enumerate(np.radians(np.arange(0, 360, 45))):
        px, py = 0.015 + r * np.cos(angle), 0.015 + r * np.sin(angle)
        inside_vertex = np.ma.filled(vertex(px, py), 0.0) >= 0.5
        inside_cell = s_cell[find(px, py)] >= 0.5
        reach["vertex"][k] = r[inside_vertex].max()
        reach["cell"][k] = r[inside_cell].max()
    return reach


def cube(rule: str, t_end: float, size: float, partition: str = "injection") -> None:
    comm = MPI.COMM_WORLD
    folder = Path(
        comm.bcast(tempfile.mkdtemp(prefix="cementsim-cube-") if comm.rank == 0 else None)
    )
    if comm.rank == 0:
        cube_mesh(folder / "cube.msh", size)
    comm.barrier()
    rate = 1e-7
    data = {
        **COMMON,
        "name": "benchmark_cube",
        "numerics": {**STEP_RULES[rule], "partition": partition},
        "geometry": {"kind": "mesh_file", "path": str(folder / "cube.msh"), "length_unit": "m"},
        "injection": {
            "needles": [
                {
                    "name": "inlet",
                    "inner_diameter": 0.0075,
                    "tip": [0.015, 0.015, 0.0],
                    "rate": rate,
                    "volume": rate * t_end,
                }
            ]
        },
        "leak_routes": {"top": {"kind": "outlet", "boundary": "top"}},
    }
    pb, wall = run(data, t_end)
    cloud, reach = measure.cloud(pb)
    dp = measure.tip_pressure(pb, pb.needles[0].name)
    stored, mass = measure.cement_in_bone(pb), measure.mass_balance_error(pb)  # collective
    x = pb.disc.x_owned[pb.state.S.x.array[: pb.disc.n_owned] >= 0.5]
    bottom = x[x[:, 2] < 1e-9]
    height = comm.allreduce(float(x[:, 2].max(initial=0.0)), op=MPI.MAX)
    along = np.hypot(bottom[:, 0] - 0.015, bottom[:, 1] - 0.015).max(initial=0.0)
    along = comm.allreduce(float(along), op=MPI.MAX)
    p_max = comm.allreduce(float(pb.state.p.x.array.max(initial=0.0)), op=MPI.MAX)
    iso_height, iso_along = iso_surface_extent(pb)
    cell_volume, cell_height, cell_along = cell_centred_extent(pb)
    cell_p = pb.state.p.x.array[pb.flow.fluxes.cell_dofs].mean(axis=1)
    cell_p_max = comm.allreduce(float(cell_p.max(initial=0.0)), op=MPI.MAX)
    reach_on_lines = line_reach(pb)  # collective
    if comm.rank == 0:
        print(
            f"(b) cube to {t_end:g} s, {pb.tagged.num_cells_global()} cells, {comm.size} "
            f"rank(s), {rule}"
        )
        print(
            f"    volume with S >= 0.5 {cloud:.4e} m3, height above the inlet "
            f"{height * 1e3:.3f} mm, reach along the bottom {along * 1e3:.2f} mm, "
            f"largest pressure {p_max:.3e} Pa (at vertices)"
        )
        print(
            f"    S = 0.5 iso-surface: height {iso_height * 1e3:.3f} mm, reach along the bottom "
            f"{iso_along * 1e3:.2f} mm; largest cell-mean pressure {cell_p_max:.3e} Pa"
        )
        print(
            f"    cells with mean S >= 0.5: volume {cell_volume:.4e} m3, highest centroid "
            f"{cell_height * 1e3:.3f} mm, reach of bottom centroids {cell_along * 1e3:.2f} mm"
        )
        for data_kind, along_rays in reach_on_lines.items():
            sides, diagonals = along_rays[0::2] * 1e3, along_rays[1::2] * 1e3
            print(
                f"    reach on lines through the patch centre ({data_kind} data): along its sides "
                f"{sides.mean():.2f} mm ({sides.min():.2f}-{sides.max():.2f}), along its "
                f"diagonals {diagonals.mean():.2f} mm ({diagonals.min():.2f}-{diagonals.max():.2f})"
            )
        print(
            f"    inlet dp {dp:.4e} Pa, cement in bone {stored * 1e6:.3f} mL, "
            f"leaked {measure.leaked(pb) * 1e6:.4f} mL"
        )
        print(
            f"    volume with S >= 0.5 {cloud * 1e6:.3f} mL, reach from the patch centre "
            f"{reach * 1e3:.2f} mm"
        )
        print(f"    {iterations(pb)}, {wall:.1f} s wall, mass balance {mass:.1e}")
        print(f"    {petsc_share(pb)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the two-phase displacement benchmark")
    parser.add_argument("which", nargs="?", default="ab", help="a, b or ab")
    parser.add_argument("rule", nargs="?", default="", help="rules whose name contains it")
    parser.add_argument("--size", type=float, default=1.06, help="the cube's cell size (mm)")
    parser.add_argument(
        "--partition", default="injection", help="numerics.partition of the cube: injection, graph"
    )
    args = parser.parse_args()
    for rule in [r for r in STEP_RULES if args.rule in r]:
        if "a" in args.which:
            column(rule)
        if "b" in args.which:
            for t_end in (5.0, 100.0):
                cube(rule, t_end, args.size / 1000, args.partition)  # mm to m
