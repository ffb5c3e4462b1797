"""Notifications (issue 15) with real Valkey, sim agents and `tt watch` processes: a notify
command and a webhook (a local HTTP server checking the HMAC header) each get every matching
event exactly once, also when the watcher is killed between events and another starts; the
`tasks` and `agents` filters hold; a webhook that never answers, or refuses connections, does not
hold up the reconcile loop."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.control.delivery import SIGNATURE_HEADER, signature
from tests.integration.live import LiveTown, live_town, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="finds processes through /proc"),
]

SECRET = "hook-secret-42"
TELL = """\
import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:], "id": json.load(sys.stdin)["id"]}) + "\\n")
"""


class Hook:
    """A local webhook server: records each POST by path once it verified the signature (a
    bad one is answered 401 and recorded apart); `hold` makes it keep requests unanswered."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.bad: list[str] = []
        self.waiting = 0  # requests held unanswered now
        self.release = threading.Event()
        self.hold = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.hold:
                    hook.waiting += 1
                    hook.release.wait()
                    hook.waiting -= 1
                signed = self.headers.get(SIGNATURE_HEADER)
                if self.path.startswith("/signed") and signed != signature(SECRET, body):
                    hook.bad.append(f"{self.path}: {signed}")
                    self.send_response(401)
                else:
                    hook.got.setdefault(self.path, []).append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def told(self, path: str) -> list[tuple[str, str]]:
        return [(e["type"], e.get("task", "")) for e in self.got.get(path, [])]


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.release.set()
    made.server.shutdown()
    made.server.server_close()


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
    return f"""[town]
name = "told"
heartbeat = "1s"

[agents.dev]
model = "sim"

[agents.ops]
model = "sim"

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
        until(lambda: len(hook.told("/signed")) == 2, 60, "first's events posted")
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
        until(lambda: hook.told("/signed") == expected, 60, "the signed webhook told all")
        until(
            lambda: [tuple(a[:2]) for a in told_by_command(every)] == expected,
            60,
            "command told all",
        )
        until(
            lambda: hook.told("/ops") == [("task.claimed", "third"), ("task.completed", "third")],
            60,
            "ops' events",
        )
        until(lambda: told_by_command(second) == [["second"]], 60, "the tasks filter")

        # Nothing more comes, once the watcher has passed every event (no resend on restart).
        last = town.events()[-1]["id"]
        until(lambda: all(c >= last for c in cursors(town)), 60, "every cursor at the end")
        assert [tuple(a[:2]) for a in told_by_command(every)] == expected
        assert hook.told("/signed") == expected and hook.bad == []
        posted = hook.got["/signed"][-1]
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
    town_toml = f"""[town]
name = "slow"
heartbeat = "1s"

[agents.dev]
model = "sim"

[agents.ops]
model = "sim"

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
        assert hook.waiting == 1 and hook.got == {}
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
        assert hook.got == {} and watcher.poll() is None, town.log_of(watcher)
