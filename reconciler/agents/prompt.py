"""What a model is told, and what its exit means: pure functions of plain values.

`build_prompt` assembles the task, the results it depends on, pending messages (urgent first) and
the town context; `judge` turns a finished run into completed / retryable / permanent failure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..store.mail import Message, heading
from ..store.tasks import DepResult
from .exitclass import ExitClass
from .ledger import RunFacts
from .models import PERMANENT_PATTERNS

RESULT_CHARS = 4000
ERROR_LINES = 10
ERROR_HEAD_LINES = 3


def build_prompt(
    *,
    task_id: str,
    description: str,
    attempt: int,
    agent: str,
    town: str,
    town_description: str | None = None,
    deps: Sequence[DepResult] = (),
    messages: Sequence[Message] = (),
    previous_error: str | None = None,
    rejection: str | None = None,
) -> str:
    parts = [f"# Task {task_id} (attempt {attempt})", description.strip() or task_id, ""]
    if rejection:
        # `tt reject --reason`: a person reviewed the previous attempt's work (reject.lua).
        reason = rejection.strip()[-RESULT_CHARS:]
        parts += ["## Review", "Your previous attempt was rejected by a reviewer:", reason, ""]
    elif previous_error:
        parts += ["## The previous attempt failed", previous_error.strip()[-RESULT_CHARS:], ""]
    if deps:
        parts.append("## Results of the tasks this one depends on")
        for d in deps:
            by = f" (by {d.agent})" if d.agent else ""
            parts += [f"### {d.id}{by}", d.result.strip()[-RESULT_CHARS:] or "(no output)", ""]
    ordered = sorted(messages, key=lambda m: (not m.urgent, m.ts))
    if ordered:
        parts.append("## Messages for you")
        for m in ordered:
            parts.append(f"- {heading(m)}: {m.text}")
        parts.append("")
    context = f"You are agent '{agent}' in the Tinytown town '{town}'"
    if town_description:
        context += f" ({town_description})"
    parts += [
        "## Town",
        context + ". When you are done, end with a short summary of what you did;",
        f"it is passed to the tasks that depend on this one. `tt task complete {task_id}"
        " --result TEXT` also completes it.",
    ]
    return "\n".join(parts) + "\n"


def build_message_prompt(*, agent: str, town: str, messages: Sequence[Message]) -> str:
    ordered = sorted(messages, key=lambda m: (not m.urgent, m.ts))
    lines = [f"# Messages for agent '{agent}' in town '{town}'", ""]
    for m in ordered:
        lines.append(f"- {heading(m)}: {m.text}")
    lines += ["", "Answer them briefly; your answer is sent back to each sender."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    permanent: bool
    text: str
    hint: str | None = None
    exit_class: ExitClass | None = None  # None: told by its text (`exitclass.classify_error`)
    facts: RunFacts | None = None  # what the model's run showed, when one ran

    def with_facts(self, facts: RunFacts | None) -> Verdict:
        """This verdict with the facts of a run (its own, if it has some)."""
        return self if self.facts is not None or facts is None else replace(self, facts=facts)


def judge(
    *,
    returncode: int | None,
    stdout_tail: str,
    stderr_tail: str,
    timed_out: bool,
    timeout: float | None,
    fail_patterns: Sequence[str] = (),
    stalled: str | None = None,
    stall_grace: float = 0.0,
    no_progress: str | None = None,
) -> Verdict:
    """Exit 0 → completed (stdout tail is the result) unless a failure pattern shows; else the
    error is the stderr tail, or the stdout tail where stderr is empty (claude, aider). (A
    model that could not start at all is `launch_failed`: see `launch`.)"""
    if timed_out:
        return Verdict(False, False, f"timed out after {timeout:g}s; the process tree was killed")
    if stalled is not None:
        # The CLI's own retry loop (no network, a login it waits for): retryable, its message.
        return Verdict(
            False,
            False,
            f"stalled: the CLI kept retrying for {stall_grace:g}s ({stalled}); "
            "the process tree was killed",
        )
    if no_progress is not None:  # nothing moved (output, files): retryable, resumed
        return Verdict(False, False, f"stalled: {no_progress}; the process tree was killed")
    both = f"{stdout_tail}\n{stderr_tail}"
    matched = next((p for p in fail_patterns if re.search(p, both)), None)
    if returncode == 0 and matched is None:
        return Verdict(True, False, stdout_tail)
    # The last lines say why (a CLI's banner and retries come before its final error), unless
    # it said so first and printed its help after (gemini's "unknown flag"): keep both ends.
    lines = (stderr_tail or stdout_tail or "(no output)").splitlines()
    if len(lines) > ERROR_HEAD_LINES + ERROR_LINES:
        first = [x for x in lines[:ERROR_HEAD_LINES] if x != "…"]
        lines = [*first, "…", *lines[-ERROR_LINES:]]
    detail = "\n".join(lines)
    head = f"exit code {returncode}" if returncode != 0 else f"output matched failure '{matched}'"
    for pattern, hint in PERMANENT_PATTERNS:
        if re.search(pattern, both):
            return Verdict(False, True, f"{head}: {detail}", hint=hint)
    return Verdict(False, False, f"{head}: {detail}")
