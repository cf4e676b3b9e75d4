"""``cementsim permeability BLOCK``: the permeability tensor of a segmented micro-CT block.

Reads the block as `read_ct` does (.npy, .nii/.nii.gz, .h5, a TIFF stack or a folder of
slices, a DICOM series), segments it
(`--segmented`: 0 = pore, nonzero = bone; or `--threshold T`: values >= T are bone), runs
the pore-scale Stokes solves of sim.ct.pore_flow and prints K (m²), porosity, BV/TV and the
principal values; `--out FILE.json` writes them with a `scenario` snippet for `bone`.
Exit codes: 0 done; 2 invalid input (file, voxel size, segmentation, no pore path between
two faces, an unusable --out), before any solve where it can be known; 1 a failed solve.
Runs under MPI (`mpirun -n 2 cementsim permeability ...`): rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_INVALID = 2


def add_parser(sub: Any) -> None:
    """Add the `permeability` subcommand to the subparsers `sub`."""
    text = "permeability tensor of a segmented micro-CT block by a pore-scale Stokes solve"
    p = sub.add_parser("permeability", help=text, description=text)
    p.add_argument(
        "block",
        type=Path,
        help="the block: .npy, .nii/.nii.gz, .h5, a TIFF stack (file or folder of slices) or "
        "a DICOM series (folder)",
    )
    p.add_argument(
        "--voxel-size",
        help="voxel edge with its unit, e.g. '19.5 um' (required for .npy; replaces the "
        "file's otherwise); a plain number is in metres",
    )
    phase = p.add_mutually_exclusive_group(required=True)
    phase.add_argument("--threshold", type=float, help="values >= THRESHOLD are bone")
    phase.add_argument(
        "--segmented", action="store_true", help="a label image: 0 = pore, nonzero = bone"
    )
    p.add_argument(
        "--axis-order",
        help="axes of a .npy array's or TIFF stack's indices (defaults: xyz for .npy, zyx for "
        "TIFF: array[slice, row, column])",
    )
    p.add_argument(
        "--directions",
        default="xyz",
        help="the columns of K to compute, e.g. z (default xyz: the whole tensor)",
    )
    p.add_argument(
        "--cells-per-voxel", type=int, default=1, help="hexahedra along a voxel edge (1)"
    )
    p.add_argument(
        "--lateral",
        choices=["slip", "no_slip"],
        default="slip",
        help="faces parallel to the flow: slip = mirror planes (default), no_slip = sealed",
    )
    p.add_argument(
        "--ends",
        choices=["open", "mirror"],
        default="open",
        help="inlet and outlet faces: open = do-nothing, a sample in a permeameter "
        "(default); mirror = no tangential flow, the block mirrored into a periodic "
        "medium (diagonal K)",
    )
    p.add_argument("--out", type=Path, help="write the result to this JSON file")


def main(args: argparse.Namespace) -> int:
    """Run the `permeability` command; the exit code."""
    from sim.ct.pore_flow import AXES, load_pore_space
    from sim.ct.volume import ct_format

    voxel_size = None
    if args.voxel_size is not None:
        from sim.units import LENGTH, to_si

        try:
            voxel_size = to_si(args.voxel_size, LENGTH)
        except ValueError as exc:
            return _invalid(f"--voxel-size: {exc}")
    directions = [AXES.find(c) for c in args.directions.lower()]
    if not directions or -1 in directions or len(set(directions)) != len(directions):
        return _invalid(f"--directions {args.directions!r}: give some of x, y, z, e.g. 'xz'")
    if args.cells_per_voxel < 1:
        return _invalid(f"--cells-per-voxel {args.cells_per_voxel}: must be >= 1")
    if voxel_size is None and ct_format(args.block) in (".npy", ".tif"):
        return _invalid(f"{args.block}: a .npy or TIFF block needs --voxel-size, e.g. '19.5 um'")
    if args.out is not None:
        reason = _unusable_output(args.out)
        if reason:
            return _invalid(f"--out {args.out}: {reason}")
    try:
        pore, voxel = load_pore_space(
            args.block,
            voxel_size=voxel_size,
            axis_order=args.axis_order,
            threshold=args.threshold,
            segmented=args.segmented,
        )
    except (OSError, ValueError, ImportError) as exc:  # CTFileError is a ValueError
        return _invalid(str(exc))
    return _solve(args, pore, voxel, directions)


def _solve(args: argparse.Namespace, pore: Any, voxel: Any, directions: list[int]) -> int:
    from mpi4py import MPI

    from sim.ct.pore_flow import NoPercolationError, UnboundedFlowError, permeability

    comm = MPI.COMM_WORLD
    try:
        result = permeability(
            pore, voxel, directions, args.cells_per_voxel, args.lateral, args.ends, comm=comm
        )
    except (NoPercolationError, UnboundedFlowError) as exc:
        return _invalid(f"{args.block}: {exc}")
    if comm.rank == 0:
        summary = result.as_dict() | {"block": str(args.block), "mpi_ranks": comm.size}
        print(report(summary))
        if args.out is not None:
            tmp = args.out.with_name(f".{args.out.name}.tmp")
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(tmp, args.out)
            print(f"written: {args.out}")
    return 0


def report(summary: dict[str, Any]) -> str:
    """The printed result: K, porosity, BV/TV, principal values, the scenario snippet."""
    shape = " x ".join(str(n) for n in summary["shape_xyz"])
    voxel = ", ".join(f"{v * 1e6:.4g}" for v in summary["voxel_size_m"])
    lines = [
        f"block: {summary['block']} ({shape} voxels of {voxel} um)",
        f"  porosity {summary['porosity']:.4f}, BV/TV {summary['bone_volume_fraction']:.4f}",
    ]
    for axis, solve in summary["directions"].items():
        lines.append(
            f"  along {axis}: connected porosity {solve['connected_porosity']:.4f}, "
            f"{solve['n_cells']} cells, {solve['n_dofs']} unknowns, {solve['seconds']:.1f} s"
        )
    lines.append("  permeability K (m^2; column j: pressure drop along j):")
    for row in summary.get("permeability_symmetric_m2", summary["permeability_m2"]):
        lines.append("    " + "  ".join("      --- " if v is None else f"{v:10.3e}" for v in row))
    if "principal_values_m2" in summary:
        values = ", ".join(f"{v:.3e}" for v in summary["principal_values_m2"])
        lines += [
            f"  symmetric part shown; asymmetry |K - K^T|/|K| = {summary['asymmetry']:.2e}",
            f"  principal values {values} m^2",
            f"  largest off-diagonal / diagonal {summary['off_diagonal_ratio']:.3f}",
        ]
    if "scenario" in summary:
        bone = summary["scenario"]["bone"]
        k = ", ".join(f"{v:.3e}" for v in bone["permeability"])
        lines.append(f"  scenario: bone: {{porosity: {bone['porosity']:.4f}, permeability: [{k}]}}")
    return "\n".join(lines)


def _unusable_output(out: Path) -> str | None:
    if out.is_dir():
        return "is a folder; give a file name, e.g. result.json"
    if not out.parent.is_dir():
        return f"its folder {out.parent} does not exist"
    if not os.access(out.parent, os.W_OK):
        return f"its folder {out.parent} is not writable"
    return None


def _invalid(message: str) -> int:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID
