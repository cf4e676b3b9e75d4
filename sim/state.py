"""The evolving state shared by the components: time, cement saturation and pressure, needle
rates and syringe pressures, and the step counters. Fields that belong to one component (the
degree of cure, the Darcy velocity, ...) live in that component and are listed by its
`fields()`.

Units: SI (s, Pa, m³/s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from dolfinx import fem

from sim.checkpoint import Saved, VertexValues


@dataclass
class Counters:
    """Steps taken and rejected, and the iterations of the last and of all steps (transport:
    ordered sweeps plus Newton iterations); time_error_last: the last step's estimated time
    error relative to numerics.time_tolerance (0: not estimated)."""

    steps: int = 0
    rejected: int = 0
    transport_total: int = 0
    transport_last: int = 0
    saturation_change_last: float = 0.0
    courant_last: float = 0.0
    time_error_last: float = 0.0
    picard_last: int = 0
    picard_failures: int = 0


@dataclass
class State:
    """t: time since the injection started (s); start_age: cement age at t = 0 (s since
    mixing); S: cement saturation (P1, -); p: pressure (P1, Pa); rates: per needle over the
    step that follows (m³/s); syringe_pressures: per needle (Pa).

    Coupling between components: `temperature` (K, per local vertex, ghosts included) is set
    by a heat component and None without one (then the cement cures at its bone
    temperature); `reacted_volume` (m³ per owned vertex) is cement volume x rise of its
    degree of cure over the last step, left by the cure kinetics for the reaction heat;
    `flowing` is False once the injection has ended and the run follows the cement as it
    sets (no flow, see Component.follow_up).
    """

    S: fem.Function
    p: fem.Function
    start_age: float
    t: float = 0.0
    rates: list[float] = field(default_factory=list)
    syringe_pressures: list[float] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    temperature: np.ndarray | None = None
    reacted_volume: np.ndarray | None = None
    flowing: bool = True

    @property
    def age(self) -> float:
        """Cement age (s since mixing)."""
        return self.start_age + self.t

    def checkpoint(self) -> Saved:
        """What evolves (sim.checkpoint); `temperature` belongs to the heat component and
        `reacted_volume` lives within a step only."""
        n = len(self.S.x.array) - self.S.function_space.dofmap.index_map.num_ghosts
        return {
            "t": self.t,
            "S": VertexValues(self.S.x.array[:n]),
            "p": VertexValues(self.p.x.array[:n]),
            "rates": self.rates,
            "syringe_pressures": self.syringe_pressures,
            "counters": asdict(self.counters),
            "flowing": self.flowing,
        }

    def restore(self, saved: Saved) -> None:
        """Take up a `checkpoint()` (vertex values per local vertex)."""
        self.t = saved["t"]
        self.S.x.array[:] = saved["S"]
        self.p.x.array[:] = saved["p"]
        self.rates = list(saved["rates"])
        self.syringe_pressures = list(saved["syringe_pressures"])
        self.counters = Counters(**saved["counters"])
        self.flowing = saved["flowing"]
