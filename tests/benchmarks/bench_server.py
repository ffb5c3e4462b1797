"""Embedded server and CLI start-up costs, beside the raw PING limit measured in the same run.

Run: python -m tests.benchmarks.bench_server  (prints JSON)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from reconciler import server
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.benchmarks.common import emit, stats, timed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cold: list[float] = []
        for i in range(5):
            paths = TownPaths(Path(tmp) / f"t{i}")
            paths.root.mkdir()
            cold += timed(lambda p=paths: server.ensure_running(p), 1)
            if i:
                server.stop(paths)
        paths = TownPaths(Path(tmp) / "t0")
        warm = timed(lambda: server.ensure_running(paths), 500)
        store = Store.open(server.url(paths), "bench")
        ping = timed(store.client.ping, 2000)
        store.close()
        server.stop(paths)
    tt = str(Path(sys.executable).with_name("tt"))
    help_runs = timed(lambda: subprocess.run([tt, "--help"], capture_output=True, check=True), 10)
    emit(
        "server",
        {
            "cold_start": stats(cold),
            "ensure_running_fast_path": stats(warm),
            "limit_redis_py_ping_unix_socket": stats(ping),
            "tt_help_process": stats(help_runs),
            "targets": {"tt_help_process_ms": 200},
        },
    )


if __name__ == "__main__":
    main()
