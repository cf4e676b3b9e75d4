"""Closed bone surfaces from files, without gmsh or DOLFINx: reading, cleaning, checking.

::

    surface = read_surface("L1_body.obj.xz", length_unit_factor=1.0)  # file unit -> metres
    surface = clean(surface)                 # merge seam vertices, drop degenerate/duplicate
                                             # triangles, orient consistently and outward
    report = check(surface)                  # SurfaceError if open / non-manifold / ...
    message = plausible_unit(report)         # unit trap: the caller turns it into an error
    check_tips(surface, tips)                # needle tips inside, clear of the surface

The scenario schema runs these when a scenario is validated (so that `cementsim validate`
opens the surface); sim.geometry.surface_import meshes the volume with gmsh.

Readers
-------
STL (ascii and binary), PLY, VTK, VTU, XDMF and gmsh MSH are read with meshio; OBJ too,
unless meshio fails (meshio 5.3.5 raises on every ``*_Schrumpfverpacken.obj`` of the anatomy
data, whose ``vn`` count differs from the ``v`` count) or returns negative indices (it does
not resolve relative indices), in which case a small reader of the ``v`` and ``f`` lines is
used (``f v``, ``f v/vt``, ``f v/vt/vn``, ``f v//vn``, negative indices, polygons). Quads and
polygons are split into triangles (fans). A file with tetrahedra gives the boundary of the
tetrahedra (any triangles in it are ignored); otherwise all its triangles are the surface.
Each format may be compressed (``.gz``, ``.xz``: read as its contents); the shipped anatomy
is xz-compressed OBJ, byte-identical to the published files once decompressed.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from sim.errors import MeshError

log = logging.getLogger(__name__)

#: formats read (by suffix, lower case)
SURFACE_SUFFIXES = (".stl", ".obj", ".ply", ".vtk", ".vtu", ".msh", ".xdmf", ".xmf")
#: compressions read transparently (suffix -> opener)
COMPRESSIONS = {".gz": gzip.open, ".xz": lzma.open}

#: length units the unit trap suggests (name -> metres)
LENGTH_UNITS: dict[str, float] = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "in": 0.0254, "um": 1e-6}
#: plausible largest extent (m) of a bone surface: a small ossicle-sized piece to a whole femur
BONE_SIZE_RANGE = (5e-3, 0.6)
#: extent (m) a suggested unit should give: a vertebral body (~40 mm) to a pelvis (~250 mm)
_TYPICAL_SIZE_RANGE = (1e-2, 0.3)

#: locations listed in an error message
_MAX_LOCATIONS = 3


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


class SurfaceError(MeshError):
    """A surface could not be read, or is not a closed, manifold, oriented bone surface."""


@dataclass
class Surface:
    """A triangulated surface: points (n, 3) in metres and triangles (m, 3) of point indices.

    `length_unit_factor` is the factor the file's coordinates were multiplied by to give
    metres (kept for the unit check, :func:`plausible_unit`).
    """

    points: np.ndarray
    triangles: np.ndarray
    length_unit_factor: float = 1.0

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float64).reshape(-1, 3)
        self.triangles = np.ascontiguousarray(self.triangles, dtype=np.int64).reshape(-1, 3)
        if self.triangles.size and (
            self.triangles.min() < 0 or self.triangles.max() >= len(self.points)
        ):
            raise SurfaceError(
                f"triangle vertex indices must lie in [0, {len(self.points)}): found "
                f"{self.triangles.min()}..{self.triangles.max()}"
            )

    def corners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates (m, 3) of the first, second and third vertex of each triangle."""
        p, t = self.points, self.triangles
        return p[t[:, 0]], p[t[:, 1]], p[t[:, 2]]

    def signed_volume(self) -> float:
        """Enclosed volume (m^3); negative when the triangles are oriented inward."""
        a, b, c = self.corners()
        return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)

    def centroid(self) -> np.ndarray:
        """Centroid (m) of the enclosed volume (of a closed, oriented surface)."""
        a, b, c = self.corners()
        vol = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
        return (vol[:, None] * (a + b + c)).sum(axis=0) / (4.0 * vol.sum())


