"""Unit tests of the geometry-kind protocol: every kind names a builder that exists, and the
scenario schema validates without the mesh builders."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import typing
from importlib import import_module

from mpi4py import MPI  # noqa: F401  (before dolfinx)

from sim.scenario.geometry import Geometry, GeometryKind

from ...conftest import REPO

KINDS = typing.get_args(typing.get_args(Geometry)[0])


def test_every_geometry_kind_is_a_geometry_kind_with_a_builder():
    assert len(KINDS) == 7
    for kind in KINDS:
        assert issubclass(kind, GeometryKind), kind
        module, _, function = kind.builder.partition(":")
        builder = getattr(import_module(module), function)
        parameters = list(inspect.signature(builder).parameters)
        assert parameters == ["geometry", "needles", "name", "comm", "msh_path", "sites"], kind


def test_the_vertebral_body_names_know_the_builder_parameters():
    from sim.geometry.vertebral_body import add_vertebral_body
    from sim.shapes.vertebral_body import BUILDER_PARAMETERS

    assert set(inspect.signature(add_vertebral_body).parameters) == BUILDER_PARAMETERS


def test_the_schema_loads_neither_the_mesh_builders_nor_dolfinx():
    code = (
        "import sys; from sim.scenario import load_scenario; "
        "[load_scenario(f'{sys.argv[1]}/{name}') for name in sys.argv[2:]]; "
        "print(sorted(m for m in ('sim.geometry', 'gmsh', 'dolfinx') if m in sys.modules))"
    )
    shipped = ["anatomy/vertebroplasty_cleft.yaml", "anatomy/sacroplasty_short_axis.yaml"]
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "scenarios"), *shipped],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.stdout.strip() == "[]"
