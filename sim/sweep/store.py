"""The sweep directory: the plan, provenance, one results folder per run, status.

SWEEP_DIR/sweep.yaml        the sweep file as given
SWEEP_DIR/plan.json         every run: index, id, parameters (as written and in SI), overrides;
                            the realisations (count, seed, the seed parameter, the seeds)
SWEEP_DIR/provenance.json   versions, host, start and end times, executor, per session
SWEEP_DIR/runs/ID/          the run's results (summary.json when it finished),
                            attempts.json (every failed attempt), failed.json (gave up)
SWEEP_DIR/runs/ID.failed/   partial results of the point's last failed attempt
SWEEP_DIR/.sweep.lock       held (flock) by the `sweep run` working on the folder

A run is done when its summary.json reads as a run summary (read_summary); one whose
summary.json does not (empty, cut short, not JSON, without the numbers the collector reads)
is corrupt: reported by status, skipped by collect and run again by the next session.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.outputs.summary import write_json_atomic
from sim.sweep.plan import Plan, PlannedRun
from sim.sweep.spec import REALISATION_PARAMETER

DONE, FAILED, PENDING, BUSY, CORRUPT = "done", "failed", "pending", "busy", "corrupt"


def run_dir(sweep_dir: Path, run_id: str) -> Path:
    return sweep_dir / "runs" / run_id


def write_plan(sweep_dir: Path, plan: Plan, sweep_file: Path, executor: dict[str, Any]) -> None:
    """Record the sweep file, its expansion and the executor settings (the driver only)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sweep_file, sweep_dir / "sweep.yaml")
    write_json_atomic(
        sweep_dir / "plan.json",
        {
            "name": plan.spec.name,
            "base": str(plan.spec.base),
            "parameters": plan.parameter_names,
            "sampled": [n for a in plan.spec.axes if a.distribution is not None for n in a.names],
            "log_scale": [
                n
                for a in plan.spec.axes
                if (a.distribution and a.distribution.kind == "log_uniform")
                or (a.range and a.range.spacing == "log")
                for n in a.names
            ],
            "shown_units": {
                a.param: way.shown_unit
                for a in plan.spec.axes
                for way in (a.range, a.distribution)
                if a.param is not None and way is not None and way.shown_unit
            },
            "sampling": plan.spec.sampling.model_dump(),
            "realisations": None
            if plan.spec.realisations is None
            else {
                **plan.spec.realisations.model_dump(),
                "parameter": REALISATION_PARAMETER,
                "seeds": plan.seeds,
            },
            "report": plan.spec.report.model_dump(),
            "dropped_by_constraints": plan.dropped,
            "runs": [asdict(r) for r in plan.runs],
            "design": None if plan.design is None else plan.design.tolist(),
            "executor": executor,
        },
    )


class SweepBusyError(RuntimeError):
    """Another `cementsim sweep run` holds the sweep folder's lock."""


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold SWEEP_DIR/.sweep.lock for a session of `sweep run` (an flock, released when the
    process ends however it ends); SweepBusyError, naming the holder, if another process
    holds it. The folder must exist."""
    path = sweep_dir / ".sweep.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SweepBusyError(
                f"another `cementsim sweep run` is working on {sweep_dir} ({holder} holds "
                f"its lock {path}); wait for it to end, and follow it with `cementsim sweep "
                f"status {sweep_dir}`"
            ) from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {platform.node()}\n")
        lock.flush()
        yield


class NotASweepError(FileNotFoundError):
    """A folder given as a sweep folder holds no plan.json, or one that cannot be read."""


class _PlanRun(BaseModel):
    """One run of plan.json (sim.sweep.plan.PlannedRun); its id names its folder."""

    model_config = ConfigDict(extra="forbid")

    index: int
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    params: dict[str, Any]
    si: dict[str, float]
    overrides: list[str] = []


class _PlanSampling(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str
    seed: int


class _PlanReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    metric: str
    map: list[str] | None
    leak_threshold: float | None


class _PlanFile(BaseModel):
    """What the sweep commands read of plan.json (write_plan writes it)."""

    model_config = ConfigDict(extra="allow")

    name: str
    base: str
    parameters: list[str]
    sampled: list[str]
    log_scale: list[str]
    sampling: _PlanSampling
    report: _PlanReport
    design: list[Any] | None
    runs: list[_PlanRun]


def read_plan(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's plan.json; NotASweepError if there is none or it cannot be read as one."""
    path = sweep_dir / "plan.json"
    if not path.is_file():
        raise NotASweepError(f"{sweep_dir} is not a sweep directory (no plan.json)")
    try:
        data = json.loads(path.read_text())
        _PlanFile.model_validate(data)
    except (OSError, ValueError, RecursionError) as exc:  # ValidationError is a ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ValidationError):
            e = exc.errors()[0]
            reason = f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}"
        raise NotASweepError(
            f"{sweep_dir}: plan.json cannot be read as a sweep plan ({reason}); "
            f"`cementsim sweep run SWEEP_FILE --out {sweep_dir}` writes it again"
        ) from None
    return data