@dataclass(frozen=True)
class SurfaceReport:
    """Topology and size of a surface (lengths in m, volume in m^3, area in m^2).

    `genus` is the total genus of the components (from the Euler characteristic) and is
    None unless the surface is closed and manifold. `self_intersections` is the number of
    edges found to cross the interior of a triangle that does not share a vertex with them
    (None when not checked; touching and coplanar overlaps are not detected). `volume` is
    signed: negative means inside out.
    """

    n_points: int
    n_triangles: int
    n_components: int
    open_edges: int
    nonmanifold_edges: int
    nonmanifold_vertices: int
    misoriented_edges: int
    euler_characteristic: int
    genus: int | None
    volume: float
    area: float
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    zero_area_triangles: int
    self_intersections: int | None
    length_unit_factor: float = 1.0
    problems: tuple[str, ...] = field(default=(), repr=False)

    @property
    def closed(self) -> bool:
        """Every edge is shared by exactly two triangles."""
        return self.open_edges == 0 and self.nonmanifold_edges == 0

    @property
    def manifold(self) -> bool:
        """No edge with more than two triangles and no vertex joining separate fans."""
        return self.nonmanifold_edges == 0 and self.nonmanifold_vertices == 0

    @property
    def oriented(self) -> bool:
        """Neighbouring triangles traverse their shared edge in opposite directions."""
        return self.misoriented_edges == 0

    @property
    def inside_out(self) -> bool:
        return self.volume < 0.0

    @property
    def extent(self) -> np.ndarray:
        """Bounding-box side lengths (m)."""
        return np.asarray(self.bbox_max) - np.asarray(self.bbox_min)

    @property
    def size(self) -> float:
        """Largest bounding-box side (m)."""
        return float(self.extent.max()) if self.n_points else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


# --- reading ----------------------------------------------------------------------------------


def read_surface(path: str | Path, length_unit_factor: float) -> Surface:
    """Read a triangulated surface; coordinates are multiplied by `length_unit_factor` to m.

    Formats by suffix: .stl, .obj, .ply, .vtk, .vtu, .msh, .xdmf/.xmf (see the module
    docstring), each also compressed (.gz, .xz). Raises
    SurfaceError if the file is missing, of an unknown kind, unreadable, damaged or holds no
    triangles; ValueError for a factor that is not positive and finite.
    """
    path = Path(path)
    factor = float(length_unit_factor)
    if not (math.isfinite(factor) and factor > 0.0):
        raise ValueError(f"length_unit_factor = {length_unit_factor!r}: must be > 0 and finite")
    if not path.is_file():
        raise SurfaceError(f"surface file '{path}' does not exist")
    suffix = surface_format(path)
    if suffix is None:
        raise SurfaceError(f"'{path}': unknown surface format (known: {known_names()})")
    try:
        with uncompressed(path) as plain:
            points, triangles = _read_obj(plain) if suffix == ".obj" else _read_meshio(plain)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise SurfaceError(f"cannot decompress '{path}': {exc}") from exc
    except SurfaceError as exc:  # name the file the user gave, not the decompressed copy
        raise SurfaceError(str(exc).replace(str(plain), str(path))) from exc
    if len(triangles) == 0:
        raise SurfaceError(f"'{path}' holds no triangles")
    return Surface(points * factor, triangles, factor)


def _check_stl(path: Path) -> None:
    """SurfaceError naming the file if a binary STL is shorter or longer than its header says
    (84 bytes + 50 per triangle), or an ASCII STL has no ``endsolid`` (truncated)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(84)
        ascii_head = head.lstrip().startswith(b"solid")
        count = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
        if ascii_head and count >= 0 and 84 + 50 * count == size:
            return  # a binary STL whose 80-byte header happens to start with "solid"
        if ascii_head:
            f.seek(max(0, size - 4096))
            if b"endsolid" not in f.read():
                raise SurfaceError(
                    f"'{path}': truncated ASCII STL: it starts with 'solid' but has no "
                    "'endsolid' line at its end"
                )
            return
    if count < 0 or 84 + 50 * count != size:
        expected = "at least 84 bytes" if count < 0 else f"{84 + 50 * count} bytes"
        announced = "" if count < 0 else f" for the {count} triangles its header announces"
        raise SurfaceError(
            f"'{path}': truncated or damaged binary STL: {size} bytes, expected {expected}"
            f"{announced}"
        )


def _read_meshio(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import meshio

    if path.suffix.lower() == ".stl":
        _check_stl(path)
    try:
        with warnings.catch_warnings():  # meshio's STL format sniffing overflows harmlessly
            warnings.simplefilter("ignore", RuntimeWarning)
            mesh = meshio.read(path)
    except Exception as exc:  # meshio raises many kinds
        raise SurfaceError(
            f"cannot read '{path}' as {path.suffix.lstrip('.').upper()} (truncated, damaged or "
            f"another format?): {type(exc).__name__}: {exc}"
        ) from exc
    return _surface_of_meshio(mesh, path)


def _surface_of_meshio(mesh: object, path: Path) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(mesh.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise SurfaceError(f"'{path}': points of shape {points.shape}, expected (n, 3)")
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    tets = [np.asarray(b.data) for b in mesh.cells if b.type == "tetra"]
    if tets:
        return points, _tet_boundary(np.concatenate(tets))
    tris = []
    for block in mesh.cells:
        if block.type in ("triangle", "quad", "polygon"):
            tris.append(_fan(np.asarray(block.data)))
    if not tris:
        kinds = sorted({b.type for b in mesh.cells})
        raise SurfaceError(f"'{path}' holds no triangles (cell kinds: {', '.join(kinds)})")
    return points, np.concatenate(tris)


def _fan(polygons: np.ndarray) -> np.ndarray:
    """Triangles (k*(n-2), 3) of k polygons with n corners each, as fans from corner 0."""
    n = polygons.shape[1]
    return np.concatenate([polygons[:, [0, i, i + 1]] for i in range(1, n - 1)], axis=0).reshape(
        -1, 3
    )


def _tet_boundary(tets: np.ndarray) -> np.ndarray:
    """Faces of tetrahedra that belong to one tetrahedron only."""
    faces = np.concatenate(
        [tets[:, [1, 2, 3]], tets[:, [0, 3, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 1]]]
    )
    _, first, counts = np.unique(
        np.sort(faces, axis=1), axis=0, return_index=True, return_counts=True
    )
    return faces[np.sort(first[counts == 1])]


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """meshio's OBJ reader, or the built-in one where meshio fails or mis-reads the file."""
    import meshio

    try:
        mesh = meshio.read(path, file_format="obj")
        points, triangles = _surface_of_meshio(mesh, path)
        if len(triangles) and triangles.min() < 0:
            raise ValueError("negative (relative) vertex indices")
        if len(triangles) and triangles.max() >= len(points):
            raise ValueError("a face refers to a vertex that does not exist")
        return points, triangles
    except Exception as exc:
        log.info("meshio cannot read '%s' (%s); reading its v and f lines instead", path, exc)
    return _read_obj_positions(path)


