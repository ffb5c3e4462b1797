"""One town file under check: its text and digest, its TOML parse, and the problems found in it.

Problems carry the file name, JSON path and line (located only when a problem is, so a valid file
never pays for the locator). It reads no file itself and holds no rule about what is valid.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import rtoml

from ..errors import Problem
from .bounds import MAX_PROBLEMS
from .locate import JsonPath, LineIndex, json_path


class TomlDoc:
    """One file: its text, parsed data and problems. Lines are located only when a problem is."""

    def __init__(
        self, file: str, text: str, digest: str, problems: list[Problem] | None = None
    ) -> None:
        self.file = file
        self.text = text
        self.digest = digest
        self.problems: list[Problem] = [] if problems is None else problems
        self._lines: LineIndex | None = None
        self.reported = 0  # problems found in this file, listed or not (`MAX_PROBLEMS`)

    @property
    def full(self) -> bool:
        """Whether as many problems as are listed per file were reported already."""
        return self.reported >= MAX_PROBLEMS

    def parse(self) -> dict[str, Any] | None:
        # rtoml (Rust) parses a 10,000-task file ~9x faster than tomllib (PERF-FACTS: 34 vs
        # 243 ms). tomllib, the reference parser, runs only on a rejected text, to word the
        # problem with its line and column.
        try:
            data: dict[str, Any] = rtoml.loads(self.text)
            return data
        except ValueError as e:
            if "recursion" in str(e):
                # rtoml stops at ~80 levels of tables, arrays or dotted keys; tomllib would go on,
                # in time and memory that grow with the square of the depth.
                message, line, column = _toml_error(e)
                message = f"nested too deeply ({message})"
            else:
                message, line, column = self._explain(e)
        except RecursionError:
            message, line, column = "nested too deeply", None, None
        self.problems.append(Problem(self.file, "$", f"invalid TOML: {message}", line, column))
        self.reported += 1
        return None

    def _explain(self, fast_error: ValueError) -> tuple[str, int | None, int | None]:
        if sys.version_info >= (3, 11):  # (imported here: ~6 ms, for a rejected text only)
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as e:
            return _toml_error(e)
        except RecursionError:
            return "nested too deeply", None, None
        return _toml_error(fast_error)  # TOML 1.1 that tomllib (TOML 1.0) would accept

    def report(
        self,
        path: JsonPath,
        message: str,
        hint: str | None = None,
        line_at: JsonPath | None = None,
    ) -> None:
        """Add a problem at `path`; its line is that of `line_at` (default: `path`). Past
        `MAX_PROBLEMS` in this file it is only counted (see `summary`)."""
        self.reported += 1
        if self.reported > MAX_PROBLEMS:
            return
        self.problems.append(
            Problem(self.file, json_path(path), message, self.line(line_at or path), hint=hint)
        )

    def summary(self) -> Problem | None:
        """How many problems were found but not listed, if any."""
        if self.reported <= MAX_PROBLEMS:
            return None
        more = self.reported - MAX_PROBLEMS
        return Problem(self.file, "$", f"{more} more problem{'s' if more > 1 else ''} not listed")

    def line(self, path: JsonPath) -> int | None:
        """The line of `path`, or of its nearest parent the locator found."""
        if self._lines is None:
            self._lines = LineIndex(self.text)
        while path:
            found = self._lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return None


def _toml_error(e: ValueError) -> tuple[str, int | None, int | None]:
    # tomllib puts the position in the message ("... (at line 3, column 7)"), rtoml too
    # ("... at line 3 column 7"); 3.14 adds attributes.
    text = str(e)
    match = re.search(r"\s*\(?at line (\d+),? column (\d+)\)?$", text)
    if match:
        return text[: match.start()], int(match.group(1)), int(match.group(2))
    return text.replace(" (at end of document)", " at the end of the file"), None, None
