"""Run directories: named by scenario and a hash of the resolved configuration; written
atomically under a lock (RunFolder); provenance."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import yaml

from sim.errors import RunFolderError, RunInterrupted
from sim.scenario import Scenario

if TYPE_CHECKING:
    from mpi4py import MPI

#: files by which an existing folder is known as one a run may replace: every run writes
#: scenario.resolved.yaml first and summary.json last, a sweep keeps the attempts at a point
#: in attempts.json
RUN_FOLDER_MARKERS = ("summary.json", "scenario.resolved.yaml", "attempts.json")
#: what a results folder may be, for messages
ALLOWED = (
    "a new folder, an empty one or an earlier run's folder, in a place where folders can be created"
)


def config_hash(scenario: Scenario) -> str:
    """First 10 hex digits of the SHA-256 of the resolved scenario (canonical JSON, SI)."""
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def default_run_directory(scenario: Scenario, base: Path) -> Path:
    """``base/<scenario name>-<config hash>``."""
    return base / f"{scenario.name}-{config_hash(scenario)}"


def lock_file(target: Path) -> Path:
    """The lock a run into `target` holds: ``<parent>/.<name>.lock`` (the file stays)."""
    return target.parent / f".{target.name}.lock"


def failed_folder(target: Path) -> Path:
    """Where the partial results of the last failed run into `target` go."""
    return target.parent / f"{target.name}.failed"


def partial_folder(target: Path) -> Path:
    """Where the partial results of the last run into `target` that a signal ended go."""
    return target.parent / f"{target.name}.partial"


#: default wall time between checkpoints of a run (a time, or "never")
CHECKPOINT_EVERY = "30 min"


def checkpoint_interval(text: str) -> float | None:
    """Seconds between checkpoints from a time with units ("30 min"), None for "never";
    ValueError saying what is allowed otherwise."""
    from sim.units import TIME, to_si

    if text.strip().lower() == "never":
        return None
    seconds = to_si(text, TIME)
    if seconds <= 0:
        raise ValueError("must be a positive time such as '30 min', or 'never'")
    return seconds


def checkpoint_file(target: Path) -> Path:
    """Where the checkpoint of a run into `target` is kept (sim.checkpoint)."""
    return target.parent / f"{target.name}.checkpoint.h5"


def unusable_reason(target: Path, replaces: bool = True) -> str | None:
    """Why a results folder cannot be written at `target`, or None if it can.

    Not usable: an existing file, a path under a file, a place where no folder can be made
    (tried: a probe folder is created and removed), and with `replaces` (a run swaps the
    whole folder) the working folder or one containing it, or an existing folder with other
    contents than an earlier run's (RUN_FOLDER_MARKERS), which would be deleted.
    """
    target = Path(os.path.abspath(target))
    if target.exists() and not target.is_dir():
        return "it is an existing file"
    if replaces:
        cwd = Path.cwd()
        if target == cwd or target in cwd.parents:
            return "it is or contains the working folder, which a run would replace"
        if target.is_dir() and not _replaceable(target):
            return (
                "it is a folder with other contents than a results folder (a run replaces "
                "the whole folder)"
            )
    existing = target.parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".cementsim-probe-", dir=existing))
    except OSError as exc:
        return f"no folder can be created in {existing} ({exc.strerror})"
    return None


def _replaceable(folder: Path) -> bool:
    """Whether a run may replace the existing `folder`: empty or an earlier run's."""
    return not any(folder.iterdir()) or any((folder / m).is_file() for m in RUN_FOLDER_MARKERS)


