"""Delivering one event to one sink (issue 15), without Redis: a command run through the
supervisor (argv, JSON on stdin, its tree killed at its timeout), a webhook POSTed to a local
HTTP server (JSON body, HMAC header, retries on a 5xx, none on a 4xx), and Slack's text."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.control import delivery
from reconciler.control.delivery import SIGNATURE_HEADER, deliver, signature
from reconciler.spec.notifyrules import NotifyRule
from tests.hookserver import Hook, hook_server
from tests.integration.live import alive, until

FAILED = {"type": "task.failed", "ts": "1765000000.5", "task": "build", "agent": "dev"}
FAILED.update(attempt="2", error="boom", permanent="1")


@pytest.fixture
def hook() -> Iterator[Hook]:
    with hook_server() as made:
        yield made


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "BACKOFF", 0.01)


def send(rule: NotifyRule, tmp_path: Path, fields: dict[str, str] = FAILED) -> delivery.Outcome:
    log = tmp_path / ".tt" / "logs" / "notify.log"
    return deliver(rule, "demo", "17-0", fields, root=tmp_path, log=log, stop=threading.Event())


def test_a_webhook_gets_the_event_as_json_signed_with_the_secret(
    hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TT_HOOK_SECRET", "s3cret")
    rule = NotifyRule(
        on=("task.failed",), webhook=hook.url + "/hook?token=x", secret_env="TT_HOOK_SECRET"
    )
    assert send(rule, tmp_path) == delivery.Outcome(True, "HTTP 204")
    ((_, headers, body),) = hook.posts
    event = json.loads(body)
    assert event["id"] == "17-0" and event["type"] == "task.failed" and event["town"] == "demo"
    assert event["attempt"] == 2 and event["permanent"] is True and event["ts"] == 1765000000.5
    assert event["summary"] == "[tt demo] task build failed after attempt 2: boom"
    assert headers[SIGNATURE_HEADER] == signature("s3cret", body)
    assert headers[SIGNATURE_HEADER].startswith("sha256=") and len(headers[SIGNATURE_HEADER]) == 71
    assert headers["X-Tt-Event"] == "task.failed"
    monkeypatch.delenv("TT_HOOK_SECRET")
    assert send(rule, tmp_path) == delivery.Outcome(
        False, "$TT_HOOK_SECRET is not set (it holds the webhook's secret)"
    )
    assert len(hook.posts) == 1  # nothing unsigned is sent


def test_a_webhook_is_retried_on_a_5xx_not_on_a_4xx(hook: Hook, tmp_path: Path) -> None:
    rule = NotifyRule(on=("task.failed",), webhook=hook.url + "/hook")
    hook.answers = [503, 502]
    assert send(rule, tmp_path) == delivery.Outcome(True, "HTTP 204")
    assert len(hook.posts) == 3
    hook.answers = [404]
    assert send(rule, tmp_path) == delivery.Outcome(False, "HTTP 404")
    assert len(hook.posts) == 4
    hook.answers = [500] * 10
    said = send(rule, tmp_path)
    assert said == delivery.Outcome(False, f"HTTP 500 (tried {delivery.ATTEMPTS} times)")
    hook.answers = [302]
    assert send(rule, tmp_path) == delivery.Outcome(False, "HTTP 302")  # not followed


def test_a_webhook_that_refuses_connections_fails_after_its_retries(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rule = NotifyRule(on=("task.failed",), webhook=f"http://127.0.0.1:{port}/")
    said = send(rule, tmp_path)
    assert not said.ok and "Connection refused" in said.detail
    assert said.detail.endswith(f"(tried {delivery.ATTEMPTS} times)")


@pytest.fixture
def dripping() -> Iterator[str]:
    """A server that answers each request a byte every 0.2 s (about 8 s in all): every socket
    read gets a byte within any timeout, the answer takes long."""
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def drip(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 204 No Content\r\nX-Pad: " + b"x" * 10 + b"\r\n\r\n":
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # cut off by the client

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed at the end of the test
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/drip"
    finally:
        stop.set()
        server.close()


def test_a_webhook_request_has_an_overall_deadline(dripping: str, tmp_path: Path) -> None:
    """Review #9: `timeout` bounds the whole request, not each socket read: an answer dripped
    a byte at a time is cut off at it (and tried again), never waited for whole."""
    rule = NotifyRule(on=("task.failed",), webhook=dripping, timeout=1.0)
    said = send(rule, tmp_path)
    assert said == delivery.Outcome(False, f"timed out after 1s (tried {delivery.ATTEMPTS} times)")


def test_slack_gets_the_summary_as_text(
    hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = NotifyRule(on=("task.failed",), slack_webhook_env="TT_SLACK_URL")
    assert send(rule, tmp_path) == delivery.Outcome(
        False, "$TT_SLACK_URL is not set (it holds the Slack webhook URL)"
    )
    monkeypatch.setenv("TT_SLACK_URL", "file:///etc/passwd")
    said = send(rule, tmp_path)
    assert said.detail == (
        "$TT_SLACK_URL is not a webhook URL: only http:// and https:// URLs are posted to"
    )
    monkeypatch.setenv("TT_SLACK_URL", hook.url)
    assert send(rule, tmp_path).ok
    ((_, _, body),) = hook.posts
    assert json.loads(body) == {"text": "[tt demo] task build failed after attempt 2: boom"}
    assert send(rule, tmp_path, {**FAILED, "error": "<!channel> fix <https://x|here>"}).ok
    assert json.loads(hook.posts[-1][2])["text"].endswith(
        ": &lt;!channel&gt; fix &lt;https://x|here&gt;"
    )


def test_no_url_password_reaches_what_a_failure_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review #5: a Slack URL with userinfo is refused, unposted and unquoted; and whatever a
    failure says has URL passwords masked."""
    rule = NotifyRule(on=("task.failed",), slack_webhook_env="TT_SLACK_URL")
    monkeypatch.setenv("TT_SLACK_URL", "https://user:s3cret@127.0.0.1:9/x")
    said = send(rule, tmp_path)
    assert not said.ok and "s3cret" not in said.detail
    assert said.detail == (
        "$TT_SLACK_URL is not a webhook URL: it holds a user name or password (sign the POSTs "
        "with secret_env instead)"
    )
    assert delivery.Outcome(False, "nope: https://u:s3cret@h/ said no").detail == (
        "nope: https://u:****@h/ said no"
    )


