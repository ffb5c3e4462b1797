"""The one door to git: where a folder sits in a work tree, its remote, one spelling of a
remote's URL for every clone, and worktrees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.errors import TtError
from reconciler.git import add_worktree, branch_of, checkout_of, normalize_remote


def git(repo: Path, *args: str) -> None:
    base = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*base, *args], check=True, capture_output=True)


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("hi\n")
    git(path, "add", "README")
    git(path, "commit", "-qm", "x")
    return path


@pytest.mark.parametrize(
    "url",
    [
        "git@example.org:acme/app.git",
        "git@example.org:acme/app",
        "ssh://git@example.org/acme/app.git",
        "ssh://git@example.org:22/acme/app.git",
        "https://example.org/acme/app.git",
        "https://ci-token:secret@EXAMPLE.org/acme/app.git/",
        "git://example.org/acme/app",
    ],
)
def test_every_spelling_of_one_remote_is_the_same(url: str) -> None:
    assert normalize_remote(url) == "example.org/acme/app"


def test_other_repositories_and_local_paths_stay_apart() -> None:
    assert normalize_remote("git@example.org:acme/other.git") == "example.org/acme/other"
    assert normalize_remote("git@example.com:acme/app.git") == "example.com/acme/app"
    assert normalize_remote("/srv/git/app.git") == "/srv/git/app"
    assert normalize_remote("file:///srv/git/app.git") == "/srv/git/app"
    assert normalize_remote("/srv/git/app/") == "/srv/git/app"


def test_outside_a_work_tree_there_is_no_checkout(tmp_path: Path) -> None:
    assert checkout_of(tmp_path) is None
    assert branch_of(tmp_path) is None


def test_a_repository_without_remote_has_its_path_inside(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "app")
    (repo / "towns" / "shared").mkdir(parents=True)
    found = checkout_of(repo / "towns" / "shared")
    assert found is not None
    assert (found.top, found.prefix, found.remote) == (repo, "towns/shared", None)
    assert checkout_of(repo) is not None and checkout_of(repo).prefix == ""  # type: ignore[union-attr]


def test_a_clone_names_its_origin(tmp_path: Path) -> None:
    origin = new_repo(tmp_path / "app")
    clone = tmp_path / "ci" / "app"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    found = checkout_of(clone)
    assert found is not None and found.remote == str(origin) and found.remote_name == "origin"


def test_without_origin_the_branchs_upstream_remote_counts(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "app")
    git(repo, "remote", "add", "aaa", "git@example.org:acme/fork.git")
    git(repo, "remote", "add", "upstream", "git@example.org:acme/app.git")
    git(repo, "config", "branch.main.remote", "upstream")
    found = checkout_of(repo)
    assert found is not None and found.remote == "git@example.org:acme/app.git"


def test_branch_of_names_the_top_and_branch(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "webapp")
    assert branch_of(repo) == (repo, "main")


def test_add_worktree_makes_a_checkout(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    wt = repo / ".tt" / "worktrees" / "dev"
    add_worktree(repo, wt)
    assert (wt / "README").read_text() == "hi\n"


def test_add_worktree_outside_git_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TtError) as e:
        add_worktree(tmp_path, tmp_path / "wt")
    assert "cannot create a git worktree" in e.value.message
