"""The leader's fencing epoch (lua/lib.lua): once another loop leads, every write script of the
deposed leader is refused before it writes anything; and the loop takes such a refusal as the
loss of the lead (it stops acting, records `leader.fenced`, stands by)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.control.apply import ApplyOptions
from reconciler.control.loop import Loop, LoopOptions
from reconciler.errors import LeaderFenced
from reconciler.spec.desired import Desired, Policy
from reconciler.store.client import Store
from tests.control.test_apply import TASKS, TOWN, CountingSession
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.store.test_transitions import rec


def snapshot(store: Store) -> dict[str, object]:
    """Every key of the town with its whole value, to compare before and after."""
    c, out = store.client, {}
    for key in sorted(c.scan_iter(match=store.keys.prefix + "*", count=1000)):
        kind = c.type(key)
        if kind == "hash":
            out[key] = c.hgetall(key)
        elif kind == "list":
            out[key] = c.lrange(key, 0, -1)
        elif kind == "set":
            out[key] = sorted(c.smembers(key))
        elif kind == "zset":
            out[key] = c.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = c.xrange(key, "-", "+")
        else:
            out[key] = (c.get(key), c.pttl(key) > 0)
    return out


@pytest.fixture
def rival(redis_url: str, town_name: str) -> Iterator[Store]:  # noqa: F811
    """A second store on the same town: another watcher's."""
    store = Store.open(redis_url, town_name)
    try:
        yield store
    finally:
        store.close()


def test_a_deposed_leaders_writes_are_refused_and_change_nothing(
    redis_store: Store, rival: Store
) -> None:
    a, b = redis_store, rival
    # A town with something for each write to act on: a running task, a retrying one that is
    # due, an agent whose process died.
    a.upsert_tasks([rec("run", "w1"), rec("retry", "w1"), rec("idle", "w2")], 1)
    assert a.client.lpop(a.keys.queue("w1")) == "run"
    assert a.claim("run", "w1", "t1") is not None
    assert a.client.lpop(a.keys.queue("w1")) == "retry"
    assert a.claim("retry", "w1", "t2") is not None
    assert a.fail("retry", "t2", "boom", False, Policy(retry_backoff=0)) == "retrying"
    a.set_agent("w2", {"spawn": "s0", "pid": "99999999", "state": "idle", "instance": "i0"})

    status, epoch = a.hold_leader("watcher-a", 0.2)
    assert status == 2
    a.fence = f"e:{epoch}"
    assert a.requeue([]) == 0  # while it leads, its fence passes
    deadline = time.monotonic() + 5
    while a.client.exists(a.keys.leader):  # its pass outlives the lease
        assert time.monotonic() < deadline, "the lease did not expire"
        time.sleep(0.02)
    status, new_epoch = b.hold_leader("watcher-b", 10)
    assert (status, new_epoch) == (2, epoch + 1)

    before = snapshot(a)
    death = {"state": "backoff", "pid": ""}
    start = {"state": "starting", "spawn": "s1", "pid": ""}
    writes: list[Callable[[], Any]] = [
        lambda: a.upsert_tasks([rec("new")], 2),
        lambda: a.upsert_batches(iter([[rec("new")]]), 2),
        lambda: a.delete_tasks(["idle"]),
        lambda: a.requeue(["idle"]),
        lambda: a.promote_due(),
        lambda: a.hand_back("run", "*:w1", "agent w1 died"),
        lambda: a.record_death("w2", {"spawn": "s0", "pid": "99999999"}, death),
        lambda: a.claim_start("w2", {"spawn": "s0", "pid": "99999999"}, start),
        lambda: a.record_spawn("w2", "s0", {"pid": "1"}),
        # The writes that are not scripts (a MULTI that WATCHes the epoch).
        lambda: a.set_agent_spec("w3", base="w3", spec="{}", spec_hash="h", suspended=False),
        lambda: a.set_agent("w2", {"state": "idle"}),
        lambda: a.request_stop("w2", "restart"),
        lambda: a.forget_agent("w2"),
        lambda: a.write_meta({"generation": "9"}),
    ]
    for write in writes:
        with pytest.raises(LeaderFenced, match="newer leader"):
            write()
    assert snapshot(a) == before

    # The new leader's writes pass; so do an agent's (unfenced, checked by attempt tokens).
    b.fence = f"e:{new_epoch}"
    assert b.hand_back("run", "*:w1", "agent w1 died")
    assert b.promote_due() == 1
    agent = Store.open(a.url, a.town)
    try:
        assert agent.claim("run", "w1", "t3") is not None
        assert agent.complete("run", "t3", "done")
    finally:
        agent.close()
    # The apply lock stays releasable by whoever holds it, deposed or not.
    holder = {"token": "tok", "host": "h", "pid": 1}
    assert a.try_lock(holder, 10) is None
    assert a.unlock("tok")


