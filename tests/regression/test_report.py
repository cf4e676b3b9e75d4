"""The run report: one self-contained HTML page, checked in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI
from PIL import Image

from sim.outputs.report import results_rows, run_warnings, warnings
from sim.run import run_scenario
from sim.scenario import load_scenario

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def _browser(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("CEMENTSIM_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (make test installs Debian's chromium)")
        pytest.skip("chromium not installed; `make test` installs it")
    profile = tmp / f"profile{len(list(tmp.glob('profile*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.serial
def test_report_renders_in_headless_chromium(scenarios, tmp_path):
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        [
            "geometry.mesh.size_tip=0.8 mm",
            "geometry.mesh.size_max=4 mm",
            "injection.needles.0.tip=[-9, 0, 0] mm",
        ],
    )
    run_dir = tmp_path / "run"
    summary = run_scenario(sc, run_dir, MPI.COMM_WORLD)
    page = run_dir / "report.html"
    assert page.is_file()
    text = page.read_text()
    assert "<script" not in text  # nothing to run: no console errors possible from us
    assert len(re.findall(r'src="data:image/(png|gif);base64,', text)) >= 6  # self-contained
    assert 'src="http' not in text and 'href="http' not in text

    dom = _browser(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    assert f"{summary['injected_volume_m3'] / 1e-6:.4g} mL" in dom.stdout
    assert f"{summary['tip_pressure_max_pa'] / 1e3:.4g} kPa" in dom.stdout
    assert "Leak through basivertebral" in dom.stdout  # the warning is shown
    assert summary["first_leak_time_s"]["basivertebral"] is not None
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console

    shot = tmp_path / "report.png"
    done = _browser(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20  # text, tables and images, not a blank page
    assert (pixels < 60).mean() > 0.01  # dark cement in the fluoroscopy images


def test_report_warnings_name_leaks_pressures_and_mass_balance():
    summary = json.loads(
        json.dumps(
            {
                "leaked_volume_m3": {"vein": 2e-7, "disc": 0.0},
                "first_leak_time_s": {"vein": 12.5, "disc": None},
                "injected_volume_at_first_leak_m3": {"vein": 6e-7, "disc": None},
                "syringe_pressure_max_pa": {"left": 3.5e6, "right": 1.0e6},
                "mass_balance_rel_error": 1e-6,
                "picard_not_converged_steps": 2,
                "stop_reason": "first_leak:vein",
                "injected_volume_m3": 1.5e-6,
                "planned_volume_m3": 3e-6,
            }
        )
    )
    text = " ".join(warnings(summary))
    assert "Leak through vein: 0.2 mL, first at 12.5 s (0.60 mL injected)" in text
    assert "disc" not in text
    assert "needle left reached 3.50 MPa" in text and "right" not in text
    assert "Poor mass balance" in text and "did not converge in 2" in text
    assert (
        "The injection stopped because cement leaked through vein (stop.on_first_leak), with "
        "1.50 of 3.00 mL injected." in text
    )
    assert "stopped" not in " ".join(run_warnings(summary))


def test_report_shows_round_off_leaks_as_zero(tmp_path):
    """Leaks below 1e-12 of the injected volume (upwind tails at round-off) read 0 mL; a
    small real one keeps its digits."""
    summary = {
        "stop_reason": "volume_reached",
        "injected_volume_m3": 4e-6,
        "cement_in_bone_m3": 4e-6,
        "leaked_volume_total_m3": 2e-15 + 1.4e-41,
        "fill_fraction": {},
        "leaked_volume_m3": {"vein": 1.4e-41, "disc": 2e-15},
        "first_leak_time_s": {"vein": None, "disc": None},
        "tip_pressure_max_pa": 2e4,
        "mass_balance_rel_error": 1e-15,
        "n_steps": 27,
        "n_cells": 18501,
        "mpi_ranks": 1,
        "wall_time_s": 2.0,
    }
    rows = dict(results_rows(tmp_path, summary))
    assert rows["Leak: vein"].startswith("0 mL (no leak)")
    assert rows["Leak: disc"].startswith("2e-09 mL (no leak)")
    assert rows["Leaked in total"] == "2e-09 mL"


@pytest.mark.serial
def test_paraview_script_renders_the_cement(scenarios, tmp_path):
    """open_in_paraview.py runs headless in ParaView (when installed: Debian's paraview and
    python3-paraview with xvfb; too large for `make test`) and draws the cement coloured by
    its viscosity into cement.png."""
    pvbatch, xvfb = shutil.which("pvbatch"), shutil.which("xvfb-run")
    if pvbatch is None or xvfb is None:
        pytest.skip("ParaView (pvbatch) and xvfb-run are not installed")
    sc = load_scenario(
        scenarios / "vertebroplasty.yaml",
        ["geometry.mesh.size_tip=1 mm", "geometry.mesh.size_max=5 mm", "output.report=false"],
    )
    run_dir = tmp_path / "run"
    run_scenario(sc, run_dir, MPI.COMM_WORLD)
    done = subprocess.run(
        [xvfb, "-a", pvbatch, "open_in_paraview.py"],
        cwd=run_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ERR|" not in done.stderr, done.stderr
    rgb = np.asarray(Image.open(run_dir / "cement.png").convert("RGB"), dtype=float) / 255
    assert rgb.shape == (600, 800, 3)
    # the cool-to-warm viscosity colours in the middle (the colour bar is at the lower right)
    middle = rgb[100:500, 150:550]
    colourful = np.abs(middle[..., 0] - middle[..., 2]) > 0.3
    assert colourful.mean() > 0.002, colourful.mean()
