"""tt on a Redis Cluster (issue 14, point 5), on the local 3-primary cluster of `redis_cluster`:
two towns applied and run through the URL of one node land on different shards, each town's
keys on the one node serving its hash tag's slot; the town's slot migrated to another node in
the middle of a run loses and repeats no task (the client follows MOVED and ASK); a cluster
that is down is one clear `RedisUnavailable` naming the node, from the store and from `tt`;
one stopped while agents hold results and restarted from its append-only files loses and
repeats no task either.
The seed tutorial and the self-healing tests run on the cluster too (`town_redis`, and the
`cluster` case of test_agents' seed tutorial).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.errors import RedisUnavailable
from reconciler.store.client import Store
from reconciler.store.keys import Keys
from tests.integration.live import LiveTown, live_town, until
from tests.integration.test_self_healing import assert_exactly_once, task, town_toml
from tests.redis_cluster import MIGRATE_BATCH, LocalCluster, start_cluster
from tests.store.test_transitions import rec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]


def on_different_shards(cluster: LocalCluster, count: int) -> list[str]:
    """`count` town names whose hash tags' slots are served by different primaries."""
    picked: dict[int, str] = {}
    for i in range(1000):
        name = f"shard-{i}"
        picked.setdefault(cluster.owner(Keys(name).meta), name)
        if len(picked) == count:
            return list(picked.values())
    raise AssertionError("no names on enough shards")


def run_town(root: Path, url: str, name: str, n: int) -> LiveTown:
    town = LiveTown(root, sim_delay=0.05, redis_url=url)
    agents = '[agents.worker]\nmodel = "sim"\nreplicas = 2\n'
    tasks = "".join(
        task(f"t{i}", f"step {i}", agent="worker", **({"depends_on": [f"t{i - 1}"]} if i else {}))
        for i in range(n)
    )
    town.write(town_toml(name, agents), tasks)
    return town


def test_two_towns_run_on_different_shards_each_within_its_slot(
    tmp_path: Path, redis_cluster: LocalCluster
) -> None:
    names = on_different_shards(redis_cluster, 2)
    towns = [run_town(tmp_path / n, redis_cluster.url, n, 4) for n in names]
    try:
        for town in towns:
            done = town.tt("apply", "--wait", "--timeout", "60s")
            assert done.returncode == 0, done.stdout + done.stderr
            assert_exactly_once(town, [f"t{i}" for i in range(4)])
        holders = {n: redis_cluster.town_keys(n) for n in names}
        # Each town on one node (its slot's), the two on two different nodes.
        assert all(len(h) == 1 for h in holders.values()), holders
        assert len({port for h in holders.values() for port in h}) == 2, holders
        for name, held in holders.items():
            [(port, keys)] = held.items()
            assert port == redis_cluster.owner(Keys(name).meta)
            with redis_cluster.node(port) as r:
                slots = {r.execute_command("CLUSTER KEYSLOT", k) for k in keys}
            assert len(slots) == 1 and len(keys) > 10, (name, slots, keys)
    finally:
        for town in towns:
            town.cleanup()
        redis_cluster.flush()


def why_not_once(town: LiveTown, n: int, outcomes: Counter[str]) -> str:
    """What the failure message of an attempt other than the one completed per task shows:
    those attempts and every event but the tasks' own ordinary ones (a flake under load must
    say why it happened)."""
    others = [
        (f"t{i:02d}", a)
        for i in range(n)
        for a in town.attempts(f"t{i:02d}")
        if a.get("outcome") != "completed"
    ]
    ordinary = {"task.claimed", "task.completed", "tasks.created", "apply", "task.started"}
    events = [e for e in town.events() if e.get("type") not in ordinary]
    return f"{outcomes}; attempts: {others}; events: {events[-60:]}"


def test_the_towns_slot_moving_mid_run_loses_and_repeats_no_task(
    tmp_path: Path, redis_cluster: LocalCluster
) -> None:
    n = 12
    with live_town(tmp_path / "moving", sim_delay=0.2, redis_url=redis_cluster.url) as town:
        town.write(
            town_toml("moving", '[agents.worker]\nmodel = "sim"\nreplicas = 3\n'),
            "".join(task(f"t{i:02d}", f"step {i}", agent="worker") for i in range(n)),
        )
        # Every run waits for the gate file: closed, three agents hold a running task each
        # (their completions still to report) while the slot moves; the others wait in BLPOP.
        gate = tmp_path / "gate"
        gate.touch()
        town.env["TT_SIM_GATE"] = str(gate)
        try:
            town.start_watcher()
            until(lambda: town.states()["completed"] >= 3, 30, "the run under way")
            gate.unlink()
            until(lambda: town.states()["running"] == 3, 30, "three tasks running")
            meta = Keys("moving").meta
            before = redis_cluster.owner(meta)
            target = next(p for p in redis_cluster.ports if p != before)
            held = redis_cluster.town_keys("moving")[before]
            assert len(held) < MIGRATE_BATCH, f"{len(held)} keys: more than one MIGRATE"

            def runs_end_meanwhile() -> None:
                # The three runs end with the slot MIGRATING: their reports, the watcher's
                # passes, meet the cluster refusing a script's access to a key the node lacks.
                gate.touch()
                time.sleep(2)

            # MOVED from now on, ASK while it moves.
            redis_cluster.migrate_slot(meta, target, while_migrating=runs_end_meanwhile)
            assert redis_cluster.owner(meta) == target
            assert list(redis_cluster.town_keys("moving")) == [target]
            until(lambda: town.states()["completed"] == n, 60, "every task completed")
            outcomes = assert_exactly_once(town, [f"t{i:02d}" for i in range(n)])
            assert outcomes == Counter({"completed": n}), why_not_once(town, n, outcomes)
            assert town.events("agent.exited") == []  # no agent fell over the move
            for proc in town.watchers:
                assert "Traceback" not in town.log_of(proc)
            # Each refused before it wrote, and waited out (lib.lua's probe).
            logs = "".join(town.log_of(proc) for proc in town.watchers)
            assert "the town's slot is moving between nodes" in logs, logs
        finally:
            town.cleanup()
            redis_cluster.flush()


