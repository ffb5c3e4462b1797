"""The reconcile loop's reaction times, beside the floor measured in the same run and the peers.

- save → visible: an editor-style save of tasks.toml (temp file + rename) while `tt watch` runs,
  until the new task's record exists in Redis. Target p50 ≤ 150 ms, p99 ≤ 500 ms. Floor: the same
  save → watchfiles' event in-process (`control.watch.FileWatcher`). Peers poll: Argo CD every
  3 min, Flux every 1 min.
- dead agent → its task running elsewhere: kill -9 the agent running a task; until another agent
  has claimed it (its `task.claimed` event), a pool of four with three tasks running. Target
  ≤ lease + 1 s; measured with the default heartbeat and lease (2 s, 10 s) and fast ones (0.5 s,
  2 s); restarts after 1 s in both, so every round starts with an idle agent to take the task.

Run: python -m tests.benchmarks.bench_watch  (prints JSON; about a minute)
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from reconciler.control.watch import FileWatcher
from tests.benchmarks.common import emit, stats
from tests.integration.live import LiveTown, live_town, until

SAVES = 40
KILLS = 5


def save(root: Path, name: str, text: str) -> None:
    tmp = root / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / name)


def task(i: int, agent: str = "dev", description: str = "benchmark task") -> str:
    return f'[[tasks]]\nid = "t{i}"\ndescription = "{description} {i}"\nagent = "{agent}"\n\n'


def watchfiles_floor(root: Path) -> list[float]:
    """Save → FileWatcher callback, in this process: what no loop built on it can beat."""
    root.mkdir()
    seen = threading.Event()
    watcher = FileWatcher(root, seen.set).start()
    time.sleep(0.3)  # let the watcher take its first snapshot
    out = []
    for i in range(SAVES):
        seen.clear()
        start = time.perf_counter()
        save(root, "tasks.toml", task(i))
        assert seen.wait(5), "no event"
        out.append(time.perf_counter() - start)
        time.sleep(0.1)  # outside the debounce window: one save per batch
    watcher.stop()
    return out


def save_to_redis(root: Path) -> list[float]:
    """Save → the new task's hash exists in Redis, `tt watch` running (agent suspended)."""
    with live_town(root) as town:
        town.write(
            '[town]\nname = "bench-watch"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n',
            task(0),
        )
        town.start_watcher()
        until(lambda: "t0" in town.tasks(), 30, "the first apply")
        client, keys = town.store.client, town.store.keys
        text, out = task(0), []
        for i in range(1, SAVES + 1):
            text += task(i)
            start = time.perf_counter()
            save(root, "tasks.toml", text)
            key = keys.task(f"t{i}")
            while not client.exists(key):
                time.sleep(0.0005)
                assert time.perf_counter() - start < 10, f"t{i} never appeared"
            out.append(time.perf_counter() - start)
            time.sleep(0.1)
        return out


def dead_agent_to_reclaimed(root: Path, policy: str) -> list[float]:
    """kill -9 the agent running a task → another agent's `task.claimed` of it (wall clock)."""
    with live_town(root) as town:
        tasks = "".join(task(i, "worker", "[sim:sleep:120] long") for i in range(3))
        town.write(
            f'[town]\nname = "bench-dead"\n{policy}\n[agents.worker]\nmodel = "sim"\n'
            "replicas = 4\n",
            tasks,
        )
        town.start_watcher()
        out = []
        for _ in range(KILLS):
            # Every agent back (an idle one included): the task has somewhere else to go.
            until(lambda: len(town.live_agents()) == 4, 60, "four agents")
            running = until(lambda: _running(town), 60, "three tasks running with their models")
            tid, victim, pid = running[0]
            claims = len(town.events("task.claimed"))
            killed_at = time.time()
            town.kill(pid)
            try:
                again = until(
                    partial(_claimed_elsewhere, town, claims, tid, victim), 60, f"{tid} reclaimed"
                )
            except AssertionError:
                _explain(town, tid, victim)
                raise
            out.append(float(again[0]["ts"]) - killed_at)
        return out


def _explain(town: LiveTown, tid: str, victim: str) -> None:
    """What the town looked like when a killed agent's task was not taken up (to stderr)."""
    print(f"{tid} of killed {victim} not reclaimed; last events:", file=sys.stderr)
    for e in town.events()[-60:]:
        print("  ", {k: v for k, v in e.items() if k != "ts"}, file=sys.stderr)
    for name, r in sorted(town.agents().items()):
        keep = ("state", "pid", "task", "model_pid", "reason", "quick_deaths", "spawn")
        print("  ", name, {k: r.get(k) for k in keep}, file=sys.stderr)
    print("   tasks", {k: v.get("state") for k, v in town.tasks().items()}, file=sys.stderr)


def _claimed_elsewhere(town: LiveTown, skip: int, tid: str, victim: str) -> list[dict[str, str]]:
    new = town.events("task.claimed")[skip:]
    return [e for e in new if e["task"] == tid and e["agent"] != victim]


def _running(town: LiveTown) -> list[tuple[str, str, int]] | None:
    agents = town.agents()
    found = [
        (r["task"], name, int(r["pid"]))
        for name, r in sorted(agents.items())
        if r.get("task") and r.get("model_pid") and r.get("pid", "").isdigit()
    ]
    return found if len(found) == 3 else None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        floor = watchfiles_floor(base / "floor")
        visible = save_to_redis(base / "save")
        # Restarts after 1 s (default: 10 s doubling), so each round starts with an idle agent.
        back = 'restart_backoff = "1s"\n'
        default = dead_agent_to_reclaimed(base / "default", back)
        fast = dead_agent_to_reclaimed(base / "fast", f'{back}heartbeat = "0.5s"\nlease = "2s"\n')
    emit(
        "watch",
        {
            "cpus": os.cpu_count(),
            "save_to_visible_in_redis": stats(visible),
            "limit_save_to_watchfiles_event": stats(floor),
            "dead_agent_to_task_running_elsewhere": {
                "default_policy_heartbeat_2s_lease_10s": stats(default),
                "fast_policy_heartbeat_0.5s_lease_2s": stats(fast),
            },
            "targets": {
                "save_to_visible_p50_ms": 150,
                "save_to_visible_p99_ms": 500,
                "dead_agent_default_policy_ms": 11_000,
                "dead_agent_fast_policy_ms": 3_000,
            },
            "peers": {"argo_cd_poll_interval_ms": 180_000, "flux_poll_interval_ms": 60_000},
        },
    )


if __name__ == "__main__":
    main()
