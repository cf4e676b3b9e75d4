"""`cementsim labels LABELMAP --bone 1,2 --region lesion=2 --out DIR`: a segmentation made
into a surface, a tetrahedral mesh with named regions and a geometry section, in one command.

Writes DIR/surface.stl (the checked marching-cubes surface of the bone labels), DIR/mesh.msh
(gmsh; physical groups ``bone``, one per region, ``surface``) and DIR/geometry.yaml (a
``geometry`` section of kind ``label_map`` to paste into a scenario, with the ``mesh_file``
alternative in a comment); coordinates in metres in the project frame. Prints the volumes
of the bone and of each region and the number of cells. The checks are those of the
scenario's ``label_map`` kind (sim.scenario.geometry.LabelMapGeometry); bad input exits
with 2 and a message naming the option.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from sim.scenario.loader import describe_error

EXIT_INVALID = 2
ML = 1e-6
#: the option behind each key of the geometry section, for messages
_OPTIONS = {
    "path": "LABELMAP",
    "bone": "--bone",
    "regions": "--region",
    "smoothing": "--smoothing",
    "length_unit": "--length-unit",
    "mesh": "--size",
    "keep_largest_shell": "--keep-largest-shell",
}


def add_parser(sub: Any) -> None:
    """The ``labels`` subcommand of `cementsim`."""
    text = "mesh a label map (NIfTI, .npy, .h5, TIFF, DICOM): surface, mesh, geometry section"
    p = sub.add_parser("labels", help=text, description=text)
    p.add_argument("label_map", type=Path, help="the segmentation (integer labels, 0 background)")
    p.add_argument("--bone", required=True, help="labels whose union is the bone, e.g. 1,2,3")
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME=LABELS",
        help="a named region of bone labels, e.g. lesion=2 (repeatable)",
    )
    p.add_argument(
        "--smoothing", type=float, default=1.0, help="Gaussian smoothing of the mask (voxels, 1)"
    )
    p.add_argument("--length-unit", help="unit of the file's lengths (default: its header's)")
    p.add_argument("--size", default="2.5 mm", help="cell size of the mesh (2.5 mm)")
    p.add_argument(
        "--keep-largest-shell", action="store_true", help="mesh only the largest piece of bone"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")


def _labels(text: str, option: str) -> list[int]:
    """`1,2,3` as integers; ValueError naming the option."""
    if not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", text):
        raise ValueError(f"{option} {text!r}: give labels as whole numbers, e.g. 1,2,3")
    return [int(v) for v in text.split(",")]


def _section(args: argparse.Namespace) -> dict[str, Any]:
    """The geometry section the options describe (ValueError for malformed options)."""
    regions: dict[str, list[int]] = {}
    for item in args.region:
        name, sep, labels = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--region {item!r}: write NAME=LABELS, e.g. lesion=2 or disc=4,5")
        regions[name] = _labels(labels, f"--region {name}")
    section: dict[str, Any] = {
        "kind": "label_map",
        "path": str(args.label_map.expanduser().resolve()),
        "bone": _labels(args.bone, "--bone"),
        "smoothing": args.smoothing,
        "mesh": {"size_max": args.size},
    }
    if regions:
        section["regions"] = regions
    if args.length_unit is not None:
        section["length_unit"] = args.length_unit
    if args.keep_largest_shell:
        section["keep_largest_shell"] = True
    return section


def _problems(error: ValidationError, section: dict[str, Any]) -> list[str]:
    """The validation errors with each key replaced by its option."""
    out = []
    for e in error.errors():
        message = describe_error(e, section)
        key, _, rest = message.partition(":")
        head, _, sub = key.partition(".")
        if head in _OPTIONS:
            key = _OPTIONS[head] + (f" {sub}" if head == "regions" and sub else "")
        out.append(f"{key}:{rest}")
    return out


def main(args: argparse.Namespace) -> int:
    """Run `cementsim labels`; 0 on success, 2 for bad input (message on stderr)."""
    from mpi4py import MPI

    from sim.cli import _error
    from sim.errors import MeshError
    from sim.scenario.geometry import LabelMapGeometry

    try:
        section = _section(args)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_INVALID
    if args.out.exists() and not args.out.is_dir():
        _error(f"--out {args.out}: is a file; give a folder")
        return EXIT_INVALID
    try:
        geometry = LabelMapGeometry.model_validate(section)
        geometry.check_mesh(tips=0)
    except ValidationError as exc:
        for problem in _problems(exc, section):
            _error(problem)
        return EXIT_INVALID
    except ValueError as exc:
        _error(str(exc).replace("geometry.mesh.size_max", "--size"))
        return EXIT_INVALID
    comm = MPI.COMM_WORLD
    try:
        if comm.rank == 0:
            args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"--out {args.out}: cannot create the folder ({exc.strerror})")
        return EXIT_INVALID
    from sim.geometry.surface_file import mesh_label_map

    try:
        tagged = mesh_label_map(geometry, [], "labels", comm, args.out / "mesh.msh")
    except MeshError as exc:
        _error(f"{args.label_map}: {exc}")
        return EXIT_INVALID
    volumes = {name: tagged.volume(name) for name in geometry.regions}
    total = tagged.volume()
    if comm.rank == 0:
        _write(geometry, section, args.out, tagged.regions)
        print(_summary(geometry, args, total, volumes, tagged.num_cells_global()))
    return 0


def _write(geometry: Any, section: dict[str, Any], out: Path, regions: dict[str, int]) -> None:
    """surface.stl and geometry.yaml (mesh.msh is written by the mesher)."""
    import meshio

    surface, _ = geometry.surface()
    mesh = meshio.Mesh(surface.points, [("triangle", surface.triangles)])
    meshio.write(out / "surface.stl", mesh, binary=True)
    mesh_file = {
        "kind": "mesh_file",
        "path": str((out / "mesh.msh").resolve()),
        "length_unit": "m",
    }
    alternative = yaml.safe_dump({"geometry": mesh_file}, sort_keys=False).splitlines()
    body = yaml.safe_dump({"geometry": section}, sort_keys=False, default_flow_style=None)
    header = [
        "# geometry section written by `cementsim labels`: paste it into a scenario (the",
        "# label map is meshed again, refined at the needle tips; add mesh: size_tip, growth).",
        "# Or use the mesh written beside this file (metres, project frame; regions "
        + ", ".join(sorted(regions))
        + "; boundary surface):",
        *(f"#   {line}" for line in alternative),
    ]
    (out / "geometry.yaml").write_text("\n".join(header) + "\n" + body)


def _summary(
    geometry: Any,
    args: argparse.Namespace,
    total: float,
    volumes: dict[str, float],
    cells: int,
) -> str:
    """What the command prints: volumes (mL), cells, files."""
    report = geometry.mask_report()
    values = geometry.label_volume().values
    lines = [
        f"labels: {args.label_map}",
        f"  bone (labels {', '.join(map(str, geometry.bone))}) {total / ML:10.3f} mL "
        f"(voxels {report.volume / ML:.3f} mL)",
    ]
    for name, volume in volumes.items():
        labels = ", ".join(map(str, geometry.regions[name]))
        voxels = int(np.isin(values, geometry.regions[name]).sum()) * report.voxel_volume
        lines.append(
            f"  {name} (labels {labels}) {volume / ML:10.3f} mL (voxels {voxels / ML:.3f} mL)"
        )
    lines += [
        f"  {cells} cells",
        f"  written: {args.out / 'surface.stl'}, {args.out / 'mesh.msh'}, "
        f"{args.out / 'geometry.yaml'} (metres, project frame)",
    ]
    return "\n".join(lines)
