"""`tt serve` for real (issue 12): a `tt serve` process over a town on its embedded Valkey, driven
with an HTTP client: every route and its shape (the CLI's `-o json`), errors as JSON with the
CLI's words and nothing written, the token and origin rules, the live event stream resumed
after a reconnect, and /metrics parsed by prometheus_client.

Each test has its own town and server; the server is stopped by its pid (SIGINT), then the town
fixture runs `tt down` and kills what is left of the town by pid.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_agents import TT, Town, town  # noqa: F401

pytestmark = [pytest.mark.integration]

TOWN = '[town]\nname = "served"\n\n[agents.dev]\nmodel = "sim"\n'
TASKS = '[[tasks]]\nid = "first"\ndescription = "the first task"\nagent = "dev"\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.05)


class Served:
    """A `tt serve` process of `town` and an HTTP client of it. By default `--no-token` (no
    token unless the test configures one); `port` 0: the one it printed."""

    def __init__(
        self,
        tw: Town,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = ("--no-token",),
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.town = tw
        self.port = free_port() if port is None else port
        self.out = tw.root.parent / f"serve-{self.port or free_port()}.out"
        with open(self.out, "wb") as log:
            self.proc = subprocess.Popen(
                [*TT, "serve", "--host", host, "--port", str(self.port), *args],
                cwd=tw.root,
                env={**tw.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if self.port == 0:
            found = until(
                lambda: re.search(rf"http://{re.escape(host)}:(\d+)", self.banner()), 30, "a port"
            )
            self.port = int(found.group(1))
        self.base = f"http://{host}:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)
        until(self._up, 30, f"tt serve answers on {self.base}")

    def banner(self) -> str:
        assert self.proc.poll() is None, self.out.read_text()
        return self.out.read_text()

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.out.read_text()
        try:
            self.http.get("/v1/openapi.json")
        except httpx.TransportError:
            return False
        return True

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, path: str, **kw: Any) -> Any:
        r = self.http.get(path, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()


@pytest.fixture
def served(town: Town) -> Iterator[Served]:  # noqa: F811
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    town.tt("apply")
    town.wait_states({"first": "completed"})
    s = Served(town)
    try:
        yield s
    finally:
        s.stop()


def cli_json(tw: Town, *args: str) -> Any:
    return json.loads(tw.tt(*args, "-o", "json").stdout)


def test_reads_give_the_cli_json_shapes(served: Served) -> None:
    tw = served.town
    status = served.get("/v1/town")
    assert status.keys() == cli_json(tw, "status").keys()
    assert [t["id"] for t in status["tasks"]] == ["first"]
    assert served.get("/v1/tasks") == cli_json(tw, "status")["tasks"]
    agents = served.get("/v1/agents")
    assert [a["name"] for a in agents] == ["dev"]
    assert agents[0].keys() == cli_json(tw, "list")[0].keys()
    task = served.get("/v1/tasks/first")
    shown = cli_json(tw, "show", "first")
    assert task == shown
    assert task["attempts"][0]["outcome"] == "completed"
    assert task["log_tail"] and isinstance(task["log_tail"][0], str)
    assert served.get("/v1/graph") == cli_json(tw, "graph")
    assert served.get("/v1/plan") == cli_json(tw, "plan")
    events = served.get("/v1/events", params={"last": 1000})
    assert [e["id"] for e in events] == [e["id"] for e in tw.all_events()]
    after = served.get("/v1/events", params={"after": events[-3]["id"]})
    assert after == events[-2:]
    spec = served.get("/v1/openapi.json")
    for path, methods in {
        "/v1/town": "get",
        "/v1/agents": "get",
        "/v1/tasks": "get post",
        "/v1/tasks/{id}": "get",
        "/v1/tasks/{id}/retry": "post",
        "/v1/tasks/{id}/cancel": "post",
        "/v1/agents/{name}/restart": "post",
        "/v1/messages": "post",
        "/v1/graph": "get",
        "/v1/plan": "get",
        "/v1/apply": "post",
        "/v1/events": "get",
        "/v1/events/stream": "get",
        "/metrics": "get",
    }.items():
        assert set(methods.split()) <= set(spec["paths"][path]), path
    body = spec["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    assert spec["components"]["schemas"]["NewTask"]["required"] == ["agent", "description"]
    assert body["schema"]["$ref"] == "#/components/schemas/NewTask"


def test_writes_edit_the_files_or_redis_as_the_cli_does(served: Served) -> None:
    tw, http = served.town, served.http
    r = http.post("/v1/tasks", json={"agent": "dev", "description": "second job", "id": "second"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "second" and r.json()["apply"]["applied"] is True
    assert 'id = "second"' in (tw.root / "tasks.toml").read_text()
    tw.wait_states({"second": "completed"})

    r = http.post("/v1/tasks/second/retry")
    assert r.status_code == 200 and r.json()["id"] == "second", r.text
    tw.wait_states({"second": "completed"})

    r = http.post("/v1/tasks/second/cancel")  # done already: the file says so, it stays done
    assert r.status_code == 200 and r.json()["apply"]["applied"] is True, r.text
    assert 'status = "cancelled"' in (tw.root / "tasks.toml").read_text()

    old = tw.agents()["dev"]["pid"]
    r = http.post("/v1/agents/dev/restart")
    assert r.status_code == 200, r.text
    assert r.json()["old_pid"] == old and r.json()["new_pid"] not in (None, old)
    tw.pids.add(r.json()["new_pid"])

    r = http.post("/v1/messages", json={"to": "dev", "text": "hello there", "urgent": True})
    assert r.status_code == 201 and r.json()["to"] == "dev", r.text
    sent = [e for e in tw.all_events() if e["type"] == "message.sent" and e["agent"] == "dev"]
    assert [e["urgent"] for e in sent] == [True], sent
    inbox = cli_json(tw, "inbox", "dev", "--peek")
    # Unless the idle agent took it already (it reads its mail between tasks, at any moment):
    # then that is recorded, and its answer comes to the sender.
    if not inbox:
        until(
            lambda: any(
                e["type"] == "message.read" and e["agent"] == "dev" for e in tw.all_events()
            ),
            30,
            "read by dev",
        )
    else:
        assert [(m["text"], m["urgent"]) for m in inbox] == [("hello there", True)]

    (tw.root / "tasks.toml").write_text(
        TASKS + '\n[[tasks]]\nid = "third"\nagent = "dev"\ndescription = "by the file"\n'
    )
    r = http.post("/v1/apply", json={})
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    assert [a["id"] for a in r.json()["actions"] if a["op"] == "create_task"] == ["third"]


def test_errors_are_json_with_the_cli_words_and_write_nothing(served: Served) -> None:
    tw, http = served.town, served.http
    before = (tw.root / "tasks.toml").read_bytes()

    r = http.get("/v1/tasks/nope")
    assert r.status_code == 404 and r.json()["error"] == "no task named nope", r.text
    cli = tw.tt("show", "nope", check=False)
    assert f"error: {r.json()['error']}" in cli.stderr

    for body, status in (
        (b"{not json", 400),
        (json.dumps({"agent": "dev"}).encode(), 422),  # no description
        (json.dumps({"agent": "dev", "description": "x", "colour": "red"}).encode(), 422),
        (json.dumps({"agent": "dev", "description": 7}).encode(), 422),
    ):
        r = http.post("/v1/tasks", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"] and "hint" in r.json()
    r = http.post("/v1/tasks", json={"agent": "devv", "description": "x"})
    assert r.status_code == 404 and r.json()["error"] == "no agent 'devv' in town.toml", r.text
    assert "dev" in r.json()["hint"]
    r = http.post("/v1/tasks", json={"agent": "dev", "description": "   "})
    assert r.status_code == 400 and r.json()["error"].startswith("a task needs a description")
    r = http.post("/v1/tasks", json={"agent": "dev", "description": "x", "id": "Bad Id!"})
    assert 400 <= r.status_code < 500 and "Bad Id!" in r.json()["error"], r.text
    r = http.post("/v1/tasks/first/retry")  # completed: retried; then running or ready
    assert r.status_code == 200, r.text
    r = http.post("/v1/messages", json={"to": "dev", "text": "x", "kind": "shout"})
    assert r.status_code == 422, r.text
    r = http.get("/v1/events", params={"after": "yesterday"})
    assert r.status_code == 400 and "not an event id" in r.json()["error"]
    assert (tw.root / "tasks.toml").read_bytes() == before


def test_a_cross_site_write_is_refused(served: Served) -> None:
    tw, http = served.town, served.http
    before = (tw.root / "tasks.toml").read_bytes()
    new = {"agent": "dev", "description": "from a web page", "id": "csrf"}
    r = http.post("/v1/tasks", json=new, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"], r.text
    r = http.post("/v1/apply", json={}, headers={"origin": f"http://localhost:{served.port + 1}"})
    assert r.status_code == 403
    assert (tw.root / "tasks.toml").read_bytes() == before
    # A page of this very server (its own origin) may write; reads are never origin-checked.
    assert http.get("/v1/town", headers={"origin": "http://evil.example"}).status_code == 200
    own = {"origin": f"http://localhost:{served.port}"}
    assert http.post("/v1/tasks", json=new, headers=own).status_code == 201
    # A page that rebinds its own DNS name to 127.0.0.1 is not this server: refused.
    r = http.get("/v1/town", headers={"host": f"evil.example:{served.port}"})
    assert r.status_code == 403


def test_a_token_guards_every_request(town: Town) -> None:  # noqa: F811
    (town.root / "town.toml").write_text(TOWN + '\n[serve]\ntoken_env = "MY_TT_TOKEN"\n')
    (town.root / "tasks.toml").write_text(TASKS)
    town.tt("apply")
    s = Served(town, env={"MY_TT_TOKEN": "s3cret-token"})
    try:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
            for method, path in (("GET", "/v1/town"), ("GET", "/metrics"), ("POST", "/v1/apply")):
                r = s.http.request(method, path, headers=headers)
                assert r.status_code == 401, (headers, path, r.text)
                assert "token" in r.json()["error"]
                assert r.headers["www-authenticate"] == "Bearer"
        good = {"authorization": "Bearer s3cret-token"}
        assert s.http.get("/v1/town", headers=good).json()["town"] == "served"
        assert s.http.post("/v1/apply", json={}, headers=good).status_code == 200
    finally:
        s.stop()
    # TT_API_TOKEN wins over the variable the file names.
    s = Served(town, env={"MY_TT_TOKEN": "other", "TT_API_TOKEN": "from-env"})
    try:
        assert (
            s.http.get("/v1/agents", headers={"authorization": "Bearer other"}).status_code == 401
        )
        assert s.http.get("/v1/agents", headers={"authorization": "Bearer from-env"}).is_success
    finally:
        s.stop()
    assert "s3cret" not in (town.root / "town.toml").read_text()


def test_beyond_loopback_without_a_token_it_refuses_to_start(town: Town) -> None:  # noqa: F811
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    done = town.tt("serve", "--host", "0.0.0.0", "--port", str(free_port()), check=False)
    assert done.returncode == 1
    assert "error: refusing to serve on 0.0.0.0 without a token" in done.stderr
    assert "TT_API_TOKEN" in done.stderr


def sse_events(
    served: Served,
    headers: dict[str, str],
    enough: Callable[[list[tuple[str, dict[str, Any]]]], bool],
    started: Callable[[], None],
) -> list[tuple[str, dict[str, Any]]]:
    """Read the stream until `enough` of what came (`started` runs once it is open)."""
    got: list[tuple[str, dict[str, Any]]] = []
    with served.http.stream("GET", "/v1/events/stream", headers=headers, timeout=20) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event_id = None
        lines = r.iter_lines()
        assert next(lines) == ": connected"
        started()
        deadline = time.monotonic() + 30
        for line in lines:
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                got.append((str(event_id), json.loads(line[6:])))
                if enough(got):
                    break
            assert time.monotonic() < deadline, f"only {len(got)} events: {got}"
    return got


def test_the_event_stream_delivers_and_resumes_without_loss_or_duplicates(served: Served) -> None:
    tw = served.town

    def sent(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return any(e["type"] == "message.sent" for _, e in got)

    # The agent may write events of its own meanwhile (it reads its messages): wait for ours.
    first = sse_events(served, {}, sent, lambda: tw.tt("send", "dev", "one"))
    assert all(i == e["id"] for i, e in first)
    (eid, event) = first[-1]
    assert event["type"] == "message.sent" and event["agent"] == "dev"
    # Meanwhile (no client connected) more events land; a reconnect from `eid` gets each once.
    tw.tt("send", "dev", "two")
    tw.tt("send", "dev", "three", "--urgent")
    stored = served.get("/v1/events", params={"after": eid})
    assert len(stored) >= 2
    resumed = sse_events(
        served, {"last-event-id": eid}, lambda g: len(g) >= len(stored), lambda: None
    )
    assert [i for i, _ in resumed] == [e["id"] for e in stored]
    assert [e for _, e in resumed] == stored
    # ours to dev (its answers to the sender are message.sent events too)
    sent = [e for _, e in resumed if e["type"] == "message.sent" and e["agent"] == "dev"]
    assert [e["urgent"] for e in sent] == [False, True]


def test_metrics_parse_and_count_the_town(served: Served) -> None:
    tw, http = served.town, served.http
    tw.tt("assign", "dev", "another job", "--id", "more")
    tw.wait_states({"more": "completed"})
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    value = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert value[("tt_tasks", (("state", "completed"),))] == 2
    assert value[("tt_tasks", (("state", "failed"),))] == 0
    assert (
        value[("tt_agents", (("state", "idle"),))] + value[("tt_agents", (("state", "working"),))]
        == 1
    )
    assert value[("tt_attempts_total", (("exit_class", "success"),))] == 2
    assert value[("tt_dispatch_latency_seconds_count", ())] == 2
    assert value[("tt_apply_duration_seconds_count", ())] >= 2  # the first apply and the assign
    assert families["tt_apply_duration_seconds"].type == "histogram"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_it_stops_on_a_signal_while_a_stream_is_open(served: Served, sig: signal.Signals) -> None:
    """Review of issue 12, finding 2: an open event stream does not keep `tt serve` from
    exiting on Ctrl-C or SIGTERM; the client sees its stream end."""
    with served.http.stream("GET", "/v1/events/stream", timeout=60) as r:
        lines = r.iter_lines()
        assert next(lines) == ": connected"
        served.proc.send_signal(sig)
        until(lambda: served.proc.poll() is not None, 15, "tt serve exits with a stream open")
        assert served.proc.returncode == 0, served.out.read_text()  # a stop asked for
        with contextlib.suppress(httpx.TransportError):
            for _ in lines:  # what was sent before the end, then the end (not a hang)
                pass


def test_open_streams_hold_no_worker_thread_and_are_capped(served: Served) -> None:
    """Review of issue 12, finding 3: a hundred open streams (more than anyio's 40 worker
    threads) leave every other route answering, each stream still gets each new event, and the
    stream beyond the cap is refused with 503 JSON."""
    from reconciler.api.stream import MOST_STREAMS

    tw = served.town
    many = httpx.Client(base_url=served.base, timeout=30, limits=httpx.Limits(max_connections=None))
    with many, contextlib.ExitStack() as open_streams:
        streams = []
        for _ in range(MOST_STREAMS):
            r = open_streams.enter_context(many.stream("GET", "/v1/events/stream"))
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines) == ": connected"
            streams.append(lines)
        # Each held a worker thread (and a Redis connection) before: 40 threads, then a queue.
        threads = len(list(Path(f"/proc/{served.proc.pid}/task").iterdir()))
        assert threads < 20, threads
        quick = httpx.Client(base_url=served.base, timeout=5)  # a hang: ReadTimeout
        with quick:
            assert [a["name"] for a in quick.get("/v1/agents").json()] == ["dev"]
            r = quick.get("/v1/events/stream")
            assert r.status_code == 503 and "event streams are open" in r.json()["error"]
        tw.tt("send", "dev", "to every stream")
        for lines in streams:
            data = next(line for line in lines if '"message.sent"' in line)
            assert json.loads(data[6:])["agent"] == "dev"


def sse_blocks(served: Served, headers: dict[str, str], until_: Callable[[str], bool]) -> list[str]:
    """The stream's messages (blocks of lines, comments left out) until one `until_` likes."""
    blocks: list[str] = []
    with served.http.stream("GET", "/v1/events/stream", headers=headers, timeout=20) as r:
        assert r.status_code == 200, r.read()
        block: list[str] = []
        for line in r.iter_lines():
            if line:
                block.append(line)
                continue
            text = "\n".join(b for b in block if not b.startswith(":"))
            block = []
            if text:
                blocks.append(text)
                if until_(text):
                    break
    return blocks