def test_a_command_gets_its_argv_filled_and_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "told.jsonl"
    script = (
        "import json, sys; event = json.load(sys.stdin); "
        f"open({str(out)!r}, 'a').write(json.dumps([sys.argv[1:], event['id']]) + '\\n')"
    )
    rule = NotifyRule(
        on=("task.failed",), command=(sys.executable, "-c", script, "{task}", "{summary}")
    )
    assert send(rule, tmp_path) == delivery.Outcome(True, "exit 0")
    assert json.loads(out.read_text()) == [
        ["build", "[tt demo] task build failed after attempt 2: boom"],
        "17-0",
    ]
    assert (tmp_path / ".tt/logs/notify.log").stat().st_mode & 0o777 == 0o600
    failing = NotifyRule(
        on=("task.failed",), command=(sys.executable, "-c", "raise SystemExit('no')")
    )
    assert send(failing, tmp_path) == delivery.Outcome(False, "exit 1: no")


def test_a_command_gets_a_declared_environment_not_the_watcher_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review #9: no model key or other secret of the watcher reaches a notify command; it gets
    the base set (PATH, HOME, locale, proxies...), its rule's `env` and `env_from`."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    monkeypatch.setenv("TT_REDIS_URL", "redis://:pw@h:6379/0")
    monkeypatch.setenv("PAGER_TOKEN", "pt")
    out = tmp_path / "env.json"
    script = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    rule = NotifyRule(
        on=("task.failed",),
        command=(sys.executable, "-c", script),
        env=(("CHANNEL", "ops"),),
        env_from=("PAGER_TOKEN",),
    )
    assert send(rule, tmp_path).ok
    env = json.loads(out.read_text())
    assert env["PATH"] == os.environ["PATH"] and env["CHANNEL"] == "ops"
    assert env["PAGER_TOKEN"] == "pt"
    assert "ANTHROPIC_API_KEY" not in env and "TT_REDIS_URL" not in env
    monkeypatch.delenv("PAGER_TOKEN")
    assert send(rule, tmp_path) == delivery.Outcome(
        False, "$PAGER_TOKEN is not set (the rule's env_from names it)"
    )


def test_a_command_past_its_timeout_has_its_whole_tree_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    rule = NotifyRule(on=("task.failed",), command=("sh", "-c", script), timeout=0.5)
    said = send(rule, tmp_path)
    assert said == delivery.Outcome(False, "timed out after 0.5s (its process tree was killed)")
    child = int(pid_file.read_text())
    until(lambda: not alive(child), 10, "the command's own child killed with it")
    missing = NotifyRule(on=("task.failed",), command=("tt-no-such-notifier",))
    said = send(missing, tmp_path)
    assert not said.ok and "tt-no-such-notifier" in said.detail


def test_a_command_still_running_when_the_watcher_stops_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    rule = NotifyRule(
        on=("task.failed",), command=("sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait")
    )
    stop = threading.Event()
    log = tmp_path / "notify.log"
    said: list[delivery.Outcome] = []
    sender = threading.Thread(
        target=lambda: said.append(
            deliver(rule, "demo", "1-0", FAILED, root=tmp_path, log=log, stop=stop)
        )
    )
    sender.start()
    until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "the command runs")
    stop.set()
    sender.join(10)
    assert said == [
        delivery.Outcome(False, "stopped with the watcher (its process tree was killed)")
    ]
    child = int(pid_file.read_text())
    until(lambda: not alive(child), 10, "its child killed with it")


def test_http_leaves_only_through_delivery() -> None:
    """One door to each outside world: urllib.request and http.client are imported only here."""
    root = Path(__file__).parents[2]
    found = sorted(
        p.relative_to(root).as_posix()
        for p in [*root.glob("reconciler/**/*.py"), *root.glob("cli/**/*.py")]
        if re.search(
            r"^\s*(import|from) (urllib\.request|urllib\.error|http\.client)\b", p.read_text(), re.M
        )
    )
    assert found == ["reconciler/control/delivery.py"]
