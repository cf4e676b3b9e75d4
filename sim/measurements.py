"""What a run is measured by: functions of a problem's state, discretisation and components.

Every function is collective (it reduces over the mesh's communicator): call it on every rank.
Units: SI (m³, Pa, Pa·s, s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mpi4py import MPI

if TYPE_CHECKING:
    from sim.components.leaks import Route
    from sim.needles import NeedleInlet
    from sim.problem import InjectionProblem


def _saturation(pb: InjectionProblem) -> np.ndarray:
    return pb.state.S.x.array[: pb.disc.n_owned]


def injected(pb: InjectionProblem) -> float:
    """Volume all needles have injected (m³)."""
    return pb.flow.injected()


def total_volume(pb: InjectionProblem) -> float:
    """Volume all needles are to inject (m³)."""
    return pb.flow.total_volume()


def leaked(pb: InjectionProblem) -> float:
    """Cement leaked through all routes (m³)."""
    return pb.leaks.leaked()


def cement_in_bone(pb: InjectionProblem) -> float:
    """Cement volume in the pores of the bone, leak regions excluded (m³)."""
    pv = pb.medium.pore_volume
    for route in pb.routes:
        if route.region_pore_volume is not None:
            pv = pv - route.region_pore_volume
    return pb.disc.owned_sum(pv * _saturation(pb))


def mass_balance_error(pb: InjectionProblem) -> float:
    """|injected - (stored - stored at t=0) - leaked| / injected (-); 0 before injection."""
    volume = injected(pb)
    if volume <= 0.0:
        return 0.0
    stored = cement_in_bone(pb) - pb.stored_initial
    return abs(volume - stored - leaked(pb)) / volume


def needle(pb: InjectionProblem, name: str) -> NeedleInlet:
    return next(n for n in pb.needles if n.name == name)


def tip_pressure(pb: InjectionProblem, name: str) -> float:
    """Mean pressure on a needle's inlet surface (Pa)."""
    return pb.flow.tip_pressure(needle(pb, name))


def rate(pb: InjectionProblem, name: str) -> float:
    """Injection rate (m³/s) of a needle over the step that follows the current state."""
    return pb.state.rates[[n.name for n in pb.needles].index(name)]


def syringe_pressure(pb: InjectionProblem, name: str) -> float:
    """Syringe pressure of a needle (Pa): tip pressure + cannula drop."""
    return pb.state.syringe_pressures[[n.name for n in pb.needles].index(name)]


def syringe_viscosity(pb: InjectionProblem, shear_rate: float = 1.0) -> float:
    """Apparent viscosity (Pa·s) of the cement still in the syringe at `shear_rate` (1/s)."""
    age = pb.state.age
    factor = pb.cement.syringe_factor(age)
    return float(pb.cement.viscosity(np.array([shear_rate]), factor, age)[0])


def first_leak_times(pb: InjectionProblem) -> dict[str, float | None]:
    """Time (s) at which each route's leaked volume first reached the leak threshold (None if
    it has not), interpolated linearly within the step that crossed it."""
    return {r.name: r.first_leak for r in pb.routes}


def route(pb: InjectionProblem, name: str) -> Route:
    return next(r for r in pb.routes if r.name == name)


def fill_fraction(pb: InjectionProblem, target: str) -> float:
    """Cement volume / pore volume in a target region (-)."""
    pv = pb.medium.target_pore_volume[target]
    return pb.disc.owned_sum(pv * _saturation(pb)) / pb.disc.owned_sum(pv)


def saturation_range(pb: InjectionProblem) -> tuple[float, float]:
    """Smallest and largest saturation (-)."""
    s, comm = _saturation(pb), pb.comm
    return (
        comm.allreduce(float(s.min(initial=np.inf)), op=MPI.MIN),
        comm.allreduce(float(s.max(initial=-np.inf)), op=MPI.MAX),
    )


def cement_viscosity_range(pb: InjectionProblem, threshold: float = 0.5) -> tuple[float, float]:
    """Smallest and largest apparent viscosity (Pa·s) in cells filled with cement (mean
    vertex saturation >= threshold); NaN while there are none."""
    n = pb.disc.n_cells
    s_cell = pb.state.S.x.array[pb.disc.cell_dofs[:n]].mean(axis=1)
    mu = pb.flow.viscosity.x.array[:n][s_cell >= threshold]
    lo = pb.comm.allreduce(float(mu.min(initial=np.inf)), op=MPI.MIN)
    hi = pb.comm.allreduce(float(mu.max(initial=-np.inf)), op=MPI.MAX)
    return (lo, hi) if np.isfinite(lo) else (np.nan, np.nan)


def outer_boundary_facets(pb: InjectionProblem) -> np.ndarray:
    """Local facets of the outer surface of the bone (needle cavities excluded)."""
    from dolfinx.mesh import exterior_facet_indices  # here: the sweep tools load this module

    facets = exterior_facet_indices(pb.disc.mesh.topology)
    cavities = [pb.tagged.facets(n.name) for n in pb.needles if n.kind == "cavity"]
    if cavities:
        facets = np.setdiff1d(facets, np.concatenate(cavities))
    return facets


def outer_boundary_vertices(pb: InjectionProblem) -> np.ndarray:
    """Owned vertices on the outer surface of the bone (needle cavities excluded)."""
    dofs = pb.disc.boundary_dofs(outer_boundary_facets(pb))
    return dofs[dofs < pb.disc.n_owned]


def cloud(pb: InjectionProblem, threshold: float = 0.5) -> tuple[float, float]:
    """Bone volume where S >= threshold (m³) and its largest distance from a needle tip (m)."""
    inside = _saturation(pb) >= threshold
    volume = pb.disc.owned_sum(pb.disc.bulk_volume[inside])
    tips = np.array([n.tip for n in pb.needles])
    x = pb.disc.x_owned[inside]
    if len(x):
        dist = np.linalg.norm(x[:, None, :] - tips[None, :, :], axis=2).min(axis=1).max()
    else:
        dist = 0.0
    return volume, pb.comm.allreduce(float(dist), op=MPI.MAX)