def resumed_gets_the_next(served: Served, event_id: str) -> bool:
    """A stream resumed from `event_id` gets the next event written (a message sent)."""
    got = sse_events(
        served,
        {"last-event-id": event_id},
        lambda g: any(e["type"] == "message.sent" for _, e in g),
        lambda: served.town.tt("send", "dev", "after a resume"),
    )
    return got[-1][1]["type"] == "message.sent"


def test_a_resume_from_before_the_oldest_kept_event_says_gap(served: Served) -> None:
    """Review of issue 12, finding 6: the stream is capped; a client resuming from an event
    trimmed away is told (`event: gap`) and then gets every event kept; one resuming from an id
    after the newest gets the next event written, not nothing; an id beyond Redis' is a 400."""
    from reconciler.control.session import Session

    tw = served.town
    events = served.get("/v1/events", params={"last": 1000})
    assert len(events) >= 5
    s = Session.find(str(tw.root))
    try:  # what the cap (MAXLEN ~ 10000) does to a long-lived town: the oldest are gone
        s.store.client.xtrim(s.store.keys.events, minid=events[3]["id"], approximate=False)
    finally:
        s.close()
    last = events[-1]["id"]
    blocks = sse_blocks(served, {"last-event-id": events[1]["id"]}, lambda b: last in b)
    gap = blocks[0].splitlines()
    assert gap[0] == "event: gap"
    assert json.loads(gap[1][6:]) == {"from": events[1]["id"], "oldest": events[3]["id"]}
    assert [b.splitlines()[0] for b in blocks[1:]] == [f"id: {e['id']}" for e in events[3:]]
    everything = sse_blocks(served, {"last-event-id": "0"}, lambda b: last in b)  # no gap
    assert [b.splitlines()[0] for b in everything] == [f"id: {e['id']}" for e in events[3:]]

    future = f"{int(last.split('-')[0]) + 10**9}-0"
    assert resumed_gets_the_next(served, future)

    for bad in (f"{2**64}-0", f"1-{2**64}"):
        r = served.http.get("/v1/events/stream", headers={"last-event-id": bad})
        assert r.status_code == 400 and "not an event id" in r.json()["error"], r.text
        r = served.http.get("/v1/events", params={"after": bad})
        assert r.status_code == 400 and "not an event id" in r.json()["error"], r.text


