"""Collect a sweep into one table: every parameter and every summary metric per run.

SWEEP_DIR/results.csv, results.h5 (group `runs`, one dataset per column) and
results.parquet (when pyarrow is installed). Failed, corrupt and pending runs are rows too,
with their status, the metrics left empty (NaN) and the error (or why the summary.json of a
corrupt run does not count), so that nothing silently disappears.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim.outputs.summary import write_text_atomic
from sim.outputs.summary_layout import flatten
from sim.sweep.store import CORRUPT, planned_runs, point_state, run_dir
from sim.sweep.worker import last_error


def table(sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows: run, index, status, parameters (SI), then the summary metrics."""
    rows = []
    metric_columns: list[str] = []
    parameter_columns: list[str] = []
    for run in planned_runs(sweep_dir):
        state = point_state(run_dir(sweep_dir, run.id))
        row: dict[str, Any] = {"run": run.id, "index": run.index, "status": state.status}
        for name, value in run.params.items():
            row[name] = run.si.get(name, value)
            if name not in parameter_columns:
                parameter_columns.append(name)
        if state.summary is not None:
            summary = flatten(state.summary)
            for name in summary:
                if name not in metric_columns:
                    metric_columns.append(name)
            row.update({f"summary.{k}": v for k, v in summary.items()})
        elif state.status == CORRUPT:
            row["error"] = state.problem
        else:
            row["error"] = last_error(sweep_dir, run.id)[-300:]
        rows.append(row)
    columns = [
        "run",
        "index",
        "status",
        *parameter_columns,
        *(f"summary.{m}" for m in metric_columns),
        "error",
    ]
    return columns, rows


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return buffer.getvalue()


def _write_hdf5(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with h5py.File(path, "w") as h5:
        group = h5.create_group("runs")
        for c in columns:
            values = [row.get(c) for row in rows]
            if _numeric(values):
                data = np.array([np.nan if v is None else v for v in values], dtype=float)
                group.create_dataset(c, data=data)
            else:
                text = np.array(["" if v is None else str(v) for v in values], dtype=object)
                group.create_dataset(c, data=text, dtype=h5py.string_dtype())


def _numeric(values: list[Any]) -> bool:
    numbers = [v for v in values if v is not None]
    return bool(numbers) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in numbers
    )


def write_table(sweep_dir: Path) -> dict[str, Path]:
    """results.csv, results.h5 and results.parquet (if pyarrow is there), each written to a
    temporary file first; returns the paths."""
    columns, rows = table(sweep_dir)
    paths = {"csv": sweep_dir / "results.csv", "hdf5": sweep_dir / "results.h5"}
    write_text_atomic(paths["csv"], _csv_text(columns, rows))
    tmp = sweep_dir / f".results.{os.getpid()}.h5"
    _write_hdf5(tmp, columns, rows)
    os.replace(tmp, paths["hdf5"])
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {c: [_cell(row.get(c), text=False) for row in rows] for c in columns}
        tmp = sweep_dir / f".results.{os.getpid()}.parquet"
        pq.write_table(pa.table(arrays), tmp)
        paths["parquet"] = sweep_dir / "results.parquet"
        os.replace(tmp, paths["parquet"])
    return paths


def as_columns(rows: list[dict[str, Any]], columns: list[str]) -> dict[str, np.ndarray]:
    """Rows -> column arrays: float (NaN for missing) where every value is a number."""
    out = {}
    for c in columns:
        values = [row.get(c) for row in rows]
        if _numeric(values):
            out[c] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            out[c] = np.array(values, dtype=object)
    return out


def _cell(value: Any, text: bool = True) -> Any:
    """A table cell: lists and mappings (coordinates, coupled values) as JSON text; floats in
    CSV with every digit."""
    if value is None:
        return "" if text else None
    if isinstance(value, list | dict):
        return json.dumps(value)
    return repr(value) if text and isinstance(value, float) else value
