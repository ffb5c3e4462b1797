"""`Runner.attempt` with real processes (the fake CLIs of tests/fakes) and no Redis: a resume
carries the session in argv and gets the short prompt, a refused one runs fresh in the same
attempt, and a stall, by no progress or by the CLI's own retry loop, is an event naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reconciler.agents import resume
from reconciler.agents.attempt import Limits, Runner
from reconciler.agents.exitclass import ExitClass
from reconciler.agents.ledger import RunFacts
from reconciler.agents.prompt import Verdict
from reconciler.spec.desired import AgentSpec, ModelSpec, OutputMode
from reconciler.spec.presets import PRESETS
from reconciler.town import TownPaths
from tests.fakes import clis

FAKE = str(Path(clis.__file__).resolve())
CLAUDE = PRESETS["claude"]
LOOP = (
    "import time\n"
    "while True:\n"
    "    print('Reconnecting... waiting for network', flush=True)\n"
    "    time.sleep(0.1)\n"
)


class EventStore:
    url = "redis://test"

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []

    def note_model(
        self, agent: str, pid: int, start: str, session: str = "", workdir: str = ""
    ) -> None:
        pass

    def current_token(self, task_id: str) -> str | None:
        return "tok"

    def event(self, etype: str, **fields: str) -> None:
        self.events.append((etype, fields))


def runner(tmp_path: Path, model: ModelSpec) -> tuple[Runner, EventStore]:
    agent = AgentSpec(name="dev", model="fake", env=(("FAKE_CLI_RECORD", str(tmp_path / "r")),))
    store = EventStore()
    return Runner(TownPaths(tmp_path), "dev", agent, model, store), store


def fake_claude(tmp_path: Path, scenario: str) -> tuple[Runner, EventStore]:
    model = ModelSpec(
        name="fake",
        command=(sys.executable, FAKE, "claude", scenario),
        output=OutputMode.CLAUDE_JSON,
        resume_args=CLAUDE.resume_args,
        session_args=CLAUDE.session_args,
        resume_rejected=CLAUDE.resume_rejected,
    )
    (tmp_path / "r").write_text('{"an earlier run": true}\n')  # the hanging first run is over
    return runner(tmp_path, model)


def runs(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "r").read_text().splitlines()]


def log_of(tmp_path: Path) -> str:
    return (tmp_path / ".tt" / "logs" / "dev" / "t-2.log").read_text()


def attempt(r: Runner, tmp_path: Path, session: str | None = None) -> Verdict:
    """Attempt 2 of task `t`, resuming `session` (with a short prompt) when given."""
    going = None
    if session is not None:
        args = resume.fill(CLAUDE.resume_args, session)
        going = (resume.Session(session, args, True, "why"), "# Task t (attempt 2): go on\n")
    log = tmp_path / ".tt" / "logs" / "dev" / "t-2.log"
    limits = Limits(30.0)
    return r.attempt("the whole task", log, limits, "t", 2, "tok", lambda: False, going_on=going)


def facts(verdict: Verdict) -> RunFacts:
    assert verdict.facts is not None
    return verdict.facts


def test_a_resume_carries_the_session_and_the_short_prompt(tmp_path: Path) -> None:
    r, store = fake_claude(tmp_path, "hang_once")
    verdict = attempt(r, tmp_path, "s-1")
    assert verdict.ok and facts(verdict).resumed_from == "s-1"
    assert facts(verdict).session_id == "s-1" and facts(verdict).resume_rejected is None
    [_, run] = runs(tmp_path)
    assert run["resumed"] == "s-1" and run["argv"][-2:] == ["--resume", "s-1"]
    assert "resuming session s-1" in log_of(tmp_path)
    assert "the whole task" not in log_of(tmp_path) and store.events == []


def test_a_refused_resume_runs_fresh_on_the_whole_prompt_in_the_same_attempt(
    tmp_path: Path,
) -> None:
    r, store = fake_claude(tmp_path, "resume_rejected")
    verdict = attempt(r, tmp_path, "s-gone")
    assert verdict.ok and facts(verdict).resume_rejected == "s-gone"
    assert facts(verdict).resumed_from is None
    [_, refused, fresh] = runs(tmp_path)
    assert refused["resumed"] == "s-gone"
    assert fresh["resumed"] is None and fresh["started"] == facts(verdict).session_id
    assert "No conversation found with session ID: s-gone" in log_of(tmp_path)
    assert "the whole task" in log_of(tmp_path)
    told = {"task": "t", "agent": "dev", "attempt": "2", "session": "s-gone"}
    assert store.events == [("attempt.resume_rejected", told)]


def test_a_stall_in_the_clis_own_retry_loop_is_an_event_naming_it(tmp_path: Path) -> None:
    pattern = r"Reconnecting\.\.\. waiting for network"
    model = ModelSpec(
        name="fake",
        command=(sys.executable, "-c", LOOP),
        stall_patterns=(pattern,),
        stall_grace=0.5,
    )
    r, store = runner(tmp_path, model)
    assert attempt(r, tmp_path).exit_class is ExitClass.STALLED
    [(etype, fields)] = store.events
    assert etype == "attempt.stalled"
    said = "the CLI kept retrying for 0.5s (Reconnecting... waiting for network)"
    assert fields["reason"] == said


def test_a_session_of_another_folder_or_host_is_not_resumed_the_attempt_runs_fresh(
    tmp_path: Path,
) -> None:
    # The previous attempt ran in another agent's folder (or on another node): resuming there
    # would go on with that folder's session here. It runs fresh on the whole prompt instead.
    cases = [
        ({"workdir": "elsewhere"}, True),
        ({"workdir": "HERE", "node": "other-host"}, True),
        ({"agent": "someone-else"}, True),  # a record naming no folder: the same agent only
        ({"workdir": "HERE"}, False),
        ({"agent": "dev"}, False),
    ]
    for i, (where, fresh) in enumerate(cases):
        town = tmp_path / f"case{i}"
        town.mkdir()
        here = str(town)  # the agent's folder: the town's root (no workdir set)
        r, _ = fake_claude(town, "success")
        named = {k: here if v == "HERE" else v for k, v in where.items()}
        previous = {"session_id": "s-1", "exit_class": "timeout", "model": "fake", **named}
        going = resume.going_on(previous, r.model, True)
        assert going is not None
        log = town / ".tt" / "logs" / "dev" / "t-2.log"
        short = "# Task t (attempt 2): go on\n"
        verdict = r.attempt(
            "the whole task",
            log,
            Limits(30.0),
            "t",
            2,
            "tok",
            lambda: False,
            going_on=(going, short),
        )
        assert verdict.ok and facts(verdict).workdir == here  # recorded for the next one
        assert (runs(town)[-1]["resumed"] is None) is fresh, where
        assert ("the whole task" in log_of(town)) is fresh, where
