"""Custody on real git repositories (fakeredis for the task records): `inventory` finds every
worktree, branch and kept ref of the town with its task's state; `gc` removes only what holds
nothing unmerged, `force` saves first, a task that may still run is never touched."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from reconciler.spec.desired import Policy
from reconciler.spec.gitsettings import GitSettings, MergeMode
from reconciler.store.client import Store
from reconciler.work import WorkProducts
from reconciler.work.custody import Custody, Product, open_custody
from reconciler.work.sweep import Action
from tests.work.gitrepo import git, make_repo, running_task


def never() -> bool:
    return False


def setup(tmp_path: Path, store: Store, **settings: object) -> tuple[Path, WorkProducts, Custody]:
    from reconciler.agents.gitwork import Checks

    repo = make_repo(tmp_path / "r")
    git_settings = GitSettings(**settings)  # type: ignore[arg-type]
    wp = WorkProducts(repo / ".tt", repo, "demo", git_settings, store, Checks())
    return repo, wp, open_custody(repo / ".tt", repo, "demo", git_settings, store)


def begin(wp: WorkProducts, store: Store, task: str, writes: dict[str, str]) -> Path:
    """A running task whose 'model' wrote `writes` in its worktree (not committed)."""
    running_task(store, task, f"t-{task}")
    tree = wp.start(task, 1, f"t-{task}").tree
    for name, text in writes.items():
        (tree / name).write_text(text)
    return tree


def committed(wp: WorkProducts, store: Store, task: str, writes: dict[str, str]) -> Path:
    """Its writes committed on its branch (manual mode: kept there, not merged)."""
    tree = begin(wp, store, task, writes)
    assert wp.finish(task, 1, f"t-{task}", f"do {task}", "did", never).ok
    return tree


def fail(store: Store, task: str) -> None:
    assert store.fail(task, f"t-{task}", "model died", True, Policy()) == "failed"


def cancel(store: Store, task: str) -> None:
    store.upsert_tasks([{"id": task, "mode": "cancel"}], 2)


def by_task(products: Sequence[Product]) -> dict[str, Product]:
    return {p.task: p for p in products}


def lines(actions: Sequence[Action]) -> list[str]:
    return [a.line() for a in actions]


def snapshot(repo: Path) -> tuple[str, str, list[str]]:
    """Every ref, every worktree and every file under .tt/git/trees: what gc may change."""
    trees = repo / ".tt" / "git" / "trees"
    files = sorted(str(p.relative_to(trees)) for p in trees.rglob("*") if ".git" not in p.parts)
    return git(repo, "for-each-ref"), git(repo, "worktree", "list", "--porcelain"), files


def test_a_merged_clean_worktree_is_removed_with_its_branch(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL)
    tree = committed(wp, fake_store, "a", {"a.txt": "alpha\n"})
    assert fake_store.complete("a", "t-a", "did")
    git(repo, "merge", "-q", "--ff-only", "tt/demo/a")  # the user merged it
    row = by_task(custody.inventory())["a"]
    assert (row.path, row.branch, row.state) == (tree, "tt/demo/a", "completed")
    assert (row.dirty, row.ahead, row.behind, row.merged, row.verdict) == (0, 0, 0, True, "safe")
    assert lines(custody.gc()) == [f"removed worktree {tree}", "removed branch tt/demo/a"]
    assert not tree.exists()
    assert git(repo, "branch", "--list", "tt/*") == ""
    assert str(tree) not in git(repo, "worktree", "list")
    assert custody.inventory() == []


def test_keep_branches_keeps_a_merged_branch_but_not_its_worktree(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL, keep_branches=True)
    tree = committed(wp, fake_store, "a", {"a.txt": "alpha\n"})
    assert fake_store.complete("a", "t-a", "did")
    git(repo, "merge", "-q", "--ff-only", "tt/demo/a")
    assert lines(custody.gc()) == [
        f"removed worktree {tree}",
        "kept branch tt/demo/a (keep_branches)",
    ]
    assert git(repo, "rev-parse", "--verify", "refs/heads/tt/demo/a")


def test_a_branch_merged_by_the_queue_as_rebased_copies_counts_as_merged(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, keep_branches=True)
    begin(wp, fake_store, "a", {"a.txt": "alpha\n"})
    begin(wp, fake_store, "b", {"b.txt": "beta\n"})
    assert wp.finish("a", 1, "t-a", "do a", "did", never).ok
    assert wp.finish("b", 1, "t-b", "do b", "did", never).ok  # rebased onto a's merge
    assert fake_store.complete("a", "t-a", "did") and fake_store.complete("b", "t-b", "did")
    head = git(repo, "rev-parse", "tt/demo/b")
    assert git(repo, "merge-base", "main", head) != head  # not an ancestor of main
    row = by_task(custody.inventory())["b"]
    assert (row.path, row.ahead, row.merged, row.verdict) == (None, 1, True, "safe")
    assert lines(custody.gc()) == [
        "kept branch tt/demo/a (keep_branches)",
        "kept branch tt/demo/b (keep_branches)",
    ]


def test_gc_never_deletes_unmerged_or_dirty_work(tmp_path: Path, fake_store: Store) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL)
    unmerged = committed(wp, fake_store, "unmerged", {"u.txt": "u\n"})
    assert fake_store.complete("unmerged", "t-unmerged", "did")
    half = begin(wp, fake_store, "half", {"h.txt": "half done\n"})  # its agent died
    fail(fake_store, "half")
    changed = begin(wp, fake_store, "changed", {"c.txt": "c\n"})
    cancel(fake_store, "changed")
    clean = committed(wp, fake_store, "clean", {"k.txt": "k\n"})
    cancel(fake_store, "clean")
    pruned = committed(wp, fake_store, "pruned", {"p.txt": "p\n"})
    assert fake_store.delete_tasks(["pruned"]) == 1

    rows = by_task(custody.inventory())
    assert {t: r.state for t, r in rows.items()} == {
        "changed": "cancelled",
        "clean": "cancelled",
        "half": "failed",
        "pruned": "deleted",
        "unmerged": "completed",
    }
    assert (rows["half"].dirty, rows["half"].reason) == (1, "1 uncommitted change(s)")
    assert (rows["unmerged"].ahead, rows["unmerged"].merged) == (1, False)
    assert rows["pruned"].reason == "1 commit(s) not in main"
    assert all(r.verdict == "keep" for r in rows.values())

    done = lines(custody.gc())
    assert f"kept worktree {unmerged} (1 commit(s) not in main)" in done
    assert "kept branch tt/demo/unmerged (1 commit(s) not in main)" in done
    assert f"kept worktree {half} (1 uncommitted change(s))" in done
    assert f"kept worktree {changed} (1 uncommitted change(s))" in done
    assert f"kept worktree {pruned} (1 commit(s) not in main)" in done
    # cancelled and clean: its worktree goes, its unmerged branch stays
    assert f"removed worktree {clean}" in done
    assert "kept branch tt/demo/clean (1 commit(s) not in main)" in done
    assert not any(line.startswith("removed branch") for line in done)
    assert (half / "h.txt").read_text() == "half done\n"
    assert (changed / "c.txt").read_text() == "c\n"
    assert git(repo, "show", "tt/demo/clean:k.txt") == "k"
    for task in ("unmerged", "half", "changed", "clean", "pruned"):
        assert git(repo, "rev-parse", "--verify", f"refs/heads/tt/demo/{task}")


def test_dry_run_changes_nothing_and_says_what_it_would_do(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL)
    merged = committed(wp, fake_store, "merged", {"m.txt": "m\n"})
    assert fake_store.complete("merged", "t-merged", "did")
    git(repo, "merge", "-q", "--ff-only", "tt/demo/merged")
    dirty = begin(wp, fake_store, "dirty", {"d.txt": "d\n"})
    fail(fake_store, "dirty")
    before = snapshot(repo)
    plain = lines(custody.gc(dry_run=True))
    forced = lines(custody.gc(dry_run=True, force=True))
    assert snapshot(repo) == before
    assert plain == [
        f"kept worktree {dirty} (1 uncommitted change(s))",
        "kept branch tt/demo/dirty (its worktree stays)",
        f"would remove worktree {merged}",
        "would remove branch tt/demo/merged",
    ]
    assert forced[:3] == [
        "would salvage ref refs/tt/demo/dirty/salvage (1 uncommitted change(s))",
        f"would remove worktree {dirty} (saved first)",
        "would remove branch tt/demo/dirty",
    ]


def test_force_saves_uncommitted_changes_and_unmerged_commits_then_removes(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL)
    tree = committed(wp, fake_store, "a", {"a.txt": "committed\n"})
    head = git(repo, "rev-parse", "tt/demo/a")
    (tree / "a.txt").write_text("committed\nthen changed\n")
    (tree / "new.txt").write_text("untracked\n")
    cancel(fake_store, "a")
    git(tree, "add", "a.txt")  # half staged: the tree's index must not matter
    orphan = git(repo, "commit-tree", "-p", "main", "-m", "by hand", "main^{tree}")
    git(repo, "update-ref", "refs/heads/tt/demo/ghost", orphan)  # a branch without a task

    done = lines(custody.gc(force=True))
    assert done == [
        "salvaged ref refs/tt/demo/a/salvage (2 uncommitted change(s))",
        f"removed worktree {tree} (saved first)",
        "removed branch tt/demo/a (saved first)",
        "salvaged ref refs/tt/demo/ghost/salvage (commit " + orphan[:12] + ")",
        "removed branch tt/demo/ghost (saved first)",
    ]
    saved = "refs/tt/demo/a/salvage"
    assert git(repo, "show", f"{saved}:a.txt") == "committed\nthen changed"
    assert git(repo, "show", f"{saved}:new.txt") == "untracked"
    assert git(repo, "rev-parse", f"{saved}^") == head  # the unmerged commit under it
    assert "Tt-Task: a" in git(repo, "log", "-1", "--format=%B", saved)
    assert git(repo, "rev-parse", "refs/tt/demo/ghost/salvage") == orphan
    assert not tree.exists() and git(repo, "branch", "--list", "tt/*") == ""
    # the salvage refs are listed (kept: not in main) and a second gc keeps them
    rows = by_task(custody.inventory())
    assert rows["a"].kept == (saved,) and rows["a"].state == "cancelled"
    assert f"kept ref {saved} (not in main)" in lines(custody.gc(force=True))


def test_a_running_task_is_never_touched_even_by_force(tmp_path: Path, fake_store: Store) -> None:
    repo, wp, custody = setup(tmp_path, fake_store)
    tree = begin(wp, fake_store, "busy", {"b.txt": "in progress\n"})
    row = by_task(custody.inventory())["busy"]
    assert (row.state, row.dirty, row.verdict, row.reason) == ("running", 1, "keep", "task running")
    assert lines(custody.gc(force=True)) == [
        f"kept worktree {tree} (task running)",
        "kept branch tt/demo/busy (task running)",
    ]
    assert (tree / "b.txt").read_text() == "in progress\n"
    assert git(repo, "for-each-ref", "refs/tt/") == ""


def test_orphans_are_found_a_deleted_folder_a_stray_folder_a_branch_without_task(
    tmp_path: Path, fake_store: Store
) -> None:
    repo, wp, custody = setup(tmp_path, fake_store, merge=MergeMode.MANUAL)
    gone = committed(wp, fake_store, "gone", {"g.txt": "g\n"})
    assert fake_store.complete("gone", "t-gone", "did")
    shutil.rmtree(gone)  # deleted by hand (or a crash)
    git(repo, "branch", "tt/demo/ghost", "main")  # a branch of a task that never was
    lost = git(repo, "commit-tree", "-p", "main", "-m", "lost", "main^{tree}")
    git(repo, "update-ref", "refs/heads/tt/demo/lost", lost)
    trees = repo / ".tt" / "git" / "trees"
    (trees / "empty").mkdir()
    (trees / "stray").mkdir()
    (trees / "stray" / "notes.txt").write_text("mine\n")

    rows = by_task(custody.inventory())
    assert set(rows) == {"gone", "ghost", "lost", "empty", "stray"}
    assert rows["gone"].missing and rows["gone"].reason == "branch kept: 1 commit(s) not in main"
    assert (rows["ghost"].state, rows["ghost"].verdict) == ("orphan", "safe")
    assert rows["lost"].reason == "no task owns it; 1 commit(s) not in main"
    assert rows["stray"].stray and rows["stray"].verdict == "keep"
    assert rows["empty"].verdict == "safe"

    done = lines(custody.gc())
    assert done == [
        f"removed folder {trees / 'empty'} (empty)",
        "removed branch tt/demo/ghost",
        f"removed registration {gone} (its folder was deleted)",
        "kept branch tt/demo/gone (1 commit(s) not in main)",
        "kept branch tt/demo/lost (no task owns it; 1 commit(s) not in main)",
        f"kept folder {trees / 'stray'} (no task owns it; not a worktree of the repository: "
        "look inside, then remove it)",
    ]
    assert str(gone) not in git(repo, "worktree", "list")
    assert (trees / "stray" / "notes.txt").exists()
    assert git(repo, "rev-parse", "tt/demo/gone") and git(repo, "rev-parse", "tt/demo/lost")
