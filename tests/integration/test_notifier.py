"""The notifier on its own (issue 15), on the embedded Valkey with a local webhook: only while
its loop leads does it tell (a standby tells nothing, and takes up where the leader stopped), a
rule dropped from the files stops at once, and a closing loop drains what is on the stream and
writes `town.completed` when every task is final."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.control.notifier import Notifier, register, stream_id
from reconciler.control.session import Session
from reconciler.spec import loader
from reconciler.spec.desired import Desired
from reconciler.store.client import Store
from reconciler.store.scripts import EVENTS_MAXLEN
from reconciler.store.turn import Outcome
from reconciler.town import TownPaths
from tests.hookserver import Hook, hook_server
from tests.integration.live import until
from tests.store.test_transitions import rec
from tests.store.test_turn import turn

pytestmark = pytest.mark.integration


@dataclass
class Host:
    s: Session
    leader: bool = True
    said: list[dict[str, str]] = field(default_factory=list)

    def report(self, kind: str, fields: dict[str, str]) -> None:
        self.said.append({"kind": kind, **fields})


@pytest.fixture
def hook() -> Iterator[Hook]:
    with hook_server() as made:
        yield made


def desired(root: Path, url: str, town: str, rules: str) -> Desired:
    text = f'[town]\nname = "{town}"\nredis = "{url}"\n\n[agents.dev]\nmodel = "sim"\n{rules}'
    (root / "town.toml").write_text(text)
    return loader.load(TownPaths(root))


def rule(hook: Hook, path: str, on: str) -> str:
    return f'\n[[notify]]\non = [{on}]\nwebhook = "{hook.url}/{path}"\n'


def told(hook: Hook, path: str) -> list[tuple[str, str]]:
    return [(e["type"], e.get("task", "")) for e in hook.events(path)]


@contextmanager
def leading(
    root: Path, url: str, town: str, rules: str
) -> Iterator[tuple[Store, Host, Notifier, Desired]]:
    """A notifier of `root`'s town with `rules`, its loop leading (the lease held as "me"), the
    rules registered as the apply that brings them does; its threads and keys gone after."""
    wanted = desired(root, url, town, rules)
    session = Session(TownPaths(root))
    store = session.store
    notifier = Notifier(host := Host(session))
    try:
        _, epoch = store.hold_leader("me", 30)
        store.fence = f"e:{epoch}"
        register(store, wanted.notify)
        yield store, host, notifier, wanted
    finally:
        for worker in notifier.workers.values():
            worker.retired.set()
        store.client.delete(*store.client.keys(store.keys.prefix + "*"))
        session.close()


def test_only_the_leader_tells_and_a_dropped_rule_stops(
    tmp_path: Path, valkey_url: str, town_name: str, hook: Hook
) -> None:
    both = rule(hook, "a", '"task.failed"') + rule(hook, "b", '"task.failed"')
    with leading(tmp_path, valkey_url, town_name, both) as (store, host, notifier, wanted):
        fence = store.fence
        store.event("task.failed", task="one", agent="dev", error="boom")
        notifier.check(store, wanted)
        until(lambda: told(hook, "/a") == told(hook, "/b") == [("task.failed", "one")], 30, "one")

        # Standing by: nothing is told; the events wait in the stream.
        host.leader, store.fence = False, ""
        store.event("task.failed", task="two", agent="dev", error="boom")
        store.event("task.failed", task="three", agent="dev", error="boom")
        rounds = [w.rounds for w in notifier.workers.values()]
        until(
            lambda: all(
                w.rounds > r + 5 for w, r in zip(notifier.workers.values(), rounds, strict=True)
            ),
            30,
            "the workers looked for the lead five more times",
        )
        assert told(hook, "/a") == [("task.failed", "one")]

        # Leading again, with rule b gone: a tells both, once; b's cursor is dropped.
        host.leader, store.fence = True, fence
        only_a = desired(tmp_path, valkey_url, town_name, rule(hook, "a", '"task.failed"'))
        assert len(only_a.notify) == 1
        notifier.check(store, only_a)
        expected = [("task.failed", "one"), ("task.failed", "two"), ("task.failed", "three")]
        until(lambda: told(hook, "/a") == expected, 30, "a told two and three")
        assert told(hook, "/b") == [("task.failed", "one")]
        assert len(store.client.hkeys(store.keys.notify)) == 1

        # Closing as leader: the last task done writes town.completed, drained to the sink.
        store.fence = ""
        store.upsert_tasks([rec("t")], 1)
        turn(store, None, "t1")
        turn(store, Outcome("t", "t1", True, "done"), "t2")
        store.fence = fence
        a_rule = only_a.notify[0]
        finals = desired(tmp_path, valkey_url, town_name, rule(hook, "a", '"town.completed"'))
        assert finals.notify[0].key() != a_rule.key()
        register(store, finals.notify)
        notifier.check(store, finals)
        notifier.close(leading=True)
        assert told(hook, "/a")[-1] == ("town.completed", "")
        assert [e["count"] for e in hook.events("/a")[-1:]] == [1]
        for worker in notifier.workers.values():
            assert worker.retired.is_set()
            worker.join(10)
            assert not worker.is_alive()
        assert host.said == []  # nothing failed


def test_a_watcher_that_leads_again_tells_again(
    tmp_path: Path, valkey_url: str, town_name: str, hook: Hook
) -> None:
    """Review #1: a lead lost and won back (another watcher led a while, or this one's lease
    lapsed and it took it again under a new epoch) must not leave its threads fenced for good."""
    a_rule = rule(hook, "a", '"task.failed"')
    with leading(tmp_path, valkey_url, town_name, a_rule) as (store, host, notifier, wanted):
        store.event("task.failed", task="one", agent="dev", error="boom")
        notifier.check(store, wanted)
        until(lambda: told(hook, "/a") == [("task.failed", "one")], 30, "one")

        # Another watcher leads a while, then this one again (a new epoch).
        host.leader, store.fence = False, ""
        store.resign_leader("me")
        store.hold_leader("other", 30)
        (worker,) = notifier.workers.values()
        rounds = worker.rounds
        until(lambda: worker.rounds > rounds + 3, 30, "the worker stood by")
        store.resign_leader("other")
        status, epoch = store.hold_leader("me", 30)
        assert status == 2
        host.leader, store.fence = True, f"e:{epoch}"
        store.event("task.failed", task="two", agent="dev", error="boom")
        notifier.check(store, wanted)  # the new leader's pass
        until(lambda: len(told(hook, "/a")) == 2, 30, "two told under the new epoch")

        # The lease lapsed (a long pause): the same watcher takes it again; the new epoch's
        # `leader.acquired` wakes the thread before the loop's store has the new fence.
        store.client.delete(store.keys.leader)
        status, epoch = store.hold_leader("me", 30)
        assert status == 2
        rounds = worker.rounds
        until(lambda: worker.rounds > rounds + 2, 30, "the worker looked while fenced")
        store.fence = f"e:{epoch}"
        store.event("task.failed", task="three", agent="dev", error="boom")
        notifier.check(store, wanted)
        until(lambda: len(told(hook, "/a")) == 3, 30, "three told under the lapsed lease's epoch")
        assert told(hook, "/a") == [("task.failed", t) for t in ("one", "two", "three")]
        assert worker.is_alive() and notifier.workers == {worker.key: worker}


def test_a_rule_another_leader_dropped_is_not_told_from_its_old_cursor(
    tmp_path: Path, valkey_url: str, town_name: str, hook: Hook
) -> None:
    """Review #3: watcher B, whose files lack the rule, drops its cursor; when A (whose files
    have it) leads again, its thread must not recreate the cursor where A first found it and
    tell old events again: the rule is told from A's next pass on, as a rule new to the town."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    without = desired(tmp_path / "b", valkey_url, town_name, "")
    sb = Session(TownPaths(tmp_path / "b"))
    hb = Host(sb, leader=False)
    nb = Notifier(hb)
    a_rule = rule(hook, "a", '"task.failed"')
    with leading(tmp_path / "a", valkey_url, town_name, a_rule) as (sa, ha, na, with_rule):
        sa.event("task.failed", task="one", agent="dev", error="boom")
        na.check(sa, with_rule)
        until(lambda: told(hook, "/a") == [("task.failed", "one")], 30, "one")
        # B leads a while: it drops the rule's cursor.
        ha.leader, sa.fence = False, ""
        sa.resign_leader("me")
        _, epoch = sb.store.hold_leader("B", 30)
        hb.leader, sb.store.fence = True, f"e:{epoch}"
        nb.check(sb.store, without)
        assert sb.store.client.hkeys(sb.store.keys.notify) == []
        sb.store.event("task.failed", task="two", agent="dev", error="boom")  # under B: untold
        hb.leader, sb.store.fence = False, ""
        sb.store.resign_leader("B")
        sb.close()
        # A leads again; its thread looks before A's first pass has read the files.
        _, epoch = sa.hold_leader("me", 30)
        ha.leader, sa.fence = True, f"e:{epoch}"
        (worker,) = na.workers.values()
        rounds = worker.rounds
        until(lambda: worker.rounds > rounds + 3, 30, "A's worker looked again")
        assert sa.client.hkeys(sa.keys.notify) == []  # not recreated by the thread
        na.check(sa, with_rule)  # A's pass: the rule is new to the town again
        sa.event("task.failed", task="three", agent="dev", error="boom")
        until(lambda: len(told(hook, "/a")) == 2, 30, "three told")
        assert told(hook, "/a") == [("task.failed", "one"), ("task.failed", "three")]


