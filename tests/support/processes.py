"""Looking at processes the tests started (Linux /proc)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie nobody reaps counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


def ends_with(parent: subprocess.Popen, pid: int, seconds: float = 10.0) -> bool:
    """Kill `parent` and whether process `pid` then ends within `seconds`."""
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + seconds
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
