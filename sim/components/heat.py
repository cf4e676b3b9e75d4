"""Heat: the temperature of bone, marrow and cement, the cement's exotherm, thermal damage.

Energy balance of each box (vertex control volume) a, backward Euler over a step dt with the
fluxes and saturations of the transport step just taken (so that a uniform temperature stays
uniform under any flow):

    (H_a T_a - H_a^n T_a^n) / dt + sum_b A_ab T_b + sum_b [F_ab^+ c_a T_a + F_ab^- c_b T_b]
        + q_out,a c_a T_a + w_a (T_a - T_art) + h B_a (T_a - T_bath)
        = q_in,a (rho c)_c T_inj + rho_c L dV_a / dt,

H_a = (V_a - P_a)(rho c)_bone + P_a [S_a (rho c)_c + (1 - S_a)(rho c)_m] the heat capacity of
the box (J/K; V_a bulk, P_a pore volume); A the P1 stiffness (box-method conduction) of the
cell conductivity k_e = (1 - phi_e) k_bone + phi_e [S_e k_c + (1 - S_e) k_m]; F_ab the box
fluxes (F^+ = max(F, 0), F^- = min(F, 0)), upwind, each carrying the heat capacity of the
flowing mixture c = f (rho c)_c + (1 - f)(rho c)_m with f the cement's fractional flow; q_in,
q_out the needle inflow and outlet outflow; w_a = omega rho_b c_b V_a (1 - S_a) Pennes
perfusion where there is no cement; h B_a the bath exchange on the outer surface (B_a the
vertex's share of its area); dV_a the cement volume times the rise of its degree of cure in
the step (cure kinetics) and L the reaction heat (J/kg). With `boundary: temperature` the
outer-surface vertices are held at the body temperature and the heat they take is booked
from their full rows. Conservative: the change of sum_a H_a T_a equals what came in, to the
linear-solver tolerance (`heat_balance_rel_error` in the summary). Implicit upwinding is
stable at any Peclet number.

Damage per vertex: peak temperature, time above 45 and 50 C, CEM43 and one Arrhenius
integral per Arrhenius model (sim.physics.thermal_damage). Units: SI (K, J, W, s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dolfinx
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

if TYPE_CHECKING:
    from sim.outputs.plots import RunPlots
    from sim.problem import InjectionProblem

from sim import measurements as measure
from sim.checkpoint import Saved, VertexValues
from sim.components.base import Component, Figure, OutputField, StepData
from sim.discretisation import Discretisation
from sim.flow.box_flux import BoxFluxes
from sim.medium import PorousMedium
from sim.physics.thermal_damage import CELSIUS, arrhenius_rate, cem43_rate, trapezoid
from sim.scenario.heat import (
    ArrheniusDamage,
    BathBoundary,
    DoseDamage,
    Heat,
    SurfaceProbe,
    TemperatureBoundary,
)
from sim.state import State

THRESHOLDS_C = (45.0, 50.0)


class HeatComponent(Component):
    """Temperature and thermal damage; sets state.temperature for the cure kinetics."""

    def __init__(
        self,
        spec: Heat,
        disc: Discretisation,
        medium: PorousMedium,
        fluxes: BoxFluxes,
        injected_temperature: float,
        outer_vertices: np.ndarray,
        outer_facets: np.ndarray,
    ) -> None:
        self.spec = spec
        self.disc = disc
        self.medium = medium
        self.fx = fluxes
        self.t_inj = injected_temperature
        self.t_art = spec.arterial_temperature or spec.body_temperature
        n = disc.n_owned
        self.rc_bone = spec.bone.heat_capacity
        self.rc_cement = spec.cement.heat_capacity
        self.rc_marrow = spec.marrow.heat_capacity
        self.solid_volume = disc.bulk_volume - medium.pore_volume
        self.perfusion = spec.perfusion * spec.blood.density * spec.blood.specific_heat
        self.dirichlet = np.zeros(n, dtype=bool)
        self.bath = np.zeros(n)
        if isinstance(spec.boundary, TemperatureBoundary):
            self.dirichlet[outer_vertices] = True
        elif isinstance(spec.boundary, BathBoundary):
            self.bath = spec.boundary.heat_transfer_coefficient * _facet_area_share(
                disc, outer_facets
            )
        self.temperature = fem.Function(disc.V, name="temperature")
        self.peak = fem.Function(disc.V, name="temperature_peak")
        self.dose = fem.Function(disc.V, name="thermal_dose_cem43")
        self.above = {c: fem.Function(disc.V, name=f"time_above_{c:g}c") for c in THRESHOLDS_C}
        self.arrhenius = {
            name: fem.Function(disc.V, name=f"damage_{name}")
            for name, model in spec.damage.items()
            if isinstance(model, ArrheniusDamage)
        }
        self.energy_in = 0.0  # J, all that crossed the boundaries or was released, signed
        self.energy_scale = 0.0  # J, sum of the magnitudes of those exchanges
        self.energy_initial = 0.0
        self.matrix = fluxes.matrix()
        self.ksp = PETSc.KSP().create(disc.comm)
        self.ksp.setOptionsPrefix("cementsim_heat_")
        self.ksp.setType("gmres")
        self.ksp.getPC().setType("bjacobi")
        self.ksp.setTolerances(rtol=1e-13, atol=0.0, max_it=1000)
        self.ksp.setFromOptions()
        self._rhs = self.matrix.createVecLeft()
        self._solution = self.matrix.createVecRight()
        self._regions = _region_shares(disc)
        self._points = {
            name: _locate(disc, p)
            for name, p in spec.probes.items()
            if not isinstance(p, SurfaceProbe)
        }
        self._surfaces = {
            name: _surface_vertices(disc, p.boundary)
            for name, p in spec.probes.items()
            if isinstance(p, SurfaceProbe)
        }
        self._series_max: dict[str, float] = {}
        self._rate = 0.0  # largest |dT/dt| of the last step (K/s)

    # ---------------------------------------------------------------- interface
    def fields(self) -> list[OutputField]:
        out = [
            OutputField("temperature", self.temperature, "point"),
            OutputField("temperature_peak", self.peak, "point"),
            OutputField("thermal_dose_cem43", self.dose, "point"),
        ]
        return out + [OutputField(f.name, f, "point") for f in self.arrhenius.values()]

    def initialise(self, state: State) -> None:
        self.temperature.x.array[:] = self.spec.body_temperature
        self.peak.x.array[:] = self.spec.body_temperature
        state.temperature = self.temperature.x.array
        n = self.disc.n_owned
        s = state.S.x.array[:n]
        self.energy_initial = self.disc.owned_sum(self._capacity(s) * self.temperature.x.array[:n])

    def after_transport(self, state: State, step: StepData) -> None:
        """Solve the temperature at the end of the step, then accumulate the damage."""
        disc, fx, n = self.disc, self.fx, self.disc.n_owned
        t_old = self.temperature.x.array[:n].copy()
        h_old, h_new = self._capacity(step.s_old), self._capacity(step.s_new)
        s_col = fx.to_columns(step.s_new)
        f_col = self.medium.mobility.fractional(s_col, step.mu_columns)
        c_col = f_col * self.rc_cement + (1.0 - f_col) * self.rc_marrow
        inflow, out_sum = step.inflow, step.outflow
        perfusion = self.perfusion * disc.bulk_volume * (1.0 - step.s_new)
        reacted = 0.0 if state.reacted_volume is None else state.reacted_volume
        released = self.spec.cement.density * self.spec.cement.reaction_heat * reacted
        state.reacted_volume = None
        s_cell = s_col[disc.cell_dofs[: disc.n_cells]].mean(axis=1)
        values = fx.stiffness(self._conductivity(s_cell))
        values += inflow * c_col[fx.cols]
        values[fx.diagonal] += h_new / step.dt + c_col[:n] * out_sum + perfusion + self.bath
        inlet = step.q_in * self.rc_cement * self.t_inj
        bath = self.bath * self._bath_temperature()
        rhs = h_old * t_old / step.dt + inlet + released / step.dt + perfusion * self.t_art + bath
        full, fixed = values.copy(), self.dirichlet
        values[fixed[fx.rows]] = 0.0
        values[fx.diagonal[fixed]] = 1.0
        scale = np.where(fixed, 1.0, full[fx.diagonal])
        t_new = self._solve(values, np.where(fixed, self.spec.body_temperature, rhs), scale)
        # heat the held vertices receive from outside (W): the residuals of their full rows
        t_col = fx.to_columns(t_new)
        held = np.where(fixed, fx.row_sums(full * t_col[fx.cols]) - rhs, 0.0)
        exchanges = [
            step.dt * inlet,
            -step.dt * step.q_out * c_col[:n] * t_new,
            released,
            step.dt * perfusion * (self.t_art - t_new),
            step.dt * (bath - self.bath * t_new),
            step.dt * held,
        ]
        self.energy_in += disc.owned_sum(sum(exchanges))
        self.energy_scale += disc.owned_sum(sum(np.abs(e) for e in exchanges))
        change = np.abs(t_new - t_old).max(initial=0.0)
        self._rate = disc.comm.allreduce(float(change), op=MPI.MAX) / step.dt
        self._damage(t_old, t_new, step.dt)
        self.temperature.x.array[:n] = t_new
        self.temperature.x.scatter_forward()

    def _vertex_fields(self) -> dict[str, fem.Function]:
        """Every vertex field that evolves, by a name for checkpoints."""
        return {
            "temperature": self.temperature,
            "peak": self.peak,
            "dose": self.dose,
            **{f"above_{c:g}": f for c, f in self.above.items()},
            **{f"arrhenius_{name}": f for name, f in self.arrhenius.items()},
        }

    def checkpoint(self) -> Saved:
        """The temperature and damage fields, the energy balance, the running maxima of the
        time-series columns and the rate of the last step."""
        n = self.disc.n_owned
        saved: Saved = {k: VertexValues(f.x.array[:n]) for k, f in self._vertex_fields().items()}
        saved["energy"] = [self.energy_in, self.energy_scale, self.energy_initial]
        saved["series_max"] = self._series_max
        saved["rate"] = self._rate
        return saved

    def restore(self, state: State, saved: Saved) -> None:
        for name, f in self._vertex_fields().items():
            f.x.array[:] = saved[name]
        state.temperature = self.temperature.x.array
        self.energy_in, self.energy_scale, self.energy_initial = saved["energy"]
        self._series_max = dict(saved["series_max"])
        self._rate = saved["rate"]

    def max_step(self, state: State, dt: float) -> float:
        """At most heat.max_temperature_change per step, at the last step's rate."""
        if self._rate <= 0.0:
            return dt
        return min(dt, self.spec.max_temperature_change / self._rate)

    def follow_up(self) -> float:
        return self.spec.follow_up

    # ---------------------------------------------------------------- measurements
    def energy_balance_error(self, state: State) -> float:
        """|change of the heat content - heat in| / sum of |heat exchanged| (-)."""
        n = self.disc.n_owned
        content = self.disc.owned_sum(
            self._capacity(state.S.x.array[:n]) * self.temperature.x.array[:n]
        )
        change = content - self.energy_initial
        return abs(change - self.energy_in) / self.energy_scale if self.energy_scale > 0 else 0.0

    def region_maximum(self, values: fem.Function) -> dict[str, float]:
        """Largest value of a vertex field over the vertices of each tagged region."""
        comm, n = self.disc.comm, self.disc.n_owned
        return {
            name: comm.allreduce(float(values.x.array[:n][share > 0].max(initial=-np.inf)), MPI.MAX)
            for name, share in self._regions.items()
        }

    def necrosis_volumes(self, state: State) -> dict[str, float]:
        """Tissue volume (bulk minus cement, m³) past each damage model's threshold."""
        n = self.disc.n_owned
        tissue = self.disc.bulk_volume - self.medium.pore_volume * state.S.x.array[:n]
        out = {}
        for name, model in self.spec.damage.items():
            if isinstance(model, DoseDamage):
                dead = self.dose.x.array[:n] >= model.threshold / 60.0
            else:
                dead = self.arrhenius[name].x.array[:n] >= 1.0
            out[name] = self.disc.owned_sum(np.where(dead, tissue, 0.0))
        return out

    def probe_temperatures(self) -> dict[str, float]:
        """Temperature (K) at each probe: at its point, or the highest on its boundary
        (collective)."""
        comm, t = self.disc.comm, self.temperature.x.array
        local = {
            name: float(self.temperature.eval(x, [cell])[0])
            for name, (x, cell) in self._points.items()
            if cell >= 0
        }
        found: dict[str, float] = {}
        for part in comm.allgather(local):
            found.update(part)
        for name, dofs in self._surfaces.items():
            found[name] = comm.allreduce(float(t[dofs].max(initial=-np.inf)), op=MPI.MAX)
        return {name: found[name] for name in self.spec.probes}

    def columns(self, state: State) -> dict[str, float]:
        out = {"temperature_max_k": self.maximum()}
        out.update({f"temperature_k.{k}": v for k, v in self.probe_temperatures().items()})
        out["heat_balance_rel_error"] = self.energy_balance_error(state)
        for name, value in out.items():
            self._series_max[name] = max(self._series_max.get(name, -np.inf), value)
        return out

    def summary(self, state: State) -> dict[str, object]:
        probes = {k: self._series_max[f"temperature_k.{k}"] for k in self.spec.probes}
        return {
            "temperature_max_k": self.region_maximum(self.peak),
            "thermal_dose_cem43_min": self.region_maximum(self.dose),
            "time_above_45c_s": self.region_maximum(self.above[45.0]),
            "time_above_50c_s": self.region_maximum(self.above[50.0]),
            "necrosis_volume_m3": self.necrosis_volumes(state),
            "probe_temperature_max_k": probes,
            "heat_balance_rel_error": self._series_max["heat_balance_rel_error"],
        }

    def figures(self, plots: RunPlots) -> list[Figure]:
        probes = {f"probe {k}": f"temperature_k.{k}" for k in self.spec.probes}
        curves = Figure("temperature_vs_time.png", "Temperature (highest, and at the probes)")
        plots.against_time(
            {"highest": "temperature_max_k", **probes},
            1.0,
            "temperature (K)",
            "Temperature",
            curves.file,
        )
        sections = Figure(
            "temperature_midplanes.png", "Peak temperature, sections through the needle tip", True
        )
        peak = OutputField("temperature_peak", self.peak, "point")
        plots.sections(peak, "peak temperature (K)", sections.file)
        return [curves, sections]

    def report_rows(self, summary: dict[str, Any]) -> list[tuple[str, str]]:
        rows = []
        for region, peak in summary["temperature_max_k"].items():
            dose = summary["thermal_dose_cem43_min"][region]
            above = summary["time_above_45c_s"][region]
            rows.append(
                (
                    f"Peak temperature ({region})",
                    f"{peak - CELSIUS:.1f} °C; CEM43 {dose:.3g} min; above 45 °C {above:.0f} s",
                )
            )
        for probe, peak in summary["probe_temperature_max_k"].items():
            rows.append((f"Peak temperature at {probe}", f"{peak - CELSIUS:.1f} °C"))
        for model, volume in summary["necrosis_volume_m3"].items():
            rows.append((f"Necrosis ({model})", f"{volume / 1e-6:.3g} mL of tissue"))
        rows.append(("Heat balance error", f"{summary['heat_balance_rel_error']:.1e}"))
        return rows

    def maximum(self) -> float:
        """Largest temperature now (K)."""
        n = self.disc.n_owned
        return self.disc.comm.allreduce(float(self.temperature.x.array[:n].max()), MPI.MAX)

    # ---------------------------------------------------------------- internals
    def _capacity(self, s: np.ndarray) -> np.ndarray:
        """Heat capacity of each owned box (J/K) at saturation s."""
        pore = self.medium.pore_volume
        return self.solid_volume * self.rc_bone + pore * (
            s * self.rc_cement + (1.0 - s) * self.rc_marrow
        )

    def _conductivity(self, s_cell: np.ndarray) -> np.ndarray:
        """Cell conductivity (W/(m K)) at cell saturation s_cell (parallel mixing)."""
        spec = self.spec
        phi = self.medium.porosity.x.array[: len(s_cell)]
        fluid = s_cell * spec.cement.conductivity + (1.0 - s_cell) * spec.marrow.conductivity
        return (1.0 - phi) * spec.bone.conductivity + phi * fluid

    def _bath_temperature(self) -> float:
        boundary = self.spec.boundary
        return boundary.temperature if isinstance(boundary, BathBoundary) else 0.0

    def _damage(self, t_old: np.ndarray, t_new: np.ndarray, dt: float) -> None:
        n = self.disc.n_owned
        self.dose.x.array[:n] += trapezoid(cem43_rate(t_old), cem43_rate(t_new), dt)
        for name, field in self.arrhenius.items():
            model = self.spec.damage[name]
            a, e = model.frequency_factor, model.activation_energy  # type: ignore[union-attr]
            field.x.array[:n] += trapezoid(
                arrhenius_rate(t_old, a, e), arrhenius_rate(t_new, a, e), dt
            )
        for celsius, field in self.above.items():
            field.x.array[:n] += _time_above(t_old, t_new, celsius + CELSIUS, dt)
        self.peak.x.array[:n] = np.maximum(self.peak.x.array[:n], t_new)

    def _solve(self, values: np.ndarray, rhs: np.ndarray, row_scale: np.ndarray) -> np.ndarray:
        fx = self.fx
        fx.set_matrix(self.matrix, values / row_scale[fx.rows])
        self._rhs.array[:] = rhs / row_scale
        self.ksp.setOperators(self.matrix)
        self.ksp.solve(self._rhs, self._solution)
        if self.ksp.getConvergedReason() < 0:
            raise RuntimeError(
                f"the heat equation did not converge ({self.ksp.getConvergedReason()})"
            )
        return self._solution.array.copy()

    def destroy(self) -> None:
        for obj in (self.ksp, self.matrix, self._rhs, self._solution):
            obj.destroy()


