"""Delivering one event to one `[[notify]]` sink: a command (through the supervisor, the door to
processes: argv only, the event's JSON on stdin, its tree killed at the timeout), a webhook (a
JSON POST with urllib, http(s) only, redirects not followed, retried with backoff, signed with
HMAC-SHA256 when the rule names a secret) or Slack. Never raises: it returns what happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agents.environment import BASE, BASE_PREFIXES
from ..agents.supervisor import open_log, run_model
from ..errors import mask_passwords
from ..spec.events import event_json
from ..spec.notifycheck import url_problem
from ..spec.notifyrules import NotifyRule, SinkKind
from .notifytext import fill, slack_text, summary

SIGNATURE_HEADER = "X-Tt-Signature"
EVENT_HEADER = "X-Tt-Event"
ATTEMPTS = 4  # a webhook is tried this often on a network error, a timeout, 429 or a 5xx
BACKOFF = 0.5  # seconds before the second try, doubling
COMMAND_PREFIXES = tuple(p for p in BASE_PREFIXES if p != "TT_")  # (locale, XDG folders)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # `HTTP 204`, `exit 0`, or why it failed (URL passwords masked: it is told)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", mask_passwords(self.detail))


def payload(town: str, event_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The event as `tt events -o json` gives it, with the town and the summary."""
    return {**event_json(event_id, fields), "town": town, "summary": summary(town, fields)}


def signature(secret: str, body: bytes) -> str:
    """The `X-Tt-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    rule: NotifyRule,
    town: str,
    event_id: str,
    fields: dict[str, str],
    *,
    root: Path,
    log: Path,
    stop: threading.Event,
) -> Outcome:
    """Tell one event to the rule's sink; `stop` cuts a webhook's retries short."""
    event = payload(town, event_id, fields)
    body = json.dumps(event).encode()
    if rule.kind is SinkKind.COMMAND:
        lacking = [name for name in rule.env_from if name not in os.environ]
        if lacking:
            return Outcome(False, f"${lacking[0]} is not set (the rule's env_from names it)")
        argv = fill(rule.command, fields, event["summary"])
        return run_command(
            argv,
            body,
            env=command_env(os.environ, rule),
            root=root,
            log=log,
            timeout=rule.timeout,
            stop=stop,
        )
    headers = {"Content-Type": "application/json", EVENT_HEADER: fields.get("type", "")}
    if rule.kind is SinkKind.SLACK:
        name = rule.slack_webhook_env or ""
        url = os.environ.get(name, "")
        if not url:
            return Outcome(False, f"${name} is not set (it holds the Slack webhook URL)")
        if why := url_problem(url):
            return Outcome(False, f"${name} is not a webhook URL: {why}")
        body = json.dumps({"text": slack_text(event["summary"])}).encode()
        return post(url, body, headers, timeout=rule.timeout, stop=stop)
    if rule.secret_env:
        secret = os.environ.get(rule.secret_env)
        if not secret:
            return Outcome(False, f"${rule.secret_env} is not set (it holds the webhook's secret)")
        headers[SIGNATURE_HEADER] = signature(secret, body)
    return post(rule.webhook or "", body, headers, timeout=rule.timeout, stop=stop)


def command_env(source: Mapping[str, str], rule: NotifyRule) -> dict[str, str]:
    """A notify command's environment: of `source` (the watcher's) only the base set an agent
    gets too (paths, user, locale, terminal, proxies, CA certificates; not tt's own `TT_*`,
    whose Redis URL may hold a password) and the rule's `env_from`; then its `env`."""
    env = {
        k: v
        for k, v in source.items()
        if k in BASE or k.startswith(COMMAND_PREFIXES) or k in rule.env_from
    }
    return env | dict(rule.env)


def run_command(
    argv: list[str],
    stdin: bytes,
    *,
    env: Mapping[str, str],
    root: Path,
    log: Path,
    timeout: float,
    stop: threading.Event,
) -> Outcome:
    """Run a notify command in the town folder with `env`; its output goes to `log`
    (`.tt/logs/notify.log`, 0600). `stop` (the watcher exits) kills its tree too."""
    with open_log(log) as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {argv[0]}\n".encode())
        run = run_model(
            argv,
            cwd=root,
            env=env,
            stdin_text=stdin.decode(),
            log=out,
            timeout=timeout,
            grace=1.0,
            should_stop=stop.is_set,
        )
    if run.launch is not None:
        return Outcome(False, run.launch.reason)
    if run.cancelled:
        return Outcome(False, "stopped with the watcher (its process tree was killed)")
    if run.timed_out:
        return Outcome(False, f"timed out after {timeout:g}s (its process tree was killed)")
    if run.returncode != 0:
        tail = (run.stderr_tail or run.stdout_tail).strip().splitlines()
        return Outcome(False, f"exit {run.returncode}" + (f": {tail[-1][:200]}" if tail else ""))
    return Outcome(True, "exit 0")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: a POST is not turned into a GET elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Cutoff:
    """One request's deadline: urllib's timeout bounds each socket operation, so a server
    dripping its answer a byte at a time would hold the thread for good. The connections it
    opens are recorded (handlers below) and shut down at `timeout`: the read in course ends."""

    def __init__(self, timeout: float) -> None:
        self.conns: list[http.client.HTTPConnection] = []
        self.cut = threading.Event()
        self.timer = threading.Timer(timeout, self._cut)
        self.timer.daemon = True

    def made(self, base: Any) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            conn = base(*args, **kwargs)
            self.conns.append(conn)
            return conn

        return make

    def _cut(self) -> None:
        self.cut.set()
        for conn in self.conns:
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, cutoff: _Cutoff) -> None:
        super().__init__()
        self.cutoff = cutoff

    def http_open(self, req: Any) -> Any:
        return self.do_open(self.cutoff.made(http.client.HTTPConnection), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, cutoff: _Cutoff) -> None:
        super().__init__()
        self.cutoff = cutoff

    def https_open(self, req: Any) -> Any:
        made = self.cutoff.made(http.client.HTTPSConnection)
        return self.do_open(made, req, context=self._context)  # type: ignore[attr-defined]


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, stop: threading.Event
) -> Outcome:
    """POST `body` to `url`, each try cut off at `timeout`; tried `ATTEMPTS` times with backoff
    on what may pass (a network error, a timeout, 429, a 5xx), once on any other answer."""
    last = ""
    for n in range(ATTEMPTS):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        cutoff = _Cutoff(timeout)
        opener = urllib.request.build_opener(_NoRedirects, _HTTP(cutoff), _HTTPS(cutoff))
        cutoff.timer.start()
        try:
            with opener.open(request, timeout=timeout) as answer:
                answer.read()
                return Outcome(True, f"HTTP {answer.status}")
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                return Outcome(False, last)
        except urllib.error.URLError as e:
            last = str(e.reason)
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        finally:
            cutoff.timer.cancel()
        if cutoff.cut.is_set():
            last = f"timed out after {timeout:g}s"
        if n + 1 < ATTEMPTS and stop.wait(BACKOFF * 2**n):
            break  # the watcher is stopping: no more tries
    return Outcome(False, f"{last} (tried {n + 1} times)")
