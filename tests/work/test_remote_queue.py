"""The leader's merge queue with `[git] push` (`work/queue.py`, `work/remote.py`; fakeredis for
the records, real git in temp folders): base is fetched from the remote and built on before the
merge, pushed by compare-and-swap before the merge is recorded; a refused push records nothing
and drops nothing (the head waits with git's own `! [rejected]` line, merged at the next pass);
a leader on another host whose local base is behind loses none of the earlier merges."""

from __future__ import annotations

from pathlib import Path

from reconciler.agents.gitwork import Checks
from reconciler.spec.gitsettings import GitSettings
from reconciler.store.client import Store
from reconciler.work import WorkProducts
from reconciler.work.queue import MergeQueue
from tests.work.gitrepo import git, log_subjects, make_repo, running_task


def never() -> bool:
    return False


def clones(tmp_path: Path, *names: str) -> tuple[Path, ...]:
    """A bare remote with one commit on main, and a clone of it per name."""
    seed = make_repo(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    made = []
    for name in names:
        git(tmp_path, "clone", "-q", str(remote), str(tmp_path / name))
        made.append(tmp_path / name)
    return (remote, *made)


def leader(folder: Path, store: Store, checks: tuple[str, ...] = ()) -> WorkProducts:
    settings = GitSettings(push="origin", checks=checks)
    return WorkProducts(folder / ".tt", folder, "demo", settings, store, Checks())


def events(store: Store, etype: str) -> list[dict[str, str]]:
    return [e for _, e in store.events_since("-", 1000) if e["type"] == etype]


def do_task(wp: WorkProducts, task: str, token: str, name: str, text: str) -> None:
    """One attempt up to its commit: the 'model' writes `name`; finish is the caller's."""
    running_task(wp.store, task, token)
    started = wp.start(task, 1, token)
    (started.tree / name).write_text(text)


def test_a_leader_behind_the_remote_builds_on_the_remotes_base_and_loses_no_merge(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, first, second = clones(tmp_path, "first", "second")
    # the first leader's host merges a and pushes main; then the lead moves to another host
    a = leader(first, fake_store)
    do_task(a, "a", "t1", "a.txt", "alpha\n")
    assert a.finish("a", 1, "t1", "do a", "did a", never).ok
    assert git(remote, "rev-parse", "main") == git(first, "rev-parse", "main")
    # ... whose local main never saw a's merge: it builds b on the remote's main
    b = leader(second, fake_store)
    do_task(b, "b", "t2", "b.txt", "beta\n")
    done = b.finish("b", 1, "t2", "do b", "did b", never)
    assert done.ok, done.text
    assert log_subjects(remote, "main")[:2] == ["b: do b", "a: do a"]
    assert git(second, "rev-parse", "main") == git(remote, "rev-parse", "main")
    assert git(remote, "show", "main:a.txt") == "alpha"  # nothing lost
    assert not events(fake_store, "git.push_failed")
    assert fake_store.git_record("b")["git_merged"] == git(remote, "rev-parse", "main")


def test_a_push_refused_records_no_merge_and_the_next_pass_merges_on_the_new_base(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, here, other = clones(tmp_path, "here", "other")
    # The check pushes another commit to the remote's main once, while the step runs (the
    # remote moves between the fetch and the push): the compare-and-swap is refused.
    marker = tmp_path / "pushed-once"
    theirs = (
        f"test -f {marker} || {{ touch {marker} && "
        f"git -C {other} -c user.name=o -c user.email=o@x commit -q --allow-empty -m theirs && "
        f"git -C {other} push -q origin main; }}"
    )
    wp = leader(here, fake_store, checks=(theirs,))
    do_task(wp, "a", "t1", "a.txt", "alpha\n")
    before = git(here, "rev-parse", "main")
    queued = wp.finish("a", 1, "t1", "do a", "did a", lambda: True)
    assert queued.stopped  # (the worker was told to stop: the queue is worked below)
    assert MergeQueue(wp).work() == "blocked"

    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "waiting" and "git_merged" not in rec
    assert "! [rejected]" in rec["git_note"], rec["git_note"]
    refused = events(fake_store, "git.push_failed")
    assert len(refused) == 1 and "! [rejected]" in refused[0]["error"]
    assert git(here, "rev-parse", "main") == before  # base not moved for a refused push
    assert log_subjects(remote, "main")[0] == "theirs"
    assert fake_store.merge_queue() == ["a"]

    assert MergeQueue(wp).work(until="a") == "through"
    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "merged"
    assert log_subjects(remote, "main")[:2] == ["a: do a", "theirs"]
    assert git(here, "rev-parse", "main") == git(remote, "rev-parse", "main") == rec["git_merged"]


def node_products(folder: Path, store: Store) -> WorkProducts:
    settings = GitSettings(push="origin")
    return WorkProducts(folder / ".tt", folder, "demo", settings, store, Checks(), node="far")


def pushed_by_the_node(node: WorkProducts, task: str, token: str) -> str:
    """The node's attempt: committed, pushed and queued (its worker then told to stop)."""
    do_task(node, task, token, f"{task}.txt", f"{task} from far\n")
    assert node.finish(task, 1, token, f"do {task}", f"did {task}", lambda: True).stopped
    return node.store.git_record(task)["git_head"]


def test_a_nodes_branch_is_fetched_into_tts_own_ref_even_where_that_branch_is_checked_out(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, here, far = clones(tmp_path, "here", "far")
    # the leader's host has the task's branch checked out in a worktree (an earlier attempt
    # of it ran here): git refuses to fetch into a branch checked out anywhere
    git(here, "worktree", "add", "-q", "-b", "tt/demo/a", str(tmp_path / "old-tree"))
    head = pushed_by_the_node(node_products(far, fake_store), "a", "t1")
    wp = leader(here, fake_store)
    assert MergeQueue(wp).work(until="a") == "through"
    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "merged", rec.get("git_note")
    assert git(remote, "show", "main:a.txt") == "a from far"
    assert git(here, "rev-parse", "tt/demo/a") != head  # the user's branch untouched
    assert git(here, "for-each-ref", "refs/tt/") == ""  # the fetched copy dropped once merged
    assert git(remote, "for-each-ref", "refs/heads/tt/") == ""


def test_a_fetch_that_fails_waits_without_spending_a_retry_and_merges_once_it_works(
    tmp_path: Path, fake_store: Store
) -> None:
    remote, here, far = clones(tmp_path, "here", "far")
    pushed_by_the_node(node_products(far, fake_store), "a", "t1")
    wp = leader(here, fake_store)
    git(here, "remote", "set-url", "origin", str(tmp_path / "away.git"))  # the remote away
    assert MergeQueue(wp).work(until="a") == "blocked"
    rec = fake_store.git_record("a")
    assert rec["git_stage"] == "waiting" and rec["state"] == "running"
    assert rec["git_note"].startswith("cannot fetch tt/demo/a from origin:"), rec["git_note"]
    assert not events(fake_store, "git.merge_failed")
    assert fake_store.merge_queue() == ["a"]

    git(here, "remote", "set-url", "origin", str(remote))  # back
    assert MergeQueue(wp).work(until="a") == "through"
    assert fake_store.git_record("a")["git_stage"] == "merged"
    assert git(remote, "show", "main:a.txt") == "a from far"
