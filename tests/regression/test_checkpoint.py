"""Checkpoint and resume (sim.checkpoint): a run that SIGTERM ends writes its checkpoint and
exits with 3; `--resume` goes on from it, on the same or another number of MPI ranks, to
the summary, time series, fields and fluoroscopy of the uninterrupted run; a scenario that
changed is refused. A snapshot in memory (what numerics.time_tolerance takes a step back to)
restores every part bit for bit, and the step taken again gives the same state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
from mpi4py import MPI

import sim
import sim.run
from sim.checkpoint import FORMAT, CheckpointError
from sim.errors import RunInterrupted
from sim.geometry import build_mesh
from sim.outputs.timeseries import TimeSeries
from sim.problem import InjectionProblem
from sim.run import run_scenario
from sim.scenario import load_scenario

from ..conftest import REPO
from ..support.summaries import assert_summary_has_its_layout
from .test_equivalence import assert_same_numbers

#: cure kinetics and heat on a coarse vertebral body: 1 mL, then 60 s of setting (54 steps)
THERMAL = REPO / "scenarios" / "thermal" / "vertebroplasty_bath.yaml"
THERMAL_COARSE = [
    "geometry.mesh.size_tip=2 mm",
    "geometry.mesh.size_max=8 mm",
    "geometry.mesh.size_outlet=1.5 mm",
    "injection.needles.0.volume=1 mL",
    "heat.follow_up=60 s",
    "output.plots=false",
]
#: a power-law cement through a pressure-controlled needle, a vein that opens at a threshold
#: and a resistive route (the flow's Picard state, openings, superposition)
RICH = REPO / "scenarios" / "vertebroplasty.yaml"
RICH_COARSE = [
    "geometry.mesh={size_tip: 2 mm, size_max: 8 mm, growth: 0.3, size_outlet: 1.5 mm}",
    'cement={rheology: {model: power_law, consistency: "100 Pa*s^0.7", n: 0.7}, '
    "curing: {law: exponential, reference_age: 4 min, time_constant: 2 min}}",
    "injection.needles.0={name: needle, tip: '[6, -4, 0] mm', gauge: 11, "
    "syringe_pressure: 1.5 MPa, max_rate: 3 mL/min, volume: 1 mL}",
    "leak_routes={basivertebral: {kind: vein, boundary: basivertebral_foramen, diameter: 2 mm, "
    "length: 10 mm, pressure: 1 kPa, opening_pressure: 500 Pa}, segmental_veins: {kind: "
    "resistive, boundary: [segmental_vein_left, segmental_vein_right], conductance: 1e-9, "
    "pressure: 1 kPa}}",
    "output.plots=false",
]
ML = 1e-6


def interrupt_at_row(monkeypatch: pytest.MonkeyPatch, row: int) -> None:
    """Send this process SIGTERM when the time series has `row` rows (the real signal path:
    the handler notes it, the run checkpoints after the step and ends)."""

    class Interrupting(TimeSeries):
        def record(self, problem: object) -> None:
            super().record(problem)  # type: ignore[arg-type]
            if len(self.rows) == row:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(sim.run, "TimeSeries", Interrupting)


def interrupted_run(
    monkeypatch: pytest.MonkeyPatch, scenario: Path, overrides: list[str], out: Path, row: int
) -> None:
    """A run into `out` that SIGTERM ends after `row` - 1 steps."""
    interrupt_at_row(monkeypatch, row)
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        run_scenario(load_scenario(scenario, overrides), out, source=scenario)
    monkeypatch.undo()
    assert (out.parent / f"{out.name}.checkpoint.h5").is_file()
    assert (out.parent / f"{out.name}.partial").is_dir()
    assert not (out.parent / f"{out.name}.partial" / "summary.json").exists()
    assert not out.exists()


def fields(folder: Path) -> list[tuple[float, dict, dict]]:
    reader = meshio.xdmf.TimeSeriesReader(str(folder / "fields.xdmf"))
    reader.read_points_cells()
    return [reader.read_data(k) for k in range(reader.num_steps)]


def assert_same_outputs(a: Path, b: Path) -> None:
    """The time series, fields and fluoroscopy of two runs on one rank are the same, bit for
    bit, and so are the files the folders hold."""
    assert (a / "timeseries.csv").read_text() == (b / "timeseries.csv").read_text()
    for (ta, pa, ca), (tb, pb, cb) in zip(fields(a), fields(b), strict=True):
        assert ta == tb
        assert pa.keys() == pb.keys() and ca.keys() == cb.keys()
        for name in pa:
            np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
        for name in ca:
            for x, y in zip(ca[name], cb[name], strict=True):
                np.testing.assert_array_equal(x, y, err_msg=name)
    fa, fb = np.load(a / "fluoroscopy.npz"), np.load(b / "fluoroscopy.npz")
    for name in fa.files:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)
    assert {p.name for p in a.iterdir()} == {p.name for p in b.iterdir()}


@pytest.mark.serial  # signals this process; the MPI resume is tested below
@pytest.mark.parametrize(
    ("scenario", "overrides", "row"),
    [
        (THERMAL, THERMAL_COARSE, 27),
        (THERMAL, THERMAL_COARSE, 48),
        (RICH, RICH_COARSE, 15),
        (RICH, [*RICH_COARSE, "numerics.time_tolerance=0.003"], 15),  # the estimate's points
    ],
    ids=["thermal-injecting", "thermal-setting", "power-law-pressure-control", "time-tolerance"],
)
def test_sigterm_then_resume_gives_the_uninterrupted_run(
    scenario: Path, overrides: list[str], row: int, tmp_path: Path, monkeypatch
) -> None:
    reference = run_scenario(load_scenario(scenario, overrides), tmp_path / "ref", source=scenario)
    assert 1 < row - 1 < reference["n_steps"]
    assert_summary_has_its_layout(load_scenario(scenario, overrides), reference)
    out = tmp_path / "run"
    interrupted_run(monkeypatch, scenario, overrides, out, row)
    resumed = run_scenario(load_scenario(scenario, overrides), out, source=scenario, resume=True)
    assert resumed == json.loads((out / "summary.json").read_text())
    assert_same_numbers(reference, resumed, rtol=1e-9)
    for key in ("n_steps", "n_rejected_steps", "end_time_s", "stop_reason"):
        assert resumed[key] == reference[key], key
    assert_same_outputs(tmp_path / "ref", out)
    # a complete run leaves neither the checkpoint nor the partial results
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ref.lock", ".run.lock", "ref", "run"]
    log = (out / "run.log").read_text()
    assert "resumed from the checkpoint at t = " in log and f"(step {row - 1})" in log


def launcher() -> tuple[list[str], dict[str, str]]:
    """`mpirun -n 2 python`, and an environment without the test's own MPI variables."""
    mpirun = Path(sys.executable).parent / "mpirun"
    found = str(mpirun) if mpirun.exists() else shutil.which("mpirun")
    assert found, "mpirun not found"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    return [found, "-n", "2", sys.executable], env


