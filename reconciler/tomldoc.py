"""One town file under check: its text and digest, its TOML parse, and the problems found in it.

Problems carry the file name, JSON path and line (located only when a problem is, so a valid file
never pays for the locator). It reads no file itself and holds no rule about what is valid.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .errors import Problem
from .locate import JsonPath, index_lines, json_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TomlDoc:
    """One file: its text, parsed data and problems. Lines are located only when a problem is."""

    def __init__(
        self, file: str, text: str, digest: str, problems: list[Problem] | None = None
    ) -> None:
        self.file = file
        self.text = text
        self.digest = digest
        self.problems: list[Problem] = [] if problems is None else problems
        self._lines: dict[JsonPath, int] | None = None

    def parse(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = tomllib.loads(self.text)
            return data
        except tomllib.TOMLDecodeError as e:
            message, line, column = _toml_error(e)
            self.problems.append(Problem(self.file, "$", f"invalid TOML: {message}", line, column))
        except RecursionError:
            self.problems.append(Problem(self.file, "$", "invalid TOML: nested too deeply"))
        return None

    def report(
        self,
        path: JsonPath,
        message: str,
        hint: str | None = None,
        line_at: JsonPath | None = None,
    ) -> None:
        """Add a problem at `path`; its line is that of `line_at` (default: `path`)."""
        self.problems.append(
            Problem(self.file, json_path(path), message, self.line(line_at or path), hint=hint)
        )

    def line(self, path: JsonPath) -> int | None:
        """The line of `path`, or of its nearest parent the locator found."""
        if self._lines is None:
            self._lines = index_lines(self.text)
        while path:
            found = self._lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return None


def _toml_error(e: ValueError) -> tuple[str, int | None, int | None]:
    # tomllib puts the position in the message ("... (at line 3, column 7)"); 3.14 adds attributes.
    text = str(e)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if match:
        return text[: match.start()], int(match.group(1)), int(match.group(2))
    return text.replace(" (at end of document)", " at the end of the file"), None, None
