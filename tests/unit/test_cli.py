"""Tests of the command line (sim.cli): exit codes and messages.

In-process tests call `sim.cli.main` and run serially and under ``mpirun -n 2`` (messages are
printed by rank 0 only). Subprocess tests are marked serial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

# isort: split
import numpy as np
import pytest
import yaml

import sim
from sim.cli import EXIT_INVALID, main
from sim.sweep.worker import launcher

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
VERTEBROPLASTY = SCENARIOS / "vertebroplasty.yaml"
SPHERE = SCENARIOS / "verification" / "sphere_newtonian.yaml"
ROOT = MPI.COMM_WORLD.rank == 0


def bad_scenarios(folder: Path) -> dict[str, Path]:
    """Two invalid scenarios in `folder`, by the field each one gets wrong."""
    unknown_key = yaml.safe_load(VERTEBROPLASTY.read_text())
    unknown_key["geometry"]["hieght"] = unknown_key["geometry"].pop("height")
    wrong_unit = yaml.safe_load(SPHERE.read_text())
    wrong_unit["injection"]["needles"][0]["volume"] = "3 m"
    paths = {}
    for field, data in (
        ("geometry.hieght", unknown_key),
        ("injection.needles.0.volume", wrong_unit),
    ):
        paths[field] = folder / f"{field.replace('.', '_')}.yaml"
        paths[field].write_text(yaml.safe_dump(data, sort_keys=False))
    return paths


def child_env() -> dict[str, str]:
    """Environment for a child python: no MPI launcher variables (it runs as a singleton)."""
    prefixes = ("PMI_", "PMIX_", "MPI_", "HYDRA_", "OMPI_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run_cli(*args: Any, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )


# --- in-process ----------------------------------------------------------------------------


def test_validate_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(VERTEBROPLASTY)]) == 0
    out, err = capsys.readouterr()
    if ROOT:
        assert "valid" in out
        assert "vertebroplasty" in out
    assert err == ""


def test_validate_good_file_with_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPHERE), "--set", "injection.needles.0.rate=2 mL/min"]) == 0
    out, _ = capsys.readouterr()
    if ROOT:
        assert "valid scenario 'sphere_newtonian'" in out


@pytest.mark.parametrize("field", ["geometry.hieght", "injection.needles.0.volume"])
def test_validate_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str) -> None:
    path = bad_scenarios(tmp_path)[field]
    assert main(["validate", str(path)]) == EXIT_INVALID == 2
    out, err = capsys.readouterr()
    assert "valid scenario" not in out
    if ROOT:
        assert err.startswith("error: ")
        assert field in err
        assert str(path) in err


def test_validate_with_a_bad_override(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(SPHERE), "--set", "injection.needles.0.rate=-1 mL/min"])
    assert code == 2
    _, err = capsys.readouterr()
    if ROOT:
        assert "injection.needles.0.rate" in err
        assert "greater than 0" in err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 2
    _, err = capsys.readouterr()
    if ROOT:
        assert "absent.yaml" in err
        assert "not found" in err


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, _ = capsys.readouterr()
    assert "usage:" in out
    assert "validate" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"cementsim {sim.__version__}"


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", str(SPHERE)])
    assert info.value.code == 2
    _, err = capsys.readouterr()
    assert "invalid choice" in err


# --- subprocesses (serial) -----------------------------------------------------------------


@pytest.mark.serial
def test_validate_bad_file_in_a_subprocess(tmp_path: Path) -> None:
    path = bad_scenarios(tmp_path)["injection.needles.0.volume"]
    result = run_cli("validate", path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "injection.needles.0.volume" in result.stderr
    assert "a volume" in result.stderr


def write_cavity_mesh(path: Path) -> None:
    """A 20 mm box (coordinates in mm) with a 1 mm spherical cavity at the centre.

    Physical groups: volume 'bone', surface 'needle' (the cavity), surface 'outside' (the box).
    """
    import gmsh

    was_initialized = gmsh.isInitialized()
    if not was_initialized:
        gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("cavity_in_box")
        box = gmsh.model.occ.addBox(-10, -10, -10, 20, 20, 20)
        ball = gmsh.model.occ.addSphere(0, 0, 0, 1.0)
        gmsh.model.occ.cut([(3, box)], [(3, ball)])
        gmsh.model.occ.synchronize()
        volumes = [tag for _, tag in gmsh.model.getEntities(3)]
        surfaces = [tag for _, tag in gmsh.model.getEntities(2)]
        cavity = [s for s in surfaces if gmsh.model.getType(2, s) == "Sphere"]
        outside = [s for s in surfaces if s not in cavity]
        assert len(volumes) == 1 and len(cavity) == 1 and len(outside) == 6
        groups = ((3, volumes, "bone"), (2, cavity, "needle"), (2, outside, "outside"))
        for dim, tags, name in groups:
            gmsh.model.setPhysicalName(dim, gmsh.model.addPhysicalGroup(dim, tags), name)
        gmsh.option.setNumber("Mesh.MeshSizeMin", 0.5)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 5.0)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 8)
        gmsh.model.mesh.generate(3)
        gmsh.write(str(path))
        gmsh.model.remove()
    finally:
        if not was_initialized:
            gmsh.finalize()


@pytest.mark.serial
def test_mesh_without_a_tag_the_scenario_names(tmp_path: Path) -> None:
    mesh = tmp_path / "cavity.msh"
    write_cavity_mesh(mesh)
    assert mesh.is_file()
    scenario: dict[str, Any] = {
        "name": "cavity",
        "geometry": {"kind": "mesh_file", "path": str(mesh), "length_unit": "mm"},
        "bone": {"porosity": 0.9, "permeability": "1e-9 m^2"},
        "cement": {"rheology": {"model": "newtonian", "viscosity": "100 Pa*s"}},
        "marrow": {"viscosity": "0.05 Pa*s"},
        "injection": {
            "needles": [
                {
                    "name": "needle",
                    "tip": "[0, 0, 0] mm",
                    "inner_diameter": "2 mm",
                    "rate": "3 mL/min",
                    "volume": "0.1 mL",
                }
            ]
        },
        "leak_routes": {"veins": {"kind": "outlet", "boundary": "veins", "pressure": "0 Pa"}},
    }
    path = tmp_path / "cavity.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))

    # tags of an imported mesh are unknown before it is read: the scenario itself is valid
    validated = run_cli("validate", path)
    assert validated.returncode == 0, validated.stderr
    assert "valid scenario 'cavity'" in validated.stdout

    out = tmp_path / "run"
    result = run_cli("run", path, "--out", out, "--quiet", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "'veins'" in result.stderr
    assert "(it has: needle, outside)" in result.stderr
    assert str(path) in result.stderr
    assert not (out / "summary.json").exists()


#: `cementsim ARGS` that prints "meshing" when gmsh starts meshing in 3-D
ANNOUNCED_MESHING = """
import sys

