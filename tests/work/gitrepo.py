"""Real git repositories in temp folders for the work-product tests (git driven directly here:
the test builds the user's side; tt's side goes through `reconciler.git`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ENV = {
    "GIT_AUTHOR_NAME": "user",
    "GIT_AUTHOR_EMAIL": "user@example.org",
    "GIT_COMMITTER_NAME": "user",
    "GIT_COMMITTER_EMAIL": "user@example.org",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, env=ENV, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def make_repo(folder: Path, files: dict[str, str] | None = None) -> Path:
    """A repository on branch main with one commit of `files` (a README by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "# demo\n"}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (folder / ".gitignore").write_text(".tt/\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "start")
    return folder


def log_subjects(folder: Path, ref: str = "main") -> list[str]:
    return git(folder, "log", "--format=%s", ref).splitlines()


def running_task(store: Any, tid: str, token: str, deps: tuple[str, ...] = ()) -> None:
    """A task record in `store`, claimed by agent `dev` with `token`."""
    rec = {
        "id": tid,
        "spec": json.dumps({"id": tid, "description": f"do {tid}"}),
        "hash": "h",
        "source": "file",
        "kind": "work",
        "target": "dev",
        "deps": list(deps),
        "order": 0,
        "priority": 0,
        "retries": -1,
        "timeout": -1,
        "directive": "pending",
        "rerun": False,
    }
    store.upsert_tasks([rec], 1)
    store.client.lrem(store.keys.queue("dev"), 0, tid)
    assert store.claim(tid, "dev", token) is not None
