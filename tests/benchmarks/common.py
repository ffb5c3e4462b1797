"""Helpers shared by the benchmarks: timing statistics and JSON output."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable


def stats(samples: list[float]) -> dict[str, float]:
    """min / p50 / p99 / max in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "min_ms": round(ordered[0] * 1000, 3),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "n": len(ordered),
    }


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def emit(name: str, data: dict[str, object]) -> None:
    json.dump({"benchmark": name, **data}, sys.stdout, indent=2)
    sys.stdout.write("\n")
