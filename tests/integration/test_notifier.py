"""The notifier on its own (issue 15), on the embedded Valkey with a local webhook: only while
its loop leads does it tell (a standby tells nothing, and takes up where the leader stopped), a
rule dropped from the files stops at once, and a closing loop drains what is on the stream and
writes `town.completed` when every task is final."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.control.notifier import Notifier, register
from reconciler.control.session import Session
from reconciler.spec import loader
from reconciler.spec.desired import Desired
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


def test_only_the_leader_tells_and_a_dropped_rule_stops(
    tmp_path: Path, valkey_url: str, town_name: str, hook: Hook
) -> None:
    both = rule(hook, "a", '"task.failed"') + rule(hook, "b", '"task.failed"')
    wanted = desired(tmp_path, valkey_url, town_name, both)
    session = Session(TownPaths(tmp_path))
    store = session.store
    host = Host(session)
    notifier = Notifier(host)
    try:
        _, epoch = store.hold_leader("me", 30)
        store.fence = f"e:{epoch}"
        register(store, wanted.notify)  # what the apply bringing the rules does
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
        host.leader, store.fence = True, f"e:{epoch}"
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
        store.fence = f"e:{epoch}"
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
    finally:
        for worker in notifier.workers.values():
            worker.retired.set()
        store.client.delete(*store.client.keys(store.keys.prefix + "*"))
        session.close()
