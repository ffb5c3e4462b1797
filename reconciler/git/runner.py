"""Running git for one repository: argv lists, no shell, stdin closed, bounded time, gc and
hooks off, no prompt, and tt's identity as author and committer. `Repo` builds on it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import TtError

SLOW = 120.0  # worktree add, rebase, merge of a large tree
# Never a gc of the user's repository from a tt command; no editor; no pager; no prompt.
GIT_CONFIG = ("-c", "gc.auto=0", "-c", "core.editor=true", "-c", "advice.detachedHead=false")
# Nor the repository's hooks: tt's commits, rebases and checkouts are its own (the checks are
# the gate); only the fast-forward of the user's own checkout runs them, as a pull would.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*$")
# Variables that would point git at another repository or index than the one asked for.
_GIT_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_PREFIX")


class GitError(TtError):
    """A git command failed where tt needed it to succeed."""


def identity(author: str) -> tuple[str, str]:
    """(name, email) of an `author` string `Name <email>`."""
    found = _AUTHOR.match(author)
    if not found or not found["name"] or not found["email"]:
        raise TtError(f"author {author!r} is not of the form 'Name <email>'")
    return found["name"], found["email"]


class GitRunner:
    """git commands in one repository, reached from any of its work trees (`top`)."""

    def __init__(self, top: Path, author: str = "tt <tt@localhost>") -> None:
        self.top = top
        name, email = identity(author)
        env = {k: v for k, v in os.environ.items() if k not in _GIT_VARS}
        env.update(
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email,
            GIT_COMMITTER_NAME=name,
            GIT_COMMITTER_EMAIL=email,
            GIT_TERMINAL_PROMPT="0",
            LC_ALL="C",
        )
        self.env = env

    # -- running git -----------------------------------------------------------------------
    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
        input: str | None = None,
        hooks: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """git `args` in `cwd` (default: the repository's top); never raises for an exit code.
        `env`: variables added to tt's own (a temporary index); `input`: git's stdin (else
        closed); `hooks`: the repository's hooks may run (else they are off)."""
        config = GIT_CONFIG if hooks else (*GIT_CONFIG, *NO_HOOKS)
        try:
            return subprocess.run(
                ["git", "-C", str(cwd or self.top), *config, *args],
                capture_output=True,
                text=True,
                errors="replace",
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                timeout=timeout,
                check=False,
                env={**self.env, **env} if env else self.env,
            )
        except subprocess.TimeoutExpired as e:
            raise GitError(f"git {args[0]} did not finish within {timeout:g} s in {cwd}") from e
        except OSError as e:
            raise GitError(f"cannot run git: {e.strerror or e}", hint="install git") from e

    def out(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> str:
        """git's stdout; `GitError` with git's message when it fails."""
        done = self.run(*args, cwd=cwd, timeout=timeout, env=env)
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise GitError(f"git {' '.join(args[:2])} failed: {' '.join(said[-3:])}")
        return done.stdout
