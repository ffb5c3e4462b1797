"""Tinytown's backlog verbs on a live town (sim, the embedded Valkey): `tt backlog add` appends
a task without agent (comments kept) and applies it to the backlog queue, `list` shows it,
`claim ID AGENT` writes the agent and moves the task to its queue, `remove ID` deletes its
table and prunes it; an unknown id, an unknown agent and a task that is not in the backlog are
refused with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.live import live_town

# The agent is suspended: tasks stay ready in their queues while the test looks at them.
TOWN = '# the team\n[town]\nname = "backlog"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n'
TASKS = """\
# The work, with comments tt must keep.
[meta]
description = "backlog demo"

# dev's own task
[[tasks]]
id = "own"
description = "Dev's own work"
agent = "dev"   # named on purpose
"""


def test_backlog_verbs_edit_tasks_toml_keep_comments_and_apply(tmp_path: Path) -> None:
    with live_town(tmp_path / "town") as town:
        town.write(TOWN, TASKS)
        town.name = "backlog"
        assert town.tt("apply").returncode == 0

        empty = town.tt("backlog", "list")
        assert empty.returncode == 0 and "the backlog is empty" in empty.stdout
        added = town.tt("backlog", "add", "Investigate flaky test", "--tags", "test,auth")
        assert added.returncode == 0, added.stderr
        assert added.stdout == "added t-investigate-flaky-test to the backlog\n"
        town.tt("backlog", "add", "Document tokens", "--id", "docs", "--tags", "docs")
        text = (town.root / "tasks.toml").read_text()
        assert text.startswith(TASKS)  # every line before stays as it was
        assert 'id = "docs"\ndescription = "Document tokens"\nstatus = "pending"\n' in text
        assert 'tags = ["test", "auth"]' in text
        tasks = town.tasks()
        assert tasks["docs"]["target"] == "*backlog" and tasks["docs"]["state"] == "ready"

        listed = town.tt("backlog", "list")
        assert listed.stdout.splitlines() == [
            "t-investigate-flaky-test  ready         Investigate flaky test  [test, auth]",
            "docs                      ready         Document tokens  [docs]",
        ]
        as_json = json.loads(town.tt("backlog", "list", "-o", "json").stdout)
        assert [i["id"] for i in as_json["backlog"]] == ["t-investigate-flaky-test", "docs"]

        # refusals: nothing changes
        before = (town.root / "tasks.toml").read_text()
        for args, said in [
            (("claim", "550e8400", "dev"), "error: no task '550e8400' in tasks.toml"),
            (("claim", "docs", "devv"), "error: no agent 'devv' in town.toml"),
            (("claim", "own", "dev"), "error: task 'own' is not in the backlog: agent = 'dev'"),
            (("remove", "own"), "error: task 'own' is not in the backlog: agent = 'dev'"),
            (("remove", "dcos"), "hint: did you mean 'docs'?"),
        ]:
            refused = town.tt("backlog", *args)
            assert refused.returncode == 1 and said in refused.stderr, (args, refused.stderr)
            assert refused.stderr.count("\n") == 2  # the error and its hint
        assert (town.root / "tasks.toml").read_text() == before

        claimed = town.tt("backlog", "claim", "docs", "dev")
        assert claimed.returncode == 0 and claimed.stdout == "docs claimed for dev\n"
        text = (town.root / "tasks.toml").read_text()
        assert 'id = "docs"\ndescription = "Document tokens"\nstatus = "pending"\n' in text
        assert 'agent = "dev"' in text.split('id = "docs"')[1]
        assert text.startswith(TASKS)
        assert town.tasks()["docs"]["target"] == "dev"
        assert "docs" not in town.tt("backlog", "list").stdout

        removed = town.tt("backlog", "remove", "t-investigate-flaky-test")
        assert removed.returncode == 0, removed.stderr
        text = (town.root / "tasks.toml").read_text()
        assert text.startswith(TASKS) and "t-investigate-flaky-test" not in text
        assert "t-investigate-flaky-test" not in town.tasks()  # pruned (a tombstone)
        assert town.tt("plan", "--detailed-exitcode").returncode == 0  # applied: nothing left