SECURITY = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}


def test_on_loopback_a_token_is_made_for_the_run_unless_no_token(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 4: without a configured token, loopback is no longer open to
    every local user: a token is made for the run and printed in the dashboard's URL; every
    answer forbids framing and sniffing."""
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    town.tt("apply")
    s = Served(town, args=())
    try:
        found = re.search(rf"{re.escape(s.base)}/#token=([A-Za-z0-9_-]{{40,}})", s.banner())
        assert found, s.banner()
        good = {"authorization": f"Bearer {found.group(1)}"}
        answers = [
            s.http.get("/v1/town"),
            s.http.post("/v1/apply", json={}),
            s.http.get("/v1/town", headers=good),
            s.http.get("/"),
            s.http.get("/app.js"),
            s.http.get("/v1/tasks/nope", headers=good),
        ]
        assert [r.status_code for r in answers] == [401, 401, 200, 200, 200, 404]
        for r in answers:
            assert {k: r.headers.get(k) for k in SECURITY} == SECURITY, r.url
    finally:
        s.stop()
    s = Served(town, args=("--no-token",))  # the old way, asked for explicitly
    try:
        assert "#token=" not in s.banner() and "no token: loopback only" in s.banner()
        assert s.http.get("/v1/town").status_code == 200
    finally:
        s.stop()


def test_its_own_pages_may_write_on_any_address_port_or_proxy(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 5: the origin check knows the address and the port really
    bound (`--host 127.0.0.2`, `--port 0`), and the name a page reached it by whatever the
    scheme (a TLS proxy in front: `https://name` forwarded as Host `name`)."""
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    town.tt("apply")
    s = Served(town, host="127.0.0.2", port=0)
    try:
        assert s.port != 0
        own = {"origin": f"http://127.0.0.2:{s.port}"}
        r = s.http.post("/v1/messages", json={"to": "dev", "text": "hi"}, headers=own)
        assert r.status_code == 201, r.text
        other = {"origin": f"http://127.0.0.2:{s.port + 1}"}
        assert s.http.post("/v1/apply", json={}, headers=other).status_code == 403
    finally:
        s.stop()
    s = Served(town, env={"TT_API_TOKEN": "t0ken"})
    try:
        proxied = {"authorization": "Bearer t0ken", "host": "tt.example"}
        r = s.http.post("/v1/apply", json={}, headers={**proxied, "origin": "https://tt.example"})
        assert r.status_code == 200, r.text
        r = s.http.post("/v1/apply", json={}, headers={**proxied, "origin": "https://evil.example"})
        assert r.status_code == 403, r.text
    finally:
        s.stop()


def test_a_port_in_use_is_one_error_line_and_nothing_served(town: Town) -> None:  # noqa: F811
    """Review of issue 12, finding 11: the port is bound before the banner; taken, `tt serve`
    says which host:port in one line and exits 1."""
    (town.root / "town.toml").write_text(TOWN)
    (town.root / "tasks.toml").write_text(TASKS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = town.tt("serve", "--port", str(port), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # no banner: nothing is served
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in done.stderr and "--port" in done.stderr


def test_without_the_web_stack_it_says_what_to_install(town: Town) -> None:  # noqa: F811
    (town.root / "town.toml").write_text(TOWN)
    code = "import sys; sys.modules['uvicorn'] = None; from cli.main import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "serve"],
        cwd=town.root,
        env=town.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "tt serve needs its web stack: uvicorn is not installed" in done.stderr
    assert "pip install 'tinytown[serve]'" in done.stderr


def metric_values(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = served.http.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(r.text)
        for s in f.samples
    }


def test_counters_and_histograms_never_go_down_when_tasks_are_pruned(served: Served) -> None:
    """Review of issue 12, finding 7: attempts, failures and dispatch latency were computed
    from the tasks Redis holds now, so a prune lowered them; counters must not go down."""
    tw = served.town
    tw.tt("assign", "dev", "a job to prune", "--id", "gone")
    tw.wait_states({"gone": "completed"})
    before = metric_values(served)
    attempts = ("tt_attempts_total", (("exit_class", "success"),))
    dispatched = ("tt_dispatch_latency_seconds_count", ())
    assert before[attempts] == 2 and before[dispatched] == 2
    (tw.root / "tasks.toml").write_text(TASKS)  # `gone` left the file: apply prunes it
    tw.tt("apply")
    until(lambda: "gone" not in tw.tasks(), 30, "gone pruned")
    after = metric_values(served)
    assert after[("tt_tasks", (("state", "completed"),))] == 1  # a gauge: as things are now
    assert after[attempts] == 2 and after[dispatched] == 2
    tw.tt("retry", "first")
    tw.wait(lambda st: st["tasks"][0]["attempts"] == 2 and st["tasks"][0]["state"] == "completed")
    later = metric_values(served)
    assert later[attempts] == 3 and later[dispatched] == 3


def test_unknown_routes_wrong_methods_and_bad_bodies_are_json_4xx(served: Served) -> None:
    """Review of issue 12, finding 12: every refusal is JSON with a hint, never text/plain
    or a 500; a body over 1 MiB is a 413 and a deeply nested one a 400; nothing written."""
    tw, http = served.town, served.http
    before = (tw.root / "tasks.toml").read_bytes()
    for method, path, status in (
        ("GET", "/v1/nope", 404),
        ("GET", "/v1/tasks/first/nope", 404),
        ("POST", "/v1/town", 405),
        ("DELETE", "/v1/tasks/first", 405),
        ("GET", "/v1/apply", 405),
        ("GET", "/no-such-file.js", 404),
    ):
        r = http.request(method, path)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json", (method, path)
        assert r.json()["error"] and r.json()["hint"], r.text
    big = json.dumps({"agent": "dev", "description": "x" * (1024 * 1024)}).encode()
    deep = b"[" * 100_000 + b"]" * 100_000
    for body, status in ((big, 413), (deep, 400)):
        r = http.post("/v1/tasks", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text[:300]
        assert r.json()["error"], r.text[:300]
    assert (tw.root / "tasks.toml").read_bytes() == before


def test_the_graph_counts_alone_for_a_town_too_big_to_draw(served: Served) -> None:
    """Review of issue 12, finding 8: above what the dashboard draws it reads only counts."""
    whole = served.get("/v1/graph")
    counts = served.get("/v1/graph", params={"counts": 1})
    assert counts == {
        "version": whole["version"],
        "town": "served",
        "counts": whole["counts"],
        "total": len(whole["tasks"]),
    }


def test_a_redis_restart_ends_streams_cleanly_and_they_resume(served: Served) -> None:
    """Review of issue 12, finding 14: Redis going away ends an open stream with `event:
    error` (not a dead connection), a stream asked for meanwhile is a 503 JSON, and once Redis
    is back a resume with Last-Event-ID works again."""
    tw = served.town
    last = served.get("/v1/events", params={"last": 1})[-1]["id"]
    with served.http.stream("GET", "/v1/events/stream", timeout=30) as r:
        lines = r.iter_lines()
        assert next(lines) == ": connected"
        tw.tt("server", "stop")
        rest = list(lines)  # ends: not a hang (the client's timeout), not a reset
    assert "event: error" in rest, rest
    r = served.http.get("/v1/events/stream", headers={"last-event-id": last})
    assert r.status_code == 503 and r.json()["error"], r.text
    tw.tt("server", "start")
    assert resumed_gets_the_next(served, last)
