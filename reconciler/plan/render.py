"""A plan for people: one line per action record (`tt diff`, `tt apply --dry-run`), and the same
as Markdown for a pull request comment (`tt plan --format markdown`).

Text only, in plan order, with the sigils `+` create, `~` change, `-` delete, `!` and `?` notes.
It decides nothing about the plan; the machine-readable form is `Plan.as_json` in `actions`.
"""

from __future__ import annotations

import time

from .actions import (
    Action,
    CancelTask,
    ChangedAfterDone,
    CompleteTask,
    CreateAgent,
    CreateTask,
    DeleteAgent,
    DeleteTask,
    Orphan,
    OrphanAgent,
    Plan,
    RerunTask,
    RestoreTask,
    UpdateAgent,
    UpdateTask,
    spec_changed,
)
from .graph import TaskKind
from .state import TERMINAL, TaskState

# A created task in these states is not queued: its line names no target.
_UNQUEUED = TERMINAL | {TaskState.UPSTREAM_FAILED, TaskState.SKIPPED}


def render_lines(plan: Plan) -> list[str]:
    """One line per record, in plan order: `+` create, `~` change, `-` delete, `!` and `?` notes."""
    return [_line(a) for a in plan.actions]


# The Markdown sections, by sigil, in the order a reviewer reads them.
SECTIONS = (("+", "Create"), ("~", "Change"), ("-", "Delete"), ("!", "Note"), ("?", "Not managed"))


def render_markdown(plan: Plan, town: str, notes: tuple[str, ...] = ()) -> str:
    """The plan as Markdown: a headline with the summary, one list per kind of change (`+`,
    `~`, `-`, then the notes), and the plan's lines in a fenced `diff` block inside <details>
    (GitHub colours `+` and `-` lines there). `notes`: lines to add under the summary."""
    lines = render_lines(plan)
    head = f"### `tt plan`: town `{town}`"
    if plan.is_empty and not lines:
        return "\n".join([head, "", "**No changes.** The town matches its files.", *notes]) + "\n"
    summary = "No changes to apply" if plan.is_empty else plan.summary()
    out = [head, "", f"**{summary}**"]
    out += [f"> {n}" for n in notes]
    for sigil, title in SECTIONS:
        items = [line[2:] for line in lines if line.startswith(sigil + " ")]
        if items:
            out += ["", f"**{title}** ({len(items)})", ""]
            out += [f"- `{sigil}` {_md(item)}" for item in items]
    fence = "```"
    while fence in "\n".join(lines):
        fence += "`"
    out += ["", "<details><summary>The plan as text</summary>", "", f"{fence}diff", *lines]
    out += [fence, "", "</details>"]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """A plan line as Markdown list text: the characters Markdown would act on escaped."""
    return "".join("\\" + c if c in "\\`*_[]<>|#" else c for c in text)


