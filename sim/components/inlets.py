"""Needle inlets on a discretisation: the cavity surface named after the needle where the mesh
has one, otherwise a source spread over the boxes within the needle's inner radius of its tip
(imported meshes; DESIGN §3). Shares per owned vertex sum to 1 over all ranks; lengths in m.
"""

from __future__ import annotations

import logging

import dolfinx
import numpy as np
import ufl
from mpi4py import MPI

from sim.discretisation import Discretisation
from sim.needles import NeedleInlet
from sim.protocol import Injector
from sim.scenario import Scenario

log = logging.getLogger(__name__)


def needle_inlets(
    scenario: Scenario, disc: Discretisation, injector: Injector
) -> list[NeedleInlet]:
    """The inlet of every needle of a scenario (collective)."""
    inlets: list[NeedleInlet] = []
    for spec, protocol in zip(scenario.injection.needles, injector.protocols, strict=True):
        if spec.name in disc.tagged.boundaries:
            kind, weights, area = "cavity", *_surface_inlet(disc, spec.name)
            tip = (
                np.asarray(spec.tip)
                if spec.tip is not None
                else _centroid(disc, disc.tagged.facets(spec.name))
            )
        else:
            tip = np.asarray(spec.tip)
            kind, weights, area = "source", _volume_inlet(disc, tip, spec.inner_radius), 0.0
            log.info(
                "needle '%s': no boundary of that name, injecting as a source within "
                "%.2f mm of its tip",
                spec.name,
                1e3 * spec.inner_radius,
            )
        inlets.append(
            NeedleInlet(
                spec.name,
                kind,
                area,
                weights,
                tip,
                spec.inner_radius,
                spec.cannula_length,
                protocol,
            )
        )
    return inlets


def _surface_inlet(disc: Discretisation, name: str) -> tuple[np.ndarray, float]:
    """Inflow shares of the owned vertices of a cavity surface, and its area (m²)."""
    tag = disc.tagged.boundaries[name]
    area = disc.area((tag,))
    return disc.assemble_owned(ufl.TestFunction(disc.V) * disc.ds(tag)) / area, area


def _volume_inlet(disc: Discretisation, tip: np.ndarray, radius: float) -> np.ndarray:
    """Inflow shares of the owned vertices within `radius` of `tip`, by box volume (the
    nearest vertex if none is that close)."""
    distance = np.linalg.norm(disc.x_owned - tip, axis=1)
    reach = radius
    if disc.comm.allreduce(int(np.sum(distance <= reach)), op=MPI.SUM) == 0:
        reach = disc.comm.allreduce(float(distance.min(initial=np.inf)), op=MPI.MIN)
    weights = np.where(distance <= reach * (1 + 1e-12), disc.bulk_volume, 0.0)
    return weights / disc.owned_sum(weights)


def _centroid(disc: Discretisation, facets: np.ndarray) -> np.ndarray:
    """Mean of the midpoints of the owned facets among `facets`, over all ranks (m)."""
    owned = facets[facets < disc.mesh.topology.index_map(2).size_local]
    mid = dolfinx.mesh.compute_midpoints(disc.mesh, 2, owned.astype(np.int32))
    total = np.zeros(3)
    disc.comm.Allreduce(mid.sum(axis=0), total, op=MPI.SUM)
    return total / max(disc.comm.allreduce(len(owned), op=MPI.SUM), 1)
