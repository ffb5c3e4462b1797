"""Issue 11, point 8 with real agents (`sim`, writing files): `tt apply --wait` on a town under
[git] ends with the commits it merged, one line per task; in a manual town the branches wait for
`tt merge`. Each test has its own town (embedded server), stopped by the `town` fixture."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.test_agents import Town, town  # noqa: F401
from tests.work.gitrepo import git, make_repo

pytestmark = [pytest.mark.integration]

TASKS = (
    '[[tasks]]\nid = "lib"\ndescription = "write lib [sim:write:lib.txt:lib]"\nagent = "dev"\n\n'
    '[[tasks]]\nid = "app"\ndescription = "write app [sim:write:app.txt:app]"\nagent = "dev"\n'
    'depends_on = ["lib"]\n'
)


def git_town(t: Town, name: str, table: str) -> None:
    make_repo(t.root)
    (t.root / "town.toml").write_text(
        f'[town]\nname = "{name}"\n\n[agents.dev]\nmodel = "sim"\n\n[git]\n{table}\n'
    )
    (t.root / "tasks.toml").write_text(TASKS)
    git(t.root, "add", "-A")
    git(t.root, "commit", "-q", "-m", "the town")


def test_apply_wait_lists_the_commits_it_merged(town: Town) -> None:  # noqa: F811
    git_town(town, "seeing-queue", "")
    waited = town.tt("apply", "--wait", "--timeout", "60s")
    merged = [line for line in waited.stdout.splitlines() if line.startswith("merged: ")]
    log = git(town.root, "log", "--format=%h %s", "-2", "main").splitlines()
    assert merged == [f"merged: lib {log[1]}", f"merged: app {log[0]}"], waited.stdout
    assert re.fullmatch(
        r"merged: lib [0-9a-f]{7} lib: write lib \[sim:write:lib.txt:lib\]", merged[0]
    )
    shown = json.loads(town.tt("show", "app", "-o", "json").stdout)
    assert shown["state"] == "completed" and shown["git"]["stage"] == "merged"
    assert shown["git"]["merged_commit"] == git(town.root, "rev-parse", "main")
    assert shown["log"] and shown["log"].endswith("/dev/app-1.log")
    again = town.tt("apply", "--wait", "--timeout", "60s")
    assert "merged: " not in again.stdout  # nothing merged by this wait


def test_a_manual_town_keeps_branches_until_tt_merge(town: Town) -> None:  # noqa: F811
    git_town(town, "seeing-manual", 'merge = "manual"')
    start = git(town.root, "rev-parse", "main")
    waited = town.tt("apply", "--wait", "--timeout", "60s")
    assert "merged: " not in waited.stdout
    assert git(town.root, "rev-parse", "main") == start
    rows = {t["id"]: t for t in town.status()["tasks"]}
    assert rows["lib"]["branch"] == "tt/seeing-manual/lib" and rows["lib"]["merged_commit"] is None
    done = town.tt("merge", "lib")
    assert done.stdout == f"merged lib as {git(town.root, 'rev-parse', 'main')} into main\n"
    done = town.tt("merge", "app")  # its branch has lib's merged in: it applies on top
    assert done.stdout.startswith("merged app as ")
    assert (town.root / "app.txt").read_text() == "app\n"
    assert (town.root / "lib.txt").read_text() == "lib\n"
