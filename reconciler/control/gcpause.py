"""The cycle collector paused for one apply pass (`apply.py`): no I/O, no state of its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """A pass builds ~10^6 objects for 10,000 tasks (parsed TOML, specs, graph, plan) and keeps
    them all until it ends: the cycle collector's full sweeps over them would find nothing and
    cost 15-20 % of an apply. Paused for the pass only (`tt conductor` runs many)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
