"""town.toml's `[[notify]]` tables, after the schema check: the rules a schema cannot say (known
event types, exactly one sink, an http(s) webhook, known agents), reported on the file's
`TomlDoc` with file, line and path; and, apart (it looks at this machine), whether each
command's argv[0] can be found. It sends nothing and runs nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import mask_url
from .bounds import quoted
from .desired import AgentSpec
from .events import EVENT_TYPES, NO_AGENT, NO_TASK, NOTIFY_FAILED
from .fields import check_name, duration, env, indexed_strs, opt_str, strs
from .locate import JsonPath
from .names import did_you_mean, is_valid_name
from .notifyrules import DEFAULT_TIMEOUT, PLACEHOLDERS, NotifyRule, SinkKind
from .tomldoc import TomlDoc

TABLE = "notify"
SINKS = tuple(k.value for k in SinkKind)
_KNOWN = frozenset(EVENT_TYPES)
_BRACED = re.compile(r"\{([A-Za-z_]\w*)\}")


def notify_rules(
    doc: TomlDoc, data: Mapping[str, Any], agents: Sequence[AgentSpec]
) -> tuple[NotifyRule, ...]:
    """The `[[notify]]` tables of the parsed town.toml (`data`); `agents` are its agents (what
    a rule's `agents` may name). A table with a problem is reported and left out."""
    raw = data.get(TABLE)
    if not isinstance(raw, list):
        return ()  # absent, or the schema has reported it
    by_name = {a.name: a for a in agents}
    rules: list[NotifyRule] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, dict):
            rule = _rule(doc, (TABLE, i), entry, by_name)
            if rule is not None:
                rules.append(rule)
    return tuple(rules)


def _rule(
    doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any], agents: Mapping[str, AgentSpec]
) -> NotifyRule | None:
    before = doc.reported
    for j, etype in indexed_strs(entry, "on"):
        if etype == NOTIFY_FAILED:
            doc.report((*at, "on", j), f"{NOTIFY_FAILED} cannot be told (a sink would loop)")
        elif etype not in _KNOWN and etype:
            doc.report(
                (*at, "on", j),
                f"unknown event type {quoted(etype)}",
                did_you_mean(etype, EVENT_TYPES) or "tt events lists the types a town writes",
            )
    for j, task in indexed_strs(entry, "tasks"):
        check_name(doc, (*at, "tasks", j), task, "task id")
    _never_told(doc, at, entry)
    for j, arg in indexed_strs(entry, "command"):
        for word in _BRACED.findall(arg):
            # A misspelt placeholder; other braces are the command's own (`gh api
            # repos/{owner}/{repo}`) and left as they are.
            if word not in PLACEHOLDERS and did_you_mean(word, PLACEHOLDERS):
                hint = did_you_mean(f"{{{word}}}", [f"{{{p}}}" for p in PLACEHOLDERS])
                doc.report((*at, "command", j), f"unknown placeholder {{{word}}}", hint)
    instances: set[str] = set()
    for j, name in indexed_strs(entry, "agents"):
        agent = agents.get(name)
        if agent is None:
            doc.report(
                (*at, "agents", j),
                f"unknown agent {quoted(name)}",
                did_you_mean(name, agents) or "name an [agents.X] table of town.toml",
            )
        else:
            instances.update(agent.instances())
    _sinks(doc, at, entry)
    timeout = duration(doc, at, entry, "timeout")
    if doc.reported > before:
        return None
    return NotifyRule(
        on=strs(entry, "on"),
        tasks=strs(entry, "tasks"),
        agents=strs(entry, "agents"),
        instances=frozenset(instances),
        command=strs(entry, "command"),
        webhook=opt_str(entry, "webhook"),
        secret_env=opt_str(entry, "secret_env"),
        slack_webhook_env=opt_str(entry, "slack_webhook_env"),
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        env=env(entry),
        env_from=strs(entry, "env_from"),
    )


