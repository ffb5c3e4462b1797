"""The leader's merge thread for the nodes (`control/mergework.py`; real Redis, real git in temp
folders): it writes through a store of its own fenced to the epoch it started under, and looks at
the lead again before it pushes or moves base. A leader that lost the lead while a check ran
(the loop then clears its own store's fence) merges nothing: base and the remote stay, the task
is not recorded merged, and the report says a newer leader holds the town."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from reconciler.control.mergework import NodeMerges
from reconciler.spec.gitsettings import GitSettings
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401
from tests.work.gitrepo import git, make_repo
from tests.work.test_remote_queue import node_products, pushed_by_the_node


def until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_leader_that_lost_the_lead_during_the_checks_merges_nothing(
    tmp_path: Path, server_store: Store
) -> None:
    store = server_store
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(make_repo(tmp_path / "seed")), str(remote))
    for name in ("here", "far"):
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
    here = tmp_path / "here"
    pushed_by_the_node(node_products(tmp_path / "far", store), "a", "t1")

    started, go = tmp_path / "check-started", tmp_path / "go"
    # the check says it runs, then waits (bounded) for the test to let it end
    check = (
        f"touch {started}; i=0; "
        f"while [ ! -f {go} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
    )
    settings = GitSettings(push="origin", checks=(check,))
    desired = SimpleNamespace(git=settings, town=SimpleNamespace(name="demo"))
    status, epoch = store.hold_leader("loop-a", 30)
    assert status > 0
    store.fence = f"e:{epoch}"
    reports: list[tuple[str, dict[str, str]]] = []
    host = SimpleNamespace(
        s=SimpleNamespace(store=store, paths=TownPaths(here)),
        leader=True,
        stop=threading.Event(),
        report=lambda kind, fields: reports.append((kind, fields)),
    )
    merges = NodeMerges(host)  # type: ignore[arg-type]
    merges.check(desired)  # type: ignore[arg-type]
    until(started.exists, 60, "the check to start")

    # Meanwhile the lease ran out and another loop took the lead; this loop stands by (it
    # clears its store's fence and its flag, as the loop does).
    store.client.delete(store.keys.leader)
    assert store.hold_leader("loop-b", 30) == (2, epoch + 1)
    store.fence, host.leader = "", False
    main, remote_main = git(here, "rev-parse", "main"), git(remote, "rev-parse", "main")
    go.touch()
    assert merges.thread is not None
    merges.thread.join(timeout=60)
    assert not merges.thread.is_alive()

    assert store.git_record("a").get("git_stage") != "merged"
    assert git(remote, "rev-parse", "main") == remote_main  # nothing pushed
    assert git(here, "rev-parse", "main") == main  # base not moved
    assert any("newer leader" in fields.get("detail", "") for _, fields in reports), reports


class Counting:
    """A client that counts the commands sent on their own (a pipeline's are sent as one)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.sent = inner, 0

    def __getattr__(self, name: str) -> object:
        found = getattr(self.inner, name)
        if not callable(found) or name in ("pipeline", "register_script"):
            return found

        def counted(*args: object, **kw: object) -> object:
            self.sent += 1
            return found(*args, **kw)

        return counted


def test_looking_at_a_long_queue_takes_two_round_trips(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
) -> None:
    from tests.work.gitrepo import running_task

    for i in range(40):  # the leader host's own tasks, queued: no thread is needed for them
        running_task(fake_store, f"t{i}", f"k{i}")
        fake_store.merge_enqueue(f"t{i}")
    counting = Counting(fake_store.client)
    store = Store.from_client(counting, fake_store.town)
    store.fence = "e:1"
    host = SimpleNamespace(
        s=SimpleNamespace(store=store, paths=TownPaths(tmp_path)),
        leader=True,
        stop=threading.Event(),
        report=lambda kind, fields: None,
    )
    desired = SimpleNamespace(git=GitSettings(), town=SimpleNamespace(name="demo"))
    merges = NodeMerges(host)  # type: ignore[arg-type]
    merges.check(desired)  # type: ignore[arg-type]
    assert merges.thread is None
    assert counting.sent <= 2, counting.sent
