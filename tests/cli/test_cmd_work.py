"""`tt worktrees` and `tt gc` on a town with [git] (a real repository, a real Redis): an orphan
worktree with a change and a merged branch of a pruned-and-forgotten task are listed, `--dry-run`
changes nothing, gc keeps the changed tree, `--force` saves it first; a town without [git] gets
one line saying to add it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.inproc import DEV, town_files, tt
from tests.work.gitrepo import git, make_repo


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    root = make_repo(tmp_path / "town")
    yield from town_files(root, redis_url, town_name, f'[git]\nbase = "main"\n\n{DEV}', "")


def test_worktrees_and_gc_of_orphans(
    town: Path, town_name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the GC column in full
    tree = town / ".tt" / "git" / "trees" / "ghost"
    git(town, "worktree", "add", "-q", "-b", f"tt/{town_name}/ghost", str(tree), "main")
    (tree / "wip.txt").write_text("work in progress\n")
    git(town, "branch", f"tt/{town_name}/done", "main")  # merged: nothing to lose

    code, out, err = tt(capsys, "worktrees", "--town", str(town))
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == [
        "TASK", "NODE", "PATH", "BRANCH", "STATE", "DIRTY", "AHEAD/BEHIND", "MERGED", "GC"
    ]  # fmt: skip
    assert rows[0].split()[:8] == [
        "done", "-", "-", f"tt/{town_name}/done", "orphan", "-", "0/0", "yes"
    ]  # fmt: skip
    ghost = rows[1].split()
    assert ghost[:8] == [
        "ghost", "-", ".tt/git/trees/ghost", f"tt/{town_name}/ghost", "orphan", "1", "0/0", "yes"
    ]  # fmt: skip
    assert "keep: no task owns it; 1 uncommitted change(s)" in rows[1]

    code, out, _ = tt(capsys, "worktrees", "--town", str(town), "-o", "json")
    listed = json.loads(out)
    assert listed["base"] == "main"
    assert [(w["task"], w["dirty"], w["verdict"], w["node"]) for w in listed["worktrees"]] == [
        ("done", None, "safe", None),
        ("ghost", 1, "keep", None),
    ]

    code, out, err = tt(capsys, "gc", "--dry-run", "--town", str(town))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"would remove branch tt/{town_name}/done",
        f"kept worktree {tree} (no task owns it; 1 uncommitted change(s))",
        f"kept branch tt/{town_name}/ghost (its worktree stays)",
    ]
    assert git(town, "rev-parse", "--verify", f"refs/heads/tt/{town_name}/done")

    code, out, _ = tt(capsys, "gc", "--town", str(town))
    assert code == 0 and out.splitlines()[0] == f"removed branch tt/{town_name}/done"
    assert (tree / "wip.txt").read_text() == "work in progress\n"

    code, out, _ = tt(capsys, "gc", "--force", "--town", str(town), "-o", "json")
    assert code == 0
    done = [(a["action"], a["kind"], a["name"]) for a in json.loads(out)["actions"]]
    assert done == [
        ("salvaged", "ref", f"refs/tt/{town_name}/ghost/salvage"),
        ("removed", "worktree", str(tree)),
        ("removed", "branch", f"tt/{town_name}/ghost"),
    ]
    saved = f"refs/tt/{town_name}/ghost/salvage:wip.txt"
    assert git(town, "show", saved) == "work in progress"
    assert not tree.exists()


def test_a_town_without_git_is_told_to_add_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "town.toml").write_text(f'[town]\nname = "plain"\n\n{DEV}')
    (tmp_path / "tasks.toml").write_text("")
    for command in ("worktrees", "gc"):
        code, out, err = tt(capsys, command, "--town", str(tmp_path))
        assert code != 0 and out == ""
        assert err.splitlines() == [
            f"error: {tmp_path / 'town.toml'} has no [git] table: add [git] to town.toml to "
            "give each task a branch and worktree"
        ]
    assert not (tmp_path / ".tt" / "data").exists()  # no embedded server was started


def test_a_nodes_workspace_is_judged_with_workspace_not_shown_stray(
    town: Path,
    town_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a node run with --town DIR --workspace W: its trees sit under DIR/.tt, worktrees of W
    monkeypatch.delenv("TT_WORKSPACE", raising=False)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(town), str(clone))
    tree = town / ".tt" / "git" / "trees" / "far"
    git(clone, "worktree", "add", "-q", "-b", f"tt/{town_name}/far", str(tree), "main")
    (tree / "wip.txt").write_text("node's work\n")

    code, out, _ = tt(capsys, "worktrees", "--town", str(town), "-o", "json")
    [row] = json.loads(out)["worktrees"]
    assert code == 0 and "not a worktree of the repository" in row["reason"]  # DIR's

    for args in (["--workspace", str(clone)], []):
        if not args:
            monkeypatch.setenv("TT_WORKSPACE", str(clone))  # (a node's agents have it)
        code, out, _ = tt(capsys, "worktrees", "--town", str(town), *args, "-o", "json")
        [row] = json.loads(out)["worktrees"]
        assert code == 0 and row["branch"] == f"tt/{town_name}/far", row
        assert (row["dirty"], row["verdict"]) == (1, "keep") and "not a worktree" not in row[
            "reason"
        ]
    code, out, _ = tt(capsys, "gc", "--town", str(town), "--workspace", str(clone))
    assert code == 0 and (tree / "wip.txt").is_file()
    code, _, err = tt(capsys, "gc", "--town", str(town), "--workspace", str(tmp_path / "none"))
    assert code != 0 and "not the top folder of a git clone" in err