def _never_told(doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]) -> None:
    """Report each type in `on` whose events a `tasks` or `agents` filter lets none through."""
    for key, lacking, what in (("tasks", NO_TASK, "task"), ("agents", NO_AGENT, "agent")):
        if not strs(entry, key):
            continue
        for j, etype in indexed_strs(entry, "on"):
            if etype in lacking:
                doc.report(
                    (*at, "on", j),
                    f"{etype} names no {what}: the {key} filter lets none through",
                    f"write another [[notify]] table for it, without {key}",
                )


def check_notify_tasks(doc: TomlDoc, data: Mapping[str, Any], ids: Collection[str]) -> None:
    """Report each task a rule's `tasks` names that tasks.toml has not (`ids`) but is close to
    one it has: misspelt, it would silently tell nothing. One unlike any may be a task still
    to come (added to tasks.toml later, `tt assign`). On the parsed town.toml."""
    raw = data.get(TABLE)
    for i, entry in enumerate(raw) if isinstance(raw, list) else ():
        for j, task in indexed_strs(entry, "tasks") if isinstance(entry, dict) else ():
            near = task not in ids and is_valid_name(task) and did_you_mean(task, ids)
            if near:  # (a bad id is said so already)
                doc.report((TABLE, i, "tasks", j), f"unknown task {quoted(task)}", near)


def _sinks(doc: TomlDoc, at: JsonPath, entry: Mapping[str, Any]) -> None:
    given = [k for k in SINKS if k in entry]
    if not given:
        doc.report(
            at,
            "a [[notify]] table needs a sink",
            'give one of command = [...], webhook = "https://...", slack_webhook_env = "NAME"',
        )
    elif len(given) > 1:
        doc.report(
            (*at, given[1]),
            f"a [[notify]] table has exactly one sink, this one has {' and '.join(given)}",
            "write one [[notify]] table per sink",
        )
    url = opt_str(entry, "webhook")
    if url is not None and (why := url_problem(url)):
        doc.report((*at, "webhook"), f"invalid webhook URL {quoted(mask_url(url))}: {why}")
    if "secret_env" in entry and "webhook" not in entry:
        doc.report((*at, "secret_env"), "secret_env signs a webhook: this table has none")
    for key in ("env", "env_from"):
        if key in entry and "command" not in entry:
            doc.report((*at, key), f"{key} is for a command: this table has none")


def url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs are posted to"
    if not parts.hostname:
        return "it names no host"
    if "@" in parts.netloc:  # (it would show in what a failure says: events, logs)
        return "it holds a user name or password (sign the POSTs with secret_env instead)"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "it holds a space or a control character"
    return None


def check_notify_commands(doc: TomlDoc, root: Path, data: Mapping[str, Any]) -> None:
    """Report each `[[notify]]` command whose argv[0] is neither on this process's PATH nor (a
    path) an executable file relative to the town folder. On the parsed town.toml, beside the
    file's other problems (like `launchcheck.check_workdirs`, it looks at this machine)."""
    raw = data.get(TABLE)
    for i, entry in enumerate(raw) if isinstance(raw, list) else ():
        argv = entry.get("command") if isinstance(entry, dict) else None
        first = argv[0] if isinstance(argv, list) and argv else None
        if not isinstance(first, str) or not first or "\0" in first:
            continue  # the schema, or the NUL check, has said so
        if not command_found(first, root):
            where = "on PATH" if os.sep not in first else f"in {root}"
            doc.report(
                (TABLE, i, "command", 0),
                f"command {quoted(first)} not found {where}",
                "install it, or give its path (relative to the town folder or absolute)",
            )


def command_found(name: str, root: Path) -> bool:
    """Whether `name` runs: found on PATH, or a path (relative to `root`) to an executable."""
    if os.sep not in name:
        import shutil  # (~5 ms to import: only for a town with [[notify]] commands)

        return shutil.which(name) is not None
    path = root / name
    try:
        return path.is_file() and os.access(path, os.X_OK)
    except (OSError, ValueError):
        return False
