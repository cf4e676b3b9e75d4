"""Run one point of a sweep in a persistent worker process (sim.sweep.server; a process keeps
as many as it runs points at once, by number of ranks, and starts a new one after one died):
`python -m sim.sweep.server` for points on one rank, `mpirun -n M python -m sim.sweep.server`
for points on M ranks, whose ranks run each point together.

A finished run (a valid summary.json, sim.sweep.store.read_summary) is never run again; a
corrupt summary.json is reported and the point run again (its attempt replaces the folder).
Every attempt is recorded in the run's attempts.json (exit code, seconds, host, and the tail
of the error output when it failed); after the last retry the run is marked failed
(failed.json), which does not stop the other runs. A lock file beside the point's folder
(``runs/.ID.point.lock``: each run replaces the whole folder) keeps two workers from running
the same point at once (a task resubmitted after its worker was lost), and the worker
processes die with the process that started them (Linux parent-death signal), so a killed
sweep leaves no orphan writing into a point's folder. A point that crashes or outlives its
timeout takes its worker process with it; the next point starts a new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from sim.outputs.rundir import CHECKPOINT_EVERY, checkpoint_file
from sim.outputs.summary import write_json_atomic
from sim.parent_death import wrapped
from sim.sweep.store import BUSY, DONE, FAILED, point_state, run_dir

TAIL = 4000  # characters of error output kept per failed attempt
#: the environment variable naming the process a server on one rank watches (default: its
#: parent)
SERVER_PARENT = "CEMENTSIM_SERVER_PARENT"
#: what a server's answer line starts with (mpirun writes on the same stdout when a rank dies)
ANSWER = "cementsim-answer "
#: seconds a server has to end by itself when its input ended or it answered something else
#: than an answer, before it is killed
DYING = 10.0


def launcher(ranks: int, python: str) -> list[str]:
    """The command prefix that starts `python` on `ranks` MPI ranks."""
    if ranks == 1:
        return [python]
    mpirun = Path(python).parent / "mpirun"
    return [
        str(mpirun) if mpirun.exists() else shutil.which("mpirun") or "mpirun",
        "-n",
        str(ranks),
        python,
    ]


def _die_with_parent(cmd: list[str], python: str) -> list[str]:
    """`cmd` behind an exec wrapper (sim.parent_death) that asks Linux to send it SIGKILL
    when the worker dies: a server, or the mpirun of a server on several ranks, whose
    launchers then end the ranks (each rank's watchdog too, sim.sweep.server). Not SIGTERM:
    PETSc's signal handler answers it, and in an orphaned server (a few seconds old) PETSc's
    error printing was seen to recurse without end (PetscError, PetscTraceBackErrorHandler,
    PetscFPrintf, PetscError, ...; gdb), the stack growing by 500 MB/s to the machine's 24 GB
    while the server's watchdog thread waited for the GIL; mpirun would pass a SIGTERM on to
    the ranks."""
    return wrapped(cmd, int(signal.SIGKILL), python)


def _history(out: Path) -> list[dict[str, Any]]:
    """The recorded attempts of a point (none if attempts.json is missing or unreadable)."""
    path = out / "attempts.json"
    try:
        attempts = json.loads(path.read_text())["attempts"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return attempts if isinstance(attempts, list) else []


def run_point(
    sweep_dir: str,
    base: str,
    run_id: str,
    overrides: list[str],
    ranks: int = 1,
    retries: int = 1,
    timeout: float = 86400.0,
    python: str | None = None,
    checkpoint_every: str = CHECKPOINT_EVERY,
) -> dict[str, Any]:
    """Run one point (idempotent); returns {id, status, attempts, seconds[, error]}.

    status is done, failed, or busy (another live worker holds the point's lock). A point
    writes a checkpoint every `checkpoint_every` of wall time; an attempt goes on from the
    point's checkpoint when it has one (a point killed at a job's wall-time limit), and a
    resume that fails leaves the next attempt to start afresh.
    """
    out = run_dir(Path(sweep_dir), run_id)
    skipped = {"id": run_id, "status": DONE, "attempts": 0, "seconds": 0.0, "skipped": True}
    if point_state(out).status == DONE:
        return skipped
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{run_id}.point.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return {"id": run_id, "status": BUSY, "attempts": 0, "seconds": 0.0}
        state = point_state(out).status
        if state == DONE:  # finished while we waited for the lock
            return skipped
        limits = (retries, timeout, checkpoint_every)
        return _attempts(out, base, run_id, overrides, ranks, limits, python)


def _attempts(
    out: Path,
    base: str,
    run_id: str,
    overrides: list[str],
    ranks: int,
    limits: tuple[int, float, str],
    python: str | None,
) -> dict[str, Any]:
    """The attempts at a point; `limits`: retries, timeout per attempt (s), checkpoint
    interval (a time)."""
    retries, timeout, every = limits
    (out / "failed.json").unlink(missing_ok=True)
    python = python or sys.executable
    # the command line that runs the point as its worker does (recorded if it fails)
    cmd = [*launcher(ranks, python), "-m", "sim", *run_arguments(base, out, overrides, every)]
    checkpoint = checkpoint_file(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_"))}
    env.setdefault("OMP_NUM_THREADS", "1")
    history = _history(out)
    start = time.perf_counter()
    for attempt in range(1, retries + 2):
        t0 = time.perf_counter()
        resume = checkpoint.is_file()
        request = {"base": base, "out": str(out), "overrides": overrides}
        request |= {"checkpoint_every": every, "resume": resume}
        with _server(python, env, ranks) as server:
            code, err = server.run(request, timeout)
        state = point_state(out)
        ok = code == 0 and state.status == DONE
        if code == 0 and not ok:
            problem = state.problem or "wrote no summary.json"
            err = f"the run ended without error but {problem}\n{err}"
        history.append(
            {
                "status": DONE if ok else FAILED,
                "exit_code": code,
                "seconds": time.perf_counter() - t0,
                "host": platform.node(),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **({} if ok else {"error": err}),
            }
        )
        write_json_atomic(out / "attempts.json", {"attempts": history})
        if resume and not ok:  # the checkpoint may be what fails: start afresh next time
            checkpoint.unlink(missing_ok=True)
        if ok:
            return {
                "id": run_id,
                "status": DONE,
                "attempts": attempt,
                "seconds": time.perf_counter() - start,
            }
    failure = {
        "id": run_id,
        "status": FAILED,
        "attempts": retries + 1,
        "seconds": time.perf_counter() - start,
        "error": err,
        "command": cmd,
    }
    write_json_atomic(out / "failed.json", failure)
    return failure


def run_arguments(
    base: str, out: Path | str, overrides: list[str], every: str, resume: bool = False
) -> list[str]:
    """The arguments of `cementsim run` for one point as a worker runs it: quiet, with
    checkpoints every `every` of wall time and none on signals."""
    argv = ["run", str(base), "--out", str(out), "--quiet", "--checkpoint-every", every]
    argv += ["--no-signal-checkpoints", *(["--resume"] if resume else [])]
    for override in overrides:
        argv += ["--set", str(override)]
    return argv


class _Server:
    """A `python -m sim.sweep.server` process on `ranks` MPI ranks (under mpirun if more than
    one): requests on its stdin, answers on its stdout (where mpirun also reports a rank that
    died), everything else it prints in a temporary file (the tail is reported if it dies)."""

    def __init__(self, python: str, env: dict[str, str], ranks: int = 1) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()
        # the parent a server watches: this process, or under mpirun each rank's launcher
        env = dict(env)
        env.pop(SERVER_PARENT, None)
        if ranks == 1:
            env[SERVER_PARENT] = str(os.getpid())
        self.process = subprocess.Popen(
            _die_with_parent([*launcher(ranks, python), "-m", "sim.sweep.server"], python),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            errors="replace",  # mpirun's words on a dead rank need not be UTF-8
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def end_input(self) -> None:
        """Close the server's input: it ends after the point it runs, if any."""
        assert self.process.stdin is not None
        with suppress(OSError):  # a pipe to a server that has died
            self.process.stdin.close()

    def stop(self, seconds: float = DYING) -> None:
        """End the server: the end of its input, then a kill if it has not ended within
        `seconds` (at once if 0)."""
        self.end_input()
        self._end(seconds)

    def _end(self, seconds: float) -> int:
        """The exit code of the server once it has ended: within `seconds`, else killed."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def run(self, request: dict[str, Any], timeout: float) -> tuple[int, str]:
        """The exit code (-1: timed out) and output tail of one point; a worker that dies
        or times out is ended, and its exit code and last words are the point's."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return self._died()
        with selectors.DefaultSelector() as wait:
            wait.register(self.process.stdout, selectors.EVENT_READ)
            if not wait.select(timeout):
                self._end(0.0)
                return -1, f"timed out after {timeout:g} s"
        line = self.process.stdout.readline()
        if line.startswith(ANSWER):
            answer = json.loads(line[len(ANSWER) :])
            return int(answer["exit_code"]), str(answer["output"])
        return self._died(line)  # the end of its output, or mpirun's words on a dead rank

    def _died(self, said: str = "") -> tuple[int, str]:
        """The exit code and last words (its error output, then what it `said` and the rest
        of its standard output) of a server that ended, or ends within DYING seconds, else
        is ended."""
        assert self.process.stdout is not None
        code = self._end(DYING)
        said += self.process.stdout.read()
        self.log.seek(0)
        return code, (self.log.read().decode(errors="replace") + said)[-TAIL:]


#: this process's servers that run no point now, by python and ranks
_idle: dict[tuple[str, int], list[_Server]] = {}
_idle_lock = threading.Lock()


class _Starter:
    """The one thread that starts every server of this process, a daemon that lives as long
    as the process: Linux's parent-death signal follows the thread that started a process,
    and a server runs the points of whichever thread needs one next (a thread of an
    executor's pool may end before the process: a ThreadPoolExecutor's at the interpreter's
    shutdown, while Dask's daemon threads still run points)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue | None = None

    def start(self, python: str, env: dict[str, str], ranks: int) -> _Server:
        """A new server, started by the starter thread."""
        started: Future[_Server] = Future()
        with self._lock:
            if self._requests is None:
                self._requests = queue.SimpleQueue()
                threading.Thread(
                    target=self._serve,
                    args=(self._requests,),
                    name="cementsim-server-starter",
                    daemon=True,
                ).start()
            self._requests.put((started, python, env, ranks))
        return started.result()

    @staticmethod
    def _serve(requests: queue.SimpleQueue) -> None:
        while True:
            started, python, env, ranks = requests.get()
            try:
                started.set_result(_Server(python, env, ranks))
            except BaseException as exc:  # raised in the thread that asked for the server
                started.set_exception(exc)

    def forget(self) -> None:
        """In a child forked from this process: no starter thread (it was not forked)."""
        self._lock = threading.Lock()
        self._requests = None


_starter = _Starter()


def _forget_after_fork() -> None:
    """In a child forked from this process: no servers of its own (they are the parent's),
    no starter thread, and locks that no thread of the child holds."""
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()
    _starter.forget()


os.register_at_fork(after_in_child=_forget_after_fork)


@contextmanager
def _server(python: str, env: dict[str, str], ranks: int = 1) -> Iterator[_Server]:
    """A worker process for `python` on `ranks` ranks for one point: an idle one of this
    process's, else a new one; kept for the next point if the point went through to its
    answer and the server lives, else ended (a request it may still answer must not reach
    the next point). There are then as many as points run at once (a Dask worker has a
    thread per core, and points on M ranks take M cores: per thread, M - 1 of every M
    servers would sit idle)."""
    server = None
    with _idle_lock:
        idle = _idle.setdefault((python, ranks), [])
        while idle and server is None:
            candidate = idle.pop()
            server = candidate if candidate.alive() else None
    if server is None:
        server = _starter.start(python, env, ranks)
    answered = False
    try:
        yield server
        answered = True
    finally:
        if answered and server.alive():
            with _idle_lock:
                _idle.setdefault((python, ranks), []).append(server)
        else:
            server.stop(seconds=0.0)


def stop_servers(seconds: float = DYING) -> None:
    """End this process's idle servers: the end of their input ends them, all at once; those
    still running after `seconds` are killed."""
    with _idle_lock:
        servers = [s for kind in _idle.values() for s in kind]
        _idle.clear()
    for server in servers:
        server.end_input()
    deadline = time.monotonic() + seconds
    for server in servers:
        server._end(max(0.0, deadline - time.monotonic()))


def last_error(sweep_dir: Path, run_id: str) -> str:
    """The recorded error of a failed run (empty if none)."""
    path = run_dir(sweep_dir, run_id) / "failed.json"
    if not path.is_file():
        return ""
    try:
        return str(json.loads(path.read_text())["error"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"(failed.json cannot be read: {exc})"
