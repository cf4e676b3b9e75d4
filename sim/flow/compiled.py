"""C kernels shipped with the package, compiled once per machine and cached.

A kernel is a C file next to this module and the declarations of the functions Python calls.
It is built with the C compiler Python was built with, through cffi (as DOLFINx compiles its
forms), into $XDG_CACHE_HOME/cementsim/kernels (else ~/.cache/cementsim/kernels) under a name
that digests the source, the declarations and the Python and cffi versions, so an edited
kernel is rebuilt. The build happens in a private folder and the module is moved into place
with one rename: concurrent runs (MPI ranks, sweep workers) may build at once and share it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

import cffi

from sim.user_cache import user_cache


@cache
def kernel(source_name: str, declarations: str) -> ModuleType:
    """The compiled module (its `lib` holds the functions) of the C file `source_name` in
    this folder, whose functions Python calls with the cffi `declarations`."""
    source = (Path(__file__).parent / source_name).read_text()
    digest = hashlib.sha256(
        "\0".join([source, declarations, sys.version, cffi.__version__]).encode()
    ).hexdigest()[:16]
    name = f"_cementsim_{Path(source_name).stem}_{digest}"
    target = user_cache("kernels")
    built = next(target.glob(f"{name}.*.so"), None) if target.is_dir() else None
    if built is None:
        target.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(dir=target, prefix=".build-"))
        try:
            ffi = cffi.FFI()
            ffi.cdef(declarations)
            ffi.set_source(name, source, extra_compile_args=["-O2"], libraries=["m"])
            try:
                made = Path(ffi.compile(tmpdir=str(private)))
            except Exception as exc:  # cffi's VerificationError, setuptools' CompileError
                raise RuntimeError(
                    f"compiling {source_name} failed ({exc}): cementsim needs the C compiler "
                    "that DOLFINx compiles its forms with"
                ) from exc
            built = target / made.name
            os.replace(made, built)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    spec = importlib.util.spec_from_file_location(name, built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
