"""The SLURM array script (array.sbatch, `sweep run --executor slurm_array --write-script`):
every #SBATCH value is checked (a newline in a partition name must not add a shell line), the
shell lines quote what they hold, and a folder whose path cannot go into an #SBATCH line is
refused. No job is submitted and no point is run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main
from sim.scenario import ScenarioError
from sim.sweep.cli import load_sweep
from sim.sweep.executors import write_array_script
from sim.sweep.plan import make_plan
from sim.sweep.spec import Executor
from sim.sweep.store import run_dir
from tests.sweep.conftest import recorded_summary, write_sweep

pytestmark = pytest.mark.serial

INJECTED = "debug\necho injected > /tmp/cementsim-injected"

#: option, bad value, field named in the error, part of what the error says is allowed
BAD_VALUES = [
    ("--queue", INJECTED, "executor.jobqueue.queue", "partition or queue name"),
    ("--queue", "debug #x", "executor.jobqueue.queue", "partition or queue name"),
    ("--queue", "", "executor.jobqueue.queue", "partition or queue name"),
    ("--account", "proj\nrm -rf ~", "executor.jobqueue.account", "account name"),
    ("--account", 'proj"x', "executor.jobqueue.account", "account name"),
    ("--memory", "4G\n#SBATCH --uid=0", "executor.jobqueue.memory", "e.g. 4G, 4GB, 500M"),
    ("--memory", "4 GB", "executor.jobqueue.memory", "whole number with a unit"),
    ("--memory", "1.5G", "executor.jobqueue.memory", "whole number with a unit"),
    ("--memory", "4096", "executor.jobqueue.memory", "whole number with a unit"),
    ("--memory", "4GiB", "executor.jobqueue.memory", "whole number with a unit"),
    ("--walltime", "01:00:00\nid", "executor.jobqueue.walltime", "D-HH:MM:SS"),
    ("--walltime", "1 hour", "executor.jobqueue.walltime", "D-HH:MM:SS"),
    ("--walltime", "01:75:00", "executor.jobqueue.walltime", "D-HH:MM:SS"),
    ("--interface", "ib0; reboot", "executor.jobqueue.interface", "network interface"),
]


def run_args(sweep_file: Path, out: Path, *options: str) -> list[str]:
    return [
        "sweep",
        "run",
        str(sweep_file),
        "--out",
        str(out),
        "--executor",
        "slurm_array",
        "--write-script",
        *options,
    ]


@pytest.mark.parametrize(("option", "value", "field", "allowed"), BAD_VALUES)
def test_a_bad_sbatch_value_on_the_command_line_is_invalid_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    field: str,
    allowed: str,
) -> None:
    out = tmp_path / "sweep"
    code = main(run_args(write_sweep(tmp_path), out, option, value))
    printed, err = capsys.readouterr()
    assert code == 2 and printed == ""
    assert err.startswith("error: command line: invalid options\n")
    line = next(line for line in err.splitlines() if field in line)
    assert f"{field}: must be" in line and allowed in line and f"(got {value!r})" in line
    assert not (out / "array.sbatch").exists()


def test_a_bad_sbatch_value_in_the_sweep_file_names_the_field(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, executor={"kind": "slurm_array", "jobqueue": {"queue": INJECTED}})
    with pytest.raises(ScenarioError) as error:
        load_sweep(path)
    (problem,) = error.value.problems
    assert problem.startswith("executor.jobqueue.queue: must be a partition or queue name")
    assert repr(INJECTED) in problem


@pytest.mark.parametrize(
    ("memory", "walltime", "queue", "account"),
    [
        ("4G", "02:00:00", "debug", "proj-1"),
        ("16GB", "1-12:00:00", "gpu,cpu", "my_account.x"),
        ("500M", "90", None, None),
        ("1t", "30:00", "work.q", None),
    ],
)
def test_valid_sbatch_values_are_written_as_given(
    tmp_path: Path, memory: str, walltime: str, queue: str | None, account: str | None
) -> None:
    plan = make_plan(load_sweep(write_sweep(tmp_path)))
    jobqueue = {"memory": memory, "walltime": walltime, "queue": queue, "account": account}
    ex = Executor.model_validate({"kind": "slurm_array", "jobqueue": jobqueue})
    out = tmp_path / "sweep"
    out.mkdir()
    script = write_array_script(out, plan.runs, ex).read_text().splitlines()
    directives = [line.removeprefix("#SBATCH ") for line in script if line.startswith("#SBATCH")]
    assert directives == [
        "--job-name=cementsim-sweep",
        f"--array=0-{len(plan.runs) - 1}",
        "--ntasks=1 --cpus-per-task=1",
        f"--mem={memory}",
        f"--time={walltime}",
        f"--output={out}/logs/array-%A_%a.out",
        *([f"--partition={queue}"] if queue else []),
        *([f"--account={account}"] if account else []),
    ]
    assert sum(not line.startswith("#") for line in script if line) == 4  # the shell lines


def test_the_shell_lines_quote_the_folder_and_pick_the_tasks_run(tmp_path: Path) -> None:
    """A folder named with shell characters: bash reads the script, and the task's lines up to
    the exec find the task's run id and the exact folder."""
    plan = make_plan(load_sweep(write_sweep(tmp_path)))
    out = tmp_path / "a$(mkdir${IFS}pwned);b`id`&c|d>e"
    out.mkdir()
    script = write_array_script(out, plan.runs, Executor(kind="slurm_array"))
    assert "pwned" in script.read_text()
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    lines = script.read_text().splitlines()
    exec_line = lines[-1]
    assert shlex.split(exec_line) == [
        "exec",
        sys.executable,
        "-m",
        "sim",
        "sweep",
        "run-one",
        str(out),
        "$RUN_ID",
    ]
    body = "\n".join(line for line in lines if not line.startswith("exec "))
    body += '\nprintf "%s" "$RUN_ID"\n'
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1"}
    task = subprocess.run(
        ["bash", "-c", body], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert task.returncode == 0, task.stderr
    assert task.stdout == plan.runs[1].id
    assert not (tmp_path / "pwned").exists() and not (out / "pwned").exists()
    job_name = next(line for line in lines if line.startswith("#SBATCH --job-name="))
    assert job_name == "#SBATCH --job-name=cementsim-a__mkdir__IFS_pwned__b_id__c_d_e"


@pytest.mark.parametrize("name", ["with space", "new\nline", "hash#tag", "per%cent", 'quo"te'])
def test_a_folder_that_cannot_go_into_an_sbatch_line_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / name
    code = main(run_args(write_sweep(tmp_path), out))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: sweep folder {str(out)!r}: its path goes into '#SBATCH")
    assert "choose another folder (--out)" in err
    assert not (out / "array.sbatch").exists()


def test_no_script_when_every_run_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep_file = write_sweep(tmp_path)
    out = tmp_path / "sweep"
    for run in make_plan(load_sweep(sweep_file)).runs:
        run_dir(out, run.id).mkdir(parents=True)
        (run_dir(out, run.id) / "summary.json").write_text(json.dumps(recorded_summary()))
    assert main(run_args(sweep_file, out)) == 0
    assert "every run is done: no array script written" in capsys.readouterr().out
    assert not (out / "array.sbatch").exists()
