"""The applied revision on real git repositories (committed, dirty, outside git, a CI's detached
checkout), what the store keeps of it (fakeredis), and the sync line `tt status` starts with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.control import revision
from reconciler.control.syncstatus import attempt_text, line_parts, sync_report, sync_text
from reconciler.plan.actions import DeleteTask, Plan
from reconciler.store.client import Store
from reconciler.store.revisions import HISTORY_MAX
from reconciler.town import TownPaths

ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(cwd: Path, *args: str) -> str:
    import os

    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def town(tmp_path: Path) -> TownPaths:
    """A town in `deploy/` of a repository with one commit of both files, on branch main."""
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    paths = TownPaths(repo / "deploy")
    paths.town_file.write_text('[town]\nname = "t"\n')
    paths.tasks_file.write_text('[[tasks]]\nid = "a"\ndescription = "x"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "town")
    return paths


def test_committed_files_are_their_commit_and_branch(town: TownPaths) -> None:
    head = git(town.root, "rev-parse", "HEAD")
    digests = revision.file_digests(town)
    rev = revision.of_files(town.root, digests, now=100.0)
    assert rev["sha"] == head and rev["short"] == head[:7]
    assert (rev["branch"], rev["dirty"], rev["digests"], rev["at"]) == (
        "main",
        False,
        digests,
        100.0,
    )


def test_an_edit_not_committed_is_dirty_on_top_of_head(town: TownPaths) -> None:
    head = git(town.root, "rev-parse", "HEAD")
    town.tasks_file.write_text('[[tasks]]\nid = "b"\ndescription = "y"\n')
    rev = revision.of_files(town.root, revision.file_digests(town))
    assert (rev["sha"], rev["dirty"], rev["changed"]) == (head, True, ["tasks.toml"])
    # Staged is not committed either; an untracked tasks.toml neither.
    git(town.root, "add", "tasks.toml")
    assert revision.of_files(town.root, {})["dirty"] is True


def test_outside_git_only_the_digests(tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    paths.town_file.write_text('[town]\nname = "t"\n')
    digests = revision.file_digests(paths)
    rev = revision.of_files(tmp_path, digests)
    assert (rev["sha"], rev["branch"], rev["dirty"], rev["digests"]) == (None, None, False, digests)


def test_a_ci_checkout_is_detached_the_branch_comes_from_its_variables(
    town: TownPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = git(town.root, "rev-parse", "HEAD")
    git(town.root, "checkout", "-q", "--detach")
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    monkeypatch.setenv("GITHUB_SHA", head)
    monkeypatch.setenv("GITHUB_REF_NAME", "release")
    rev = revision.of_files(town.root, {})
    assert (rev["sha"], rev["branch"], rev["dirty"]) == (head, "release", False)
    # A HEAD that is not the commit CI says it checked out: no branch, and a note why.
    monkeypatch.setenv("GITHUB_SHA", "0" * 40)
    rev = revision.of_files(town.root, {})
    assert rev["branch"] is None
    assert rev["note"] == f"HEAD {head[:7]} is not GITHUB_SHA 0000000"
    # GitLab's names.
    monkeypatch.delenv("GITHUB_SHA")
    monkeypatch.setenv("CI_COMMIT_SHA", head)
    monkeypatch.setenv("CI_COMMIT_REF_NAME", "main")
    assert revision.of_files(town.root, {})["branch"] == "main"


def _plan(n: int) -> Plan:
    return Plan(tuple(DeleteTask(f"t{i}", was_running=False) for i in range(n)))


def test_the_store_keeps_the_revision_attempt_and_a_capped_history(
    fake_store: Store, town: TownPaths
) -> None:
    digests = revision.file_digests(town)
    rev = revision.record_applied(
        fake_store, town.root, digests, by="tt apply", plan=_plan(2), seconds=0.5
    )
    applied, attempted, follow = fake_store.revisions()
    assert applied == rev and follow is None
    assert attempted is not None and attempted["result"] == "ok" and revision.same(attempted, rev)
    [entry] = fake_store.history()
    assert (entry["by"], entry["result"], entry["created"], entry["deleted"]) == (
        "tt apply",
        "ok",
        0,
        2,
    )
    assert entry["sha"] == rev["sha"] and entry["seconds"] == 0.5
    # The same files again, nothing to do: no history entry, the revision as it was.
    revision.record_applied(fake_store, town.root, digests, by="tt watch", plan=Plan(), seconds=0)
    assert len(fake_store.history()) == 1 and fake_store.revisions()[0] == rev
    # An invalid edit: the newest attempt, with its problems, in the history once.
    town.tasks_file.write_text("[[tasks]\n")
    for _ in range(2):
        revision.record_failed(
            fake_store,
            town,
            by="tt apply",
            result="invalid",
            problems=["tasks.toml:1: bad"],
            seconds=0,
        )
    applied, attempted, _ = fake_store.revisions()
    assert applied == rev
    assert attempted is not None and attempted["result"] == "invalid" and attempted["dirty"]
    assert attempted["problems"] == ["tasks.toml:1: bad"]
    assert [e["result"] for e in fake_store.history()] == ["invalid", "ok"]
    for n in range(HISTORY_MAX + 5):
        town.tasks_file.write_text(f"# {n}\n")
        revision.record_applied(
            fake_store,
            town.root,
            revision.file_digests(town),
            by="tt apply",
            plan=_plan(1),
            seconds=0,
        )
    assert len(fake_store.history()) == HISTORY_MAX


def test_a_commit_that_leaves_the_files_alone_moves_the_revision_without_a_history_entry(
    fake_store: Store, town: TownPaths
) -> None:
    digests = revision.file_digests(town)
    revision.record_applied(fake_store, town.root, digests, by="tt apply", plan=_plan(1), seconds=0)
    (town.root / "code.py").write_text("x = 1\n")  # a task's work merged: HEAD moves
    git(town.root, "add", "code.py")
    git(town.root, "commit", "-qm", "work")
    rev = revision.record_applied(
        fake_store, town.root, digests, by="tt watch", plan=Plan(), seconds=0
    )
    assert rev["sha"] == git(town.root, "rev-parse", "HEAD")  # synced to the new commit
    assert len(fake_store.history()) == 1  # but nothing changed in the town: no entry


def test_the_files_of_a_rolled_back_commit_keep_that_commit(
    fake_store: Store, town: TownPaths
) -> None:
    head = git(town.root, "rev-parse", "HEAD")
    town.tasks_file.write_text("")
    git(town.root, "commit", "-qam", "empty")
    town.tasks_file.write_text('[[tasks]]\nid = "a"\ndescription = "x"\n')  # as at `head`
    digests = revision.file_digests(town)
    given = revision.of_commit(head, digests)
    revision.record_applied(
        fake_store, town.root, digests, by="tt rollback", plan=_plan(1), seconds=0, given=given
    )
    # A later pass of the same bytes (dirty on top of the newer HEAD) keeps the commit.
    revision.record_applied(fake_store, town.root, digests, by="tt watch", plan=Plan(), seconds=0)
    applied = fake_store.revisions()[0]
    assert applied is not None and (applied["sha"], applied["dirty"]) == (head, False)


def test_the_sync_line(fake_store: Store, town: TownPaths) -> None:
    report = sync_report(fake_store, town)
    assert report["sync"] == "unknown" and report["revision"] is None
    assert sync_text(report).startswith("sync unknown")
    revision.record_applied(
        fake_store, town.root, revision.file_digests(town), by="tt apply", plan=_plan(1), seconds=0
    )
    report = sync_report(fake_store, town)
    rev = report["revision"]
    assert report["sync"] == "synced"
    assert line_parts(report, now=rev["at"] + 240) == [f"synced to {rev['short']} (main) 4 min ago"]
    town.tasks_file.write_text("")
    report = sync_report(fake_store, town)
    assert (report["sync"], report["out_of_sync_files"]) == ("out_of_sync", ["tasks.toml"])
    assert sync_text(report) == f"OutOfSync: tasks.toml changed since {rev['short']}"
    revision.record_applied(
        fake_store, town.root, revision.file_digests(town), by="tt apply", plan=_plan(1), seconds=0
    )
    report = sync_report(fake_store, town)
    assert report["sync"] == "synced"
    assert (
        sync_text(report) == f"applied uncommitted edits on top of {rev['short']} (main) just now"
    )
    assert attempt_text(report) is None
    revision.record_failed(
        fake_store, town, by="tt watch", result="refused", problems=["refusing"], seconds=0
    )
    assert attempt_text(sync_report(fake_store, town)) == (
        "newest attempt (tt watch, just now) was refused: refusing"
    )


def test_the_sync_line_outside_git(fake_store: Store, tmp_path: Path) -> None:
    paths = TownPaths(tmp_path)
    paths.town_file.write_text('[town]\nname = "t"\n')
    revision.record_applied(
        fake_store, tmp_path, revision.file_digests(paths), by="tt apply", plan=Plan(), seconds=0
    )
    report = sync_report(fake_store, paths)
    at = report["revision"]["at"]
    assert sync_text(report, now=at + 120) == "synced (files unchanged since applied 2 min ago)"
    paths.town_file.write_text('[town]\nname = "u"\n')
    assert sync_text(sync_report(fake_store, paths), now=at + 120) == (
        "OutOfSync: town.toml changed since applied 2 min ago"
    )


def test_a_watch_pass_records_its_revision_and_an_invalid_edit_once(
    tmp_path: Path, fake_store: Store
) -> None:
    from dataclasses import replace

    from tests.control.test_apply import TOWN, CountingSession
    from tests.control.test_loop_guards import Passes, tasks

    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(tasks("a"))
    passes = Passes(CountingSession(TownPaths(tmp_path), fake_store), settle=0.01)
    passes.loop.opts = replace(
        passes.loop.opts, apply=replace(passes.loop.opts.apply, command="tt watch")
    )
    passes.full_pass()
    applied = fake_store.revisions()[0]
    assert applied is not None and (applied["by"], applied["sha"]) == ("tt watch", None)
    passes.save(tasks("a") + '[[tasks]]\nid = "b"\n')  # no description
    passes.full_pass()
    passes.full_pass()  # the same invalid files again: said and recorded once
    _, attempted, _ = fake_store.revisions()
    assert attempted is not None and attempted["result"] == "invalid"
    assert attempted["by"] == "tt watch" and attempted["problems"]
    assert [e["result"] for e in fake_store.history()] == ["invalid", "ok"]
    assert passes.ids() == ["a"]  # the last good state kept
    passes.save("")  # would delete every task: refused, the newest attempt
    passes.full_pass()
    _, attempted, _ = fake_store.revisions()
    assert attempted is not None and attempted["result"] == "refused"
    assert "refusing to apply" in attempted["problems"][0]
    assert [e["result"] for e in fake_store.history()] == ["refused", "invalid", "ok"]


def test_a_pass_applying_the_same_given_revision_keeps_a_newer_invalid_attempt(
    fake_store: Store, town: TownPaths
) -> None:
    digests = revision.file_digests(town)
    head = git(town.root, "rev-parse", "HEAD")
    given = revision.of_commit(head, digests)
    revision.record_applied(
        fake_store, town.root, digests, by="follow", plan=_plan(1), seconds=0, given=given
    )
    bad = {**given, "sha": "b" * 40, "short": "bbbbbbb", "result": "invalid", "problems": ["x"]}
    fake_store.record_revision(None, bad, None)  # the follower found the next commit invalid
    # the watcher's next pass applies the followed copy (the same commit) again
    revision.record_applied(
        fake_store, town.root, digests, by="follow", plan=Plan(), seconds=0, given=given
    )
    attempted = fake_store.revisions()[1]
    assert attempted is not None and attempted["sha"] == "b" * 40
