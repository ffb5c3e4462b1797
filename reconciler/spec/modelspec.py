"""How to run one model CLI (`ModelSpec`: its argv template, how the prompt travels and how its
output is read), a value of the desired state (`desired` re-exports it); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class PromptMode(str, Enum):
    STDIN = "stdin"
    ARG = "arg"
    FILE = "file"


class OutputMode(str, Enum):
    """How a model CLI's output is read (`agents.parsers`): plain text, or the CLI's own JSON."""

    TEXT = "text"
    CLAUDE_JSON = "claude-json"
    CODEX_JSONL = "codex-jsonl"
    GEMINI_JSON = "gemini-json"
    COPILOT_JSONL = "copilot-jsonl"


@dataclass(frozen=True)
class ModelSpec:
    """How to run one model CLI: an argv template and how the prompt travels."""

    name: str
    command: tuple[str, ...]
    prompt: PromptMode = PromptMode.STDIN
    env: tuple[tuple[str, str], ...] = ()
    fail_patterns: tuple[str, ...] = ()
    # Output of the CLI's own retry loop (it would never exit): `stall_grace` seconds after
    # such a line, still running, the attempt fails as stalled (retryable). Such output is no
    # progress either (`AgentSpec.stall_after`). In town.toml: the model's `stall_after`.
    stall_patterns: tuple[str, ...] = ()
    stall_grace: float = 60.0
    # How its CLI goes on with an earlier session (`agents.resume`): args with {session} added
    # to a retry's argv; args with {session} that start a fresh session under an id tt chose
    # (so an attempt whose agent died still names its session); what the CLI says when it has
    # no such session (a rejected resume runs fresh in the same attempt).
    resume_args: tuple[str, ...] = ()
    session_args: tuple[str, ...] = ()
    resume_rejected: tuple[str, ...] = ()
    # Its output: text (stdout's tail is the result), or the CLI's JSON, which also gives the
    # session id, tokens, cost and its own error signals.
    output: OutputMode = OutputMode.TEXT
    # The account its CLI runs on: a usage or rate limit pauses every agent of the same
    # provider (`agents.limits.provider_of`: this, else the command's name).
    provider: str | None = None
