"""Notifications (issue 15) with real Valkey, sim agents and `tt watch` processes: a notify
command and a webhook (a local HTTP server checking the HMAC header) each get every matching
event exactly once, also when the watcher is killed between events and another starts; the
`tasks` and `agents` filters hold; a webhook that never answers, or refuses connections, does not
hold up the reconcile loop."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.control.delivery import SIGNATURE_HEADER, signature
from tests.hookserver import Hook, hook_server
from tests.integration.live import LiveTown, live_town, until
from tests.integration.test_limits import model

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="finds processes through /proc"),
]

SECRET = "hook-secret-42"
HEAD = (
    '[town]\nname = "{name}"\nheartbeat = "1s"\n\n'
    '[agents.dev]\nmodel = "sim"\n\n[agents.ops]\nmodel = "sim"\n'
)

TELL = """\
import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:], "id": json.load(sys.stdin)["id"]}) + "\\n")
"""


@pytest.fixture
def hook() -> Iterator[Hook]:
    with hook_server() as made:
        yield made


def told(hook: Hook, path: str) -> list[tuple[str, str]]:
    return [(e["type"], e.get("task", "")) for e in hook.events(path)]


def badly_signed(hook: Hook) -> list[str]:
    return [
        p
        for p, headers, body in hook.posts
        if p == "/signed" and headers.get(SIGNATURE_HEADER) != signature(SECRET, body)
    ]


def told_by_command(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [json.loads(line)["argv"] for line in path.read_text().splitlines()]


def tasks_text(*ids: str) -> str:
    agent = {"first": "dev", "second": "dev", "third": "ops", "fourth": "dev"}
    text = ""
    for i, tid in enumerate(ids):
        text += f'[[tasks]]\nid = "{tid}"\ndescription = "do {tid}"\nagent = "{agent[tid]}"\n'
        text += f'depends_on = ["{ids[i - 1]}"]\n\n' if i else "\n"
    return text


def town_text(hook: Hook, script: Path, tmp: Path) -> str:
    py = json.dumps(sys.executable)
    placeholders = '"{event}", "{task}", "{agent}", "{summary}"'
    return f"""{HEAD.format(name="told")}
[[notify]]
on = ["task.completed", "task.failed", "town.completed"]
command = [{py}, "{script}", "{tmp / "all.jsonl"}", {placeholders}]

[[notify]]
on = ["task.completed", "town.completed"]
webhook = "{hook.url}/signed"
secret_env = "NOTIFY_TEST_SECRET"

[[notify]]
on = ["task.completed"]
tasks = ["second"]
command = [{py}, "{script}", "{tmp / "second.jsonl"}", "{{task}}"]

