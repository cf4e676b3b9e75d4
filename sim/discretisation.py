"""The discretisation every component shares: the P1 vertex space whose median-dual boxes carry
saturation, pressure and the other vertex fields, the DG0 cell spaces, the owned/ghost layout
and the box (bulk) volumes.

Built once from a tagged mesh by `discretise`; read-only afterwards. Collective helpers reduce
over the mesh's communicator. Units: SI (m, m³).
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI

from sim.geometry.tagged_mesh import TaggedMesh


@dataclass(frozen=True)
class Discretisation:
    """Spaces and layout of a tagged mesh.

    V: P1 (vertex fields); W, W_vector, W_tensor: DG0 scalar, vector, 3x3 tensor (cell fields);
    n_owned / n_local: owned / owned + ghost vertices of this rank; n_cells: owned cells;
    cell_dofs: P1 dofs of every local cell; x_owned: owned vertex coordinates (m);
    bulk_volume: median-dual box volume per owned vertex (m³); ds, dx: measures with the
    facet and cell tags as subdomain data.
    """

    tagged: TaggedMesh
    V: fem.FunctionSpace
    W: fem.FunctionSpace
    W_vector: fem.FunctionSpace
    W_tensor: fem.FunctionSpace
    n_owned: int
    n_local: int
    n_cells: int
    cell_dofs: np.ndarray
    x_owned: np.ndarray
    bulk_volume: np.ndarray
    ds: ufl.Measure
    dx: ufl.Measure

    @property
    def mesh(self) -> dolfinx.mesh.Mesh:
        return self.tagged.mesh

    @property
    def comm(self) -> MPI.Comm:
        return self.tagged.comm

    def assemble_owned(self, form: ufl.Form | fem.Form) -> np.ndarray:
        """Owned entries of an assembled P1 vector (a copy)."""
        vec = fem.assemble_vector(form if isinstance(form, fem.Form) else fem.form(form))
        vec.scatter_reverse(dolfinx.la.InsertMode.add)
        return vec.array[: self.n_owned].copy()

    def owned_sum(self, values: np.ndarray) -> float:
        """Sum of per-owned-entry values over all ranks."""
        return self.comm.allreduce(float(np.sum(values)), op=MPI.SUM)

    def area(self, boundary_tags: tuple[int, ...]) -> float:
        """Area (m²) of the boundary facets with the given tags."""
        form = fem.form(1.0 * self.ds(boundary_tags, domain=self.mesh))
        return self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)

    def boundary_dofs(self, facets: np.ndarray) -> np.ndarray:
        """Local P1 dofs (owned and ghost) on the given local facets."""
        return fem.locate_dofs_topological(self.V, 2, facets)

    def region_volumes(self, porosity: fem.Function, regions: tuple[int, ...]) -> np.ndarray:
        """Pore volume per owned vertex box within the cells of the given tags (m³)."""
        return self.assemble_owned(porosity * ufl.TestFunction(self.V) * self.dx(regions))


def discretise(tagged: TaggedMesh) -> Discretisation:
    """The spaces, layout and box volumes of a tagged mesh (collective)."""
    mesh = tagged.mesh
    mesh.topology.create_connectivity(2, 3)
    mesh.topology.create_connectivity(2, 0)
    V = fem.functionspace(mesh, ("Lagrange", 1))
    n_owned = V.dofmap.index_map.size_local
    vec = fem.assemble_vector(fem.form(ufl.TestFunction(V) * ufl.dx))
    vec.scatter_reverse(dolfinx.la.InsertMode.add)
    return Discretisation(
        tagged=tagged,
        V=V,
        W=fem.functionspace(mesh, ("DG", 0)),
        W_vector=fem.functionspace(mesh, ("DG", 0, (3,))),
        W_tensor=fem.functionspace(mesh, ("DG", 0, (3, 3))),
        n_owned=n_owned,
        n_local=n_owned + V.dofmap.index_map.num_ghosts,
        n_cells=mesh.topology.index_map(3).size_local,
        cell_dofs=V.dofmap.list,
        x_owned=V.tabulate_dof_coordinates()[:n_owned],
        bulk_volume=vec.array[:n_owned].copy(),
        ds=ufl.Measure("ds", domain=mesh, subdomain_data=tagged.facet_tags),
        dx=ufl.Measure("dx", domain=mesh, subdomain_data=tagged.cell_tags),
    )
