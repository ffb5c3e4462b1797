"""A followed branch (`tt watch --follow`): fetch it, tell where it points, read from git objects.

Fetching writes only refs (`refs/remotes/REMOTE/BRANCH`, as `git fetch REMOTE BRANCH` does) and
objects: never the work tree, the index or HEAD, so the user's checkout is left as it is. Never
asks for a password: a fetch that would prompt fails with git's message instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import TtError
from .cli import commit_of, has_remote

FETCH_TIMEOUT = 30.0


class FetchFailed(TtError):
    """`git fetch` failed (network, authentication, unknown remote or branch): git's message."""


def split_target(folder: Path, target: str) -> tuple[str | None, str]:
    """`[REMOTE/]BRANCH` → (remote or None, branch): a local branch of that whole name wins,
    else the part before the first `/` is the remote (one git may not know: a fetch says so)."""
    if commit_of(folder, f"refs/heads/{target}") is not None or "/" not in target:
        return None, target
    remote, branch = target.split("/", 1)
    return remote, branch


def tracking_ref(remote: str | None, branch: str) -> str:
    return f"refs/heads/{branch}" if remote is None else f"refs/remotes/{remote}/{branch}"


def fetch_branch(folder: Path, remote: str | None, branch: str) -> str:
    """Fetch `branch` of `remote` (none for a local branch) and return its commit's full SHA;
    `FetchFailed` with git's own words otherwise."""
    ref = tracking_ref(remote, branch)
    if remote is not None:
        if not has_remote(folder, remote):  # `feature/x`: a branch name mistyped, most likely
            raise FetchFailed(f"no local branch {remote}/{branch} and no remote '{remote}'")
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        # It runs in the user's repository: no gc or maintenance started behind their back.
        argv = ["git", "-C", str(folder), "-c", "gc.auto=0", "-c", "maintenance.auto=false"]
        argv += ["fetch", "--quiet", "--no-tags"]
        argv += ["--no-write-fetch-head", "--", remote, f"+refs/heads/{branch}:{ref}"]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=FETCH_TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise FetchFailed(f"git fetch {remote} {branch}: {e}") from e
        if done.returncode != 0:
            said = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            raise FetchFailed(f"git fetch {remote} {branch}: {said}")
    commit = commit_of(folder, ref)
    if commit is None:
        where = f"{remote}/{branch}" if remote else f"local branch {branch!r}"
        raise FetchFailed(f"{where}: no such branch in the repository of {folder}")
    return commit
