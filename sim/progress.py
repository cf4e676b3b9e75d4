"""A progress bar on rank 0 (injected volume, time, steps, ETA) for interactive runs."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

from mpi4py import MPI
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sim import measurements as measure

if TYPE_CHECKING:
    from sim.problem import InjectionProblem

ML = 1e-6


class ProgressBar:
    """Shows injected / total volume; silent unless enabled on rank 0 of a terminal."""

    def __init__(self, total_volume: float, enabled: bool) -> None:
        self.enabled = enabled and MPI.COMM_WORLD.rank == 0 and sys.stderr.isatty()
        self.total = total_volume
        self._progress: Progress | None = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]injecting"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[volume]}"),
                TextColumn("t = {task.fields[time]} s, step {task.fields[step]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "run", total=self.total, volume="", time="0.0", step=0
            )
        return self

    def update(self, pb: InjectionProblem) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=measure.injected(pb),
                volume=f"{measure.injected(pb) / ML:.2f}/{self.total / ML:.2f} mL",
                time=f"{pb.state.t:.1f}",
                step=pb.state.counters.steps,
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, value, tb)