def cli(scenario: Path, out: Path, overrides: list[str], *extra: str) -> list[str]:
    cmd = ["-m", "sim", "run", str(scenario), "--out", str(out), "--quiet", *extra]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


@pytest.mark.serial  # starts its own processes
def test_sigterm_to_the_command_then_resume_on_two_ranks(tmp_path: Path) -> None:
    """SIGTERM to `cementsim run` halfway: exit 3, a checkpoint; `--resume` under mpirun -n 2
    gives the serial uninterrupted run's summary to 1e-9 and its time series."""
    reference = run_scenario(load_scenario(THERMAL, THERMAL_COARSE), tmp_path / "ref")
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI", "HYDRA"))}
    run = subprocess.Popen(
        [sys.executable, *cli(THERMAL, out, THERMAL_COARSE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    rows = 0
    while rows < 25 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        series = list(tmp_path.glob(".run.staging-*/timeseries.csv"))
        rows = len(series[0].read_text().splitlines()) - 1 if series else 0
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 3, stderr
    assert "--resume" in stderr and "SIGTERM" in stderr
    assert (tmp_path / "run.checkpoint.h5").is_file()
    steps = len((tmp_path / "run.partial" / "timeseries.csv").read_text().splitlines()) - 2
    assert 20 <= steps < reference["n_steps"]

    resume_on_two_ranks(THERMAL, THERMAL_COARSE, out, reference)
    assert_resumed_series(tmp_path / "ref", out, steps)
    assert not (tmp_path / "run.checkpoint.h5").exists()


def resume_on_two_ranks(scenario: Path, overrides: list[str], out: Path, reference: dict) -> dict:
    """`cementsim run --resume` of the run into `out` under mpirun -n 2; its summary, checked
    against the uninterrupted run's `reference` (numbers to 1e-9, the same steps)."""
    mpirun, env = launcher()
    done = subprocess.run(
        [*mpirun, *cli(scenario, out, overrides, "--resume")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["mpi_ranks"] == 2
    assert_same_numbers(reference, resumed, rtol=1e-9, volume_scale=ML)
    for key in ("n_steps", "n_rejected_steps", "stop_reason"):
        assert resumed[key] == reference[key], key
    return resumed


def assert_resumed_series(reference: Path, resumed: Path, steps: int) -> None:
    """The time series of a serial run resumed on 2 ranks after `steps` steps: the serial part
    as it was, bit for bit, and the physics of the rest as the uninterrupted run's (not the
    solvers' iterations or round-off errors)."""
    a = np.loadtxt(reference / "timeseries.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(resumed / "timeseries.csv", delimiter=",", skiprows=1)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a[: steps + 1], b[: steps + 1])
    columns = (resumed / "timeseries.csv").read_text().splitlines()[0].split(",")
    physics = [
        i
        for i, name in enumerate(columns)
        if name not in ("pressure_iterations", "transport_iterations")
        and not name.endswith("_rel_error")
    ]
    np.testing.assert_allclose(b[:, physics], a[:, physics], rtol=1e-9, atol=1e-15)


QUICK_SPHERE = [
    "geometry.mesh.size_tip=1 mm",
    "geometry.mesh.size_max=12 mm",
    "injection.needles.0.volume=0.1 mL",
    "output.plots=false",
]
SPHERE = REPO / "scenarios" / "verification" / "sphere_newtonian.yaml"


@pytest.mark.serial  # signals this process and starts the command
def test_a_refined_mesh_resumes_on_another_number_of_ranks(tmp_path: Path, monkeypatch) -> None:
    """A mesh refined in parallel (geometry.refine) numbers its vertices and cells by the
    partition, so its checkpoints store them by position: a serial run interrupted after 19
    steps resumes under mpirun -n 2 to the uninterrupted serial run. The cells are checked
    too (DOLFINx may refine a few cells otherwise on another partition): a checkpoint whose
    cells differ is refused."""
    overrides = [*QUICK_SPHERE, "geometry.refine=1", "output.fields=false"]
    reference = run_scenario(load_scenario(SPHERE, overrides), tmp_path / "ref")
    assert reference["n_steps"] > 30
    out = tmp_path / "run"
    interrupted_run(monkeypatch, SPHERE, overrides, out, 20)
    # a checkpoint whose cells are not this partition's refinement is refused
    checkpoint = tmp_path / "run.checkpoint.h5"
    shutil.copy(checkpoint, tmp_path / "saved.h5")
    with h5py.File(checkpoint, "r+") as h5:
        corners = h5["mesh/cell_vertices"][...]
        h5["mesh/cell_vertices"][...] = corners[[1, 0, *range(2, len(corners))]]
    with pytest.raises(CheckpointError, match=r"refined mesh differs .* resume on 1 rank"):
        run_scenario(load_scenario(SPHERE, overrides), out, source=SPHERE, resume=True)
    shutil.move(tmp_path / "saved.h5", checkpoint)
    resumed = resume_on_two_ranks(SPHERE, overrides, out, reference)
    assert resumed["n_cells"] == reference["n_cells"]
    assert_resumed_series(tmp_path / "ref", out, 19)


@pytest.mark.serial  # signals this process and starts the command
def test_resume_is_refused_for_another_scenario_or_without_a_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "run"
    interrupted_run(monkeypatch, SPHERE, QUICK_SPHERE, out, 8)
    before = (tmp_path / "run.checkpoint.h5").read_bytes()

    def refused(into: Path, overrides: list[str], because: str) -> None:
        done = subprocess.run(
            [sys.executable, *cli(SPHERE, into, overrides, "--resume")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr
        assert because in done.stderr

    changed = [*QUICK_SPHERE, "injection.needles.0.rate=2 mL/min", "bone.porosity=0.8"]
    refused(
        out,
        changed,
        "differs from the checkpointed run's in bone.porosity, injection.needles.0.rate",
    )
    # nothing was touched: the checkpoint and the partial results are as they were
    assert (tmp_path / "run.checkpoint.h5").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".run.lock",
        "run.checkpoint.h5",
        "run.partial",
    ]
    refused(tmp_path / "other", QUICK_SPHERE, "no checkpoint to resume from")
    assert not (tmp_path / "other").exists()
    # written by a version whose scenarios lacked a setting this one has (numerics.partition
    # came at stop 28): said so, not as a change the user made
    with h5py.File(tmp_path / "run.checkpoint.h5", "r+") as h5:
        written = h5.attrs["meta"]
        meta = json.loads(written)
        assert meta["version"] == sim.__version__
        del meta["scenario"]["numerics"]["partition"]
        h5.attrs["meta"] = json.dumps(meta | {"version": "0.1.0", "scenario_hash": "0"})
    refused(
        out,
        QUICK_SPHERE,
        "it was written by cementsim 0.1.0, whose scenarios had no numerics.partition (this is "
        f"{sim.__version__}); resume with the version that wrote it, or run without --resume",
    )
    with h5py.File(tmp_path / "run.checkpoint.h5", "r+") as h5:  # before versions were recorded
        meta = {k: v for k, v in meta.items() if k != "version"} | {"scenario_hash": "0"}
        h5.attrs["meta"] = json.dumps(meta)
    refused(out, QUICK_SPHERE, "it was written by an earlier cementsim, whose scenarios had no")
    with h5py.File(tmp_path / "run.checkpoint.h5", "r+") as h5:
        h5.attrs["meta"] = written
    # a checkpoint of an older layout (format 1: before the counters were renamed)
    with h5py.File(tmp_path / "run.checkpoint.h5", "r+") as h5:
        h5.attrs["format"] = 1
    refused(out, QUICK_SPHERE, f"checkpoint format 1, this version reads {FORMAT}")
    # of a mesh with fewer vertices and cells (another gmsh): refused, not an IndexError
    with h5py.File(tmp_path / "run.checkpoint.h5", "r+") as h5:
        h5.attrs["format"] = FORMAT
        datasets = [h5["mesh/x"], *(d for g in h5["parts"].values() for d in g.values())]
        for dataset in datasets:
            kind = dataset.attrs.get("kind", "vertex")
            if kind != "global":
                name, values = dataset.name, dataset[...]
                del h5[name]
                h5.create_dataset(name, data=values[: len(values) // 2]).attrs["kind"] = kind
    refused(out, QUICK_SPHERE, "the mesh differs from the checkpointed run's")


@pytest.mark.serial  # makes this process's run fail
def test_a_run_that_died_resumes_from_its_last_interval_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    """With checkpoints at every step (`checkpoint_every` tiny), a run that dies at step 10
    (here an error; a killed run leaves its staging folder instead) goes on from step 9."""
    reference = run_scenario(load_scenario(SPHERE, QUICK_SPHERE), tmp_path / "ref", source=SPHERE)

    class Dying(TimeSeries):
        def record(self, problem: object) -> None:
            if len(self.rows) == 10:
                raise RuntimeError("simulated death")
            super().record(problem)  # type: ignore[arg-type]

    monkeypatch.setattr(sim.run, "TimeSeries", Dying)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated death"):
        run_scenario(load_scenario(SPHERE, QUICK_SPHERE), out, source=SPHERE, checkpoint_every=1e-9)
    monkeypatch.undo()
    assert (tmp_path / "run.failed").is_dir() and (tmp_path / "run.checkpoint.h5").is_file()
    resumed = run_scenario(load_scenario(SPHERE, QUICK_SPHERE), out, source=SPHERE, resume=True)
    assert "(step 9)" in (out / "run.log").read_text()
    assert_same_numbers(reference, resumed, rtol=1e-9)
    assert_same_outputs(tmp_path / "ref", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ref.lock", ".run.lock", "ref", "run"]


def test_a_signal_on_rank_0_alone_ends_every_rank_at_the_same_step(
    shared_tmp_path: Path, monkeypatch
) -> None:
    """Under MPI only rank 0 is signalled; every rank checkpoints and ends after the same
    step, and the resumed run is the uninterrupted one, bit for bit (also on 1 rank)."""
    comm = MPI.COMM_WORLD
    reference = run_scenario(load_scenario(SPHERE, QUICK_SPHERE), shared_tmp_path / "ref", comm)

    class Interrupting(TimeSeries):
        def record(self, problem: object) -> None:
            super().record(problem)  # type: ignore[arg-type]
            if len(self.rows) == 12 and comm.rank == 0:
                os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(sim.run, "TimeSeries", Interrupting)
    out = shared_tmp_path / "run"
    with pytest.raises(RunInterrupted, match=r"SIGUSR1 at .* \(step 11\)"):
        run_scenario(load_scenario(SPHERE, QUICK_SPHERE), out, comm)
    monkeypatch.undo()
    resumed = run_scenario(load_scenario(SPHERE, QUICK_SPHERE), out, comm, resume=True)
    assert resumed["mpi_ranks"] == comm.size
    assert_same_numbers(reference, resumed, rtol=0.0)
    if comm.rank == 0:
        ref, run = shared_tmp_path / "ref", out
        assert (ref / "timeseries.csv").read_text() == (run / "timeseries.csv").read_text()


@pytest.mark.serial  # the command line's own checks, before anything is built
def test_checkpoint_interval_is_a_time_or_never(tmp_path: Path, capsys) -> None:
    from sim.cli import main

    base = ["run", str(SPHERE), "--out", str(tmp_path / "run"), "--checkpoint-every"]
    for bad in ("5 kg", "0 s", "soon"):
        assert main([*base, bad]) == 2
        assert f"--checkpoint-every {bad}:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.serial  # signals this process
def test_without_checkpoints_a_signal_ends_the_run_at_once(tmp_path: Path, monkeypatch) -> None:
    """`signals=False` (`--no-checkpoints`, sweep points): SIGUSR1 is not caught, and no
    checkpoint is written even at a tiny interval."""
    caught: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: caught.append(number))
    try:
        interrupt = TimeSeries.record

        def record(self: TimeSeries, problem: object) -> None:
            interrupt(self, problem)  # type: ignore[arg-type]
            if len(self.rows) == 5:
                os.kill(os.getpid(), signal.SIGUSR1)

        monkeypatch.setattr(TimeSeries, "record", record)
        run_scenario(
            load_scenario(SPHERE, QUICK_SPHERE),
            tmp_path / "run",
            checkpoint_every=None,
            signals=False,
        )
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert caught == [signal.SIGUSR1]  # the handler of the caller, not the run's
    assert (tmp_path / "run" / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]


def assert_same_parts(a: dict, b: dict) -> None:
    """Two snapshots (sim.checkpoint.local_copy) hold the same values, bit for bit."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key, value in a[name].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, b[name][key], err_msg=f"{name}.{key}")
            else:
                assert value == b[name][key], f"{name}.{key}"


@pytest.mark.parametrize(
    ("scenario", "overrides"),
    [(THERMAL, THERMAL_COARSE), (RICH, RICH_COARSE)],
    ids=["thermal", "power-law-pressure-control"],
)
def test_a_step_taken_back_restores_every_part(scenario: Path, overrides: list[str]) -> None:
    # what numerics.time_tolerance does to a step far above it: a snapshot before the step,
    # the step, the snapshot restored (on 2 ranks too: ghosts come from their owners)
    sc = load_scenario(scenario, [*overrides, "numerics.time_tolerance=0.01"])
    pb = InjectionProblem(sc, build_mesh(sc, MPI.COMM_WORLD))
    pb.initialise()
    stepper = pb.stepper
    assert stepper.rollback is not None
    stepper.controller = stepper.policy(None).controller
    dt = stepper.controller.dt
    for _ in range(3):
        assert stepper.advance(dt)
    before = pb.snapshot()
    assert stepper.advance(2 * dt)
    after_step = pb.snapshot()
    assert not np.array_equal(after_step["state"]["S"], before["state"]["S"])
    pb.restore(before)
    assert_same_parts(pb.snapshot(), before)
    # and the step taken again gives what it gave the first time
    assert stepper.advance(2 * dt)
    assert_same_parts(pb.snapshot(), after_step)
    pb.destroy()