def test_events_the_capped_stream_dropped_before_a_rule_passed_them_are_said_lost(
    tmp_path: Path, valkey_url: str, town_name: str, hook: Hook
) -> None:
    """Review #2: a rule left behind by more than the stream keeps (no watcher ran while a big
    town ran) is told that events were dropped unseen (`notify.failed`, a line of the loop's),
    once, and goes on from the oldest event kept."""
    a_rule = rule(hook, "a", '"task.failed"')
    with leading(tmp_path, valkey_url, town_name, a_rule) as (store, host, notifier, wanted):
        # (the apply brought the rule; no watcher runs yet)
        for i in range(5):
            store.event("task.failed", task=f"lost{i}", agent="dev", error="boom")
        with store.client.pipeline(transaction=False) as pipe:  # the rest of a big town's run
            for i in range(EVENTS_MAXLEN + 500):
                pipe.xadd(
                    store.keys.events,
                    {"type": "task.ready", "task": f"x{i}"},
                    maxlen=EVENTS_MAXLEN,
                    approximate=True,
                )
            pipe.execute()
        oldest, dropped = store.events_start()
        key = wanted.notify[0].key()
        assert dropped and stream_id(oldest) > stream_id(str(store.notify_position(key)))
        store.event("task.failed", task="kept", agent="dev", error="boom")
        notifier.check(store, wanted)
        until(lambda: told(hook, "/a") == [("task.failed", "kept")], 60, "kept told")
        (lost,) = [f for _, f in store.events_since("-", 20_000) if f["type"] == "notify.failed"]
        assert lost["sink"] == f"webhook {hook.url}/…" and lost["before"] == oldest
        assert "dropped" in lost["error"] and "task.failed" in lost["on"]
        (line,) = host.said
        assert line["kind"] == "notify" and oldest in line["detail"]