def _read_obj_positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (`v`) and faces (`f`, position indices only) of an OBJ file."""
    points: list[list[float]] = []
    tris: list[tuple[int, int, int]] = []
    text = path.read_text(errors="replace").replace("\\\n", " ")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("v "):
            values = line.split()
            try:
                points.append([float(values[1]), float(values[2]), float(values[3])])
            except (IndexError, ValueError) as exc:
                raise SurfaceError(f"'{path}' line {number}: bad vertex {line!r}") from exc
        elif line.startswith("f "):
            n = len(points)
            try:
                raw = [int(token.split("/", 1)[0]) for token in line.split()[1:]]
            except ValueError as exc:
                raise SurfaceError(f"'{path}' line {number}: bad face {line!r}") from exc
            idx = [i - 1 if i > 0 else n + i for i in raw]
            if len(idx) < 3 or any(
                i < 0 or i >= n or r == 0 for i, r in zip(idx, raw, strict=True)
            ):
                raise SurfaceError(
                    f"'{path}' line {number}: face {line.strip()!r} refers to a vertex that "
                    f"does not exist (there are {n} vertices so far)"
                )
            tris.extend((idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1))
    return np.asarray(points, dtype=np.float64).reshape(-1, 3), np.asarray(
        tris, dtype=np.int64
    ).reshape(-1, 3)


# --- cleaning ---------------------------------------------------------------------------------


def clean(surface: Surface, tol: float = 1e-9) -> Surface:
    """Merge coincident vertices, drop degenerate and duplicate triangles, orient outward.

    Vertices closer than ``tol`` times the bounding-box diagonal are merged (into the first
    of them). Triangles with a repeated vertex are dropped, and of triangles with the same
    three vertices only the first is kept; unused vertices are removed. Then each connected
    component is oriented consistently (by propagation across its manifold edges) and so that
    it encloses a positive volume, or a negative one if it lies inside another component (a
    cavity). Triangles of zero area with three distinct vertices are kept (dropping them
    would open the surface); :func:`check` counts them.
    """
    points, tris = surface.points, surface.triangles
    if len(points) == 0 or len(tris) == 0:
        raise SurfaceError("the surface is empty")
    diag = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    label = _merge_labels(points, tol * diag) if diag > 0 else np.zeros(len(points), int)
    tris = label[tris]
    tris = tris[
        (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    ]
    _, first = np.unique(np.sort(tris, axis=1), axis=0, return_index=True)
    tris = tris[np.sort(first)]
    if len(tris) == 0:
        raise SurfaceError("the surface has no triangle of three distinct vertices")
    # representative point of each merged label: its first occurrence
    rep = np.full(label.max() + 1, -1, dtype=np.int64)
    rep[label[::-1]] = np.arange(len(label))[::-1]
    used = np.unique(tris)
    new_index = np.full(label.max() + 1, -1, dtype=np.int64)
    new_index[used] = np.arange(len(used))
    out = Surface(points[rep[used]], new_index[tris], surface.length_unit_factor)
    _orient(out)
    return out


def _merge_labels(points: np.ndarray, radius: float) -> np.ndarray:
    """Label of each point; points within `radius` (transitively) share a label."""
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    n = len(points)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # number the labels in order of first appearance (stable, deterministic)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse]


def _edges(tris: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges (3m, 2) in triangle order, their undirected id, unique edges, counts."""
    directed = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    unique, inverse, counts = np.unique(
        np.sort(directed, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    return directed, inverse.ravel(), unique, counts


def _orient(surface: Surface) -> None:
    """Orient each component consistently and outward (in place), as documented in clean."""
    tris = surface.triangles
    m = len(tris)
    directed, edge_id, _, counts = _edges(tris)
    tri_of = np.tile(np.arange(m), 3)
    manifold = counts[edge_id] == 2
    order = np.argsort(edge_id[manifold], kind="stable")
    halves = np.flatnonzero(manifold)[order].reshape(-1, 2)  # the two half-edges of each edge
    t1, t2 = tri_of[halves[:, 0]], tri_of[halves[:, 1]]
    same = directed[halves[:, 0], 0] == directed[halves[:, 1], 0]  # same direction: flip one
    # propagate flips across manifold edges (breadth first)
    nbr = np.concatenate([t1, t2])
    src = np.concatenate([t2, t1])
    par = np.concatenate([same, same]).astype(np.int8)
    order = np.argsort(src, kind="stable")
    nbr, par, src = nbr[order], par[order], src[order]
    start = np.searchsorted(src, np.arange(m + 1))
    flip = np.full(m, -1, dtype=np.int8)
    component = np.full(m, -1, dtype=np.int64)
    n_comp = 0
    for seed in range(m):
        if flip[seed] >= 0:
            continue
        flip[seed] = 0
        component[seed] = n_comp
        stack = [seed]
        while stack:
            t = stack.pop()
            for k in range(start[t], start[t + 1]):
                u = nbr[k]
                if flip[u] < 0:
                    flip[u] = flip[t] ^ par[k]
                    component[u] = n_comp
                    stack.append(u)
        n_comp += 1
    tris[flip == 1] = tris[flip == 1][:, ::-1]
    # outward: positive volume, except components nested inside an odd number of others
    a, b, c = surface.corners()
    vol = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    comp_vol = np.bincount(component, weights=vol, minlength=n_comp)
    depth = np.zeros(n_comp, dtype=int)
    if 1 < n_comp <= 50:
        for i in range(n_comp):
            probe = surface.points[tris[np.flatnonzero(component == i)[0], 0]]
            for j in range(n_comp):
                if j != i:
                    sel = component == j
                    w = winding_number(probe, a[sel], b[sel], c[sel])
                    depth[i] += abs(w) > 0.5
    want_negative = depth % 2 == 1
    wrong = (comp_vol < 0) != want_negative
    flip_tri = wrong[component]
    tris[flip_tri] = tris[flip_tri][:, ::-1]


# --- checking ---------------------------------------------------------------------------------


def check(
    surface: Surface, *, strict: bool = True, self_intersections: bool = True
) -> SurfaceReport:
    """Topology, orientation, volume and size of a surface.

    With `strict` (the default) any problem raises SurfaceError with all problems in one
    message: open edges (how many, in how many holes, where), non-manifold edges and
    vertices, inconsistent orientation, an inside-out surface (negative volume; clean()
    flips it) and crossing triangles (`self_intersections`; about 0.5 s for 26 000
    triangles). Locations are given in mm.
    """
    pts, tris = surface.points, surface.triangles
    directed, _, edges, counts = _edges(tris)
    n_edges = len(edges)
    open_e = edges[counts == 1]
    nonman_e = edges[counts > 2]
    # directed edges used twice in the same direction (on edges shared by two triangles)
    _, dcounts = np.unique(directed, axis=0, return_counts=True)
    misoriented = int(np.count_nonzero(dcounts > 1))
    nonman_v = _nonmanifold_vertices(tris, len(pts))
    n_comp = _components(tris, len(pts))
    chi = len(np.unique(tris)) - n_edges + len(tris)
    closed_manifold = len(open_e) == 0 and len(nonman_e) == 0 and len(nonman_v) == 0
    genus = (2 * n_comp - chi) // 2 if closed_manifold else None
    a, b, c = surface.corners()
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    diag = float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0))) if len(pts) else 0.0
    zero_area = int(np.count_nonzero(double_area <= 1e-12 * diag**2))
    volume = surface.signed_volume()
    crossings, where = (None, np.empty((0, 3)))
    if self_intersections:
        crossings, where = _self_intersections(pts, tris, edges)

    problems = []
    if len(open_e):
        loops = _components(open_e, len(pts))
        problems.append(
            f"the surface is not closed: {len(open_e)} open edges (edges of only one "
            f"triangle) around {loops} hole(s), e.g. at {_where(pts[open_e].mean(axis=1))}"
        )
    if len(nonman_e):
        problems.append(
            f"{len(nonman_e)} non-manifold edges (shared by more than two triangles), e.g. at "
            f"{_where(pts[nonman_e].mean(axis=1))}"
        )
    if len(nonman_v):
        problems.append(
            f"{len(nonman_v)} non-manifold vertices (where separate sheets touch), e.g. at "
            f"{_where(pts[nonman_v])}"
        )
    if misoriented:
        problems.append(
            f"inconsistent orientation: {misoriented} edges are traversed in the same "
            "direction by both of their triangles (clean() re-orients)"
        )
    if crossings:
        problems.append(
            f"the surface intersects itself: {crossings} edges cross a triangle, e.g. at "
            f"{_where(where)}"
        )
    if closed_manifold and not misoriented and volume < 0:
        problems.append(
            f"the surface is inside out (enclosed volume {volume:.4g} m^3 < 0; clean() flips it)"
        )
    report = SurfaceReport(
        n_points=len(pts),
        n_triangles=len(tris),
        n_components=n_comp,
        open_edges=len(open_e),
        nonmanifold_edges=len(nonman_e),
        nonmanifold_vertices=len(nonman_v),
        misoriented_edges=misoriented,
        euler_characteristic=int(chi),
        genus=genus,
        volume=volume,
        area=float(0.5 * double_area.sum()),
        bbox_min=tuple(float(x) for x in pts.min(axis=0)),
        bbox_max=tuple(float(x) for x in pts.max(axis=0)),
        zero_area_triangles=zero_area,
        self_intersections=crossings,
        length_unit_factor=surface.length_unit_factor,
        problems=tuple(problems),
    )
    if strict and problems:
        raise SurfaceError("; ".join(problems))
    return report


