"""Event lines for people show times as ISO-8601 local times (and "in 5s" for one to come), never
raw floats, in `tt events`, the conductor's / `apply --wait` lines and the live view; `-o json`
keeps unix-epoch numbers."""

from __future__ import annotations

import json
import re
import time

import pytest

from cli.cmd_agents import _print_event
from cli.cmd_loop import LineReport
from cli.events import event_json, event_line

NOW = time.mktime((2026, 12, 6, 23, 50, 12, 0, 0, -1))  # local time
RETRYING = {
    "type": "task.retrying",
    "ts": repr(NOW),
    "task": "build",
    "agent": "dev",
    "attempt": "1",
    "error": "boom",
    "next_attempt_at": "1.7964e+09",  # a float as a Lua script may write it
}
RAW = re.compile(r"\d\.\d+e[+-]\d|\d{9,}")  # a float in exponent form, or an epoch number


def retrying(now: float) -> dict[str, str]:
    return RETRYING | {"ts": repr(now), "next_attempt_at": str(now + 5.2)}


def test_times_are_local_iso_times_and_a_time_to_come_says_how_soon() -> None:
    line = event_line(retrying(NOW), now=NOW)
    assert line == (
        "23:50:12 task.retrying task=build agent=dev attempt=1 error=boom "
        "next_attempt_at=23:50:17 (in 5s)"
    )
    assert not RAW.search(line)


def test_another_day_shows_the_date_and_exponent_floats_are_read_too() -> None:
    fields = RETRYING | {"ts": "1.7964e+09", "next_attempt_at": "1.7964e+09"}
    line = event_line(fields, now=NOW)
    day = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(1.7964e09))
    assert line.startswith(f"{day} task.retrying ")
    assert f"next_attempt_at={day}" in line and not RAW.search(line)


def test_json_keeps_epoch_numbers() -> None:
    fields = retrying(NOW)
    assert event_json("1-0", fields) == {
        "id": "1-0",
        "type": "task.retrying",
        "ts": NOW,
        "task": "build",
        "agent": "dev",
        "attempt": 1,
        "error": "boom",
        "next_attempt_at": NOW + 5.2,
    }


def test_json_numbers_are_numbers_flags_booleans_and_lists_arrays() -> None:
    """Version 1 of the event format: typed by field name; other fields stay strings."""
    created = {
        "type": "tasks.created",
        "ts": "1.5",
        "count": "3",
        "ready": "2",
        "generation": "7",
        "tasks": "a b c",
    }
    assert event_json("2-0", created) == {
        "id": "2-0",
        "type": "tasks.created",
        "ts": 1.5,
        "count": 3,
        "ready": 2,
        "generation": 7,
        "tasks": ["a", "b", "c"],
    }
    sent = {"type": "message.sent", "agent": "rev", "sender": "me", "urgent": "1"}
    assert event_json("3-0", sent)["urgent"] is True
    answered = {"type": "message.answered", "agent": "rev", "to": "conductor,dev"}
    assert event_json("4-0", answered)["to"] == ["conductor", "dev"]
    failed = {
        "type": "task.failed",
        "task": "t",
        "attempt": "2",
        "permanent": "0",
        "error": "exit 1",
        "pid": "123",
    }
    assert event_json("5-0", failed) | {"id": ""} == {
        "id": "",
        "type": "task.failed",
        "task": "t",
        "attempt": 2,
        "permanent": False,
        "error": "exit 1",
        "pid": 123,
    }
    assert event_json("6-0", {"type": "x", "count": "many"})["count"] == "many"  # kept as is


def test_every_place_events_print_uses_the_same_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)  # a slow machine must not move "in 5s"
    fields = retrying(now)
    _print_event("1-0", fields, "text")  # tt events
    LineReport()("event", fields)  # tt conductor, apply --wait without a TTY
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert re.search(r"next_attempt_at=\d\d:\d\d:\d\d \(in 5s\)$", lines[0])
    assert not RAW.search(lines[0])
    _print_event("1-0", fields, "json")
    assert json.loads(capsys.readouterr().out)["next_attempt_at"] == pytest.approx(now + 5.2)


def test_with_json_output_stdout_holds_only_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    # `tt apply --wait -o json` / `tt wait -o json`: the final JSON is the whole of stdout.
    report = LineReport(json_output=True)
    report("event", retrying(time.time()))
    report("leader", {"holder": "host:1:ab"})
    report("agent", {"agent": "dev", "detail": "started pid 7"})
    out, err = capsys.readouterr()
    assert out == ""
    assert [line.split(" ", 1)[1] for line in err.splitlines()] == [
        "leader: host:1:ab",
        "agent dev: started pid 7",
    ]