def planned_runs(sweep_dir: Path) -> list[PlannedRun]:
    return [PlannedRun(**r) for r in read_plan(sweep_dir)["runs"]]


class SummaryShape(BaseModel):
    """The part of a run's summary.json (sim.outputs.summary.build_summary) that collecting a
    sweep reads beyond flattening it: the injected volume, the leaked volume in total and by
    route, the leak threshold, and the injected volume at each route's first leak (null: no
    leak). Numbers must be JSON numbers; the other keys of a summary pass unchecked."""

    model_config = ConfigDict(extra="allow", strict=True)

    injected_volume_m3: float
    leaked_volume_total_m3: float
    leak_threshold_m3: float
    leaked_volume_m3: dict[str, float]
    injected_volume_at_first_leak_m3: dict[str, float | None]


#: what json.loads returns, as JSON calls it
_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class CorruptSummaryError(ValueError):
    """A summary.json that does not read as a run summary; the message says why."""


def read_summary(folder: Path) -> dict[str, Any]:
    """The summary.json of run folder `folder`, checked against SummaryShape;
    CorruptSummaryError if it cannot be read, is empty, is not a JSON object or lacks what
    the collector reads (FileNotFoundError if there is none)."""
    path = folder / "summary.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptSummaryError(f"summary.json cannot be read: {exc}") from None
    if not text.strip():
        raise CorruptSummaryError("summary.json is empty")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CorruptSummaryError(f"summary.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CorruptSummaryError(
            f"summary.json holds {_JSON_KINDS[type(data)]}, not an object of results"
        )
    try:
        SummaryShape.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise CorruptSummaryError(
            f"summary.json is not a complete run summary: {'; '.join(problems)}{more}"
        ) from None
    return data


@dataclass(frozen=True)
class PointState:
    """Where a run stands: its status, its summary when done, why it is corrupt when so."""

    status: str
    summary: dict[str, Any] | None = None
    problem: str = ""


def point_state(folder: Path) -> PointState:
    """The state of the run whose results folder is `folder`: done (a valid summary.json),
    corrupt (a summary.json that is not valid), failed (failed.json) or pending."""
    try:
        return PointState(DONE, summary=read_summary(folder))
    except FileNotFoundError:
        pass
    except CorruptSummaryError as exc:
        return PointState(CORRUPT, problem=str(exc))
    return PointState(FAILED if (folder / "failed.json").is_file() else PENDING)


def status_of(sweep_dir: Path, run_id: str) -> str:
    return point_state(run_dir(sweep_dir, run_id)).status


def status(sweep_dir: Path) -> dict[str, list[str]]:
    """Run ids by status (done, corrupt, failed, pending)."""
    out: dict[str, list[str]] = {DONE: [], CORRUPT: [], FAILED: [], PENDING: []}
    for run in planned_runs(sweep_dir):
        out[status_of(sweep_dir, run.id)].append(run.id)
    return out


#: distributions whose versions a sweep records (each run records its full stack itself)
PACKAGES = (
    "cementsim",
    "dolfinx-solver-real",
    "fenics-dolfinx",
    "fenics-basix",
    "fenics-ffcx",
    "petsc4py",
    "mpi4py",
    "numpy",
    "scipy",
    "gmsh",
    "pydantic",
    "dask",
    "distributed",
    "dask-jobqueue",
    "SALib",
    "pyarrow",
)


def installed_versions() -> dict[str, str]:
    """Versions of the installed packages of the stack, read from their metadata: the sweep
    driver does not import DOLFINx or PETSc (whose signal handlers would take over Ctrl-C)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "host": platform.node(), **found}


def record_session(sweep_dir: Path, event: str, **details: Any) -> None:
    """Append a start or end record to provenance.json (versions at the start). One that
    cannot be read is kept as provenance.json.corrupt and a new one started."""
    path = sweep_dir / "provenance.json"
    data: dict[str, Any] = {"sessions": []}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
                raise ValueError("no list of sessions")
        except (OSError, ValueError, RecursionError):
            os.replace(path, path.with_name("provenance.json.corrupt"))
            data = {"sessions": []}
    entry: dict[str, Any] = {
        "event": event,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        **details,
    }
    if event == "start":
        entry["versions"] = installed_versions()
        entry["command"] = sys.argv
    data["sessions"].append(entry)
    write_json_atomic(path, data)
