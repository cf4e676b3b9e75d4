"""The time series of a run: one row per time step, as CSV (written as it grows) and HDF5."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from sim.outputs.quantities import Quantity

if TYPE_CHECKING:
    from sim.problem import InjectionProblem


class TimeSeries:
    """Polls `quantities` after every step; rank 0 writes `csv_path` row by row.

    Every rank keeps the rows (the quantities are global reductions, identical on all ranks).
    """

    def __init__(self, quantities: list[Quantity], csv_path: Path | None, rank: int) -> None:
        self.quantities = quantities
        self.columns = [q.column for q in quantities]
        self.rows: list[list[float]] = []
        self._file = None
        self._writer = None
        if csv_path is not None and rank == 0:
            self._file = csv_path.open("w", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.columns)

    def record(self, problem: InjectionProblem) -> None:
        row = [float(q(problem)) for q in self.quantities]
        self.rows.append(row)
        if self._writer is not None:
            self._writer.writerow([repr(v) for v in row])
            self._file.flush()  # type: ignore[union-attr]

    def restore(self, rows: np.ndarray, columns: list[str]) -> None:
        """Take up the rows of an earlier part of the run (and write them to the CSV)."""
        if columns != self.columns:
            raise ValueError("the time-series columns differ from the checkpointed run's")
        for row in rows.tolist():
            self.rows.append(row)
            if self._writer is not None:
                self._writer.writerow([repr(v) for v in row])
        if self._file is not None:
            self._file.flush()

    def column(self, name: str) -> np.ndarray:
        return np.array([row[self.columns.index(name)] for row in self.rows])

    def columns_starting(self, prefix: str) -> dict[str, np.ndarray]:
        """Columns named ``prefix.<name>``, keyed by name."""
        return {
            c.split(".", 1)[1]: self.column(c) for c in self.columns if c.startswith(prefix + ".")
        }

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write_hdf5(self, path: Path) -> None:
        """All columns as datasets of group ``timeseries`` (names as in the CSV)."""
        with h5py.File(path, "w") as h5:
            group = h5.create_group("timeseries")
            for name in self.columns:
                group.create_dataset(name, data=self.column(name))
            group.attrs["units"] = "SI; the unit is part of each column name"
