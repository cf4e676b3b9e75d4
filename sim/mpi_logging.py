"""MPI-aware logging: rank 0 speaks by default; optionally every rank with a prefix."""

from __future__ import annotations

import logging
from pathlib import Path

from mpi4py import MPI

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RankFilter(logging.Filter):
    """Pass records on rank 0 only (or on all ranks, prefixed with the rank)."""

    def __init__(self, all_ranks: bool = False) -> None:
        super().__init__()
        self.rank = MPI.COMM_WORLD.rank
        self.all_ranks = all_ranks

    def filter(self, record: logging.LogRecord) -> bool:
        if self.all_ranks:
            record.msg = f"[rank {self.rank}] {record.msg}"
            return True
        return self.rank == 0


def configure(level: int = logging.INFO, all_ranks: bool = False) -> None:
    """Console logging for the `sim` package."""
    logger = logging.getLogger("sim")
    logger.setLevel(min(level, logging.INFO))  # the run log records INFO even when quiet
    for h in list(logger.handlers):
        if getattr(h, "_cementsim_console", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RankFilter(all_ranks))
    handler._cementsim_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def log_to_file(path: Path) -> logging.Handler | None:
    """Also log the `sim` package to `path` (rank 0; a new file, an existing one is
    overwritten); returns the handler to remove later."""
    if MPI.COMM_WORLD.rank != 0:
        return None
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("sim")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