def _where(points: np.ndarray) -> str:
    """A few locations, in mm."""
    shown = ["(" + ", ".join(f"{1e3 * x:.1f}" for x in p) + ")" for p in points[:_MAX_LOCATIONS]]
    more = f" and {len(points) - _MAX_LOCATIONS} more" if len(points) > _MAX_LOCATIONS else ""
    return ", ".join(shown) + " mm" + more


def _piece_of_cells(cells: np.ndarray, n_points: int) -> np.ndarray:
    """The label of the connected piece (cells sharing vertices) of each cell."""
    k = cells.shape[1]
    rows = np.repeat(cells[:, 0], k - 1)
    cols = cells[:, 1:].ravel()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_points, n_points))
    _, labels = connected_components(graph, directed=False)
    return labels[cells[:, 0]]


def _components(cells: np.ndarray, n_points: int) -> int:
    """Number of connected components of the cells (sharing vertices) that use any point."""
    return len(np.unique(_piece_of_cells(cells, n_points)))


def _nonmanifold_vertices(tris: np.ndarray, n_points: int) -> np.ndarray:
    """Vertices whose triangles form more than one fan (edge-connected group)."""
    # node (v, w) of the link of v; each triangle links (v, b) - (v, c) at each corner v
    corners = [(0, 1, 2), (1, 2, 0), (2, 0, 1)]
    v = np.concatenate([tris[:, i] for i, _, _ in corners])
    b = np.concatenate([tris[:, j] for _, j, _ in corners])
    c = np.concatenate([tris[:, k] for _, _, k in corners])
    keys = np.concatenate([v * n_points + b, v * n_points + c])
    unique, inverse = np.unique(keys, return_inverse=True)
    n = len(unique)
    half = len(v)
    graph = coo_matrix((np.ones(half), (inverse[:half], inverse[half:])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    owner = unique // n_points
    comp_owner = np.zeros(labels.max() + 1, dtype=np.int64)
    comp_owner[labels] = owner
    fans = np.bincount(comp_owner, minlength=n_points)
    return np.flatnonzero(fans > 1)


def _self_intersections(
    pts: np.ndarray, tris: np.ndarray, edges: np.ndarray
) -> tuple[int, np.ndarray]:
    """Pairs of triangles where an edge of one crosses the interior of the other.

    Edge-triangle pairs that share a vertex are skipped; touching and coplanar overlaps are
    not detected. Returns the number of edge-triangle crossings and the crossing points.
    """
    if len(tris) < 4:
        return 0, np.empty((0, 3))
    p0, p1 = pts[edges[:, 0]], pts[edges[:, 1]]
    mid, half = 0.5 * (p0 + p1), 0.5 * np.linalg.norm(p1 - p0, axis=1)
    a, b, c = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    cen = (a + b + c) / 3.0
    rad = np.max([np.linalg.norm(x - cen, axis=1) for x in (a, b, c)], axis=0)
    pairs = cKDTree(mid).query_ball_tree(cKDTree(cen), float(half.max() + rad.max()))
    counts = np.fromiter((len(p) for p in pairs), dtype=np.int64, count=len(pairs))
    ei = np.repeat(np.arange(len(edges)), counts)
    ti = np.fromiter((j for p in pairs for j in p), dtype=np.int64, count=int(counts.sum()))
    near = np.linalg.norm(mid[ei] - cen[ti], axis=1) <= half[ei] + rad[ti]
    ei, ti = ei[near], ti[near]
    shares = (edges[ei, 0:1] == tris[ti]).any(axis=1) | (edges[ei, 1:2] == tris[ti]).any(axis=1)
    ei, ti = ei[~shares], ti[~shares]
    # Moeller-Trumbore: p0 + s (p1 - p0) = a + u (b - a) + v (c - a), strictly inside
    d = p1[ei] - p0[ei]
    e1, e2 = b[ti] - a[ti], c[ti] - a[ti]
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    scale = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1) * np.linalg.norm(d, axis=1)
    ok = np.abs(det) > 1e-12 * scale
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    sv = p0[ei] - a[ti]
    u = inv * np.einsum("ij,ij->i", sv, h)
    q = np.cross(sv, e1)
    v = inv * np.einsum("ij,ij->i", d, q)
    s = inv * np.einsum("ij,ij->i", e2, q)
    eps = 1e-9
    hit = ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (s > eps) & (s < 1 - eps)
    return int(np.count_nonzero(hit)), p0[ei[hit]] + s[hit, None] * d[hit]


# --- unit trap --------------------------------------------------------------------------------


def plausible_unit(report: SurfaceReport) -> str | None:
    """None if the surface's size fits a bone in the declared unit, else a message.

    A bone surface's largest extent should lie in :data:`BONE_SIZE_RANGE` (5 mm to 0.6 m).
    Outside it the message names the size, the declared unit and the unit of
    :data:`LENGTH_UNITS` that would make it 10-300 mm across (a vertebra of 40 m or 0.04 mm
    means the unit is wrong). The caller turns the message into an error before meshing.
    """
    size = report.size
    lo, hi = BONE_SIZE_RANGE
    if lo <= size <= hi:
        return None
    factor = report.length_unit_factor
    declared = _unit_name(factor)
    raw = size / factor  # the extent in the file's own numbers
    message = (
        f"the surface is {_mm(size)} across (largest bounding-box side) with the declared "
        f"length unit {declared}; a bone is {_mm(lo)} to {_mm(hi)} across"
    )
    typical_lo, typical_hi = _TYPICAL_SIZE_RANGE
    candidates = [
        (abs(math.log(raw * f / 0.05)), name, raw * f)
        for name, f in LENGTH_UNITS.items()
        if typical_lo <= raw * f <= typical_hi and not math.isclose(f, factor, rel_tol=1e-9)
    ]
    if candidates:
        _, name, new_size = min(candidates)
        message += (
            f". The coordinates are probably in {name} (length unit '{name}', factor "
            f"{LENGTH_UNITS[name]:g}): it would then be {_mm(new_size)} across"
        )
    return message


def _unit_name(factor: float) -> str:
    for name, f in LENGTH_UNITS.items():
        if math.isclose(f, factor, rel_tol=1e-9):
            return f"'{name}' (factor {factor:g})"
    return f"factor {factor:g} m"


def _mm(length: float) -> str:
    return f"{length:.3g} m" if length >= 1.0 else f"{1e3 * length:.3g} mm"


# --- geometry helpers -------------------------------------------------------------------------


def winding_number(point: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Generalised winding number of triangles (a, b, c) (each (m, 3)) around a point.

    1 inside a closed outward-oriented surface, 0 outside (van Oosterom & Strackee solid
    angles).
    """
    pa, pb, pc = a - point, b - point, c - point
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (pa, pb, pc))
    det = np.einsum("ij,ij->i", pa, np.cross(pb, pc))
    den = (
        la * lb * lc
        + np.einsum("ij,ij->i", pa, pb) * lc
        + np.einsum("ij,ij->i", pb, pc) * la
        + np.einsum("ij,ij->i", pc, pa) * lb
    )
    return float(np.arctan2(det, den).sum() / (2.0 * np.pi))


def closest_points_on_triangles(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Closest point to `p` (3,) or (m, 3) on each triangle (a[i], b[i], c[i]) (Ericson 2005)."""
    p, a, b, c = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (p, a, b, c)))

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", x, y)

    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        safe = np.where(den != 0.0, den, 1.0)
        return np.where(den != 0.0, num / safe, 0.0)[:, None]

    total = va + vb + vc
    out = a + ab * ratio(vb, total) + ac * ratio(vc, total)  # interior
    regions = [  # lowest priority first; Ericson's early returns in reverse
        (
            (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
            b + (c - b) * ratio(d4 - d3, (d4 - d3) + (d5 - d6)),
        ),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * ratio(d2, d2 - d6)),
        ((d6 >= 0) & (d5 <= d6), c),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * ratio(d1, d1 - d3)),
        ((d3 >= 0) & (d4 <= d3), b),
        ((d1 <= 0) & (d2 <= 0), a),
    ]
    for mask, value in regions:
        out = np.where(mask[:, None], value, out)
    return out