class TakeoverSession(CountingSession):
    """Another loop takes the lead while this one's pass is loading the files (`arm`)."""

    def __init__(self, paths: Any, store: Store, rival: Store) -> None:
        super().__init__(paths, store)
        self.rival = rival
        self.armed = False

    def desired(self) -> Desired:
        if self.armed:
            self.armed = False
            self.store.client.delete(self.store.keys.leader)  # the lease ran out
            status, _ = self.rival.hold_leader("watcher-b", 10)
            assert status == 2
        return super().desired()


def test_the_loop_takes_a_refused_write_as_the_loss_of_the_lead(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    town_name: str,  # noqa: F811
) -> None:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    rival = Store.from_client(fake_store.client, town_name)
    from reconciler.town import TownPaths

    session = TakeoverSession(TownPaths(tmp_path), fake_store, rival)
    reports: list[tuple[str, dict[str, str]]] = []
    opts = LoopOptions(apply=ApplyOptions(start_agents=False), watch_files=False)
    loop = Loop(session, opts, lambda kind, fields: reports.append((kind, fields)))

    assert loop._step(None) is None
    assert loop.leader and fake_store.fence == "e:1"
    assert set(fake_store.task_ids()) == {"a", "b", "loose"}

    # An edit; the pass that applies it outlives the lease and another loop leads meanwhile.
    tasks = session.paths.tasks_file
    tasks.write_text(tasks.read_text() + '\n[[tasks]]\nid = "c"\ndescription = "late"\n')
    session.armed = True
    loop.wake.set()
    assert loop._step(None) is None
    assert not loop.leader and fake_store.fence == ""
    assert set(fake_store.task_ids()) == {"a", "b", "loose"}  # "c" was not written
    assert fake_store.client.get(fake_store.keys.apply_lock) is None  # its lock was released
    fenced = [f for _, f in fake_store.events_since("-") if f["type"] == "leader.fenced"]
    assert [f["holder"] for f in fenced] == [loop.holder]
    assert any(k == "leader" and "lost the lead" in f.get("detail", "") for k, f in reports)

    # It stands by: the next step finds the lease held and writes nothing.
    loop.wake.set()
    assert loop._step(None) is None
    assert not loop.leader
    assert set(fake_store.task_ids()) == {"a", "b", "loose"}
    assert json.loads(fake_store.client.get(fake_store.keys.leader_epoch) or "0") == 2


def test_a_write_that_is_not_a_script_is_dropped_if_the_epoch_moves_under_it(
    redis_store: Store, rival: Store
) -> None:
    a = redis_store
    _, epoch = a.hold_leader("watcher-a", 10)
    a.fence = f"e:{epoch}"
    with pytest.raises(LeaderFenced, match="epoch moved"), a._writes() as pipe:
        pipe.hset(a.keys.meta, mapping={"generation": "9"})
        rival.client.incr(rival.keys.leader_epoch)  # a new leader, between WATCH and EXEC
    assert a.client.hget(a.keys.meta, "generation") is None
    unfenced = Store.open(a.url, a.town)  # an agent's store: no fence, no WATCH
    try:
        unfenced.write_meta({"generation": "1"})
    finally:
        unfenced.close()
    assert a.client.hget(a.keys.meta, "generation") == "1"
