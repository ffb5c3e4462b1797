"""Why a model could not be launched, in words a person can act on: pure functions of the argv,
the working folder and the error. An attempt whose model cannot start fails with exit class
`launch_failed` (counted against its retries); the agent itself serves on.
It starts nothing (that is `supervisor`) and decides no task's fate (the worker does).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LAUNCH_FAILED = "launch_failed"
# One argv element may not exceed MAX_ARG_STRLEN (32 pages: 128 KiB on Linux), and the whole of
# argv and environment shares ARG_MAX: a prompt above this goes by file or fails the attempt.
SAFE_ARG_BYTES = 100_000


@dataclass(frozen=True)
class Launch:
    """Why a model could not be started (`reason`), and what to change (`hint`)."""

    reason: str
    hint: str | None = None

    def text(self) -> str:
        """The attempt's error: the exit class first, as `tt status` and the events show it."""
        return f"{LAUNCH_FAILED}: {self.reason}"


class LaunchFailed(Exception):
    """Raised while an attempt is prepared: its model cannot be started."""

    def __init__(self, launch: Launch) -> None:
        super().__init__(launch.reason)
        self.launch = launch


def explain(error: BaseException, argv: Sequence[str], cwd: str, env: Mapping[Any, Any]) -> Launch:
    """Why `argv` could not be started in `cwd` with `env` (the exception exec or Popen raised)."""
    name = argv[0] if argv else "(empty command)"
    fix_command = "fix the model's command in town.toml"
    if isinstance(error, OSError):
        code = error.errno
        on_cwd = error.filename is not None and os.fsdecode(error.filename) == cwd
        if on_cwd and code == errno.ENOENT:
            return Launch(f"the working folder {cwd} does not exist", "fix the agent's workdir")
        if on_cwd and code == errno.ENOTDIR:
            return Launch(f"the working folder {cwd} is not a folder", "fix the agent's workdir")
        if on_cwd:
            return Launch(f"cannot enter the working folder {cwd}: {error.strerror}")
        if code == errno.ENOENT:
            return Launch(f"model CLI not found: {name}", f"install {name} or {fix_command}")
        if code in (errno.EACCES, errno.EPERM):
            return Launch(f"cannot execute {name}: permission denied", fix_command)
        if code == errno.ENOEXEC:
            return Launch(f"cannot execute {name}: not an executable format", fix_command)
        if code == errno.E2BIG:
            size = command_bytes(argv, env)
            return Launch(
                f"the command line is too long for the system ({size:,} bytes of arguments "
                "and environment)",
                'pass the prompt by stdin or file (prompt = "stdin" or "file") or shorten '
                "the agent's env",
            )
        return Launch(f"cannot start {name}: {error.strerror or error}", fix_command)
    if isinstance(error, ValueError) and "null" in str(error):
        where = "the command line" if any("\0" in a for a in argv) else "the environment"
        return Launch(
            f"a NUL byte in {where} of the model",
            'a NUL byte cannot be passed to a process: prompt = "stdin" or "file" carries any text',
        )
    return Launch(f"cannot start {name}: {type(error).__name__}: {error}", fix_command)


def command_bytes(argv: Sequence[str], env: Mapping[Any, Any]) -> int:
    """What exec copies for `argv` and `env` (each string and its NUL, as the kernel counts)."""
    total = sum(len(os.fsencode(a)) + 1 for a in argv)
    for k, v in env.items():
        total += len(os.fsencode(k)) + len(os.fsencode(v)) + 2
    return total


def pointer(prompt_bytes: int, prompt_file: str) -> str:
    """The argument that stands for a prompt too long for the command line."""
    return (
        f"Your task is too long for the command line ({prompt_bytes:,} bytes); it is in the "
        f"file {prompt_file}. Read that file and do what it says."
    )


def too_long(prompt_bytes: int) -> Launch:
    return Launch(
        f"the prompt is {prompt_bytes:,} bytes, more than the {SAFE_ARG_BYTES:,} that can go "
        'safely as one argument (prompt = "arg")',
        'use prompt = "stdin" or "file", or put {prompt_file} in the model\'s command (a '
        "long prompt then goes by file)",
    )
