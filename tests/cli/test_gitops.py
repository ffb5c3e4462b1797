"""`tt status`'s sync line and keys, `tt history` and `tt rollback` on a real git repository and
a real Valkey: three committed applies listed newest first, `tt rollback 2` restoring the tasks
of the commit before, and the refusals (a dirty entry, the user's edits, a followed branch)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from reconciler.store.revisions import FOLLOW
from tests.cli.inproc import DEV, town_files, tt

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x.org"}
ENV |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x.org"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def tasks(*ids: str) -> str:
    return "".join(f'[[tasks]]\nid = "{i}"\ndescription = "do {i}"\nagent = "dev"\n\n' for i in ids)


@pytest.fixture
def town(tmp_path: Path, valkey_url: str, town_name: str) -> Iterator[Path]:
    """A town in `ops/` of a repository on branch main; .tt/ ignored, nothing committed yet."""
    repo = tmp_path / "repo"
    (repo / "ops").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".tt/\n")
    yield from town_files(repo / "ops", valkey_url, town_name, DEV, tasks("a"))


def commit_and_apply(
    town: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> str:
    (town / "tasks.toml").write_text(text)
    git(town, "add", "-A", ".")
    git(town, "commit", "-q", "-m", message)
    code, _, err = tt(capsys, "apply", "--town", str(town))
    assert code == 0, err
    return git(town, "rev-parse", "HEAD")


def status_json(town: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, err = tt(capsys, "status", "--town", str(town), "-o", "json")
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_status_history_and_rollback(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = commit_and_apply(town, capsys, tasks("a"), "one")
    second = commit_and_apply(town, capsys, tasks("a", "b"), "two")
    third = commit_and_apply(town, capsys, tasks("a", "b", "c"), "three")

    code, out, _ = tt(capsys, "status", "--town", str(town))
    assert out.splitlines()[0] == f"synced to {third[:7]} (main) just now"
    data = status_json(town, capsys)
    assert data["sync"] == "synced"
    assert isinstance(data["revision"], dict)
    assert (data["revision"]["sha"], data["revision"]["branch"]) == (third, "main")
    assert data["revision"]["dirty"] is False
    assert isinstance(data["attempted_revision"], dict)
    assert data["attempted_revision"]["result"] == "ok"

    code, out, _ = tt(capsys, "history", "--town", str(town), "-o", "json")
    entries = json.loads(out)["history"]
    assert [e["sha"] for e in entries] == [third, second, first]
    assert [e["created"] for e in entries] == [1, 1, 2]  # the first created agent dev and a
    assert {e["by"] for e in entries} == {"tt apply"}
    code, out, _ = tt(capsys, "history", "--town", str(town))
    rows = out.splitlines()[1:]
    assert rows[0].split()[0] == "1" and f"{third[:7]} (main)" in rows[0]
    assert f"{first[:7]} (main)" in rows[2]

    # The files of history entry 2 (the commit `second`) come back and are applied.
    code, out, err = tt(capsys, "rollback", "2", "--town", str(town))
    assert code == 0, err
    assert f"rolled back to {second[:7]}: 0 to create, 0 to change, 1 to delete" in out
    assert (town / "tasks.toml").read_text() == tasks("a", "b")
    assert "tasks.toml" in git(town, "diff", "--name-only")  # git diff shows the rollback
    code, out, _ = tt(capsys, "status", "--town", str(town), "-o", "json")
    data = json.loads(out)
    assert [t["id"] for t in data["tasks"]] == ["a", "b"]
    assert (data["sync"], data["revision"]["sha"], data["revision"]["dirty"]) == (
        "synced",
        second,
        False,
    )
    code, out, _ = tt(capsys, "history", "--town", str(town), "-o", "json")
    newest = json.loads(out)["history"][0]
    assert (newest["by"], newest["sha"], newest["deleted"]) == ("tt rollback", second, 1)


def test_dirty_files_are_recorded_and_refused_for_rollback(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = commit_and_apply(town, capsys, tasks("a"), "one")
    (town / "tasks.toml").write_text(tasks("a", "b"))
    code, out, _ = tt(capsys, "status", "--town", str(town))
    assert out.splitlines()[0] == f"OutOfSync: tasks.toml changed since {head[:7]}"
    assert tt(capsys, "apply", "--town", str(town))[0] == 0
    code, out, _ = tt(capsys, "status", "--town", str(town))
    assert out.splitlines()[0] == f"applied uncommitted edits on top of {head[:7]} (main) just now"

    # Invalid or refused files change nothing in Redis (DESIGN.md, invariant 3): a one-shot
    # apply says why and records no attempt (a watcher's pass does: test_revision.py).
    (town / "tasks.toml").write_text("")
    code, _, err = tt(capsys, "apply", "--town", str(town))
    assert code == 1 and "refusing to apply" in err
    data = status_json(town, capsys)
    assert data["sync"] == "out_of_sync"
    tried = data["attempted_revision"]
    assert isinstance(tried, dict) and tried["result"] == "ok" and tried["dirty"] is True

    # Entry 1 (uncommitted edits) cannot be rolled back to.
    code, _, err = tt(capsys, "rollback", "1", "--town", str(town))
    assert code == 1 and f"applied uncommitted edits on top of {head[:7]}" in err
    assert f"tt rollback {head[:7]}" in err
    # The commit itself can be, but not over the user's own edits without --force.
    code, _, err = tt(capsys, "rollback", head[:7], "--town", str(town))
    assert code == 1 and "tasks.toml in" in err and "uncommitted edits" in err
    assert "--force" in err
    code, out, err = tt(capsys, "rollback", head[:7], "--force", "--town", str(town))
    assert code == 0, err
    assert "discarded uncommitted edits of tasks.toml (--force)" in out
    assert (town / "tasks.toml").read_text() == tasks("a")
    assert git(town, "status", "--porcelain", "--", ".") == ""


def test_rollback_is_refused_while_the_town_follows_a_branch(
    town: Path, capsys: pytest.CaptureFixture[str], valkey_url: str, town_name: str
) -> None:
    commit_and_apply(town, capsys, tasks("a"), "one")
    commit_and_apply(town, capsys, tasks("a", "b"), "two")
    store = Store.open(valkey_url, town_name)
    try:
        store.client.hset(store.keys.meta, FOLLOW, "origin/main")
    finally:
        store.close()
    code, _, err = tt(capsys, "rollback", "2", "--town", str(town))
    assert code == 1
    assert "follows origin/main" in err and "git revert" in err
    assert (town / "tasks.toml").read_text() == tasks("a", "b")


def test_rollback_keeps_what_force_overwrites_and_refuses_when_git_cannot_tell(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = commit_and_apply(town, capsys, tasks("a"), "one")
    second = commit_and_apply(town, capsys, tasks("a", "b"), "two")
    (town / "tasks.toml").write_text(tasks("a", "b", "mine"))
    code, out, err = tt(capsys, "rollback", first[:7], "--force", "--town", str(town))
    assert code == 0, err
    [line] = [x for x in out.splitlines() if x.startswith("kept a copy of the files")]
    saved = Path(line.rsplit(" in ", 1)[1])
    assert saved.parent == town / ".tt" / "rollback"
    assert (saved / "tasks.toml").read_text() == tasks("a", "b", "mine")
    assert (saved / "town.toml").read_text() == (town / "town.toml").read_text()

    # The files are the applied rollback's bytes, not edits: a second rollback needs no --force.
    code, out, err = tt(capsys, "rollback", second[:7], "--town", str(town))
    assert code == 0, err
    assert (town / "tasks.toml").read_text() == tasks("a", "b")

    # git status fails (a corrupt index): edits may be there, so nothing is overwritten.
    (town / "tasks.toml").write_text(tasks("a", "mine"))
    index = town.parent / ".git" / "index"
    index.write_bytes(b"not an index")
    code, _, err = tt(capsys, "rollback", first[:7], "--town", str(town))
    assert code == 1 and "git status failed" in err, err
    assert (town / "tasks.toml").read_text() == tasks("a", "mine")