def _line(a: Action) -> str:
    if isinstance(a, CreateTask):  # first: every line of a new town's plan but its agents'
        # (`_value_`: an enum's `.value` is a Python-level property, ~1 us a line)
        state, kind = a.state._value_, a.kind
        if kind is TaskKind.WORK or kind is TaskKind.BACKLOG:
            if a.state in _UNQUEUED:
                return f"+ task {a.spec.id} ({state})"
            return f"+ task {a.spec.id} ({state} → {a.target})"
        what = "group" if kind is TaskKind.GROUP else "approval gate"
        return f"+ task {a.spec.id} ({what}, {state})"
    if isinstance(a, CreateAgent):
        return f"+ agent {a.name} ({a.spec.model}{', suspended' if a.spec.suspended else ''})"
    if isinstance(a, UpdateAgent):
        return f"~ agent {a.name}: {', '.join(a.changed_fields)}{' (restart)' if a.restart else ''}"
    if isinstance(a, DeleteAgent):
        return f"- agent {a.name} ({a.reason})"
    if isinstance(a, OrphanAgent):
        return f"? agent {a.name}: not in town.toml (use --prune to delete)"
    if isinstance(a, RestoreTask):
        moved = "" if a.new_state is a.state else f" → {a.new_state.value}"
        return f"+ task {a.id} (restored from its tombstone: {a.state.value}{moved}; not re-run)"
    if isinstance(a, UpdateTask):
        return f"~ task {a.id}: {_fields(a.changed_fields)}{_update_note(a)}"
    if isinstance(a, RerunTask):
        if a.state is TaskState.CANCELLED:
            return f"~ task {a.id}: re-run, {a.reason} ({a.new_state.value})"
        return (
            f"~ task {a.id}: re-run, changed after done ({_fields(a.changed_fields)}) — "
            "its completed dependents are not re-run"
        )
    if isinstance(a, ChangedAfterDone):
        return (
            f"! task {a.id}: changed after done ({_fields(a.changed_fields)}) — not re-run; "
            f"use tt retry {a.id} or --rerun-changed"
        )
    if isinstance(a, CompleteTask):
        late = " — its running attempt's result will be ignored" if _running(a.state) else ""
        return f"~ task {a.id}: completed ({a.reason}){late}"
    if isinstance(a, CancelTask):
        stop = " — its running attempt will be stopped" if _running(a.state) else ""
        return f"~ task {a.id}: cancelled ({a.reason}){stop}"
    if isinstance(a, DeleteTask):
        notes = ["running: its attempt will be stopped"] if a.was_running else []
        if a.keep_until is not None:
            notes.append(f"kept as tombstone until {_local_time(a.keep_until)}")
        return f"- task {a.id}" + (f" ({'; '.join(notes)})" if notes else "")
    if isinstance(a, Orphan):
        return f"? task {a.id}: not in tasks.toml (use --prune to delete)"
    if a.new_state is TaskState.COMPLETED:
        group = "" if a.target else "group: "  # (a work task: approval no longer asked for)
        return f"~ task {a.id}: completed ({group}{a.reason})"
    if a.new_state is TaskState.BLOCKED:
        return f"~ task {a.id}: blocked again, a dependency is not completed ({a.reason})"
    if a.new_state is TaskState.READY:
        return f"~ task {a.id}: requeued → {a.target} ({a.reason})"
    waits = {TaskState.AWAITING_APPROVAL: "awaits approval"}.get(a.new_state, a.new_state.value)
    return f"~ task {a.id}: {waits} ({a.reason})"


def _fields(changed: tuple[str, ...]) -> str:
    """Changed fields, without derived ones a changed spec field already explains."""
    shown = set(changed)
    if shown & {"parent", "depends_on", "sequential"}:
        shown.discard("deps")
    if shown & {"agent", "role"}:
        shown.discard("target")
    if spec_changed(shown - {"deps", "target"}):
        shown.discard("kind")
    return ", ".join(f for f in changed if f in shown)


# What a task with no queue target is, in a note on its new target.
_NO_TARGET = {TaskKind.GROUP: "group", TaskKind.GATE: "approval gate"}


def _update_note(a: UpdateTask) -> str:
    if a.state in (TaskState.RUNNING, TaskState.RETRYING):
        return f" ({a.state.value}: takes effect on the next attempt)"
    if a.state is TaskState.FAILED:
        return f" (failed: tt retry {a.id} to run it with the new spec)"
    notes = []
    if a.target != a.old_target and a.new_state is TaskState.READY:
        notes.append(f"moves {a.old_target or '-'} → {a.target or '-'}")
    elif a.target != a.old_target:
        notes.append(f"→ {a.target or _NO_TARGET.get(a.kind, a.kind.value)}")
    if a.new_state is not None and a.new_state is not a.state:
        notes.append(f"{a.state.value} → {a.new_state.value}")
    return f" ({'; '.join(notes)})" if notes else ""


def _running(state: TaskState) -> bool:
    return state is TaskState.RUNNING


def _local_time(ts: float) -> str:
    """ISO-8601 local time to the minute (how long a tombstone is kept)."""
    return time.strftime("%Y-%m-%dT%H:%M", time.localtime(ts))
