"""Torn saves are harmless (issue 17, point 1): real Valkey, `tt conductor` running, real agent
processes on the sim model. The same tasks.toml is saved 200 times in place, each time in random
chunks with random pauses: every task completes exactly once and none is lost.

Pauses: most are short and a few near 0.5 s (a pause is half of u**10 of a uniform u: mean
~0.045 s, one in a hundred over 0.45 s, a fifth over the watcher's 50 ms settle), plus two saves
that stop for 1 s at a task boundary (a torn file that parses): one that would prune a third of
the tasks (applied after the settle check: the tasks become tombstones, restored by the next
chunk) and one that would prune most of them (held by the mass-delete guard, 2 s). The 200 saves
take ~20 s, not ~100 s.

An agent process starting while tasks.toml is torn (its crash restarted, a pool scaled) runs by
town.toml alone: a torn tasks.toml never makes it exit (and the fleet quarantine it).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.live import live_town, until
from tests.integration.test_self_healing import assert_exactly_once, dag, task, town_toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]


def save_in_chunks(path: Path, data: bytes, cuts: list[int], pauses: list[float]) -> None:
    """Rewrite `path` in place (truncated, then written a chunk at a time, each flushed), as
    editors that save in place, `cat >`, checkouts and network file systems do."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        start = 0
        for cut, pause in zip([*cuts, len(data)], [*pauses, 0.0], strict=True):
            os.write(fd, data[start:cut])
            start = cut
            if pause:
                time.sleep(pause)
    finally:
        os.close(fd)


def test_200_torn_saves_while_the_conductor_runs_complete_every_task_exactly_once(
    tmp_path: Path,
) -> None:
    n, replicas = 40, 3
    with live_town(tmp_path / "torn", sim_delay=0.2) as town:
        agents = f'[agents.worker]\nmodel = "sim"\nreplicas = {replicas}\n'
        text = dag(n, replicas, seed=11)
        town.write(town_toml("torn", agents), text)
        ids = [f"t{i:03d}" for i in range(n)]
        conductor = town.start_watcher("conductor")
        until(lambda: len(town.tasks()) == n, 30, "the first apply")
        data = text.encode()
        path = town.root / "tasks.toml"
        line_ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
        # A cut here leaves whole tasks: the torn file parses.
        boundaries = [i for i in line_ends if data[i - 2 : i] == b"\n\n"]
        rng = random.Random(2026)
        slept = 0.0
        for save in range(200):
            if save in (20, 60):
                # Stop for 1 s after a third (most would go: guarded) or two thirds of the tasks.
                share = 1 / 3 if save == 60 else 2 / 3
                cuts, pauses = [boundaries[int(len(boundaries) * share)]], [1.0]
            else:
                k = rng.randint(1, 3)
                picks = {
                    rng.choice(line_ends) if rng.random() < 0.5 else rng.randrange(1, len(data))
                    for _ in range(k)
                }
                cuts = sorted(c for c in picks if 0 < c < len(data))
                # 21 % of the pauses are longer than the watcher's 50 ms settle
                pauses = [0.5 * rng.random() ** 10 for _ in cuts]
            save_in_chunks(path, data, cuts, pauses)
            slept += sum(pauses)
            time.sleep(rng.random() * 0.02)
        assert path.read_bytes() == data

        until(lambda: town.states()["completed"] == n, 90, "every task completed")
        assert conductor.poll() is None, town.log_of(conductor)
        outcomes = assert_exactly_once(town, ids)
        assert sorted(town.tasks()) == ids  # none deleted in the end
        assert town.store.client.zcard(town.store.keys.deleted) == 0  # no tombstone left

        # The torn files that were applied pruned tasks; each came back from its tombstone.
        deleted = Counter(e["task"] for e in town.events("task.deleted"))
        restored = Counter(e["task"] for e in town.events("task.restored"))
        assert deleted and deleted == restored, (deleted, restored)
        # The guard held the save that would have pruned most of them; it never had to apply.
        log = town.log_of(conductor)
        assert "would be deleted: applying once the files have been stable" in log, log
        assert town.events("apply.guarded") == []
        print(  # what this run exercised (pytest -s)
            f"slept {slept:.1f}s in pauses; {sum(deleted.values())} prunes of "
            f"{len(deleted)} tasks restored; attempts {dict(outcomes)}; "
            f"{len(town.events('config.invalid'))} invalid torn files reported"
        )


def test_an_agent_restarted_while_tasks_toml_is_torn_starts_and_serves(tmp_path: Path) -> None:
    with live_town(tmp_path / "start", sim_delay=0.05) as town:
        town.write(town_toml("start", '[agents.worker]\nmodel = "sim"\n'), task("a", "first"))
        town.start_watcher("conductor")
        until(lambda: town.states()["completed"] == 1, 30, "the first task")
        path = town.root / "tasks.toml"
        whole = path.read_bytes()
        path.write_bytes(whole[: whole.index(b"first") + 2])  # a save stopped mid-string
        until(lambda: town.events("config.invalid"), 20, "the torn file seen")
        pid = town.live_agents()["worker"]
        town.kill(pid)

        def serving() -> bool:
            rec = town.agents().get("worker", {})
            new = rec.get("pid", "")
            return new.isdigit() and int(new) != pid and rec.get("state") == "idle"

        until(serving, 30, "the agent started again and idle, though tasks.toml is torn")
        assert town.agents()["worker"].get("restarts") == "1"  # one death: the kill, no more
        path.write_bytes(whole + b"\n" + task("b", "second").encode())
        until(lambda: town.states()["completed"] == 2, 30, "the next task, by the same agent")
