"""Trivial RQ jobs for the peer measurements of bench_agents (a module light enough that a
forking RQ Worker pays nothing to import it)."""

from __future__ import annotations

import time


def noop() -> None:
    """A trivial job."""


def stamp() -> float:
    """The moment the job started."""
    return time.time()