def heat_component(pb: InjectionProblem) -> HeatComponent:
    """The heat component of a problem whose scenario has a `heat` section."""
    spec = pb.scenario.heat
    assert spec is not None
    disc = pb.disc
    syringe = getattr(pb.cement.curing, "syringe_temperature", None)
    return HeatComponent(
        spec,
        disc,
        pb.medium,
        pb.flow.fluxes,
        spec.injected_temperature(syringe),
        measure.outer_boundary_vertices(pb),
        measure.outer_boundary_facets(pb),
    )


def _time_above(t_old: np.ndarray, t_new: np.ndarray, level: float, dt: float) -> np.ndarray:
    """Time (s) within a step, linear in time, that the temperature spends above `level`."""
    lo, hi = np.minimum(t_old, t_new), np.maximum(t_old, t_new)
    span = np.where(hi > lo, hi - lo, 1.0)
    share = np.where(lo >= level, 1.0, np.where(hi <= level, 0.0, (hi - level) / span))
    return dt * share


def _facet_area_share(disc: Discretisation, facets: np.ndarray) -> np.ndarray:
    """Each owned vertex's share of the area (m²) of the given local boundary facets."""
    tags = dolfinx.mesh.meshtags(disc.mesh, 2, np.sort(facets).astype(np.int32), 1)
    ds = ufl.Measure("ds", domain=disc.mesh, subdomain_data=tags)
    return disc.assemble_owned(ufl.TestFunction(disc.V) * ds(1))


