"""Why an attempt ended, as one word (`ExitClass`), from what tt saw and what the CLI said.

Pure: text and flags in, a class out. The CLI parsers (`parsers`) read the CLI's own signals
first; these rules name what is left from the texts tt writes (`launch_failed: …`,
`conflict: …`, `timed out after …`) and from messages every CLI words alike (logins). A usage
or rate limit is only ever read from the CLI's own words (`limit_class`: its JSON's error
message, or an error line on its stderr), never from the model's transcript: a task about rate
limiting prints "429 Too Many Requests" in its test output. It decides no task's fate.
"""

from __future__ import annotations

import re
from enum import Enum


class ExitClass(str, Enum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    STALLED = "stalled"
    USAGE_LIMIT = "usage_limit"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    NOT_INSTALLED = "not_installed"
    LAUNCH_FAILED = "launch_failed"
    CONFLICT = "conflict"
    CHECK_FAILED = "check_failed"
    MERGE_FAILED = "merge_failed"


# The provider said: the account's quota for a period is spent (it resets at a given time).
USAGE_LIMIT = re.compile(
    r"usage limit|(?:5-hour|hourly|daily|weekly|session) limit reached|You've hit your limit"
    r"|exhausted your (?:daily |monthly )?quota|Quota exceeded for quota metric.*per ?day",
    re.IGNORECASE,
)
# The provider said: too many requests for now (retry soon).
RATE_LIMITED = re.compile(
    r"rate[ _-]?limit(?:ed|_error| exceeded| reached)?\b|Too Many Requests|RESOURCE_EXHAUSTED"
    r"|overloaded_error|\b429 (?:Too Many|\{)",
    re.IGNORECASE,
)
# The CLI has no valid login or key (a retry cannot help).
AUTH = re.compile(
    r"Not logged in|Please run /login|Please set an Auth method|No authentication information"
    r"|Authentication token found but could not be validated|No auth provided"
    r"|not able to authenticate you|AuthenticationError|authentication_error|Invalid API key"
    r"|OAuth token has expired|\b401 Unauthorized",
    re.IGNORECASE,
)
# Texts tt itself writes for an attempt's error start with their class.
PREFIXES: tuple[tuple[str, ExitClass], ...] = (
    ("launch_failed: model CLI not found", ExitClass.NOT_INSTALLED),
    ("launch_failed", ExitClass.LAUNCH_FAILED),
    ("conflict:", ExitClass.CONFLICT),
    ("check_failed:", ExitClass.CHECK_FAILED),
    ("merge_failed:", ExitClass.MERGE_FAILED),
    ("timed out after", ExitClass.TIMEOUT),
    ("stalled:", ExitClass.STALLED),
    ("stopped", ExitClass.KILLED),
)


# A line a CLI writes on stderr to say it failed, not the model's work it shows: codex's
# `ERROR: …` (after a timestamp), `Error: …` (copilot, node CLIs), gemini's `[API Error: …]`.
ERROR_LINE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:ERROR|Error|error)\b\s*:|^\s*\[API Error")
LIMIT_PATTERNS = ((USAGE_LIMIT, ExitClass.USAGE_LIMIT), (RATE_LIMITED, ExitClass.RATE_LIMITED))


def limit_class(message: str) -> ExitClass | None:
    """The limit a CLI's own message names (usage before rate), else None."""
    for pattern, cls in LIMIT_PATTERNS:
        if pattern.search(message):
            return cls
    return None


def limit_line(text: str, cls: ExitClass) -> str | None:
    """The last line of `text` that names the limit `cls` (its reset is read there only)."""
    pattern = USAGE_LIMIT if cls is ExitClass.USAGE_LIMIT else RATE_LIMITED
    return next((x for x in reversed(text.splitlines()) if pattern.search(x)), None)


def stderr_limit(stderr: str) -> ExitClass | None:
    """The limit an error line of a CLI's stderr names (text mode), else None."""
    for line in reversed(stderr.splitlines()):
        if ERROR_LINE.search(line) and (cls := limit_class(line)) is not None:
            return cls
    return None


def signal_class(text: str) -> ExitClass | None:
    """The class a CLI's own message names (usage limit, rate limit, login), else None."""
    return limit_class(text) or (ExitClass.AUTH if AUTH.search(text) else None)


def classify_error(error: str) -> ExitClass:
    """The class of a failed attempt from its error text (tt's prefixes, then a login the
    CLI names; never a limit: its text may be the model's): also how a record written before
    classes existed is shown."""
    for prefix, cls in PREFIXES:
        if error.startswith(prefix):
            return cls
    return ExitClass.AUTH if AUTH.search(error) else ExitClass.FAILED


def classify_record(outcome: str, error: str) -> ExitClass:
    """The class of a stored attempt that has none (written before exit classes)."""
    if outcome == "completed":
        return ExitClass.SUCCESS
    if outcome == "handed back":
        return ExitClass.KILLED
    return classify_error(error)
