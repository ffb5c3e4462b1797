"""Which session a retry goes on with (`agents.resume`), its short prompt, the argv that carries
it, and a CLI's refusal: plain values, no process."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.agents import resume
from reconciler.agents.exitclass import ExitClass
from reconciler.agents.models import render_argv
from reconciler.spec.desired import ModelSpec
from reconciler.spec.presets import PRESETS
from reconciler.store.mail import Message

CLAUDE = PRESETS["claude"]
SESSION = "5f0c1c2e-7d1a-4c5b-9a57-0f3e2b8d6a41"


def record(cls: str | None, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "claude", "session_id": SESSION, "outcome": "failed"}
    if cls is not None:
        base["exit_class"] = cls
    return base | extra


@pytest.mark.parametrize("cls", sorted(c.value for c in resume.RESUMABLE))
def test_an_interrupted_attempt_is_resumed_with_its_session(cls: str) -> None:
    session = resume.going_on(record(cls), CLAUDE, True)
    assert session is not None and session.resumed and session.id == SESSION
    assert session.args == ("--resume", SESSION)
    assert session.why == resume.RESUMABLE[ExitClass(cls)]


def test_a_handed_back_record_of_a_dead_agent_is_resumed() -> None:
    handed = {"outcome": "handed back", "session_id": SESSION, "model": "claude"}
    session = resume.going_on(handed, CLAUDE, True)
    assert session is not None and session.why == resume.RESUMABLE[ExitClass.KILLED]


@pytest.mark.parametrize(
    ("previous", "enabled", "model"),
    [
        (record("failed"), True, CLAUDE),  # the work itself failed: start over
        (record("auth"), True, CLAUDE),
        (record("timeout"), False, CLAUDE),  # resume = false
        (record("timeout", session_id=None), True, CLAUDE),  # no session known
        (record("timeout", model="gemini"), True, CLAUDE),  # another CLI's session
        (record("timeout"), True, PRESETS["auggie"]),  # a CLI that cannot resume
        (record("timeout", session_id="--dangerously-skip-permissions"), True, CLAUDE),
        (record("timeout", session_id="a b"), True, CLAUDE),
        (None, True, CLAUDE),
    ],
)
def test_anything_else_starts_fresh(
    previous: dict[str, Any] | None, enabled: bool, model: ModelSpec
) -> None:
    assert resume.going_on(previous, model, enabled) is None


def test_a_record_from_before_exit_classes_is_told_by_its_error() -> None:
    old = {"outcome": "failed", "error": "timed out after 30s; the process tree was killed"}
    session = resume.going_on(old | {"session_id": SESSION}, CLAUDE, True)
    assert session is not None and session.why == resume.RESUMABLE[ExitClass.TIMEOUT]


def test_the_short_prompt_says_why_and_carries_new_messages() -> None:
    urgent = Message(sender="boss", text="use tabs", ts=2.0, urgent=True)
    plain = Message(sender="qa", text="tests are in tests/", ts=1.0)
    planned = resume.plan(
        record("stalled"),
        CLAUDE,
        task_id="build",
        attempt=2,
        agent="dev",
        town="demo",
        messages=[plain, urgent],
    )
    assert planned is not None
    session, prompt = planned
    assert session.id == SESSION
    assert prompt.startswith("# Task build (attempt 2): go on\n")
    assert "interrupted: it made no progress" in prompt
    assert prompt.index("use tabs") < prompt.index("tests are in tests/")
    assert "tt task complete build" in prompt


def test_a_fresh_session_is_one_tt_chose_where_the_cli_takes_one() -> None:
    fresh = resume.fresh(CLAUDE)
    assert fresh.id is not None and not fresh.resumed
    assert fresh.args == ("--session-id", fresh.id)
    assert resume.fresh(CLAUDE).id != fresh.id
    assert resume.fresh(PRESETS["codex"]) == resume.NO_SESSION


def test_the_session_args_go_after_the_options_and_before_the_prompt_stand_in() -> None:
    session = resume.going_on(record("timeout", model="codex"), PRESETS["codex"], True)
    assert session is not None
    argv, _ = render_argv(
        PRESETS["codex"],
        prompt="p",
        prompt_file="f",
        workdir="/w",
        python="py",
        extra_args=("-m", "o9"),
        session=session.args,
    )
    assert argv[-6:] == ["/w", "-m", "o9", "resume", SESSION, "-"]
    claude, _ = render_argv(
        CLAUDE, prompt="p", prompt_file="f", workdir="/w", python="py", session=("--resume", "x")
    )
    assert claude[-5:] == ["Bash", "Edit", "Write", "--resume", "x"]


def test_a_refusal_is_the_clis_own_words_or_an_error_naming_the_session() -> None:
    went_on = resume.Session(SESSION, ("--resume", SESSION), resumed=True)
    said = f"exit code 1: No conversation found with session ID: {SESSION}"
    assert resume.rejected(CLAUDE, went_on, False, said)
    assert not resume.rejected(CLAUDE, went_on, False, "exit code 1: API Error: 500")
    assert not resume.rejected(CLAUDE, went_on, True, said)  # it ran
    fresh = resume.Session(SESSION, ("--session-id", SESSION))
    assert not resume.rejected(CLAUDE, fresh, False, said)  # not a resume
    custom = ModelSpec(name="mine", command=("mine",), resume_args=("-r", "{session}"))
    assert resume.rejected(custom, went_on, False, f"error: unknown session {SESSION}")
    assert not resume.rejected(custom, went_on, False, "error: out of memory")
