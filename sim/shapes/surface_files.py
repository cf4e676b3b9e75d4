"""Names of surface files: the formats the importer reads and transparent decompression.

A surface file is ``<name>.<format>`` or, compressed, ``<name>.<format>.gz`` / ``.xz`` (the
shipped anatomy is stored as xz-compressed OBJ, byte-identical to the published files once
decompressed). No gmsh, no DOLFINx: the scenario schema checks names with it.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: formats read by sim.geometry.surface_import (by suffix, lower case)
SURFACE_SUFFIXES = (".stl", ".obj", ".ply", ".vtk", ".vtu", ".msh", ".xdmf", ".xmf")
#: compressions read transparently (suffix -> opener)
COMPRESSIONS = {".gz": gzip.open, ".xz": lzma.open}


def surface_format(path: Path) -> str | None:
    """The format suffix of a surface file name (``.obj`` for ``a.obj`` and ``a.obj.xz``),
    None unless it is one of SURFACE_SUFFIXES (optionally compressed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes.pop()
    return suffixes[-1] if suffixes and suffixes[-1] in SURFACE_SUFFIXES else None


def known_names() -> str:
    """The accepted file-name endings, for error messages."""
    return ", ".join(SURFACE_SUFFIXES) + " (also compressed: " + ", ".join(COMPRESSIONS) + ")"


@contextmanager
def uncompressed(path: Path) -> Iterator[Path]:
    """`path` itself, or for a compressed file a decompressed copy in a temporary folder
    (same name without the compression suffix), removed on exit. Raises OSError, EOFError or
    lzma.LZMAError for a damaged compressed file."""
    opener = COMPRESSIONS.get(path.suffix.lower())
    if opener is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cementsim-surface-") as folder:
        plain = Path(folder) / path.stem
        with opener(path, "rb") as source, plain.open("wb") as target:
            shutil.copyfileobj(source, target)
        yield plain
