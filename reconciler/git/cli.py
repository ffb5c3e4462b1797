"""Every git command tt runs, through `_git` (argv lists, no shell, stdin closed, bounded time).

A folder outside a work tree, or no git installed, is an answer (None), not an error, except
where tt needs git to act (`add_worktree`). No parsing of git's files: git answers for itself.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import TtError

GIT_TIMEOUT = 10.0
# An scp-like remote (`git@host:owner/repo.git`): no scheme, a colon before the first slash.
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.*)$")
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/]*@)?(?P<host>[^/]*)(?P<path>/.*)?$")


@dataclass(frozen=True)
class Checkout:
    """Where a folder sits in a git work tree: the work tree's top, the folder's path inside it
    ('' at the top; '/'-separated) and the URL of its remote (None when it has none)."""

    top: Path
    prefix: str
    remote: str | None
    remote_name: str | None


def _git(
    folder: Path, *args: str, timeout: float = GIT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(folder), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _answer(folder: Path, *args: str) -> str | None:
    """git's stdout, or None when git fails, is missing or does not answer in time."""
    try:
        done = _git(folder, *args)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def checkout_of(folder: Path) -> Checkout | None:
    """The work tree `folder` is in (None outside one). The remote is `origin`, else the only
    one; with several and no `origin`, the current branch's upstream remote, else the first."""
    out = _answer(folder, "rev-parse", "--show-toplevel", "--show-prefix")
    lines = (out or "").split("\n")
    if out is None or len(lines) < 2 or not lines[0]:
        return None
    top, prefix = lines[0], lines[1].rstrip("/")
    remotes = _remotes(folder)
    name = None
    if "origin" in remotes:
        name = "origin"
    elif len(remotes) > 1:
        branch = (_answer(folder, "symbolic-ref", "-q", "--short", "HEAD") or "").strip()
        upstream = _answer(folder, "config", "--get", f"branch.{branch}.remote") if branch else None
        name = upstream.strip() if upstream and upstream.strip() in remotes else None
    if name is None and remotes:
        name = next(iter(remotes))
    return Checkout(Path(top), prefix, remotes.get(name) if name else None, name)


def _remotes(folder: Path) -> dict[str, str]:
    """remote name → its (first) URL, in git's order."""
    out = _answer(folder, "config", "--get-regexp", r"^remote\..*\.url$") or ""
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, _, url = line.partition(" ")
        name = key[len("remote.") : -len(".url")]
        if name and url:
            found.setdefault(name, url.strip())
    return found


def has_remote(folder: Path, name: str) -> bool:
    """Whether `folder`'s repository has a remote `name` (with a URL)."""
    return name in _remotes(folder)


@dataclass(frozen=True)
class FilesAtHead:
    """What git says of some files of a folder: the HEAD commit (None before the first one),
    the current branch (None when detached) and which of the files differ from HEAD (changed,
    staged, untracked, ignored or deleted; by name as asked)."""

    head: str | None
    branch: str | None
    changed: tuple[str, ...]


def may_be_in_work_tree(folder: Path) -> bool:
    """False when no `.git` is in `folder` or above it (and GIT_DIR is unset): surely outside a
    work tree, told without running git. True means: ask git."""
    if os.environ.get("GIT_DIR"):
        return True
    here = folder.resolve()
    return any((p / ".git").exists() for p in (here, *here.parents))


def files_at_head(folder: Path, names: tuple[str, ...]) -> FilesAtHead | None:
    """One `git status` of `names` (files of `folder`): None outside a work tree (or no git).
    Read only (no index refresh written), so a concurrent git command meets no index.lock."""
    out = _answer(
        folder,
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "--branch",
        "--untracked-files=all",
        "--ignored=matching",
        "-z",
        "--",
        *names,
    )
    if out is None:
        return None
    head: str | None = None
    branch: str | None = None
    changed: set[str] = set()
    entries = iter(out.split("\0"))
    for entry in entries:
        if entry.startswith("# branch.oid "):
            oid = entry[len("# branch.oid ") :]
            head = None if oid == "(initial)" else oid
        elif entry.startswith("# branch.head "):
            name = entry[len("# branch.head ") :]
            branch = None if name == "(detached)" else name
        elif entry[:2] in ("1 ", "2 ", "u ", "? ", "! "):
            path = entry.split(" ", {"1": 8, "2": 9, "u": 10}.get(entry[0], 1))[-1]
            changed.add(path.rsplit("/", 1)[-1])
            if entry[0] == "2":  # a rename's source follows
                next(entries, None)
    return FilesAtHead(head, branch, tuple(n for n in names if n in changed))


def commit_of(folder: Path, rev: str) -> str | None:
    """The full SHA of the commit `rev` names in `folder`'s repository, or None."""
    if rev.startswith("-"):
        return None
    out = _answer(folder, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    return out.strip() or None if out else None


def file_at(folder: Path, commit: str, path: str) -> bytes | None:
    """The bytes of `path` (relative to the work tree's top) in `commit`; None when the commit
    has no such file. A `TtError` when git cannot be run or the commit is unknown."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "cat-file", "blob", f"{commit}:{path}"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise TtError(f"cannot run git to read {path} at {commit[:12]}: {e}") from e
    if done.returncode == 0:
        return done.stdout
    if commit_of(folder, commit) is None:
        raise TtError(f"no commit {commit[:12]} in the repository of {folder}")
    return None


def branch_of(folder: Path) -> tuple[Path, str] | None:
    """(work tree top, current branch) of `folder`; None outside a work tree or detached."""
    out = _answer(folder, "rev-parse", "--show-toplevel", "--abbrev-ref", "HEAD")
    lines = (out or "").split()
    if len(lines) != 2 or lines[1] == "HEAD":
        return None
    return Path(lines[0]), lines[1]


def add_worktree(repo: Path, path: Path) -> None:
    """`git worktree add --detach PATH` in the town's repository (workdir = "worktree")."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # under `.tt/`: private
    try:
        done = _git(repo, "worktree", "add", "--detach", str(path), timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise TtError(f"cannot run git to create a worktree at {path}: {e}") from e
    if done.returncode != 0:
        raise TtError(
            f"cannot create a git worktree for the agent at {path}: {done.stderr.strip()}",
            hint='workdir = "worktree" needs the town folder to be inside a git repository '
            "with at least one commit",
        )


def normalize_remote(url: str) -> str:
    """One spelling for the clones of one repository: `git@example.org:acme/app.git`,
    `ssh://git@example.org/acme/app`, `https://user@example.org/acme/app.git/` all give
    `example.org/acme/app`; a local path (or file:// URL) gives the path without `.git`."""
    url = url.strip()
    host, path = "", url
    found = _URL.match(url)
    if found:
        host = "" if found["scheme"] == "file" else found["host"].lower()
        path = found["path"] or ""
        if host and ":" in host:  # ssh://host:22/..., https://host:443/...
            host = host.split(":", 1)[0]
    elif (scp := _SCP.match(url)) and not url.startswith(("/", ".")):
        host, path = scp["host"].lower(), scp["path"]
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    path = path.rstrip("/")
    return f"{host}/{path.lstrip('/')}" if host else path
