"""Processes started behind sim.parent_death end with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.parent_death import PARENT_GONE, wrapped
from tests.support.processes import ends_with, gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

#: a parent that starts `sleep 60` behind the wrapper, prints its pid and waits
PARENT = (
    "import signal, subprocess, sys, time; from sim.parent_death import wrapped; "
    "child = subprocess.Popen(wrapped(['sleep', '60'], int(sys.argv[1]))); "
    "print(child.pid, flush=True); time.sleep(60)"
)


@pytest.mark.parametrize("ending", [signal.SIGKILL, signal.SIGTERM])
def test_the_command_ends_when_its_parent_is_killed(ending: signal.Signals) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(int(ending))], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
        assert time.monotonic() < deadline, "the wrapper never became the command"
        time.sleep(0.05)
    assert not gone(child)
    assert ends_with(parent, child), "the command outlived its parent"


def test_a_command_whose_parent_ended_before_it_asked_does_not_run(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    command = wrapped(["touch", str(mark)], int(signal.SIGKILL))
    command[command.index(str(os.getpid()))] = "1"  # a parent other than this process
    assert subprocess.run(command, check=False).returncode == PARENT_GONE
    assert not mark.exists()
    command[command.index("1")] = str(os.getpid())
    assert subprocess.run(command, check=False).returncode == 0
    assert mark.exists()