def _distance_to_surface(point: np.ndarray, surface: Surface) -> float:
    a, b, c = surface.corners()
    q = closest_points_on_triangles(point, a, b, c)
    return float(np.min(np.linalg.norm(q - point, axis=1)))


# --- import in one call -----------------------------------------------------------------------


def import_surface(
    path: str | Path,
    length_unit_factor: float,
    tol: float = 1e-9,
    affine: np.ndarray | None = None,
    largest_shell: bool = False,
    max_hole_size: float | None = None,
) -> tuple[Surface, SurfaceReport]:
    """read_surface (+ moved by the 4 x 4 `affine`, in m) + clean (+ keep_largest_shell,
    + fill_holes up to `max_hole_size` m across) + check (strict): a closed, manifold, outward
    surface and its report.

    The unit check (:func:`plausible_unit`) is left to the caller.
    """
    surface = read_surface(path, length_unit_factor)
    if affine is not None and not np.array_equal(affine, np.eye(4)):
        surface.points = surface.points @ affine[:3, :3].T + affine[:3, 3]
    surface = clean(surface, tol)  # also orients outward again after a mirroring
    if max_hole_size is not None:
        surface, filled = fill_holes(surface, max_hole_size)
        if filled:
            log.info("'%s': %d hole(s) filled", path, filled)
            surface = clean(surface, tol)
    if largest_shell:
        surface = keep_largest_shell(surface)
    try:
        report = check(surface)
    except SurfaceError as exc:
        raise SurfaceError(f"'{path}': {exc}") from exc
    return surface, report


