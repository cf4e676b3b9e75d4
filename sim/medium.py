"""The porous bone as the solver sees it: porosity and permeability per cell, pore volume per
vertex box, the mobility law, and the pore and bulk volumes of each named target region.

Fixed during a run. Units: SI (m², m³, Pa·s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem

from sim.bone import bone_statistics, cell_properties
from sim.discretisation import Discretisation
from sim.physics.mobility import Mobility
from sim.physics.relative_permeability import relative_permeability
from sim.scenario import Scenario


@dataclass(frozen=True)
class PorousMedium:
    """porosity: DG0 (-); permeability: (local cells, 3, 3) (m²); pore_volume: per owned
    vertex box (m³); target_pore_volume / target_bulk_volume: the same within each target's
    cells (m³); mobility: relative permeabilities and marrow viscosity; statistics: the
    volume-weighted statistics of porosity and permeability (sim.bone.bone_statistics)."""

    porosity: fem.Function
    permeability: np.ndarray
    pore_volume: np.ndarray
    total_pore_volume: float
    mobility: Mobility
    target_pore_volume: dict[str, np.ndarray]
    target_bulk_volume: dict[str, np.ndarray]
    statistics: dict[str, dict[str, float]]


def porous_medium(scenario: Scenario, disc: Discretisation) -> PorousMedium:
    """The bone of a scenario on a discretisation (collective)."""
    porosity = fem.Function(disc.W, name="porosity")
    phi, permeability = cell_properties(scenario.bone, disc.tagged)
    porosity.x.array[:] = phi
    v = ufl.TestFunction(disc.V)
    pore_volume = disc.assemble_owned(porosity * v * ufl.dx)
    target_pore: dict[str, np.ndarray] = {}
    target_bulk: dict[str, np.ndarray] = {}
    for name, target in scenario.targets.items():
        tags = tuple(disc.tagged.regions[r] for r in target.regions)
        target_pore[name] = disc.region_volumes(porosity, tags)
        target_bulk[name] = disc.assemble_owned(v * disc.dx(tags))
    return PorousMedium(
        porosity=porosity,
        permeability=permeability,
        pore_volume=pore_volume,
        total_pore_volume=disc.owned_sum(pore_volume),
        mobility=Mobility(
            relative_permeability(scenario.bone.relative_permeability), scenario.marrow.viscosity
        ),
        target_pore_volume=target_pore,
        target_bulk_volume=target_bulk,
        statistics=bone_statistics(disc.tagged, phi, permeability),
    )
