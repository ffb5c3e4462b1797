"""`tt serve` (issue 12): an event written to Redis → an SSE client receives it (p50/p99, goal
p50 ≤ 20 ms); `GET /v1/tasks` on 10,000 tasks beside `tt status -o json` in the same run (goal
≤ 1.5×); the CPU an idle `tt serve` uses over 30 s (goal ≤ 0.2 % of a core).

Run: python -m tests.benchmarks.bench_serve  (prints JSON; takes about a minute and a half)
The town is generated (tests/towngen.py: 10,000 tasks, its agent suspended, so nothing runs);
the server is a real `tt serve` process; events are written through the store, as tt writes them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from reconciler import server
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.benchmarks.common import emit, stats, timed
from tests.towngen import write_town

TT = [str(Path(sys.executable).with_name("tt"))]
TASKS = 10_000
EVENTS = 200
IDLE_SECONDS = 30.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sse_latency(http: httpx.Client, store: Store) -> list[float]:
    """Write EVENTS events one after another; each waits until the stream delivered it."""
    got: dict[str, float] = {}
    arrived = threading.Condition()
    opened = threading.Event()

    def read() -> None:
        with http.stream("GET", "/v1/events/stream", timeout=30) as r:
            for line in r.iter_lines():
                if line == ": connected":
                    opened.set()
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event.get("type") == "bench.ping":
                        with arrived:
                            got[event["seq"]] = time.perf_counter()
                            arrived.notify()
                            if len(got) == EVENTS:
                                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(30), "the stream did not open"
    out = []
    for i in range(EVENTS):
        sent = time.perf_counter()
        store.event("bench.ping", seq=str(i))
        with arrived:
            assert arrived.wait_for(lambda i=i: str(i) in got, 10), f"event {i} not delivered"
        out.append(got[str(i)] - sent)
    reader.join(10)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "town"
        write_town(root, "bench-serve", TASKS)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
        subprocess.run([*TT, "apply"], cwd=root, env=env, check=True, capture_output=True)
        port = _port()
        proc = subprocess.Popen(
            [*TT, "serve", "--port", str(port), "--no-token"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        store = Store.open(server.url(TownPaths(root)), "bench-serve")
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    http.get("/v1/openapi.json")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "tt serve did not answer"
                    time.sleep(0.05)
            assert len(http.get("/v1/tasks").json()) == TASKS
            api = timed(lambda: http.get("/v1/tasks").raise_for_status(), 7)
            cli = timed(
                lambda: subprocess.run(
                    [*TT, "status", "-o", "json"], cwd=root, env=env, check=True,
                    capture_output=True,
                ),
                7,
            )  # fmt: skip
            latency = _sse_latency(http, store)
            time.sleep(2.0)  # the stream reader ends at its next XREAD (1 s) once no client is left
            before, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(IDLE_SECONDS)
            idle = (_cpu_seconds(proc.pid) - before) / (time.monotonic() - t0)
        finally:
            http.close()
            store.close()
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            subprocess.run([*TT, "down"], cwd=root, env=env, capture_output=True)
    ratio = stats(api)["p50_ms"] / stats(cli)["p50_ms"]
    emit(
        "serve",
        {
            "sse_event_to_client": stats(latency),
            "get_v1_tasks_10000": stats(api),
            "peer_tt_status_json_10000": stats(cli),
            "get_v1_tasks_over_tt_status_p50": round(ratio, 3),
            "idle_cpu_percent_of_a_core": round(idle * 100, 3),
            "idle_seconds": IDLE_SECONDS,
            "targets": {
                "sse_p50_ms": 20,
                "get_v1_tasks_over_tt_status": 1.5,
                "idle_cpu_percent_of_a_core": 0.2,
            },
        },
    )


if __name__ == "__main__":
    main()