#: what filling holes needs and how to get it
NO_VTK = "filling holes needs VTK, which is not installed: pip install 'cementsim[repair]'"


def fill_holes(surface: Surface, max_size: float) -> tuple[Surface, int]:
    """The surface with every hole at most `max_size` across (m: the largest distance between
    two points of its rim) closed by a triangulated patch, and the number of holes filled.

    A hole is a loop of open edges (edges of one triangle). The patches are VTK's
    (vtkFillHolesFilter, BSD-3-Clause; the optional dependency ``cementsim[repair]``): each
    rim polygon triangulated without new points; this function only picks the holes by their
    size (VTK's own size limit rests on a rough bounding sphere) and clean() orients the
    patches like the triangles around them. It closes segmentation and export gaps, not
    missing anatomy: larger holes are left for :func:`check` to report.
    """
    tris = surface.triangles
    _, _, edges, counts = _edges(tris)
    rims = edges[counts == 1]
    if len(rims) == 0:
        return surface, 0
    loop_of = np.full(len(surface.points), -1, dtype=np.int64)
    loop_of[rims.ravel()] = np.repeat(_piece_of_cells(rims, len(surface.points)), 2)
    on_rim = np.flatnonzero(loop_of >= 0)
    on_rim = on_rim[np.argsort(loop_of[on_rim], kind="stable")]
    loops, starts = np.unique(loop_of[on_rim], return_index=True)
    small = {
        int(loop)
        for loop, members in zip(loops, np.split(on_rim, starts[1:]), strict=True)
        if _at_most_across(surface.points[members], max_size)
    }
    if not small:
        return surface, 0
    patches = _vtk_hole_patches(surface)
    kept = patches[np.isin(loop_of[patches[:, 0]], list(small))]
    filled = len(np.unique(loop_of[kept[:, 0]]))
    out = Surface(surface.points, np.concatenate([tris, kept]), surface.length_unit_factor)
    return out, filled


