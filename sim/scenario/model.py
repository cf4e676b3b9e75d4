"""The root `Scenario`: all sections, and the checks that need more than one section."""

from __future__ import annotations

from collections.abc import Iterator
from math import ceil
from typing import Any

import numpy as np
from pydantic import model_validator

from sim.protocol import Injector
from sim.scenario.base import Section
from sim.scenario.cement import Cement
from sim.scenario.geometry import Geometry, place_needles
from sim.scenario.heat import Heat
from sim.scenario.injection import Injection, Name
from sim.scenario.leak_routes import OPEN_ROUTES, LeakRegion, LeakRoute, Target
from sim.scenario.materials import Bone, Marrow
from sim.scenario.numerics import Numerics, Output

#: the longest injection a scenario may plan (s): PMMA sets within the hour
MAX_INJECTION = 24 * 3600.0


class Scenario(Section):
    """One injection case. Every value is in SI units once validated."""

    name: Name
    description: str = ""
    geometry: Geometry
    bone: Bone
    cement: Cement
    marrow: Marrow
    injection: Injection
    leak_routes: dict[Name, LeakRoute]  # emptiness is explained by _well_posed
    targets: dict[Name, Target] = {}
    heat: Heat | None = None
    numerics: Numerics = Numerics()
    output: Output = Output()

    def sections(self) -> Iterator[tuple[str, Section]]:
        """The scenario's sections that are given, by name (an optional one may be None)."""
        for name in type(self).model_fields:
            section = getattr(self, name)
            if isinstance(section, Section):
                yield name, section

    @model_validator(mode="before")
    @classmethod
    def _placed_needles(cls, data: Any) -> Any:
        """Tips and entries of the needles the geometry places (sacrum `needle_paths`)."""
        return place_needles(data)

    @model_validator(mode="after")
    def _well_posed(self) -> Scenario:
        if not any(isinstance(r, OPEN_ROUTES) for r in self.leak_routes.values()):
            raise ValueError(
                "leak_routes: no opening (kind 'outlet', 'resistive' or 'vein'). The marrow "
                "displaced by the cement has nowhere to go, so the problem is ill-posed; add an "
                "outlet at fixed pressure or a draining vein"
            )
        return self

    @model_validator(mode="after")
    def _needles_fit_geometry(self) -> Scenario:
        self.geometry.check_needles(self.injection.needles)
        return self

    @model_validator(mode="after")
    def _mesh_fits_geometry(self) -> Scenario:
        self.geometry.check_mesh(tips=len(self.injection.needles))
        return self

    @model_validator(mode="after")
    def _tags_exist(self) -> Scenario:
        boundaries = self.geometry.boundary_names()
        needles = {n.name for n in self.injection.needles}
        for name, route in self.leak_routes.items():
            for b in getattr(route, "boundary", []):
                if b in needles:
                    raise ValueError(
                        f"leak_routes.{name}.boundary: '{b}' is a needle inlet, not an outlet"
                    )
                if boundaries is not None and b not in boundaries:
                    raise ValueError(
                        f"leak_routes.{name}.boundary: '{b}' is not a boundary of geometry "
                        f"'{self.geometry.kind}'; it has: {', '.join(sorted(boundaries))}"
                    )
        for where, section in self.sections():
            section.check_geometry(self.geometry, where)
        regions = self.geometry.region_names()
        if regions is not None:
            for where, names in self._region_references():
                for r in names:
                    if r not in regions:
                        raise ValueError(
                            f"{where}: '{r}' is not a region of geometry "
                            f"'{self.geometry.kind}'; it has: {', '.join(sorted(regions))}"
                        )
        return self

    @model_validator(mode="after")
    def _ends_in_time(self) -> Scenario:
        """Refuse a run that could only end at numerics.max_steps: a needle starting, or an
        injection planned to end (up to stop.time_limit), more than MAX_INJECTION after
        t = 0, or more steps of numerics.dt_max until then (the longest `follow_up` of a
        section, a component's time without flow after the injection, included) than
        numerics.max_steps. A pressure-controlled needle's end is not known: the
        injection is then judged up to stop.time_limit, if given, and without it a needle
        whose volume takes longer than MAX_INJECTION at its max_rate is refused."""
        limit = self.injection.stop.time_limit
        for i, needle in enumerate(self.injection.needles):
            if needle.start > MAX_INJECTION:
                raise ValueError(
                    f"injection.needles.{i}.start: {needle.start:.4g} s is more than "
                    f"{MAX_INJECTION / 3600:g} h after t = 0; PMMA sets within the hour"
                )
            if limit is None and needle.max_rate is not None:
                fastest = needle.total_volume / needle.max_rate
                earliest = fastest + needle.start  # 0 for a needle that waits for another
                if earliest > MAX_INJECTION:
                    raise ValueError(
                        f"injection.needles.{i}.max_rate: at {needle.max_rate:.4g} m^3/s the "
                        f"volume of {needle.total_volume:.4g} m^3 takes at least "
                        f"{fastest / 3600:.3g} h, so the injection ends more than "
                        f"{MAX_INJECTION / 3600:g} h after t = 0; PMMA sets within the hour "
                        "(check max_rate, start and their units, or give stop.time_limit)"
                    )
        end = Injector(self.injection.needles).planned_end()
        if end is None or (limit is not None and limit < end):
            end = limit
        if end is None:
            return self
        if end > MAX_INJECTION:
            raise ValueError(
                f"injection: the needles' protocols end at t = {end:.4g} s ({end / 3600:.3g} "
                f"h), more than {MAX_INJECTION / 3600:g} h after the start; PMMA sets within "
                "the hour (check the rates, volumes, pauses and starts and their units, or "
                "give stop.time_limit)"
            )
        follow = max(
            (getattr(section, "follow_up", 0.0) for _, section in self.sections()), default=0.0
        )
        run = end + follow
        num = self.numerics
        if num.dt_max is not None and run > num.dt_max * num.max_steps:
            raise ValueError(
                f"numerics.dt_max: steps of at most {num.dt_max:g} s take at least "
                f"{ceil(run / num.dt_max)} steps to t = {run:.4g} s (the injection"
                f"{' and the follow-up after it' if follow > 0 else ''}), more than "
                f"numerics.max_steps = {num.max_steps}; allow longer steps or more of them"
            )
        return self

    @model_validator(mode="after")
    def _sets_after_it_starts(self) -> Scenario:
        """cement.set_viscosity caps the viscosity where the curing cement counts as set: it
        must exceed the cement's viscosity at a shear rate of 1/s when the injection starts
        (its age injection.start_after_mixing), or the fresh cement would be capped."""
        cap = self.cement.set_viscosity
        if cap is None:
            return self
        from sim.physics.cement import CementModel  # NumPy only, not at import: a cycle

        model = CementModel(self.cement)
        age = self.injection.start_after_mixing
        law = model.law_at(age)
        fresh = float(law.apparent_viscosity(np.ones(1), model.syringe_factor(age))[0])
        if not cap > fresh:
            raise ValueError(
                f"cement.set_viscosity: {cap:g} Pa·s is not above the cement's viscosity when "
                f"the injection starts ({fresh:.4g} Pa·s at a shear rate of 1/s, "
                f"{age:g} s after mixing): it caps the curing cement where it sets, so it must "
                "exceed the viscosity the cement starts from (or the injection starts after "
                "the cement has set: check injection.start_after_mixing)"
            )
        return self

    @model_validator(mode="after")
    def _heterogeneity_resolved(self) -> Scenario:
        het = self.bone.heterogeneity
        problem = None if het is None else het.resolution_problem(self.geometry.cell_size_range())
        if problem is not None:
            raise ValueError(problem)
        return self

    def warnings(self) -> list[str]:
        """What is valid but doubtful (printed by validate, logged at the start of a run)."""
        het = self.bone.heterogeneity
        found = [
            None if het is None else het.resolution_warning(self.geometry.cell_size_range()),
            self._pore_volume_warning(),
        ]
        return self.geometry.warnings() + [w for w in found if w is not None]

    def _pore_volume_warning(self) -> str | None:
        """A warning when the needles are to inject more cement than the bone's pores hold
        (its volume times the largest porosity of the bone and its regions); None where the
        geometry's volume or the porosity (from a CT) is not known before meshing."""
        volume = self.geometry.volume()
        if volume is None or self.bone.ct is not None:
            return None
        porosities = [r.porosity for r in self.bone.regions.values() if r.porosity is not None]
        porosity = max([self.bone.porosity, *porosities])
        injected = sum(n.total_volume for n in self.injection.needles)
        if injected <= porosity * volume:
            return None
        return (
            f"injection: the needles are to inject {injected * 1e6:.4g} mL of cement, more "
            f"than the {porosity * volume * 1e6:.4g} mL of pore space in the bone (porosity "
            f"{porosity:g} of {volume * 1e6:.4g} mL): the rest must leak"
        )

    def _region_references(self) -> list[tuple[str, list[str]]]:
        """(field, region names) of every section that names regions."""
        bone = self.bone
        out = [
            (f"leak_routes.{name}.regions", route.regions)
            for name, route in self.leak_routes.items()
            if isinstance(route, LeakRegion)
        ]
        out += [(f"targets.{name}.regions", t.regions) for name, t in self.targets.items()]
        out.append(("bone.regions", list(bone.regions)))
        if bone.ct is not None and bone.ct.regions is not None:
            out.append(("bone.ct.regions", bone.ct.regions))
        if bone.heterogeneity is not None and bone.heterogeneity.regions is not None:
            out.append(("bone.heterogeneity.regions", bone.heterogeneity.regions))
        return out

    def referenced_boundaries(self) -> set[str]:
        """Boundary tag names the scenario uses (leak routes and needle inlets)."""
        return {b for r in self.leak_routes.values() for b in getattr(r, "boundary", [])}

    def referenced_regions(self) -> set[str]:
        """Region tag names the scenario uses (targets, leak regions, bone regions, CT and
        heterogeneity regions)."""
        return {r for _, names in self._region_references() for r in names}
