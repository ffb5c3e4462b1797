"""`tt plan` of an emptied tasks.toml shows the deletions, then says that `tt apply` would refuse
them without --allow-empty; its exit code is that of any plan with changes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.inproc import DEV, town_files, tt


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    yield from town_files(
        tmp_path,
        redis_url,
        town_name,
        DEV,
        '[[tasks]]\nid = "one"\ndescription = "x"\n\n[[tasks]]\nid = "two"\ndescription = "y"\n',
    )


def test_plan_of_an_emptied_file_shows_the_deletions_then_the_refusal(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tt(capsys, "apply", "--town", str(town))[0] == 0
    (town / "tasks.toml").write_text("")
    code, out, err = tt(capsys, "plan", "--town", str(town))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    # Each would be kept as a tombstone (keep_deleted), restored if its id comes back.
    assert [line.split(" (kept as tombstone until ")[0] for line in lines[:2]] == [
        "- task one",
        "- task two",
    ]
    assert all(
        re.fullmatch(r"- task \w+ \(kept as tombstone until [\dT:-]+\)", x) for x in lines[:2]
    )
    assert lines[2] == "Plan: 0 to create, 0 to change, 2 to delete"
    assert lines[3].startswith("note: tt apply would refuse this plan: it would delete every task")
    assert "--allow-empty" in lines[4]
    assert tt(capsys, "plan", "--detailed-exitcode", "--town", str(town))[0] == 2
    code, out, _ = tt(capsys, "apply", "--dry-run", "--town", str(town), "-o", "json")
    assert code == 0 and json.loads(out)["deletes_everything"] is True
    code, _, err = tt(capsys, "apply", "--town", str(town))
    assert code == 1 and err.startswith("error: refusing to apply")
    code, out, _ = tt(capsys, "status", "--town", str(town), "-o", "json")
    assert {t["id"] for t in json.loads(out)["tasks"]} == {"one", "two"}  # nothing was deleted
