"""The local time error of a step, estimated on the readouts users read.

A step of the implicit (backward Euler) scheme makes a local error of h²/2 Q'' in a smooth
readout Q(t). The secant through its last two values has the slope Q' at the later of them
(the implicit step takes the derivative at its end), so the line Q_p = Q_n + h (Q_n -
Q_(n-1)) / h_prev is the explicit (forward Euler) step from t_n, whose local error is
-h²/2 Q'', and

    e = |Q_(n+1) - Q_p| / 2

estimates the local error of the step (verified against exact solutions in
tests/unit/flow/test_time_error.py) at the cost of the readouts alone. The readouts are the
syringe pressure of every needle (Pa), the cement leaked through every route (m³) and the
cement's spread, its radius of gyration about its centroid (m: where the front is). Each
error is measured against the readout's largest magnitude over the three points, but at least
a floor below which a readout is not read: 1 Pa, the leak threshold (`output.leak_threshold`),
1 µm.

A step whose estimate exceeds twice the tolerance is taken back (the whole run's state restored
from a snapshot taken before it) and redone shorter, once: a readout that jumps (a cell's
upwind vertex switching, the front entering a vertex) makes an error that no shorter step
removes, so the retried step stands whatever its estimate, and the next one is sized to the
tolerance.

The estimate needs two steps under the same injection regime (the same needles active at the
same scheduled rates): across a rate change, a needle starting or ending, the readouts' slopes
jump and the estimate starts over. Units: SI.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from sim.checkpoint import Saved

#: readouts smaller than these are not read: a pressure (Pa), a spread (m)
PRESSURE_FLOOR = 1.0
SPREAD_FLOOR = 1e-6

#: a step whose estimated error is above this many times the tolerance is taken back and
#: redone shorter, once (the controller aims at 0.81 times it; the readouts' small jumps as
#: the front enters a vertex or a cell's upwind vertex switches make the estimate scatter)
REDO_RATIO = 2.0


def spread(s: np.ndarray, pore_volume: np.ndarray, x: np.ndarray, comm: MPI.Comm) -> float:
    """Radius of gyration (m) of the cement volume pore_volume x s (m³ per owned vertex at x,
    m) about its centroid; 0 without cement (collective)."""
    v = pore_volume * s
    moments = np.concatenate(([v.sum()], v @ x, [v @ np.einsum("ij,ij->i", x, x)]))
    m = comm.allreduce(moments, op=MPI.SUM)
    if m[0] <= 0.0:
        return 0.0
    centroid = m[1:4] / m[0]
    return float(np.sqrt(max(m[4] / m[0] - centroid @ centroid, 0.0)))


def local_error(times: Sequence[float], values: np.ndarray) -> np.ndarray:
    """The estimated local error of the implicit step from times[1] to times[2] (s) in each
    readout, from its values (rows: the three times): half the miss of the line through the
    first two points."""
    t0, t1, t2 = times
    predicted = values[1] + (t2 - t1) * (values[1] - values[0]) / (t1 - t0)
    return 0.5 * np.abs(values[2] - predicted)


@dataclass
class TimeErrorEstimate:
    """Estimated local time error of each accepted step, relative to `tolerance`.

    floors: the smallest magnitude each readout is measured against (its unit). `record`
    takes the readouts after every accepted step; `restart` drops what came before (a state
    that did not come from the last recorded one by a step).
    """

    tolerance: float
    floors: np.ndarray
    history: list[tuple[float, list[float], Hashable]] = field(default_factory=list)

    def record(self, t: float, values: Sequence[float], regime: Hashable) -> float | None:
        """The largest estimated local error of the step that ended at t (s), relative to its
        readout's scale and to the tolerance (1: at the tolerance), or None where it cannot
        be estimated (fewer than two earlier points, or another injection `regime` over the
        step before)."""
        q = np.asarray(values, dtype=float)
        ratio = None
        if self.ready(regime):
            (t0, q0, _), (t1, q1, _) = self.history[-2:]
            error = local_error((t0, t1, t), np.array([q0, q1, q]))
            scale = np.maximum.reduce([np.abs(q0), np.abs(q1), np.abs(q), self.floors])
            ratio = float(np.max(error / scale)) / self.tolerance
        self.history = [*self.history[-1:], (t, q.tolist(), regime)]
        return ratio

    def ready(self, regime: Hashable) -> bool:
        """Whether the next step, under `regime`, can be estimated: two earlier points, the
        last reached under the same regime."""
        return len(self.history) >= 2 and self.history[-1][2] == regime

    def restart(self) -> None:
        """Forget the earlier readouts."""
        self.history = []

    def checkpoint(self) -> Saved:
        """The last two points: time (s), readouts, injection regime."""
        return {"history": [[t, q, list(regime)] for t, q, regime in self.history]}

    def restore(self, saved: Saved) -> None:
        """Take up a `checkpoint()`."""
        self.history = [(t, q, _hashable(regime)) for t, q, regime in saved["history"]]


def _hashable(value: object) -> Hashable:
    """A regime as stored in JSON (nested lists) made a tuple again."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value  # type: ignore[return-value]