import gmsh

from sim.cli import main

generate = gmsh.model.mesh.generate


def announced(dim=3):
    print("meshing", flush=True)
    generate(dim)


gmsh.model.mesh.generate = announced
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.serial
def test_ctrl_c_stops_meshing_at_once(tmp_path: Path) -> None:
    """gmsh does not return to Python while it meshes: with Python's SIGINT handler, Ctrl-C
    waited for the mesh (this one takes over half a minute)."""
    fine = "geometry.mesh={size_tip: 0.3 mm, size_max: 0.3 mm, growth: 0.3}"
    argv = ["mesh", str(SPHERE), "--out", str(tmp_path), "--set", "geometry.radius=15 mm"]
    child = subprocess.Popen(
        [sys.executable, "-c", ANNOUNCED_MESHING, *argv, "--set", fine],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "meshing":
                break
        else:
            pytest.fail(f"the child ended before meshing: {child.communicate()[1]}")
        time.sleep(1.0)  # inside gmsh's 3-D meshing
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGINT
    assert not (tmp_path / "mesh.xdmf").exists()


@pytest.mark.serial
def test_python_handles_ctrl_c_again_once_gmsh_is_done(tmp_path: Path) -> None:
    """gmsh.initialize(interruptible=True) would leave SIGINT at its default action for good
    (gmsh 4.15 never restores the handler): Ctrl-C in the time loop would skip all cleanup."""
    from sim.geometry.tagged_mesh import read_msh

    write_cavity_mesh(tmp_path / "cavity.msh")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        read_msh(tmp_path / "cavity.msh", MPI.COMM_WORLD)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_imported_mesh_is_scaled_and_checked_on_every_rank(shared_tmp_path: Path) -> None:
    """The mm mesh of the subprocess test, read in-process (collective): metres, tags checked."""
    from sim.geometry import MeshError, build_mesh
    from sim.scenario import validate_scenario

    comm = MPI.COMM_WORLD
    mesh = shared_tmp_path / "cavity.msh"
    if comm.rank == 0:
        write_cavity_mesh(mesh)
    comm.barrier()
    data = yaml.safe_load(SPHERE.read_text())
    data["geometry"] = {"kind": "mesh_file", "path": str(mesh), "length_unit": "mm"}
    data["injection"]["needles"][0]["tip"] = [0, 0, 0]
    data["leak_routes"] = {"far_field": {"kind": "outlet", "boundary": "outside"}}
    tagged = build_mesh(validate_scenario(data), comm)
    x = tagged.mesh.geometry.x
    lo = comm.allreduce(float(x.min(initial=np.inf)), op=MPI.MIN)
    hi = comm.allreduce(float(x.max(initial=-np.inf)), op=MPI.MAX)
    assert (lo, hi) == pytest.approx((-0.01, 0.01), rel=1e-12)  # 20 mm box, in metres
    assert set(tagged.boundaries) == {"needle", "outside"}
    assert set(tagged.regions) == {"bone"}

    data["leak_routes"]["far_field"]["boundary"] = "veins"
    with pytest.raises(MeshError, match=r"no boundary 'veins' \(it has: needle, outside\)"):
        build_mesh(validate_scenario(data), comm)


def test_validate_unknown_cement_preset_lists_the_presets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(SPHERE.read_text())
    data["cement"] = {"preset": "palacos"}
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", str(path)]) == EXIT_INVALID
    _, err = capsys.readouterr()
    if ROOT:
        assert "cement.preset: 'palacos' is not a shipped cement" in err
        assert "vertebroplasty_high_viscosity, vertebroplasty_low_viscosity" in err


def test_validate_cement_preset_with_an_override(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "validate",
            str(SPHERE),
            "--set",
            "cement.preset=vertebroplasty_high_viscosity",
            "--set",
            "cement.rheology={model: power_law, consistency: 440, n: 0.5}",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    if ROOT:
        assert "valid scenario 'sphere_newtonian'" in out
    assert err == ""


#: calls sim.cli.main on each argument list of argv[1] (JSON); prints the exit codes, the
#: error messages and whether DOLFINx was imported
CHECK_OUT = """
import contextlib, io, json, sys
from sim.cli import main
answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        answers.append((main(argv), err.getvalue()))
print(json.dumps({"answers": answers, "dolfinx": "dolfinx" in sys.modules}))
"""


@pytest.mark.serial
def test_an_unusable_out_is_refused_before_dolfinx_is_imported(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("mine")
    cases = [  # option, value, what the message says, command
        ("--out", a_file, "it is an existing file", "run"),
        ("--out", a_file / "run", f"{a_file} is a file, not a folder", "run"),
        ("--out", Path("/proc/cementsim-run"), "no folder can be created in /proc", "run"),
        ("--out", foreign, "other contents than a results folder", "run"),
        ("--out", a_file, "it is an existing file", "mesh"),
        ("--results-root", a_file, f"{a_file} is a file, not a folder", "run"),
    ]
    argvs = [[command, str(SPHERE), option, str(value)] for option, value, _, command in cases]
    done = subprocess.run(
        [sys.executable, "-c", CHECK_OUT, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for (option, value, reason, _), (code, err) in zip(cases, result["answers"], strict=True):
        assert code == 2, err
        assert err.startswith(f"error: {option} {value}"), err
        assert reason in err and f"{option} must be" in err, err
    assert not result["dolfinx"]
    assert {p.name for p in tmp_path.iterdir()} == {"notes.txt", "thesis"}  # nothing written
    assert {p.name for p in foreign.iterdir()} == {"chapter1.tex"}


#: under mpirun -n 2, `cementsim run ARGV` whose run raises an unexpected error on rank 1
#: alone (rank 0 waits in a collective call, as a run would), with sys.stderr captured as a
#: sweep worker captures it (sim.sweep.server)
ONE_RANK_FAILS = """
import contextlib, io, sys
from mpi4py import MPI
import sim.run
def broken(*args, **kwargs):
    if MPI.COMM_WORLD.rank == 1:
        raise RuntimeError("a bug on rank 1")
    MPI.COMM_WORLD.Barrier()
sim.run.run_scenario = broken
from sim.cli import main
with contextlib.redirect_stderr(io.StringIO()):
    main(sys.argv[1:])
"""


@pytest.mark.serial
def test_an_error_on_one_rank_aborts_with_its_traceback_on_the_process_stderr(
    tmp_path: Path,
) -> None:
    """The abort ends the process: what it says must reach the process's own standard error
    even where sys.stderr is captured."""
    argv = ["run", str(SPHERE), "--out", str(tmp_path / "run"), "--quiet"]
    mpirun = subprocess.Popen(
        [*launcher(2, sys.executable), "-c", ONE_RANK_FAILS, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,  # if it hangs, its ranks are ended with it
    )
    try:
        _, err = mpirun.communicate(timeout=300)
    finally:
        if mpirun.poll() is None:
            os.killpg(mpirun.pid, signal.SIGKILL)
            mpirun.wait()
    assert mpirun.returncode != 0
    assert "RuntimeError: a bug on rank 1" in err, err
    assert "error on rank 1: the run failed" in err, err


@pytest.mark.serial
def test_a_run_that_reaches_max_steps_fails_with_a_message(tmp_path: Path) -> None:
    """Reaching numerics.max_steps (like a time step below its minimum or a pressure system
    no solver solves) ends the run with exit 1 and one message, not a traceback; the partial
    results are in RUN.failed."""
    out = tmp_path / "run"
    quiet = [f"output.{o}=false" for o in ("fields", "plots", "fluoroscopy", "report")]
    sets = [a for o in ["numerics.max_steps=3", *quiet] for a in ("--set", o)]
    result = run_cli("run", SPHERE, "--out", out, "--quiet", *sets, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the run failed: numerics.max_steps = 3 reached at t =")
    assert "allow more steps or larger ones (numerics.dt_max)" in result.stderr
    assert not out.exists() and (tmp_path / "run.failed" / "run.log").is_file()


def test_the_headline_warns_of_what_makes_a_run_doubtful(tmp_path) -> None:
    from sim.cli import headline

    summary = {
        "injected_volume_m3": 4e-6,
        "cement_in_bone_m3": 4e-6,
        "fill_fraction": {"anterior": 0.18},
        "leaked_volume_m3": {"veins": 0.0},
        "first_leak_time_s": {"veins": None},
        "syringe_pressure_max_pa": {"needle": 2e5},
        "tip_pressure_max_pa": 2e4,
        "stop_reason": "volume_reached",
        "mass_balance_rel_error": 4e-16,
        "n_steps": 27,
        "n_cells": 18501,
        "mpi_ranks": 1,
        "wall_time_s": 2.5,
    }
    lines = headline(summary, tmp_path).splitlines()
    assert not [line for line in lines if line.startswith("warning:")]
    nan = headline({**summary, "mass_balance_rel_error": float("nan")}, tmp_path)
    assert nan.splitlines()[-1] == "warning: Poor mass balance: relative error nan."
    assert "  stopped because    the planned volume was injected" in lines
    poor = headline(
        {**summary, "mass_balance_rel_error": 3e-6, "stop_reason": "time_limit"}, tmp_path
    )
    assert poor.splitlines()[-1] == "warning: Poor mass balance: relative error 3.0e-06."
    # a stop the scenario asked for is said, with the share of the planned volume, and is
    # not a warning
    asked = headline({**summary, "stop_reason": "time_limit", "planned_volume_m3": 5e-6}, tmp_path)
    assert "  stopped because    stop.time_limit was reached, with 4.00 of 5.00 mL injected" in (
        asked.splitlines()
    )
    assert "warning:" not in asked