def _at_most_across(points: np.ndarray, size: float) -> bool:
    """No two of the points farther apart than `size` (m). A wider bounding box along an
    axis decides without the pairwise distances."""
    if np.ptp(points, axis=0).max() > size:
        return False
    return float(pdist(points).max(initial=0.0)) <= size


def _vtk_hole_patches(surface: Surface) -> np.ndarray:
    """The triangles (indices into surface.points) VTK's vtkFillHolesFilter adds to close
    every hole of the surface."""
    try:
        from vtkmodules.util.numpy_support import (
            numpy_to_vtk,
            numpy_to_vtkIdTypeArray,
            vtk_to_numpy,
        )
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkFiltersCore import vtkTriangleFilter
        from vtkmodules.vtkFiltersModeling import vtkFillHolesFilter
    except ImportError as exc:
        raise SurfaceError(NO_VTK) from exc
    tris = surface.triangles.astype(np.int64)
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(surface.points, dtype=np.float64)))
    cells = vtkCellArray()
    cells.SetData(
        numpy_to_vtkIdTypeArray(np.arange(0, tris.size + 1, 3, dtype=np.int64), deep=True),
        numpy_to_vtkIdTypeArray(tris.ravel(), deep=True),
    )
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetPolys(cells)
    filler = vtkFillHolesFilter()
    filler.SetInputData(poly)
    extent = np.ptp(surface.points, axis=0)
    filler.SetHoleSize(float(np.linalg.norm(extent)))  # all holes: the caller picks
    triangulate = vtkTriangleFilter()
    triangulate.SetInputConnection(filler.GetOutputPort())
    triangulate.Update()
    out = triangulate.GetOutput()
    if out.GetNumberOfPoints() != len(surface.points):
        raise SurfaceError("VTK's hole filling moved the surface's points")
    every = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3).astype(np.int64)
    if not np.array_equal(every[: len(tris)], tris):  # VTK appends the patches to the input
        raise SurfaceError("VTK's hole filling changed the surface's triangles")
    return every[len(tris) :]


