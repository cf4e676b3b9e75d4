"""Looking at processes the tests started (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces): state,
    parent, ...; None if the process has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie nobody reaps counts as ended)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def all_gone(pids: list[int], seconds: float) -> bool:
    """Whether every process of `pids` ends within `seconds`."""
    deadline = time.monotonic() + seconds
    while not all(gone(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ends_with(parent: subprocess.Popen, pid: int, seconds: float = 10.0) -> bool:
    """Kill `parent` and whether process `pid` then ends within `seconds`."""
    parent.kill()
    parent.wait()
    return all_gone([pid], seconds)


def parent_of(pid: int) -> int | None:
    """The parent of process `pid` (None if it has ended)."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        fields = _stat_fields(int(proc.name)) if proc.name.isdigit() else None
        if fields is not None and fields[0] != "Z":
            parents[int(proc.name)] = int(fields[1])
    below, frontier = [], [pid]
    while frontier:
        children = [c for c, parent in parents.items() if parent in frontier]
        below += children
        frontier = children
    return below


def processes_mentioning(text: str) -> list[int]:
    """Live processes (not this one) whose command line contains `text`."""
    return [
        int(proc.name)
        for proc in Path("/proc").iterdir()
        if proc.name.isdigit()
        and int(proc.name) != os.getpid()
        and text in command_line(int(proc.name))
        and not gone(int(proc.name))
    ]


def command_line(pid: int) -> str:
    """The command line of process `pid` (empty if it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """The processor time process `pid` has used so far (user and system, s)."""
    fields = _stat_fields(pid)
    assert fields is not None, f"process {pid} has ended"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
