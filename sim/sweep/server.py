"""A sweep worker process that imports cementsim once and runs many points.

`python -m sim.sweep.server` reads one JSON request per line on its standard input,
``{"base": SCENARIO, "out": RUN_DIR, "overrides": ["key=value", ...], "checkpoint_every":
TIME, "resume": bool}``, runs it exactly as ``cementsim run SCENARIO --out RUN_DIR --quiet
--checkpoint-every TIME --no-signal-checkpoints [--resume] --set ...`` would (the same
command-line entry point, in this process), and answers one line, ANSWER followed by
``{"exit_code": int, "output": str}`` with the tail of what the run printed (mpirun writes
on the same output when a rank dies). It ends at the end of its input.
Interval checkpoints let a point killed with its worker (a job at its wall-time limit) go on
where it was; a signal ends the point at once (a resubmitted point may start elsewhere).

Under `mpirun -n M` (points on M ranks) every rank runs each point, together on
COMM_WORLD: rank 0 reads the requests (mpirun hands its standard input to rank 0 alone),
passes each to the others and answers it.

Starting Python, DOLFINx and PETSc costs 2-5 s per process; a sweep of small points paid it
for every point. The answer goes out on a private copy of the original standard output:
file descriptor 1 is pointed at standard error, so that nothing a library prints at C level
can corrupt the protocol. sim.sweep.worker starts and feeds these processes.

A server never outlives the process that started it: besides the parent-death signal that
sim.sweep.worker asks Linux for (SIGKILL, which no handler can answer; it comes too late
when the parent dies while the server starts), a watchdog thread ends the server within a
second of its parent's death, mid-point or idle. Under mpirun each rank watches its own
parent, mpirun's process launcher, which ends with mpirun (mpirun itself gets the
parent-death signal).
"""

from __future__ import annotations

from mpi4py import MPI  # loaded before dolfinx, which needs libmpi (see README)

# isort: split
import io
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from typing import TextIO

from sim.cli import main
from sim.outputs.rundir import CHECKPOINT_EVERY
from sim.sweep.worker import ANSWER, SERVER_PARENT, run_arguments

#: characters of a run's printed output sent back
TAIL = 4000
#: seconds between two looks at the parent process
WATCH_INTERVAL = 0.5
#: exit code of a server whose parent died (as if ended by SIGTERM)
ORPHANED = 143
#: seconds between two looks of an idle rank (not rank 0) for the next request
IDLE_LOOK = 0.01


def run_request(request: dict[str, object]) -> dict[str, object]:
    """Run one point as the command line would; its exit code and the tail of its output."""
    argv = run_arguments(
        str(request["base"]),
        str(request["out"]),
        list(request.get("overrides", [])),  # type: ignore[call-overload]
        str(request.get("checkpoint_every", CHECKPOINT_EVERY)),
        bool(request.get("resume")),
    )
    printed = io.StringIO()
    with redirect_stdout(printed), redirect_stderr(printed):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # a failed point must not end the worker
            traceback.print_exc()
            code = 1
    return {"exit_code": code, "output": printed.getvalue()[-TAIL:]}


def serve(requests: TextIO, answers: TextIO, comm: MPI.Comm = MPI.COMM_WORLD) -> None:
    """Answer every request line until the input ends: rank 0 reads `requests` and writes
    `answers` (each line starting with ANSWER), every rank of `comm` runs each point."""
    lines = (line for line in requests if line.strip()) if comm.rank == 0 else iter(())
    while (line := _received(lines, comm)) is not None:
        answer = run_request(json.loads(line))
        if comm.rank == 0:
            answers.write(ANSWER + json.dumps(answer) + "\n")
            answers.flush()


def _received(lines: Iterator[str], comm: MPI.Comm) -> str | None:
    """The next request line (rank 0 reads it) on every rank; None at the end of the input.
    The other ranks wait for it asleep, looking every IDLE_LOOK seconds: in a collective call
    MPICH polls, and an idle server would keep a core busy per rank."""
    line = next(lines, None) if comm.rank == 0 else None
    if comm.size > 1:
        ready = comm.Ibarrier()
        if comm.rank == 0:
            ready.Wait()
        while not ready.Test():
            time.sleep(IDLE_LOOK)
    return comm.bcast(line, root=0)


def end_when_orphaned(parent: int, interval: float = WATCH_INTERVAL) -> threading.Thread:
    """Start a daemon thread that ends this process (exit code ORPHANED, no clean-up: a
    point's staging folder is left for the next attempt) once its parent is no longer
    `parent`, i.e. died and this process was re-parented."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(ORPHANED)

    watchdog = threading.Thread(target=watch, name="orphan-watchdog", daemon=True)
    watchdog.start()
    return watchdog


if __name__ == "__main__":
    end_when_orphaned(int(os.environ.get(SERVER_PARENT, os.getppid())))
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin, protocol)
    except BaseException:  # under mpirun the other ranks would wait for rank 0 forever
        if MPI.COMM_WORLD.size == 1:
            raise
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