[[notify]]
on = ["task.claimed", "task.completed"]
agents = ["ops"]
webhook = "{hook.url}/ops"
"""


def test_each_event_is_told_once_to_each_sink_across_a_watcher_restart(
    tmp_path: Path, hook: Hook
) -> None:
    script = tmp_path / "tell.py"
    script.write_text(TELL)
    every, second = tmp_path / "all.jsonl", tmp_path / "second.jsonl"
    with live_town(tmp_path / "told", sim_delay=0.05) as town:
        town.env["NOTIFY_TEST_SECRET"] = SECRET
        town.write(town_text(hook, script, tmp_path), tasks_text("first"))
        applied = town.tt("apply")
        assert applied.returncode == 0, applied.stderr
        first = town.start_watcher()
        until(lambda: len(told_by_command(every)) == 2, 60, "first's events told")
        until(lambda: len(told(hook, "/signed")) == 2, 60, "first's events posted")
        assert told_by_command(every) == [
            ["task.completed", "first", "dev", "[tt told] task first completed"],
            ["town.completed", "", "", "[tt told] all 1 tasks finished (1 completed)"],
        ]
        town.kill_watcher(first)  # kill -9: no goodbye, its cursors are what Redis has

        # Two more tasks run and finish while no watcher runs: their events wait in the stream.
        town.save("tasks.toml", tasks_text("first", "second", "third"))
        applied = town.tt("apply")
        assert applied.returncode == 0, applied.stderr
        until(lambda: town.tasks()["third"]["state"] == "completed", 60, "third completed")
        assert len(told_by_command(every)) == 2  # nobody tells while no watcher leads

        again = town.start_watcher()
        expected = [
            ("task.completed", "first"),
            ("town.completed", ""),
            ("task.completed", "second"),
            ("task.completed", "third"),
            ("town.completed", ""),
        ]
        until(lambda: told(hook, "/signed") == expected, 60, "the signed webhook told all")
        until(
            lambda: [tuple(a[:2]) for a in told_by_command(every)] == expected,
            60,
            "command told all",
        )
        until(
            lambda: told(hook, "/ops") == [("task.claimed", "third"), ("task.completed", "third")],
            60,
            "ops' events",
        )
        until(lambda: told_by_command(second) == [["second"]], 60, "the tasks filter")

        # Nothing more comes, once the watcher has passed every event (no resend on restart).
        last = town.events()[-1]["id"]
        until(lambda: all(c >= last for c in cursors(town)), 60, "every cursor at the end")
        assert [tuple(a[:2]) for a in told_by_command(every)] == expected
        assert told(hook, "/signed") == expected and badly_signed(hook) == []
        posted = hook.events("/signed")[-1]
        assert posted["town"] == "told" and posted["count"] == 3 and posted["completed"] == "3"
        assert again.poll() is None, town.log_of(again)
        assert town.events("notify.failed") == []


def cursors(town: LiveTown) -> list[str]:
    return [str(v) for v in town.store.client.hvals(town.store.keys.notify)]


def test_a_webhook_that_never_answers_or_refuses_does_not_hold_up_the_loop(
    tmp_path: Path, hook: Hook
) -> None:
    hook.hold = True  # every request waits until the end of the test
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
    town_toml = f"""{HEAD.format(name="slow")}
[[notify]]
on = ["task.ready", "task.claimed", "task.completed", "town.completed"]
webhook = "{hook.url}/held"
timeout = "10m"

