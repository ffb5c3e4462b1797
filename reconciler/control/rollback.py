"""`tt rollback REV`: the town files as they were at a commit, written back and applied.

REV is a history index (1 = newest, as `tt history` lists them) or a commit. The files come from
git objects (`git.file_at`), are validated as a pair and written through `edit` (atomic, under
the edit lock), then applied: `git diff` shows the rollback, to commit or to throw away. Refused
while the town follows a branch (the branch is the truth: `git revert` there), for a history
entry whose files are in no commit, and over the user's own uncommitted edits (or when git cannot
tell) unless `force`, which keeps a copy of the files it overwrites under `.tt/rollback/`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import edit, git
from ..errors import NotFound, TtError
from ..spec import loader
from .apply import ApplyOptions, ApplyResult, apply
from .revision import FILES, file_digests, of_commit
from .session import Session
from .syncstatus import ago

BACKUPS = "rollback"  # under the state folder: the files `--force` overwrote, one folder each
MAX_INDEX_DIGITS = 2  # "12" is a history index; a commit prefix has 4 hex digits at least


@dataclass(frozen=True)
class Rollback:
    commit: str
    written: tuple[str, ...]  # the files that changed on disk
    discarded: tuple[str, ...]  # the user's uncommitted edits overwritten (`force`)
    result: ApplyResult
    saved: Path | None = None  # where `force` kept the files it overwrote


def rollback(session: Session, rev: str, opts: ApplyOptions, *, force: bool = False) -> Rollback:
    store, root = session.store, session.paths.root
    _, _, follow = store.revisions()
    if follow:
        raise TtError(
            f"town '{store.town}' follows {follow}: the branch is the truth, and its next "
            "commit would undo a rollback",
            hint="git revert the commits to undo on that branch and push: the town follows",
        )
    checkout = git.checkout_of(root) if git.may_be_in_work_tree(root) else None
    if checkout is None:
        raise TtError(
            f"{root} is not in a git work tree: tt rollback reads the files from a commit",
            hint="commit the town files to roll back to their earlier commits",
        )
    commit = _target(store.history(), rev, session)
    texts = {name: _text(session, commit, checkout.prefix, name) for name in FILES}
    town_text = texts["town.toml"]
    if town_text is None:
        raise NotFound(f"commit {commit[:7]} has no {_inside(checkout.prefix, 'town.toml')}")
    state = git.files_at_head(root, FILES)
    if state is None and not force:  # git failed or timed out: edits may be there
        raise TtError(
            f"cannot tell whether town.toml and tasks.toml in {root} have uncommitted edits "
            "(git status failed): tt rollback could overwrite them",
            hint="run git status there; if the files may go, run again with --force",
        )
    dirty = _edited(session, state.changed if state is not None else FILES)
    saved = _save(session) if force and (dirty or state is None) else None
    if dirty and not force:
        raise TtError(
            f"{' and '.join(dirty)} in {root} has uncommitted edits: tt rollback would "
            "overwrite them",
            hint="commit or stash them first, or run again with --force to discard them "
            f"(a copy is kept under {session.paths.state_dir / BACKUPS})",
        )
    written = edit.replace_files(
        session.paths, town_text, texts["tasks.toml"], validate=loader.validate_texts
    )
    digests = {
        name: hashlib.sha256((texts[name] or "").encode("utf-8")).hexdigest() for name in FILES
    }
    given = of_commit(commit, digests)
    result = apply(session, replace(opts, revision=given))
    return Rollback(commit, tuple(written), dirty, result, saved)


def _edited(session: Session, changed: tuple[str, ...]) -> tuple[str, ...]:
    """The files git finds changed that are not the bytes of the applied revision (a rollback
    just applied leaves the files as its commit had them, not committed on the branch)."""
    applied = session.store.revisions()[0] or {}
    recorded = applied.get("digests") or {}
    now = file_digests(session.paths)
    return tuple(
        n for n in FILES if n in changed and (applied.get("dirty") or recorded.get(n) != now[n])
    )


def _save(session: Session) -> Path:
    """A copy of the two files as they are, in `.tt/rollback/<UTC time>/`, before `--force`
    overwrites them."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = session.paths.state_dir / BACKUPS / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{stamp}-{n}")
    folder.mkdir(mode=0o700, parents=True)
    for source in (session.paths.town_file, session.paths.tasks_file):
        if source.is_file():
            shutil.copy2(source, folder / source.name)
    return folder


def _inside(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _text(session: Session, commit: str, prefix: str, name: str) -> str | None:
    raw = git.file_at(session.paths.root, commit, _inside(prefix, name))
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TtError(f"{name} at {commit[:7]} is not UTF-8 text ({e}): not a town file") from e


def _target(history: list[dict[str, Any]], rev: str, session: Session) -> str:
    """The commit REV names: a history entry's (by index) or any commit git knows."""
    rev = rev.strip()
    if rev.isdigit() and len(rev) <= MAX_INDEX_DIGITS:
        index = int(rev)
        if not 1 <= index <= len(history):
            raise NotFound(
                f"no history entry {index}: there are {len(history)} (tt history lists them)"
            )
        entry = history[index - 1]
        said = f"history entry {index} ({entry.get('by', '?')}, {ago(entry.get('at'))})"
        if entry.get("result", "ok") != "ok":
            raise TtError(f"{said} was {entry['result']}, not applied: nothing to roll back to")
        sha = entry.get("sha")
        if not sha:
            raise TtError(
                f"{said} applied files outside git: they are in no commit to roll back to",
                hint="commit the town files: later applies record their commit",
            )
        if entry.get("dirty"):
            raise TtError(
                f"{said} applied uncommitted edits on top of {sha[:7]}: they are in no commit "
                "to roll back to",
                hint=f"tt rollback {sha[:7]} rolls back to the commit they were made on",
            )
        return str(sha)
    commit = git.commit_of(session.paths.root, rev)
    if commit is None:
        raise NotFound(
            f"{rev!r} is neither a history index (1-{len(history)}) nor a commit of "
            f"the repository of {session.paths.root}"
        )
    return commit
