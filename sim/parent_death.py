"""Child processes that end with the process that started them (Linux parent-death signal).

A run's gmsh child (sim.geometry.gmsh_tools.in_child) and a sweep's server processes
(sim.sweep.worker) must not outlive a killed parent, writing into folders nobody waits for.
Linux sends a chosen signal to a process when the thread that started it ends, once the
process asked for it with prctl(PR_SET_PDEATHSIG); the request survives exec.

``python -m sim.parent_death SIGNAL PARENT COMMAND ...`` asks for SIGNAL (a number), then
replaces itself with COMMAND; exit code 143 without running it if PARENT (a process id)
ended before the request.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: Linux prctl option: the signal a process receives when its parent ends
PR_SET_PDEATHSIG = 1
#: exit code of a process whose parent ended before it asked (as if ended by SIGTERM)
PARENT_GONE = 143


def end_with_parent(signal: int, parent: int) -> bool:
    """Ask Linux to send `signal` to this process when its parent ends; False if the parent
    (process id `parent`) ended before the request, which then comes too late. Elsewhere than
    on Linux nothing is asked, and True."""
    if not sys.platform.startswith("linux"):
        return True
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal)
    return os.getppid() == parent


def wrapped(command: list[str], signal: int, python: str = sys.executable) -> list[str]:
    """`command` behind `python -m sim.parent_death`, which ends it with `signal` when this
    process (the thread that starts it) ends; `command` as it is elsewhere than on Linux."""
    if not sys.platform.startswith("linux"):
        return command
    return [python, "-m", "sim.parent_death", str(signal), str(os.getpid()), *command]


if __name__ == "__main__":
    if not end_with_parent(int(sys.argv[1]), int(sys.argv[2])):
        sys.exit(PARENT_GONE)
    os.execvp(sys.argv[3], sys.argv[3:])
