"""Hostile scenario input (the audit of issue 12): each case is invalid input, exit 2 with a
message naming the file, line or field (or the --set that gave it), the value and what is
allowed; no traceback, no hang. Doubtful but valid input gets a warning from validate.

Mostly in-process through `sim.cli.main(["validate", ...])`; the one case that would hang
(a power tower for pint) runs in a subprocess with a time limit. Serial: each test writes
its own files and reads what rank 0 prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

pytestmark = pytest.mark.serial

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
VERTEBROPLASTY = SCENARIOS / "vertebroplasty.yaml"
COLUMN = SCENARIOS / "verification" / "column_curing.yaml"
SACRUM = SCENARIOS / "anatomy" / "sacroplasty_long_axis.yaml"


def validate(
    capsys: pytest.CaptureFixture[str], path: Path, *overrides: str
) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of ``cementsim validate PATH --set ...``."""
    code = main(["validate", str(path), *(a for o in overrides for a in ("--set", o))])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def invalid(capsys: pytest.CaptureFixture[str], path: Path, *overrides: str) -> str:
    """The error message of an input that validate must refuse with exit 2."""
    code, out, err = validate(capsys, path, *overrides)
    assert code == 2, out + err
    assert err.startswith(f"error: {path}: invalid"), err
    return err


def with_line_after(text: str, anchor: str, line: str) -> str:
    """`text` with `line` inserted after the first line that is `anchor`."""
    lines = text.splitlines()
    lines.insert(lines.index(anchor) + 1, line)
    return "\n".join(lines) + "\n"


# --- unit text that pint could not evaluate --------------------------------------------------


def test_power_towers_in_values_are_refused_at_once() -> None:
    """The audit's cases: '9**9**9 mL' and '1e-9 m**2**9**9' made validate run for hours."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "validate",
            str(VERTEBROPLASTY),
            *("--set", "injection.needles.0.volume=9**9**9 mL"),
            *("--set", "bone.permeability=1e-9 m**2**9**9"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for part in (
        "injection.needles.0.volume: cannot read '9**9**9 mL' as a volume",
        "bone.permeability: cannot read '1e-9 m**2**9**9' as a permeability",
        "a power of a power is not read",
    ):
        assert part in result.stderr, result.stderr
