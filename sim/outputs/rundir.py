"""Run directories: named by scenario and a hash of the resolved configuration; provenance."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sim.scenario import Scenario


def config_hash(scenario: Scenario) -> str:
    """First 10 hex digits of the SHA-256 of the resolved scenario (canonical JSON, SI)."""
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def default_run_directory(scenario: Scenario, base: Path) -> Path:
    """``base/<scenario name>-<config hash>``."""
    return base / f"{scenario.name}-{config_hash(scenario)}"


def prepare_run_directory(path: Path) -> None:
    """Create `path`; remove what would make an earlier run there look complete."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "report.html"):
        (path / stale).unlink(missing_ok=True)


def versions() -> dict[str, Any]:
    """Versions of the software stack that produced a run."""
    import dolfinx
    import gmsh
    import numpy
    import pydantic
    from mpi4py import MPI
    from petsc4py import PETSc

    import sim

    return {
        "cementsim": sim.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
        "numpy": numpy.__version__,
        "gmsh": gmsh.__version__,
        "pydantic": pydantic.__version__,
    }


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def write_provenance(path: Path, scenario: Scenario, source: Path | None) -> None:
    """The scenario as given, as resolved (SI), and the versions, into the run directory."""
    if source is not None and source.is_file():
        shutil.copyfile(source, path / "scenario.input.yaml")
    resolved = scenario.model_dump(mode="json")
    (path / "scenario.resolved.yaml").write_text(
        "# resolved scenario: every quantity in SI units (m, s, Pa, Pa*s, m^2, m^3)\n"
        + yaml.safe_dump(resolved, sort_keys=False)
    )
    (path / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