class RunFolder:
    """The results folder of one run, written in a staging folder and swapped in when the
    run is complete, under a lock (a context manager; entering and a clean exit are
    collective, rank 0 alone touches the file system).

    Entering: rank 0 takes ``<parent>/.<name>.lock`` (fcntl.flock, not waiting: a folder in
    use is a RunFolderError on every rank), deletes what runs into this folder that were
    killed left behind (``.<name>.staging-*``, ``.<name>.old-*``) and creates the staging
    folder ``<parent>/.<name>.staging-<id>`` (same file system), whose path every rank gets.
    A clean exit: the target, if it exists, is renamed to ``.<name>.old-<id>``, the staging
    folder to the target, then the old folder and ``<name>.failed`` are deleted; the target is
    at every moment the earlier run, absent, or the new run, never a mixture; the folders of
    earlier failed or interrupted runs and the checkpoint are deleted. An exit with an error
    (rank 0, no collective calls: the other ranks may be stuck): the staging folder becomes
    ``<name>.failed`` (replacing an earlier one, without summary.json), or ``<name>.partial``
    for a run a signal ended after its checkpoint (RunInterrupted), and the target is
    untouched. The lock is released in all cases.
    """

    def __init__(self, target: Path, comm: MPI.Comm) -> None:
        self.comm = comm
        self.target = Path(os.path.abspath(target))
        self.staging = self.target
        self._id = uuid.uuid4().hex[:8]
        self._lock: IO[str] | None = None

    def __enter__(self) -> Path:
        answer: tuple[str | None, str, str] = (None, "", "")
        if self.comm.rank == 0:
            try:
                answer = (None, *self._claim())
            except (RunFolderError, OSError) as exc:
                self._release()
                answer = (str(exc), "", "")
        error, target, staging = self.comm.bcast(answer, root=0)
        if error is not None:
            raise RunFolderError(error)
        self.target, self.staging = Path(target), Path(staging)
        return self.staging

    def _claim(self) -> tuple[str, str]:
        """Lock, clean up, create the staging folder (rank 0); the target and staging paths."""
        target = self.target.resolve()
        reason = unusable_reason(target)
        if reason is not None:
            raise RunFolderError(f"results folder {target}: {reason}; allowed: {ALLOWED}")
        lock = lock_file(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(lock, "a")  # held until __exit__
        except OSError as exc:
            raise RunFolderError(f"results folder {target}: cannot open {lock}: {exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise RunFolderError(
                f"results folder {target} is in use by another run (it holds the lock {lock});"
                " wait for that run to end or write to another folder"
            ) from exc
        for pattern in (".staging-*", ".old-*"):
            for leftover in target.parent.glob(f".{glob.escape(target.name)}{pattern}"):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = target.parent / f".{target.name}.staging-{self._id}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise RunFolderError(
                f"results folder {target}: cannot create {staging}: {exc}"
            ) from exc
        return str(target), str(staging)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            if self.comm.rank == 0:
                interrupted = issubclass(kind, RunInterrupted)
                self._fail(partial_folder(self.target) if interrupted else None)
                self._release()
            return
        failure = None
        if self.comm.rank == 0:
            try:
                self._commit()
            except OSError as exc:
                self._fail()
                failure = f"could not move the finished run into {self.target}: {exc}"
            self._release()
        failure = self.comm.bcast(failure, root=0)
        if failure is not None:
            raise RuntimeError(failure)

    def _commit(self) -> None:
        old = self.target.parent / f".{self.target.name}.old-{self._id}"
        if os.path.lexists(self.target):
            os.rename(self.target, old)
        os.rename(self.staging, self.target)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(failed_folder(self.target), ignore_errors=True)
        shutil.rmtree(partial_folder(self.target), ignore_errors=True)
        checkpoint_file(self.target).unlink(missing_ok=True)

    def _fail(self, folder: Path | None = None) -> None:
        """Keep the partial results as `folder`, by default ``<name>.failed`` (best effort: an
        error here must not hide the run's own error)."""
        failed = failed_folder(self.target) if folder is None else folder
        try:
            (self.staging / "summary.json").unlink(missing_ok=True)
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(self.staging, failed)
        except OSError:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def versions() -> dict[str, Any]:
    """Versions of the software stack that produced a run."""
    import dolfinx
    import gmsh
    import numpy
    import pydantic
    from mpi4py import MPI
    from petsc4py import PETSc

    import sim

    return {
        "cementsim": sim.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "numpy": numpy.__version__,
        "gmsh": gmsh.__version__,
        "pydantic": pydantic.__version__,
    }


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def write_provenance(path: Path, scenario: Scenario, source: Path | None) -> None:
    """The scenario as given, as resolved (SI), and the versions, into the run directory."""
    if source is not None and source.is_file():
        shutil.copyfile(source, path / "scenario.input.yaml")
    resolved = scenario.model_dump(mode="json")
    (path / "scenario.resolved.yaml").write_text(
        "# resolved scenario: every quantity in SI units (m, s, Pa, Pa*s, m^2, m^3)\n"
        + yaml.safe_dump(resolved, sort_keys=False)
    )
    (path / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
