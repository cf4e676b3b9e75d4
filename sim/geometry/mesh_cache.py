"""A cache of generated gmsh meshes, so that runs sharing a geometry mesh it once.

A mesh is stored under a key that digests everything it is made from: the builder and its
inputs (sizes, needle tips, features; for an imported surface its points and triangles), the
source of the meshing code (sim/geometry, sim/shapes) and the gmsh version. A hit reads the
stored mesh instead of meshing again: the same nodes and elements bit for bit (binary .msh),
so a run gives the same numbers with or without the cache. Entries are written atomically
(a private temporary name, then a rename), so concurrent runs and sweep workers may share
the cache; a failed mesh is never stored.

Where: $CEMENTSIM_MESH_CACHE, else $XDG_CACHE_HOME/cementsim/meshes, else
~/.cache/cementsim/meshes; CEMENTSIM_MESH_CACHE=off turns it off. Entries are not evicted:
delete the folder to reclaim the space (a few MB per mesh).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import suppress
from functools import cache, partial
from pathlib import Path
from typing import Any

import gmsh
import numpy as np

import sim
from sim.user_cache import user_cache

OFF = "off"
log = logging.getLogger(__name__)


def folder() -> Path | None:
    """The cache folder, or None when the cache is off."""
    chosen = os.environ.get("CEMENTSIM_MESH_CACHE")
    if chosen == OFF:
        return None
    if chosen:
        return Path(chosen)
    return user_cache("meshes")


@cache
def _code_digest() -> str:
    """SHA-256 of the meshing code: a change to any builder invalidates every entry."""
    root = Path(sim.__file__).parent
    digest = hashlib.sha256(gmsh.__version__.encode())
    for path in sorted([*(root / "geometry").glob("*.py"), *(root / "shapes").glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> bool:
    """Add `value` to `digest`; False if it has no stable digest (an object whose text
    depends on where it lives in memory)."""
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        return True
    if isinstance(value, dict):
        return all(_feed(digest, k) and _feed(digest, v) for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return all(_feed(digest, v) for v in value)
    text = repr(value)
    digest.update(text.encode())
    return " at 0x" not in text


def key_of(build: Any) -> str | None:
    """The cache key of a gmsh model builder: a functools.partial (its function, arguments
    and keywords) or a tuple of values; None if some part has no stable digest."""
    digest = hashlib.sha256(_code_digest().encode())
    if isinstance(build, partial):
        parts: Any = (build.func.__module__, build.func.__qualname__, build.args, build.keywords)
    else:
        parts = build
    return digest.hexdigest() if _feed(digest, parts) else None


def entry(key: str | None) -> Path | None:
    """The file of `key` in the cache (which may not exist yet), None when off or unkeyed."""
    where = folder()
    return None if where is None or key is None else where / f"{key[:32]}.msh"


def store(path: Path, info: dict[str, float], mesh: Path) -> None:
    """Copy the mesh file `mesh` (binary .msh, as gmsh's process wrote it:
    sim.geometry.gmsh_tools.in_child) to the entry `path` with its `info` beside it,
    atomically, so that a hit reads the bytes the run that meshed it read (rank 0). Best
    effort: a cache that cannot be written does not fail the run."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.msh")
    side = path.with_suffix(".json")
    side_tmp = side.with_name(f".{side.stem}.{os.getpid()}.tmp.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mesh, tmp)
        side_tmp.write_text(json.dumps(info))
        os.replace(side_tmp, side)
        os.replace(tmp, path)  # last: an entry exists only with its info
    except OSError as exc:
        for half_written in (tmp, side_tmp):
            with suppress(OSError):
                half_written.unlink(missing_ok=True)
        log.warning("mesh cache: could not store %s (%s)", path, exc)


def info_of(path: Path) -> dict[str, float]:
    """The info stored with an entry (empty if none)."""
    side = path.with_suffix(".json")
    return json.loads(side.read_text()) if side.is_file() else {}
