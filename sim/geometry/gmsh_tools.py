"""The gmsh calls the geometry builders share: mesh-size fields, physical groups, Ctrl-C
while gmsh works, and meshing in a child process that a crash of gmsh cannot take down.

Each helper makes the gmsh calls its callers made before they shared it, in the same order,
so field tags, group tags and the meshes are unchanged. Lengths are in metres.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import gmsh

from sim.parent_death import end_with_parent


def fixed(value: float) -> str:
    """A number for a MathEval expression, in fixed point (no exponent for gmsh to parse)."""
    return f"({float(value):.12f})"


def point_distance(centre: Sequence[float]) -> str:
    """MathEval expression of the Euclidean distance (m) from the point `centre` (m)."""
    x0, y0, z0 = (fixed(c) for c in centre)
    return f"Sqrt((x-{x0})^2+(y-{y0})^2+(z-{z0})^2)"


def math_field(expression: str) -> int:
    """MathEval field of `expression` in x, y, z; returns its tag."""
    field = gmsh.model.mesh.field.add("MathEval")
    gmsh.model.mesh.field.setString(field, "F", expression)
    return field


def combined_field(kind: str, fields: Sequence[int]) -> int:
    """A "Min" or "Max" field over `fields`; returns its tag."""
    field = gmsh.model.mesh.field.add(kind)
    gmsh.model.mesh.field.setNumbers(field, "FieldsList", list(fields))
    return field


def threshold_field(
    distance: int | str, h_min: float, reach: float, h_max: float, growth: float
) -> int:
    """Threshold field: size `h_min` (m) where `distance` is at most `reach` (m), growing by
    `growth` (size per distance) to `h_max` (m); returns its tag.

    `distance` is the tag of a distance field, or a MathEval expression of one, which is then
    added right after the Threshold field (the order the vertebral body has always used, which
    fixes the field tags).
    """
    field = gmsh.model.mesh.field.add("Threshold")
    in_field = distance if isinstance(distance, int) else math_field(distance)
    gmsh.model.mesh.field.setNumber(field, "InField", in_field)
    gmsh.model.mesh.field.setNumber(field, "SizeMin", h_min)
    gmsh.model.mesh.field.setNumber(field, "SizeMax", h_max)
    gmsh.model.mesh.field.setNumber(field, "DistMin", reach)
    gmsh.model.mesh.field.setNumber(field, "DistMax", reach + max(h_max - h_min, 0.0) / growth)
    return field


def size_from_background_only() -> None:
    """Switch off the mesh sizes from points, curvature and the boundary: the background
    field alone sets the size."""
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)


def use_smallest_size(fields: Sequence[int], h_max: float) -> None:
    """Make the minimum of the gmsh size `fields` the mesh size everywhere, capped at h_max (m);
    sizes from points, curvature and the boundary are switched off."""
    gmsh.model.mesh.field.setAsBackgroundMesh(combined_field("Min", fields))
    size_from_background_only()
    gmsh.option.setNumber("Mesh.MeshSizeMax", h_max)


def add_physical_groups(
    dim: int, groups: Mapping[str, Sequence[int]], tag_of: Mapping[str, int]
) -> None:
    """One named physical group of dimension `dim` per entry of `groups` (name -> entity
    tags), in their order, with the physical tag `tag_of[name]`."""
    for name, tags in groups.items():
        gmsh.model.addPhysicalGroup(dim, list(tags), tag_of[name], name)


@contextmanager
def interruptible() -> Iterator[None]:
    """Let Ctrl-C (SIGINT) end the process while gmsh works, as it ends the gmsh program.

    gmsh's C++ code does not return to Python while it meshes, and Python's SIGINT handler
    only sets a flag for the interpreter, so Ctrl-C would wait for the mesh (minutes). Inside,
    SIGINT has its default action (the process ends at once); Python's handler is restored on
    leaving. gmsh.initialize(interruptible=True) does the first half but not the second
    (gmsh 4.15 keeps the old handler in a local variable and never restores it). Outside the
    main thread, where handlers cannot be set, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def in_child(generate: Callable[[], dict[str, float]], path: Path) -> dict[str, float]:
    """Run `generate` (it builds and meshes a model in the current gmsh session) in a forked
    child process, which writes the mesh to `path` (binary .msh, exact); returns the info
    `generate` returned. gmsh's C++ code crashes on some geometries at some mesh sizes (a
    segmentation fault in gmsh 4.15 meshing the thermal bath scenario with size_tip 3 mm,
    size_max 12 mm and size_outlet 1.5 mm): the crash ends the child, and the caller gets an
    Exception that says so instead of a process that dies without a word. An exception in
    `generate` comes back as an Exception with its message.

    The child runs only gmsh (on one thread, gmsh's default General.NumThreads: an OpenMP
    pool does not survive a fork) and Python code of the builders, makes no MPI call and
    leaves with os._exit; on Linux it ends with its parent (a killed run leaves no gmsh
    behind), and the parent ends it if the wait for it is interrupted.
    """
    parent = os.getpid()
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read)
            if not end_with_parent(signal.SIGKILL, parent):
                os._exit(code)
            try:
                info = generate()
                gmsh.option.setNumber("Mesh.Binary", 1)
                gmsh.write(str(path))
                reply, code = json.dumps({"info": info}), 0
            except BaseException as exc:  # reported to the parent, whatever it is
                reply, code = json.dumps({"error": str(exc) or type(exc).__name__}), 1
            with os.fdopen(write, "w") as pipe:
                pipe.write(reply)
        finally:
            os._exit(code)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            text = pipe.read()
    except BaseException:  # interrupted (e.g. Ctrl-C in a thread that keeps Python's handler)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise Exception(_ended_by(signal.Signals(os.WTERMSIG(status))))
    if not text:
        raise Exception(f"gmsh's process ended with exit code {os.WEXITSTATUS(status)} and no mesh")
    reply = json.loads(text)
    if "error" in reply:
        raise Exception(reply["error"])
    return reply["info"]


def _ended_by(sig: signal.Signals) -> str:
    """What a signal that ended gmsh's process says to the user."""
    if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT):
        return (
            f"gmsh crashed ({sig.name}), a defect of gmsh {gmsh.__version__} rather than of the "
            "input; other sizes in geometry.mesh may mesh"
        )
    if sig == signal.SIGKILL:
        return (
            "gmsh's process was killed (SIGKILL; the system does so when memory runs out, and "
            "a coarser mesh needs less)"
        )
    return f"gmsh's process ended by {sig.name}"