def keep_largest_shell(surface: Surface) -> Surface:
    """The connected piece (triangles sharing vertices) that encloses the largest volume,
    without the other pieces (e.g. a coccyx beside a sacrum, loose fragments) and without
    cavities inside it; the report of a cleaned surface counts the pieces (n_components)."""
    tris = surface.triangles
    n = len(surface.points)
    piece = _piece_of_cells(tris, n)
    a, b, c = surface.corners()
    volume = np.bincount(piece, np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0)
    kept = tris[piece == int(np.argmax(np.abs(volume)))]
    used = np.unique(kept)
    index = np.full(n, -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return Surface(surface.points[used], index[kept], surface.length_unit_factor)


@dataclass(frozen=True)
class LandmarkCandidate:
    """A separate part of a surface that comes nearly as close to a landmark as the nearest
    point: its nearest point (m) and that point's distance from the landmark (m)."""

    point: np.ndarray
    distance: float


def landmark_candidates(
    surface: Surface, landmark: np.ndarray, margin: float
) -> list[LandmarkCandidate]:
    """The parts of the surface within `margin` (m) of the smallest distance to `landmark`,
    nearest first: the triangles that close are grouped into vertex-connected pieces and each
    piece gives its nearest point. One candidate: the nearest patch is well defined; more:
    which patch is nearest depends on small changes of the surface (remeshing)."""
    a, b, c = surface.corners()
    q = closest_points_on_triangles(landmark, a, b, c)
    d = np.linalg.norm(q - landmark, axis=1)
    close = np.flatnonzero(d <= d.min() + margin)
    piece = _piece_of_cells(surface.triangles[close], len(surface.points))
    out = []
    for label in np.unique(piece):
        members = close[piece == label]
        best = members[int(np.argmin(d[members]))]
        out.append(LandmarkCandidate(q[best], float(d[best])))
    return sorted(out, key=lambda cand: cand.distance)


def mirror_asymmetry(surface: Surface) -> np.ndarray:
    """How far the surface is from mirror symmetry across the plane through its centroid
    normal to x, y and z: the area-weighted mean distance from each reflected triangle
    centroid to the nearest centroid, over the largest extent (-). About 0.5 % to 1 % across
    the midsagittal plane of the shipped vertebrae and sacrum, 2 % to 13 % across the others.
    """
    a, b, c = surface.corners()
    centroids = (a + b + c) / 3.0
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    middle = area @ centroids / area.sum()
    tree = cKDTree(centroids)
    size = float(np.ptp(surface.points, axis=0).max())
    out = np.empty(3)
    for k in range(3):
        mirrored = centroids.copy()
        mirrored[:, k] = 2.0 * middle[k] - mirrored[:, k]
        distance, _ = tree.query(mirrored)
        out[k] = area @ distance / area.sum() / size
    return out


def signed_clearance(surface: Surface, point: np.ndarray) -> float:
    """Distance (m) from `point` to a closed surface: positive inside, negative outside (by
    the winding number)."""
    distance = _distance_to_surface(point, surface)
    return distance if winding_number(point, *surface.corners()) >= 0.5 else -distance


def check_tip(surface: Surface, name: str, tip: np.ndarray, radius: float) -> None:
    """ValueError naming needle `name` unless its tip (m) lies inside the closed surface at
    least `radius` (m, the needle's inner radius) from it."""
    clearance = signed_clearance(surface, tip)
    if clearance < 0.0:
        raise ValueError(
            f"needle '{name}': the tip {_where(tip[None])} lies outside the surface "
            f"({_mm(-clearance)} from it)"
        )
    if clearance < radius:
        raise ValueError(
            f"needle '{name}': the tip {_where(tip[None])} is {_mm(clearance)} from the "
            f"surface, less than the needle radius {_mm(radius)}"
        )
