"""The one exception root of the engine.

A `TtError` carries what a person reads (message, hint) and the process exit code; the CLI maps
it to output in exactly one place. Library errors are chained with `raise ... from`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_TIMEOUT = 3
# `tt wait` / `apply --wait`: nothing can go on until a person approves (`tt approve`).
EXIT_AWAITING = 4
MASK = "****"


def mask_url(url: str) -> str:
    """`url` with its password (userinfo or `?password=`) replaced by ****; user names stay.
    Whatever the scheme (a misspelt one too, or none): every message that names a URL a person
    wrote goes through this, from the loader's problems to the store's connection errors.

    Deliberately cruder than a URL parser: everything after the first `:` of the userinfo, up
    to the last `@`, is masked, so even an unencoded `/`, `?` or `@` in a password never shows.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = f"{user}{colon and ':' + MASK}{rest[at:]}"
    return scheme + sep + re.sub(r"([?&]password=)[^&#]*", rf"\g<1>{MASK}", rest)


# A password in a URL inside free text: `scheme://user:PASSWORD@`, `scheme:user:PASSWORD@`.
_USERINFO = re.compile(r"([A-Za-z][\w+.-]*:/*[^\s:/@'\"]*:)[^\s@'\"]+@")


def mask_passwords(text: str) -> str:
    """Every URL password in `text` replaced by ****: a message quoting a value the person
    wrote (a URL in the wrong field, a misspelt scheme) never shows one."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", text) if "@" in text else text


class TtError(Exception):
    """An error a person can act on: message, optional hint, exit code. Passwords in URLs
    are masked in both, whatever raised it."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = EXIT_ERROR) -> None:
        message = mask_passwords(message)
        super().__init__(message)
        self.message = message
        self.hint = None if hint is None else mask_passwords(hint)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One validation finding: where (file, line, JSON path) and what."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        # Problems quote values from the files: a password in one is never shown or stored.
        object.__setattr__(self, "message", mask_passwords(self.message))
        if self.hint is not None:
            object.__setattr__(self, "hint", mask_passwords(self.hint))

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.path}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class ValidationFailed(TtError):
    """The town files are invalid; nothing was changed. Carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        lines = "\n".join(p.render() for p in problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in the town files; nothing was changed\n"
            + lines
        )


class RedisUnavailable(TtError):
    """Redis could not be reached (refused, dropped, timed out, loading): wait it out or report
    it; the message names the (masked) URL and the cause."""


class RedisFailed(TtError):
    """Redis answered with an error: a refusal (an ACL, a read-only replica) or a script error."""


class NotFound(TtError):
    """A named object (agent, task, town) does not exist."""


class Conflict(TtError):
    """The request is well formed but the town's state refuses it now: a task that is not in a
    state to retry, an apply lock another apply holds."""


class LeaderFenced(TtError):
    """A write made as leader was refused: a newer leader holds the town (this one's lease ran
    out mid-pass). The loop stops acting and stands by."""