def test_a_prune_and_a_restore_on_the_node_importing_the_slot_write_whole(
    redis_cluster: LocalCluster,
) -> None:
    """A node importing the town's slot (its keys moved, the slot not yet its own: a client
    comes by ASK) serves a script but refuses a command in it naming two keys when one is
    missing, mid-script, after the writes made before. A prune makes a tombstone and a restore
    takes it back (a RENAME each): both in single-key commands, so both run whole there."""
    store = Store.open(redis_cluster.url, "importing")
    try:
        store.upsert_tasks([rec("a"), rec("b"), rec("c")], 1)
        assert store.delete_tasks(["c"]) == 1  # a tombstone to restore
        before = redis_cluster.owner(store.keys.meta)
        target = next(p for p in redis_cluster.ports if p != before)

        def prune_and_restore() -> None:
            assert store.delete_tasks(["a"]) == 1
            store.upsert_tasks([rec("b"), {**rec("c"), "mode": "restore"}], 2)

        redis_cluster.migrate_slot(store.keys.meta, target, once_moved=prune_and_restore)
        states = {r["id"]: r["state"] for r in store.task_records()}
        assert states == {"b": "ready", "c": "ready"}
        assert store.client.exists(store.keys.tombstone("a")) == 1
        assert store.client.exists(store.keys.tombstone("c")) == 0
    finally:
        store.close()
        redis_cluster.flush()


def test_a_cluster_that_is_down_is_a_clear_error_naming_the_node(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "cluster")
    try:
        store = Store.open(cluster.url, "gone")
        assert store.cluster
        store.event("town.test")
        # Its slot served by another node than the one in the URL: the error names that one.
        node = cluster.owner(store.keys.meta)
        if node == cluster.ports[0]:
            cluster.migrate_slot(store.keys.meta, cluster.ports[1])
            node = cluster.ports[1]
    finally:
        cluster.stop()
    with pytest.raises(RedisUnavailable, match=rf"node 127\.0\.0\.1:{node}\): Connection refused"):
        store.task_ids()
    store.close()
    with pytest.raises(RedisUnavailable, match=rf"cannot reach Redis at {cluster.url}"):
        Store.open(cluster.url, "gone")
    town = LiveTown(tmp_path / "town", redis_url=cluster.url)
    town.write(town_toml("gone", '[agents.a]\nmodel = "sim"\n'), task("x", "x"))
    done = town.tt("status")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot reach Redis at {cluster.url}" in done.stderr, done.stderr


def test_a_cluster_stopped_mid_run_and_restarted_loses_and_repeats_no_task(tmp_path: Path) -> None:
    """Every node stops while three agents hold a running task (their results still to report)
    and the others wait in BLPOP; the nodes come back from their append-only files: each
    agent reports once the cluster answers again, and the run completes, each task once."""
    cluster = start_cluster(tmp_path / "cluster", persist=True)
    n = 9
    try:
        with live_town(tmp_path / "outage", sim_delay=0.2, redis_url=cluster.url) as town:
            town.write(
                town_toml("outage", '[agents.worker]\nmodel = "sim"\nreplicas = 3\n'),
                "".join(task(f"t{i}", f"step {i}", agent="worker") for i in range(n)),
            )
            gate = tmp_path / "gate"
            town.env["TT_SIM_GATE"] = str(gate)
            town.start_watcher()
            until(lambda: town.states()["running"] == 3, 30, "three tasks running")
            cluster.stop()
            gate.touch()  # the three runs end while no node answers
            logs = town.root / ".tt" / "logs"
            until(
                lambda: sum("finished" in f.read_text() for f in logs.glob("worker*/t*.log")) == 3,
                30,
                "the three runs ended, their results not reported",
            )
            cluster.restart()
            until(lambda: town.states()["completed"] == n, 60, "every task completed")
            outcomes = assert_exactly_once(town, [f"t{i}" for i in range(n)])
            assert outcomes == Counter({"completed": n}), outcomes
            assert town.events("agent.exited") == []
    finally:
        cluster.stop()
