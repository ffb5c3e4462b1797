"""The `tt-validate` pre-commit hook (.pre-commit-hooks.yaml), installed by pre-commit itself
from this repository into a temporary one: a commit of an invalid tasks.toml is blocked with the
problem named, a valid one goes through.

pre-commit installs a hook of `language: python` by `pip install`ing its repository into a
virtualenv of its own. The repository it is given is a commit of the current tree's package files
(so the hook tested is the one in the tree, edits included); pip reaches PyPI only for the
build backend and tt's own dependencies. Slow (a virtualenv and an install): integration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.work.gitrepo import ENV, git

ROOT = Path(__file__).parents[2]
PACKAGE = ["pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "reconciler", "cli", "schema"]

TOWN = '[town]\nname = "hooked"\n\n[agents.dev]\nmodel = "sim"\n'
GOOD = '# the work\n[[tasks]]\nid = "build"\ndescription = "Build it"\nagent = "dev"\n'
BAD = GOOD.replace('agent = "dev"', 'agent = "devv"')


def hook_repository(folder: Path) -> str:
    """A git repository holding this tree's package files, committed; returns the commit."""
    folder.mkdir()
    for name in PACKAGE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "tt")
    return git(folder, "rev-parse", "HEAD")


def commit(repo: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    git(repo, "add", "-A")
    return subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "-m", message],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.integration
def test_the_hook_blocks_an_invalid_tasks_toml_and_passes_a_valid_one(tmp_path: Path) -> None:
    rev = hook_repository(tmp_path / "tt")
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    hooks = "    hooks:\n      - id: tt-validate\n"
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {tmp_path / 'tt'}\n    rev: {rev}\n{hooks}"
    )
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **ENV,
        "PATH": f"{venv_bin}:{ENV['PATH']}",
        "HOME": str(tmp_path / "home"),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        # pip's cache and index settings of the machine, so an install needs no fresh download
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "XDG_CACHE"))},
    }
    if "XDG_CACHE_HOME" not in env:
        env["PIP_CACHE_DIR"] = os.environ.get(
            "PIP_CACHE_DIR", str(Path(os.environ.get("HOME", "/root")) / ".cache" / "pip")
        )
    installed = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (repo / "towns" / "demo").mkdir(parents=True)
    (repo / "towns" / "demo" / "town.toml").write_text(TOWN)
    (repo / "towns" / "demo" / "tasks.toml").write_text(BAD)

    blocked = commit(repo, env, "an agent misspelt")
    said = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, said
    assert "tt validate" in said and "Failed" in said
    assert "towns/demo/tasks.toml:5: $.tasks[0].agent: unknown agent 'devv'" in said
    assert git(repo, "rev-list", "--all") == ""  # nothing was committed

    (repo / "towns" / "demo" / "tasks.toml").write_text(GOOD)
    passed = commit(repo, env, "the town")
    said = passed.stdout + passed.stderr
    assert passed.returncode == 0, said
    assert "tt validate" in said and "Passed" in said
    assert git(repo, "log", "--format=%s") == "the town"
