"""Tag boundary facets and cells of a DOLFINx mesh by geometric selectors (MPI-safe).

Selectors are plain frozen dataclasses (lengths in m, angles in degrees); the scenario schema
maps onto them:

=================  =====================================================  ===========
selector           picks                                                  applies to
=================  =====================================================  ===========
``Plane``          facets whose midpoint is within ``tol`` of the plane,  facets
                   optionally only those whose outward normal is within
                   ``max_angle_deg`` of the plane's normal
``Normal``         facets whose outward normal is within                  facets
                   ``max_angle_deg`` of ``direction``
``NearestPatch``   the edge-connected patch of facets whose midpoints     facets
                   lie within ``radius`` of the boundary point nearest
                   to ``landmark`` (containing that point's facet)
``Sphere``         midpoints / centroids within ``radius`` of ``centre``  both
``Box``            midpoints / centroids in ``[min, max]``                both
``Ellipsoid``      midpoints / centroids in the ellipsoid ``centre``,     both
                   ``radii`` (along the rows of ``axes``, default x,y,z)
``PlaneSide``      midpoints / centroids on the side ``normal`` points    both
                   to (``(x - point) . normal > 0``)
=================  =====================================================  ===========

Every selector takes ``within`` (another selector): the selection is then the intersection,
e.g. ``Normal(direction=(1, 0, 0), max_angle_deg=45, within=Box(...))`` for the anterior
facets inside a box. A facet is judged by its midpoint (the centroid of its vertices) and
its outward normal, a cell by its centroid.

Order and overlaps (:func:`apply_facet_selectors`, :func:`apply_cell_selectors`): the
selectors are applied in the order of the mapping. Each takes only the entities that still
carry the default tag (``surface`` for facets, ``bone`` for cells, i.e. not yet taken by an
earlier selector nor tagged otherwise in the input); what is left keeps the default tag.
So on overlap the earlier selector wins: put small patches (veins, foramina) before large
ones (endplates). A selector that ends up with nothing raises SelectorError naming it, with
the nearest miss (e.g. "the nearest facet midpoint is 2.1 mm from the centre") or the names
of the earlier selectors that took its entities.

Outward facet normals come from the facet's vertices and the opposite vertex of the cell
that owns the facet. Boundary facets are the exterior facets of the mesh (owned and ghost,
so the tags are consistent across ranks) that carry a tag in the input facet tags.

MPI: each rank works on its local entities; counts and nearest distances are reduced over
ranks; ``NearestPatch`` gathers the few facets near its landmark on every rank. All ranks
must call with the same selectors in the same order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import dolfinx
import numpy as np
from mpi4py import MPI
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sim.geometry.surface_import import BONE_TAG, SURFACE_TAG
from sim.geometry.tagged_mesh import MeshError, TaggedMesh
from sim.shapes.surface import closest_points_on_triangles

log = logging.getLogger(__name__)

__all__ = [
    "Box",
    "Ellipsoid",
    "NearestPatch",
    "Normal",
    "Plane",
    "PlaneSide",
    "Selector",
    "SelectorError",
    "Sphere",
    "apply_cell_selectors",
    "apply_facet_selectors",
    "outward_facet_normals",
    "tag_mesh",
]


class SelectorError(MeshError):
    """A selector selects nothing (or is invalid); the message names it."""


# --- the entities a selector sees -------------------------------------------------------------


@dataclass
class _Entities:
    """Candidate facets or cells on this rank (owned and ghost)."""

    comm: MPI.Comm
    kind: str  # "facet" or "cell"
    points: np.ndarray  # (k, 3) facet midpoints or cell centroids
    owned: np.ndarray  # (k,) bool
    sizes: np.ndarray  # (k,) facet areas (m²) or cell volumes (m³)
    normals: np.ndarray | None = None  # (k, 3) unit outward normals (facets)
    corners: np.ndarray | None = None  # (k, 3, 3) vertex coordinates (facets)
    keys: np.ndarray | None = None  # (k, 3) sorted global vertex indices (facets)

    @property
    def where(self) -> str:
        return "midpoint" if self.kind == "facet" else "centroid"

    def count(self, mask: np.ndarray) -> int:
        """Global number of selected entities (each counted on its owner)."""
        return int(self.comm.allreduce(int(np.count_nonzero(mask & self.owned)), op=MPI.SUM))

    def measure(self, mask: np.ndarray) -> float:
        """Global area (m²) or volume (m³) of the selected entities."""
        local = float(self.sizes[mask & self.owned].sum())
        return float(self.comm.allreduce(local, op=MPI.SUM))

    def global_min(self, values: np.ndarray) -> float:
        local = float(values.min()) if len(values) else math.inf
        return float(self.comm.allreduce(local, op=MPI.MIN))


def _length(d: float) -> str:
    return f"{d:.4g} m"


def _vec(value: Sequence[float], name: str, owner: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: {name} = {value!r} must be three finite numbers")
    return arr


def _unit(value: Sequence[float], name: str, owner: str) -> np.ndarray:
    arr = _vec(value, name, owner)
    norm = np.linalg.norm(arr)
    if norm == 0:
        raise ValueError(f"{owner}: {name} = {value!r} must not be zero")
    return arr / norm


def _require(ok: bool, owner: str, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{owner}: {name} = {value!r} is out of range: must be {allowed}")


def _angles_deg(normals: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(normals @ direction, -1.0, 1.0)))


# --- selectors --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Selector:
    """Base of all selectors: ``within`` intersects with another selector."""

    within: Selector | None = None

    #: which entities the selector can judge
    facets: ClassVar[bool] = True
    cells: ClassVar[bool] = True

    def mask(self, ents: _Entities) -> np.ndarray:
        """Selected candidates (collective)."""
        own = self._mask(ents)
        if self.within is not None:
            own = own & self.within.mask(ents)
        return own

    def explain_empty(self, ents: _Entities) -> str:
        """Why nothing is selected (collective; call only when nothing is)."""
        own = self._mask(ents)
        n_own = ents.count(own)
        if n_own == 0 or self.within is None:
            return self._miss(ents)
        n_within = ents.count(self.within.mask(ents))
        if n_within == 0:
            return "its 'within' selects nothing: " + self.within.explain_empty(ents)
        return (
            f"it selects {n_own} {ents.kind}s and its 'within' selects {n_within}, but none "
            "is in both"
        )

    def check_kind(self, kind: str, name: str) -> None:
        ok = self.facets if kind == "facet" else self.cells
        if not ok:
            raise SelectorError(f"selector '{name}' ({type(self).__name__}) cannot select {kind}s")
        if self.within is not None:
            if not isinstance(self.within, Selector):
                raise SelectorError(
                    f"selector '{name}': 'within' is a {type(self.within).__name__}, not a selector"
                )
            self.within.check_kind(kind, name)

    def _mask(self, ents: _Entities) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _miss(self, ents: _Entities) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Plane(Selector):
    """Facets whose midpoint is within `tol` of the plane through `point` with `normal`.

    With `max_angle_deg`, only facets whose outward normal is within that angle of `normal`
    (so the sign of `normal` matters then: +z picks upward-facing facets).
    """

    point: Sequence[float]
    normal: Sequence[float]
    tol: float
    max_angle_deg: float | None = None
    cells: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _vec(self.point, "point", "Plane")
        _unit(self.normal, "normal", "Plane")
        _require(self.tol >= 0, "Plane", "tol", self.tol, ">= 0 m")
        if self.max_angle_deg is not None:
            _require(
                0 < self.max_angle_deg <= 180,
                "Plane",
                "max_angle_deg",
                self.max_angle_deg,
                "in (0, 180] degrees",
            )

    def _distance(self, ents: _Entities) -> np.ndarray:
        n = _unit(self.normal, "normal", "Plane")
        return np.abs((ents.points - _vec(self.point, "point", "Plane")) @ n)

    def _angle_ok(self, ents: _Entities) -> np.ndarray:
        if self.max_angle_deg is None:
            return np.ones(len(ents.points), dtype=bool)
        n = _unit(self.normal, "normal", "Plane")
        return _angles_deg(ents.normals, n) <= self.max_angle_deg

    def _mask(self, ents: _Entities) -> np.ndarray:
        return (self._distance(ents) <= self.tol) & self._angle_ok(ents)

    def _miss(self, ents: _Entities) -> str:
        dist = self._distance(ents)
        near = dist <= self.tol
        if ents.count(near) == 0:
            return (
                f"the nearest facet midpoint is {_length(ents.global_min(dist))} from the "
                f"plane (tol {_length(self.tol)})"
            )
        n = _unit(self.normal, "normal", "Plane")
        best = ents.global_min(_angles_deg(ents.normals[near], n))
        return (
            f"of the {ents.count(near)} facets within tol of the plane, the smallest angle "
            f"between an outward normal and the plane normal is {best:.3g} degrees (max "
            f"{self.max_angle_deg:g})"
        )


@dataclass(frozen=True, kw_only=True)
class Normal(Selector):
    """Facets whose outward normal is within `max_angle_deg` of `direction`."""

    direction: Sequence[float]
    max_angle_deg: float
    cells: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _unit(self.direction, "direction", "Normal")
        _require(
            0 < self.max_angle_deg <= 180,
            "Normal",
            "max_angle_deg",
            self.max_angle_deg,
            "in (0, 180] degrees",
        )

    def _angles(self, ents: _Entities) -> np.ndarray:
        return _angles_deg(ents.normals, _unit(self.direction, "direction", "Normal"))

    def _mask(self, ents: _Entities) -> np.ndarray:
        return self._angles(ents) <= self.max_angle_deg

    def _miss(self, ents: _Entities) -> str:
        best = ents.global_min(self._angles(ents))
        if not math.isfinite(best):
            return "there are no boundary facets to select from"
        return (
            f"the smallest angle between an outward facet normal and {list(self.direction)} "
            f"is {best:.3g} degrees (max {self.max_angle_deg:g})"
        )


@dataclass(frozen=True, kw_only=True)
class NearestPatch(Selector):
    """The connected patch of boundary facets within `radius` of the point nearest `landmark`.

    p0 is the point of the boundary (all tagged exterior facets) nearest to `landmark`; the
    patch is the set of facets whose midpoints lie within `radius` of p0 and that are
    connected (through shared edges, inside that set) to the facet holding p0, which is
    always included. On a flat or gently curved boundary its area is about pi radius^2.
    """

    landmark: Sequence[float]
    radius: float
    cells: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _vec(self.landmark, "landmark", "NearestPatch")
        _require(self.radius > 0, "NearestPatch", "radius", self.radius, "> 0 m")

    def _mask(self, ents: _Entities) -> np.ndarray:
        comm = ents.comm
        landmark = _vec(self.landmark, "landmark", "NearestPatch")
        if len(ents.points):
            c = ents.corners
            q = closest_points_on_triangles(landmark, c[:, 0], c[:, 1], c[:, 2])
            d = np.linalg.norm(q - landmark, axis=1)
            i = int(np.argmin(d))
            local = (float(d[i]), comm.rank)
        else:
            local = (math.inf, comm.rank)
        best, root = comm.allreduce(local, op=MPI.MINLOC)
        if not math.isfinite(best):
            return np.zeros(len(ents.points), dtype=bool)
        seed = comm.bcast((q[i], ents.keys[i]) if comm.rank == root else None, root=root)
        p0, seed_key = seed
        near = np.linalg.norm(ents.points - p0, axis=1) <= self.radius
        gathered = comm.allgather(ents.keys[near])
        keys = np.unique(np.concatenate([seed_key[None, :], *gathered]), axis=0)
        patch = _connected_to(keys, seed_key)
        return near & _rows_in(ents.keys, patch) | _rows_in(ents.keys, seed_key[None, :])

    def _miss(self, ents: _Entities) -> str:
        return "there are no boundary facets to select from"


def _connected_to(keys: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The rows of `keys` (facets by sorted vertex ids) edge-connected to the row `seed`."""
    edges = np.concatenate([keys[:, [0, 1]], keys[:, [1, 2]], keys[:, [0, 2]]])
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    edge_id = edge_id.ravel()
    n_f = len(keys)
    facet = np.tile(np.arange(n_f), 3)
    n = n_f + edge_id.max() + 1
    graph = coo_matrix((np.ones(len(facet)), (facet, n_f + edge_id)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    seed_row = np.flatnonzero(_rows_in(keys, seed[None, :]))[0]
    return keys[label[:n_f] == label[seed_row]]


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Whether each row of `rows` is a row of `table`."""
    if len(rows) == 0 or len(table) == 0:
        return np.zeros(len(rows), dtype=bool)
    both = np.concatenate([table, rows])
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    in_table = np.zeros(inverse.max() + 1, dtype=bool)
    in_table[inverse[: len(table)]] = True
    return in_table[inverse[len(table) :]]


@dataclass(frozen=True, kw_only=True)
class Sphere(Selector):
    """Facets (midpoints) or cells (centroids) within `radius` of `centre`."""

    centre: Sequence[float]
    radius: float

    def __post_init__(self) -> None:
        _vec(self.centre, "centre", "Sphere")
        _require(self.radius > 0, "Sphere", "radius", self.radius, "> 0 m")

    def _distance(self, ents: _Entities) -> np.ndarray:
        return np.linalg.norm(ents.points - _vec(self.centre, "centre", "Sphere"), axis=1)

    def _mask(self, ents: _Entities) -> np.ndarray:
        return self._distance(ents) <= self.radius

    def _miss(self, ents: _Entities) -> str:
        return (
            f"the nearest {ents.kind} {ents.where} is "
            f"{_length(ents.global_min(self._distance(ents)))} from the centre (radius "
            f"{_length(self.radius)})"
        )


@dataclass(frozen=True, kw_only=True)
class Box(Selector):
    """Facets (midpoints) or cells (centroids) with min <= x <= max in every coordinate."""

    min: Sequence[float]
    max: Sequence[float]

    def __post_init__(self) -> None:
        lo, hi = _vec(self.min, "min", "Box"), _vec(self.max, "max", "Box")
        _require(bool(np.all(lo <= hi)), "Box", "max", self.max, f">= min = {self.min!r}")

    def _outside(self, ents: _Entities) -> np.ndarray:
        lo, hi = np.asarray(self.min, dtype=float), np.asarray(self.max, dtype=float)
        gap = np.maximum(np.maximum(lo - ents.points, ents.points - hi), 0.0)
        return np.linalg.norm(gap, axis=1)

    def _mask(self, ents: _Entities) -> np.ndarray:
        lo, hi = np.asarray(self.min, dtype=float), np.asarray(self.max, dtype=float)
        return np.all((ents.points >= lo) & (ents.points <= hi), axis=1)

    def _miss(self, ents: _Entities) -> str:
        return (
            f"the nearest {ents.kind} {ents.where} is "
            f"{_length(ents.global_min(self._outside(ents)))} outside the box"
        )


@dataclass(frozen=True, kw_only=True)
class Ellipsoid(Selector):
    """Facets (midpoints) or cells (centroids) inside an ellipsoid.

    ``sum_i ((x - centre) . axes[i] / radii[i])^2 <= 1``; `axes` (3 x 3, rows orthonormal)
    defaults to x, y, z.
    """

    centre: Sequence[float]
    radii: Sequence[float]
    axes: Sequence[Sequence[float]] | None = None

    def __post_init__(self) -> None:
        _vec(self.centre, "centre", "Ellipsoid")
        radii = _vec(self.radii, "radii", "Ellipsoid")
        _require(bool(np.all(radii > 0)), "Ellipsoid", "radii", self.radii, "> 0 m")
        if self.axes is not None:
            axes = np.asarray(self.axes, dtype=float)
            ok = axes.shape == (3, 3) and np.allclose(axes @ axes.T, np.eye(3), atol=1e-6)
            _require(ok, "Ellipsoid", "axes", self.axes, "three orthonormal rows")

    def _scaled(self, ents: _Entities) -> np.ndarray:
        axes = np.eye(3) if self.axes is None else np.asarray(self.axes, dtype=float)
        local = (ents.points - np.asarray(self.centre, dtype=float)) @ axes.T
        return np.linalg.norm(local / np.asarray(self.radii, dtype=float), axis=1)

    def _mask(self, ents: _Entities) -> np.ndarray:
        return self._scaled(ents) <= 1.0

    def _miss(self, ents: _Entities) -> str:
        scaled = ents.global_min(self._scaled(ents))
        return (
            f"the nearest {ents.kind} {ents.where} lies at {scaled:.4g} times the radii from "
            "the centre (inside is <= 1)"
        )


@dataclass(frozen=True, kw_only=True)
class PlaneSide(Selector):
    """Facets (midpoints) or cells (centroids) with ``(x - point) . normal > 0``."""

    point: Sequence[float]
    normal: Sequence[float]

    def __post_init__(self) -> None:
        _vec(self.point, "point", "PlaneSide")
        _unit(self.normal, "normal", "PlaneSide")

    def _signed(self, ents: _Entities) -> np.ndarray:
        n = _unit(self.normal, "normal", "PlaneSide")
        return (ents.points - np.asarray(self.point, dtype=float)) @ n

    def _mask(self, ents: _Entities) -> np.ndarray:
        return self._signed(ents) > 0

    def _miss(self, ents: _Entities) -> str:
        behind = ents.global_min(-self._signed(ents))
        if not math.isfinite(behind):
            return f"there are no {ents.kind}s to select from"
        return (
            f"every {ents.kind} {ents.where} is on the negative side; the nearest is "
            f"{_length(behind)} behind the plane"
        )


# --- entities of a mesh -----------------------------------------------------------------------


def _exterior_facets(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    """Local (owned and ghost) facets on the mesh's exterior boundary, as a bool mask."""
    topology = mesh.topology
    topology.create_connectivity(2, 3)
    imap = topology.index_map(2)
    marker = dolfinx.la.vector(imap, 1, dtype=np.float64)
    marker.array[:] = 0.0
    marker.array[dolfinx.mesh.exterior_facet_indices(topology)] = 1.0
    marker.scatter_forward()
    return marker.array[: imap.size_local + imap.num_ghosts] > 0.5


def outward_facet_normals(
    mesh: dolfinx.mesh.Mesh, facets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit outward normals (k, 3), areas (k,) and vertex coordinates (k, 3, 3) of facets.

    For facets with one local cell (exterior facets): the normal of the facet's plane that
    points away from the cell's vertex opposite the facet. Affine (P1) geometry only.
    """
    if mesh.geometry.cmaps[0].degree != 1:
        raise NotImplementedError("outward normals need an affine (degree-1) geometry")
    topology = mesh.topology
    topology.create_connectivity(2, 3)
    f2c = topology.connectivity(2, 3)
    facets = np.asarray(facets, dtype=np.int32)
    cells = f2c.array[f2c.offsets[facets]].astype(np.int32)
    fnodes = dolfinx.mesh.entities_to_geometry(mesh, 2, facets)
    cnodes = dolfinx.mesh.entities_to_geometry(mesh, 3, cells)
    opposite = cnodes.astype(np.int64).sum(axis=1) - fnodes.astype(np.int64).sum(axis=1)
    x = mesh.geometry.x
    corners = x[fnodes]
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = np.einsum("ij,ij->i", n, x[opposite] - corners[:, 0]) < 0
    n = np.where(outward[:, None], n, -n)
    norm = np.linalg.norm(n, axis=1)
    return n / norm[:, None], 0.5 * norm, corners


def _facet_entities(mesh: dolfinx.mesh.Mesh, facets: np.ndarray) -> _Entities:
    topology = mesh.topology
    topology.create_connectivity(2, 0)
    normals, _, corners = outward_facet_normals(mesh, facets)
    f2v = topology.connectivity(2, 0)
    local_vertices = f2v.array.reshape(-1, 3)[facets]
    keys = np.sort(
        topology.index_map(0).local_to_global(local_vertices.ravel()).reshape(-1, 3), axis=1
    )
    return _Entities(
        comm=mesh.comm,
        kind="facet",
        points=corners.mean(axis=1),
        owned=facets < topology.index_map(2).size_local,
        sizes=0.5
        * np.linalg.norm(
            np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
        ),
        normals=normals,
        corners=corners,
        keys=keys.astype(np.int64),
    )


def _cell_entities(mesh: dolfinx.mesh.Mesh, cells: np.ndarray) -> _Entities:
    nodes = dolfinx.mesh.entities_to_geometry(mesh, 3, np.asarray(cells, dtype=np.int32))
    x = mesh.geometry.x[nodes]  # (k, 4, 3): tetrahedra
    edges = x[:, 1:] - x[:, :1]
    return _Entities(
        comm=mesh.comm,
        kind="cell",
        points=x.mean(axis=1),
        owned=cells < mesh.topology.index_map(3).size_local,
        sizes=np.abs(np.linalg.det(edges)) / 6.0,
    )


# --- applying selectors -----------------------------------------------------------------------


def apply_facet_selectors(
    mesh: dolfinx.mesh.Mesh,
    facet_tags: dolfinx.mesh.MeshTags,
    selectors: Mapping[str, Selector],
    *,
    default_tag: int = SURFACE_TAG,
    first_tag: int | None = None,
) -> tuple[dolfinx.mesh.MeshTags, dict[str, int]]:
    """New facet tags with each selector's facets under a new tag; returns (tags, {name: tag}).

    Candidates are the exterior facets listed in `facet_tags`; only those tagged
    `default_tag` can be taken, in the order of `selectors` (see the module docstring).
    New tags count up from `first_tag` (default: one more than the largest tag in use on any
    rank). Other entries of `facet_tags` are kept. Collective. Raises SelectorError naming
    every selector that ends up with no facet.
    """
    tdim = mesh.topology.dim
    exterior = _exterior_facets(mesh)
    indices, values = facet_tags.indices, facet_tags.values
    is_candidate = exterior[indices]
    ents = _facet_entities(mesh, indices[is_candidate])
    new_values, names = _apply(
        ents, values[is_candidate], selectors, default_tag, first_tag, values, "facet"
    )
    values = values.copy()
    values[is_candidate] = new_values
    return dolfinx.mesh.meshtags(mesh, tdim - 1, indices, values.astype(np.int32)), names


def apply_cell_selectors(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    selectors: Mapping[str, Selector],
    *,
    default_tag: int = BONE_TAG,
    first_tag: int | None = None,
) -> tuple[dolfinx.mesh.MeshTags, dict[str, int]]:
    """New cell tags with each selector's cells under a new tag; returns (tags, {name: tag}).

    Candidates are the cells listed in `cell_tags` (owned and ghost), judged by their
    centroids; only those tagged `default_tag` can be taken, in the order of `selectors`.
    Otherwise as :func:`apply_facet_selectors`.
    """
    indices, values = cell_tags.indices, cell_tags.values
    ents = _cell_entities(mesh, indices)
    new_values, names = _apply(ents, values, selectors, default_tag, first_tag, values, "cell")
    return (
        dolfinx.mesh.meshtags(mesh, mesh.topology.dim, indices, new_values.astype(np.int32)),
        names,
    )


def _apply(
    ents: _Entities,
    values: np.ndarray,
    selectors: Mapping[str, Selector],
    default_tag: int,
    first_tag: int | None,
    all_values: np.ndarray,
    kind: str,
) -> tuple[np.ndarray, dict[str, int]]:
    for name, selector in selectors.items():
        if not isinstance(selector, Selector):
            raise SelectorError(f"selector '{name}' is a {type(selector).__name__}, not a Selector")
        selector.check_kind(kind, name)
    if first_tag is None:
        local_max = int(all_values.max()) if len(all_values) else default_tag
        first_tag = int(ents.comm.allreduce(max(local_max, default_tag), op=MPI.MAX)) + 1
    values = values.copy()
    free = values == default_tag
    names: dict[str, int] = {}
    taken_by: list[tuple[str, np.ndarray]] = []
    problems = []
    for offset, (name, selector) in enumerate(selectors.items()):
        tag = first_tag + offset
        names[name] = tag
        mask = selector.mask(ents)
        take = mask & free
        if ents.count(take) == 0:
            problems.append(_explain(name, selector, ents, mask, taken_by))
        values[take] = tag
        free &= ~take
        taken_by.append((name, take))
        if not problems:
            _log_selection(kind, name, ents, take)
    if problems:
        raise SelectorError("; ".join(problems))
    return values, names


def _log_selection(kind: str, name: str, ents: _Entities, take: np.ndarray) -> None:
    """Log what a selector took: how many entities, their area (mm²) or volume (mm³)."""
    count, measure = ents.count(take), ents.measure(take)
    if kind == "facet":
        log.info("boundary '%s': %d facets, %.4g mm²", name, count, measure * 1e6)
    else:
        log.info("region '%s': %d cells, %.4g mm³", name, count, measure * 1e9)


def _explain(
    name: str,
    selector: Selector,
    ents: _Entities,
    mask: np.ndarray,
    taken_by: list[tuple[str, np.ndarray]],
) -> str:
    """Why selector `name` got nothing (collective)."""
    n = ents.count(mask)
    head = f"selector '{name}' ({type(selector).__name__}) selects no {ents.kind}"
    if n == 0:
        return f"{head}: {selector.explain_empty(ents)}"
    earlier = [other for other, taken in taken_by if ents.count(mask & taken) > 0]
    by = (
        f"earlier selectors ({', '.join(repr(e) for e in earlier)})"
        if earlier
        else "other tags of the input"
    )
    return f"{head}: all {n} {ents.kind}s it selects are already taken by {by}"


def tag_mesh(
    tagged: TaggedMesh,
    facets: Mapping[str, Selector] | None = None,
    cells: Mapping[str, Selector] | None = None,
    *,
    default_boundary: str = "surface",
    default_region: str = "bone",
) -> TaggedMesh:
    """A copy of `tagged` with boundaries and regions added by selectors (collective).

    The selectors take from the boundary `default_boundary` and the region `default_region`
    (which keep what is left). Raises SelectorError if a name is already in use or a
    selector selects nothing.
    """
    result = replace(
        tagged,
        boundaries=dict(tagged.boundaries),
        regions=dict(tagged.regions),
        info=dict(tagged.info),
    )
    for kind, chosen, known, default in (
        ("boundary", facets, tagged.boundaries, default_boundary),
        ("region", cells, tagged.regions, default_region),
    ):
        if not chosen:
            continue
        if default not in known:
            raise SelectorError(f"the mesh has no {kind} '{default}' to split")
        clash = sorted(set(chosen) & set(known))
        if clash:
            raise SelectorError(f"{kind} name(s) {', '.join(clash)} already exist in the mesh")
        tags = tagged.facet_tags if kind == "boundary" else tagged.cell_tags
        local_max = int(tags.values.max()) if len(tags.values) else 0
        first = max([tagged.comm.allreduce(local_max, op=MPI.MAX), *known.values()]) + 1
        if kind == "boundary":
            result.facet_tags, names = apply_facet_selectors(
                tagged.mesh,
                tagged.facet_tags,
                chosen,
                default_tag=known[default],
                first_tag=first,
            )
            result.boundaries.update(names)
        else:
            result.cell_tags, names = apply_cell_selectors(
                tagged.mesh,
                tagged.cell_tags,
                chosen,
                default_tag=known[default],
                first_tag=first,
            )
            result.regions.update(names)
    return result
