"""`tt rollback REV`: the town files as they were at a commit, written back and applied.

REV is a history index (1 = newest, as `tt history` lists them) or a commit. The files come from
git objects (`git.file_at`), are validated as a pair and written through `edit` (atomic, under
the edit lock), then applied: `git diff` shows the rollback, to commit or to throw away. Refused
while the town follows a branch (the branch is the truth: `git revert` there), for a history
entry whose files are in no commit, and over the user's own uncommitted edits unless `force`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from .. import edit, git
from ..errors import NotFound, TtError
from ..spec import loader
from .apply import ApplyOptions, ApplyResult, apply
from .revision import FILES, of_commit
from .session import Session
from .syncstatus import ago

MAX_INDEX_DIGITS = 2  # "12" is a history index; a commit prefix has 4 hex digits at least


@dataclass(frozen=True)
class Rollback:
    commit: str
    written: tuple[str, ...]  # the files that changed on disk
    discarded: tuple[str, ...]  # the user's uncommitted edits overwritten (`force`)
    result: ApplyResult


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
    dirty = tuple(state.changed) if state is not None else ()
    if dirty and not force:
        raise TtError(
            f"{' and '.join(dirty)} in {root} has uncommitted edits: tt rollback would "
            "overwrite them",
            hint="commit or stash them first, or run again with --force to discard them",
        )
    written = edit.replace_files(
        session.paths, town_text, texts["tasks.toml"], validate=loader.validate_texts
    )
    digests = {
        name: hashlib.sha256((texts[name] or "").encode("utf-8")).hexdigest() for name in FILES
    }
    given = of_commit(commit, digests)
    result = apply(session, replace(opts, revision=given))
    return Rollback(commit, tuple(written), dirty, result)


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
