"""Where cementsim keeps what it makes once per machine and reuses (meshes, compiled kernels)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache(kind: str) -> Path:
    """The folder for one kind of cached thing: $XDG_CACHE_HOME/cementsim/<kind>, else
    ~/.cache/cementsim/<kind> (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cementsim" / kind
