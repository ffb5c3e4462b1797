"""town.toml's [git] and tasks.toml's `touches`, after the schema check: the rules on their values
that a schema cannot say (git branch and remote names, `Name <email>`, globs that stay inside the
repository), reported on the file's `TomlDoc`. It reads no repository and runs no git: whether
`repo` holds one is for the git door to say when it starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .bounds import quoted
from .fields import choice, duration, indexed_strs, opt_str
from .gitsettings import DEFAULT_AUTHOR, GitSettings, MergeMode, OnConflict, Strategy
from .locate import JsonPath
from .tomldoc import TomlDoc

# What `git check-ref-format` refuses anywhere in a name: control characters, space, ~ ^ : ? * [
# and backslash.
_REF_BAD_CHAR = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_AUTHOR = re.compile(r"(?P<name>[^<>]*)<(?P<email>[^<>]*)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:[/\\]")
TABLE = "git"  # town.toml's [git]
# A URL (scheme://, user@host:path), or a path (/, ./, ../, ~): what `push` must not be.
_URL_LIKE = re.compile(r"://|^[^/]*@|^[^/:]+:|^(/|\./|\.\./|~)")


def ref_problem(name: str) -> str | None:
    """Why `name` is not a valid git branch (or remote) name, or None: the rules of
    `git check-ref-format --branch`, and no leading `-` (git would read an option)."""
    if not name.strip():
        return "it is blank"
    if name.startswith("-"):
        return "it starts with '-' (git would read it as an option)"
    bad = _REF_BAD_CHAR.search(name)
    if bad is not None:
        char = bad.group()
        shown = "a space" if char == " " else "a control character" if char < " " else f"'{char}'"
        return f"a git ref name cannot contain {shown}"
    if ".." in name:
        return "a git ref name cannot contain '..'"
    if "@{" in name or name == "@":
        return "a git ref name cannot contain '@{' nor be '@' alone"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "a git ref name cannot start or end with '/' nor contain '//'"
    if name.endswith("."):
        return "a git ref name does not end with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"no part of a git ref name starts with '.' ({quoted(part)})"
        if part.endswith(".lock"):
            return f"no part of a git ref name ends with '.lock' ({quoted(part)})"
    return None


def author_problem(text: str) -> str | None:
    """Why `text` is not `Name <email>`, or None."""
    found = _AUTHOR.fullmatch(text)
    if found is None or _CONTROL.search(text):
        return "expected the form Name <email>"
    if not found.group("name").strip():
        return "the name before <email> is missing"
    email = found.group("email")
    if not email or email != email.strip() or any(c.isspace() for c in email):
        return "the email between < and > must be non-empty, with no spaces"
    return None


def glob_problem(glob: str) -> str | None:
    """Why `glob` is not a path glob relative to the repository and inside it, or None."""
    if not glob.strip():
        return "it is blank"
    if _CONTROL.search(glob):
        return "it holds a control character"
    if glob.startswith(("/", "\\")) or _DRIVE.match(glob):
        return "it is absolute: write it relative to the repository"
    if ".." in re.split(r"[/\\]", glob):
        return "a '..' segment would leave the repository"
    if glob.startswith("-"):
        return "it starts with '-' (git would read it as an option)"
    if glob.startswith(":"):
        return "it starts with ':' (git would read it as pathspec magic)"
    return None


def git_settings(doc: TomlDoc, data: Mapping[str, Any]) -> GitSettings | None:
    """[git] of the parsed town.toml (`data`): None when absent (work products off), its
    defaults when empty. A value the schema or a rule here rejected reads as its default."""
    if TABLE not in data:
        return None
    raw = data[TABLE]
    if not isinstance(raw, dict):
        return None  # the schema has reported it
    at: JsonPath = (TABLE,)
    defaults = GitSettings()
    repo = opt_str(raw, "repo")
    if repo is not None and repo and not repo.strip():
        doc.report((*at, "repo"), "repo is blank", 'name the repository\'s folder, like "."')
        repo = None
    base = _ref(doc, (*at, "base"), opt_str(raw, "base"), "branch name")
    push = _remote(doc, (*at, "push"), opt_str(raw, "push"))
    author = opt_str(raw, "author")
    if author is not None:
        why = author_problem(author)
        if why is not None:
            doc.report(
                (*at, "author"),
                f"invalid author {quoted(author)}: {why}",
                f'for example "{DEFAULT_AUTHOR}"',
            )
            author = None
    checks = []
    for i, command in indexed_strs(raw, "checks"):
        if command and not command.strip():  # (an empty one: the schema has said so)
            doc.report((*at, "checks", i), "a check is blank", "give the command to run")
        checks.append(command)
    timeout = duration(doc, at, raw, "check_timeout")
    merge = choice(MergeMode, opt_str(raw, "merge"), defaults.merge)
    if merge == MergeMode.MANUAL and (placed := _on_nodes(data)):
        agent, node = placed
        doc.report(
            (*at, "merge"),
            f'merge = "manual" cannot work across clones: agent {agent} runs on node {node}, '
            "in a clone of its own, and manual mode merges dependency branches in one repository",
            'use merge = "queue" (the default: the leader merges what nodes push), or run the '
            "town's agents on the controller's host",
        )
    return GitSettings(
        repo=repo or defaults.repo,
        base=base or defaults.base,
        merge=merge,
        strategy=choice(Strategy, opt_str(raw, "strategy"), defaults.strategy),
        on_conflict=choice(OnConflict, opt_str(raw, "on_conflict"), defaults.on_conflict),
        checks=tuple(checks),
        check_timeout=defaults.check_timeout if timeout is None else timeout,
        push=push,
        author=author or defaults.author,
        keep_branches=raw.get("keep_branches") is True,
    )


def _remote(doc: TomlDoc, path: JsonPath, name: str | None) -> str | None:
    """`push`: the name of a git remote; a URL or a path is refused without being repeated
    (a URL may hold credentials: they would reach the roster, events and errors)."""
    if name and _URL_LIKE.search(name):
        doc.report(
            path,
            'push must name a git remote of the repository (like "origin"), not a URL or a path',
            "add the remote once (git remote add origin URL) and write its name here",
        )
        return None
    return _ref(doc, path, name, "remote name")


def _on_nodes(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(agent, node) of the first agent placed on a node, if any."""
    agents = data.get("agents")
    for agent, table in agents.items() if isinstance(agents, dict) else ():
        if isinstance(table, dict) and isinstance(table.get("node"), str) and table["node"]:
            return str(agent), table["node"]
    return None


def _ref(doc: TomlDoc, path: JsonPath, name: str | None, what: str) -> str | None:
    """`name` if it is a valid ref name; else None, reported (an empty one: by the schema)."""
    if not name:
        return None
    why = ref_problem(name)
    if why is None:
        return name
    doc.report(path, f"invalid {what} {quoted(name)}: {why}")
    return None


def check_touches(doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]) -> None:
    """Report each glob of the task table `entry`'s `touches` that is not relative to the
    repository and inside it (at `tasks[i].touches[j]`)."""
    for j, glob in indexed_strs(entry, "touches"):
        why = glob_problem(glob) if glob else None  # (an empty one: the schema has said so)
        if why is not None:
            fixed = glob.lstrip("/\\")
            hint = f"for example {quoted(fixed)}" if fixed and not glob_problem(fixed) else None
            doc.report((*at, "touches", j), f"invalid glob {quoted(glob)}: {why}", hint)