[[notify]]
on = ["task.ready", "task.claimed", "task.completed", "town.completed"]
webhook = "{refused}"
"""
    with live_town(tmp_path / "slow", sim_delay=0.05) as town:
        town.write(town_toml, tasks_text("first", "second", "third"))
        # `apply --wait` is a reconcile loop that ends when every task is final: it ends with
        # the held webhook's first request still unanswered.
        waited = town.tt("apply", "--wait", timeout=120)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        until(lambda: hook.waiting == 1, 30, "the first request held")
        assert hook.posts == []  # never answered, and the loop ended all the same
        assert {r["state"] for r in town.tasks().values()} == {"completed"}
        until(lambda: town.events("notify.failed"), 60, "the refused webhook's failure told")
        failed = town.events("notify.failed")[0]
        assert failed["sink"].startswith("webhook http://127.0.0.1:")
        assert "Connection refused" in failed["error"]

        # A watcher's passes go on too: a task added to the file is applied and run, while
        # its own notifier waits on the held webhook.
        watcher = town.start_watcher()
        until(lambda: hook.waiting == 2, 60, "the watcher's request held too")
        town.save("tasks.toml", tasks_text("first", "second", "third") + tasks_text("fourth"))
        until(lambda: town.tasks().get("fourth", {}).get("state") == "completed", 60, "fourth")
        until(lambda: len(town.events("town.completed")) == 2, 60, "completed again")
        assert hook.posts == [] and watcher.poll() is None, town.log_of(watcher)


def test_a_person_is_told_when_a_task_awaits_approval_and_when_it_is_approved(
    tmp_path: Path,
) -> None:
    script = tmp_path / "tell.py"
    script.write_text(TELL)
    out = tmp_path / "gate.jsonl"
    rule = (
        '\n[[notify]]\non = ["task.awaiting_approval", "task.approved"]\n'
        f'command = [{json.dumps(sys.executable)}, "{script}", "{out}", "{{summary}}"]\n'
    )
    tasks = (
        '[[tasks]]\nid = "build"\ndescription = "build it"\nagent = "dev"\napprove = true\n\n'
        '[[tasks]]\nid = "deploy"\ndescription = "ship it"\nagent = "dev"\nparent = "build"\n'
    )
    with live_town(tmp_path / "gated", sim_delay=0.05) as town:
        town.write(HEAD.format(name="gated") + rule, tasks)
        applied = town.tt("apply")
        assert applied.returncode == 0, applied.stderr
        watcher = town.start_watcher()
        until(lambda: told_by_command(out), 60, "told that build awaits approval")
        assert told_by_command(out) == [
            ["[tt gated] task build awaits approval (tt approve build)"]
        ]
        approved = town.tt("approve", "build", "--comment", "looks good")
        assert approved.returncode == 0, approved.stderr
        until(lambda: len(told_by_command(out)) == 2, 60, "told that build was approved")
        said = told_by_command(out)[1][0]
        assert said.startswith("[tt gated] task build approved by ") and said.endswith(
            ": looks good"
        )
        until(lambda: town.tasks()["deploy"]["state"] == "completed", 60, "deploy ran")
        assert len(told_by_command(out)) == 2 and watcher.poll() is None


def test_a_webhook_is_told_once_when_the_budget_is_exhausted(tmp_path: Path, hook: Hook) -> None:
    town_toml = (
        '[town]\nname = "spent"\nbudget_usd = 0.05\n\n[agents.dev]\nmodel = "fake-claude"\n\n'
        + model("fake-claude", "claude", "success", "claude-json")
        + f'\n[[notify]]\non = ["budget.exhausted"]\nwebhook = "{hook.url}/budget"\n'
    )
    three = "".join(
        f'[[tasks]]\nid = "{t}"\ndescription = "do {t}"\nagent = "dev"\n\n' for t in "abc"
    )
    with live_town(tmp_path / "spent") as town:
        town.write(town_toml, three)
        applied = town.tt("apply")
        assert applied.returncode == 0, applied.stderr
        watcher = town.start_watcher()
        until(lambda: hook.events("/budget"), 60, "the budget's exhaustion told")
        (told_once,) = hook.events("/budget")
        assert (told_once["scope"], told_once["limit"]) == ("town", "0.05")
        assert told_once["summary"].startswith("[tt spent] budget town exhausted: spent 0.08")
        assert watcher.poll() is None, town.log_of(watcher)


def test_town_completed_is_not_told_again_for_the_same_finish(tmp_path: Path) -> None:
    """Review #4: an apply that changes only the agents (it moves the apply generation) runs
    nothing: the finish is the same and `town.completed` is not written again; a task added
    and run is a new finish."""
    head = HEAD.format(name="again")
    one = '[[tasks]]\nid = "one"\ndescription = "do one"\nagent = "dev"\n'
    with live_town(tmp_path / "again", sim_delay=0.05) as town:
        town.write(head, one)
        waited = town.tt("apply", "--wait", timeout=120)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert len(town.events("town.completed")) == 1
        town.save("town.toml", head + '\n[agents.qa]\nmodel = "sim"\n')  # nothing re-runs
        waited = town.tt("apply", "--wait", timeout=120)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert len({e["generation"] for e in town.events("apply")}) == 2  # it moved
        assert len(town.events("town.completed")) == 1
        town.save(
            "tasks.toml", one + '\n[[tasks]]\nid = "two"\ndescription = "two"\nagent = "qa"\n'
        )
        waited = town.tt("apply", "--wait", timeout=120)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        (_, again) = town.events("town.completed")
        assert again["count"] == "2" and again["completed"] == "2"
