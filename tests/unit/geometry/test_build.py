"""Unit tests of the geometry-kind protocol: every kind names a builder that exists."""

from __future__ import annotations

import inspect
import typing
from importlib import import_module

from mpi4py import MPI  # noqa: F401  (before dolfinx)

from sim.scenario.geometry import Geometry, GeometryKind

KINDS = typing.get_args(typing.get_args(Geometry)[0])


def test_every_geometry_kind_is_a_geometry_kind_with_a_builder():
    assert len(KINDS) == 6
    for kind in KINDS:
        assert issubclass(kind, GeometryKind), kind
        module, _, function = kind.builder.partition(":")
        builder = getattr(import_module(module), function)
        parameters = list(inspect.signature(builder).parameters)
        assert parameters == ["geometry", "needles", "name", "comm", "msh_path"], kind