def _region_shares(disc: Discretisation) -> dict[str, np.ndarray]:
    """Bulk volume per owned vertex within the cells of each tagged region (m³)."""
    v = ufl.TestFunction(disc.V)
    return {
        name: disc.assemble_owned(v * disc.dx(tag)) for name, tag in disc.tagged.regions.items()
    }


def _surface_vertices(disc: Discretisation, boundary: str) -> np.ndarray:
    """Owned vertices of a named boundary."""
    dofs = disc.boundary_dofs(disc.tagged.facets(boundary))
    return dofs[dofs < disc.n_owned]


def _locate(disc: Discretisation, point: tuple[float, float, float]) -> tuple[np.ndarray, int]:
    """The point as an array and the owned local cell that holds it on the rank with the
    lowest number that owns one (-1 elsewhere); ValueError naming the point when no rank
    has it (collective)."""
    mesh = disc.mesh
    x = np.array([point], dtype=mesh.geometry.x.dtype)
    tree = dolfinx.geometry.bb_tree(mesh, 3, entities=np.arange(disc.n_cells, dtype=np.int32))
    candidates = dolfinx.geometry.compute_collisions_points(tree, x)
    cells = dolfinx.geometry.compute_colliding_cells(mesh, candidates, x).links(0)
    has = len(cells) > 0
    owner = disc.comm.allreduce(disc.comm.rank if has else disc.comm.size, op=MPI.MIN)
    if owner == disc.comm.size:
        mm = ", ".join(f"{1e3 * c:g}" for c in point)
        raise ValueError(f"heat.probes: the point ({mm}) mm is outside the mesh")
    return x, int(cells[0]) if disc.comm.rank == owner else -1
