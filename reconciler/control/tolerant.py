"""Edits of a town that is not valid yet (issue #20 point 2): Tinytown's pipeline tutorial writes
a tasks.toml naming four agents, then spawns them one by one; each single spawn still leaves the
town invalid. An edit verb saves a change that adds no new problem (old ones may stay), and
applies only once the town is valid. Pure decisions on the loader's problems; no click here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..errors import Problem, ValidationFailed
from ..spec import loader
from ..town import TownPaths


def _key(p: Problem) -> tuple[str, str]:
    # Line numbers move when a file is edited: a problem is the same by file and words.
    return (p.file, p.message)


def problems_of(town_text: str, tasks_text: str) -> list[Problem]:
    try:
        loader.validate_texts(town_text, tasks_text)
    except ValidationFailed as e:
        return list(e.problems)
    return []


def no_new_problem(paths: TownPaths) -> Callable[[str, str], None]:
    """The `Validate` of an edit verb: the new pair may keep problems the files on disk have
    now (read when it runs: under the edit lock, before the write), never add one."""

    def validate(town_text: str, tasks_text: str) -> None:
        after = problems_of(town_text, tasks_text)
        if not after:
            return
        before = Counter(
            _key(p) for p in problems_of(_read(paths.town_file), _read(paths.tasks_file))
        )
        new = []
        for p in after:
            if before[_key(p)] > 0:
                before[_key(p)] -= 1
            else:
                new.append(p)
        if new:
            raise ValidationFailed(new)

    return validate


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError:
        return ""
