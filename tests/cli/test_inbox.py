"""`tt inbox AGENT` looks without taking: a person reading an agent's mail must not keep the agent
from answering it. The agent itself (TT_AGENT is its name) or `--take` takes the messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.inproc import town_files, tt


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    yield from town_files(tmp_path, redis_url, town_name, '[agents.reviewer]\nmodel = "sim"\n', "")


def inbox(capsys: pytest.CaptureFixture[str], town: Path, *flags: str) -> list[str]:
    code, out, err = tt(capsys, "inbox", "reviewer", "--town", str(town), "-o", "json", *flags)
    assert code == 0, err
    return [m["text"] for m in json.loads(out)]


def test_inbox_peeks_by_default_and_takes_only_when_asked(
    town: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TT_AGENT", raising=False)
    assert tt(capsys, "send", "reviewer", "ready for review", "--town", str(town))[0] == 0
    assert inbox(capsys, town) == ["ready for review"]
    assert inbox(capsys, town) == ["ready for review"]  # still there for the agent
    monkeypatch.setenv("TT_AGENT", "someone-else")
    assert inbox(capsys, town) == ["ready for review"]
    assert inbox(capsys, town, "--take") == ["ready for review"]
    assert inbox(capsys, town) == []


def test_the_agent_itself_takes_its_messages(
    town: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tt(capsys, "send", "reviewer", "one", "--town", str(town))[0] == 0
    monkeypatch.setenv("TT_AGENT", "reviewer")
    assert inbox(capsys, town, "--peek") == ["one"]
    assert inbox(capsys, town) == ["one"]
    monkeypatch.delenv("TT_AGENT")
    assert inbox(capsys, town) == []
    code, _, err = tt(capsys, "inbox", "reviewer", "--town", str(town), "--take", "--peek")
    assert code == 2 and "exclude each other" in err


def test_a_message_keeps_its_kind_and_shows_it(
    town: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TT_AGENT", raising=False)
    for flag, text in (("--query", "which port?"), ("--info", "ci is green"), ("", "plain")):
        args = ["send", "reviewer", text, "--town", str(town), *([flag] if flag else [])]
        assert tt(capsys, *args)[0] == 0
    code, out, _ = tt(capsys, "inbox", "reviewer", "--town", str(town), "-o", "json")
    assert code == 0
    got = [(m["kind"], m["text"]) for m in json.loads(out)]
    assert got == [("query", "which port?"), ("info", "ci is green"), ("", "plain")]
    code, out, _ = tt(capsys, "inbox", "reviewer", "--town", str(town))
    assert "query from conductor: which port?" in out
    assert "info from conductor: ci is green" in out and " from conductor: plain" in out


def test_supervisor_and_conductor_are_one_mailbox(
    town: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TT_AGENT", "reviewer")
    for to, flag, text in (("supervisor", "--ack", "got it"), ("conductor", "--query", "why?")):
        assert tt(capsys, "send", to, text, flag, "--town", str(town))[0] == 0
    monkeypatch.delenv("TT_AGENT")
    seen = []
    for box in ("conductor", "supervisor", "Supervisor"):
        code, out, err = tt(capsys, "inbox", box, "--town", str(town), "-o", "json")
        assert code == 0, err
        seen.append([(m["from"], m["kind"], m["text"]) for m in json.loads(out)])
    assert seen[0] == [("reviewer", "ack", "got it"), ("reviewer", "query", "why?")]
    assert seen[1] == seen[0] == seen[2]
    code, out, _ = tt(capsys, "inbox", "--all", "--town", str(town))
    assert "conductor: 2 messages" in out and "supervisor" not in out
