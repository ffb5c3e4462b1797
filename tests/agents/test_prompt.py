"""Prompt assembly and the verdict on a finished model run."""

from __future__ import annotations

import pytest

from reconciler.agents.models import render_argv
from reconciler.agents.prompt import build_prompt, judge
from reconciler.spec.desired import ModelSpec, PromptMode
from reconciler.spec.presets import PRESETS
from reconciler.store.mail import Message, parse_message
from reconciler.store.tasks import DepResult


def test_prompt_has_task_deps_and_messages_urgent_first() -> None:
    text = build_prompt(
        task_id="implement",
        description="Implement the auth API",
        attempt=2,
        agent="developer",
        town="multi-demo",
        deps=[DepResult("design", "architect", "Use JWT with RS256")],
        messages=[Message("conductor", "normal one", ts=1), Message("tester", "hurry", True, ts=2)],
    )
    assert text.startswith("# Task implement (attempt 2)\nImplement the auth API\n")
    assert "### design (by architect)\nUse JWT with RS256" in text
    assert text.index("URGENT from tester: hurry") < text.index("from conductor: normal one")
    assert "agent 'developer' in the Tinytown town 'multi-demo'" in text


def test_prompt_names_each_message_kind_and_an_old_message_reads_plain() -> None:
    old = parse_message('{"from": "conductor", "text": "hello", "ts": 1}', False)
    assert old == Message("conductor", "hello", ts=1)
    query = parse_message('{"from": "lead", "text": "port?", "ts": 2, "kind": "query"}', True)
    text = build_prompt(
        task_id="t", description="d", attempt=1, agent="a", town="x", messages=[old, query]
    )
    assert "- URGENT query from lead: port?\n- from conductor: hello\n" in text


def test_claude_not_logged_in_is_permanent_with_stdout_text() -> None:
    v = judge(
        returncode=1,
        stdout_tail="Not logged in · Please run /login",
        stderr_tail="",
        timed_out=False,
        timeout=60,
    )
    assert not v.ok and v.permanent
    assert v.text == "exit code 1: Not logged in · Please run /login"


def test_aider_exit_zero_with_failure_pattern_fails() -> None:
    v = judge(
        returncode=0,
        stdout_tail="litellm.InternalServerError: Connection error.",
        stderr_tail="",
        timed_out=False,
        timeout=60,
        fail_patterns=PRESETS["aider"].fail_patterns,
    )
    assert not v.ok and not v.permanent and "output matched failure" in v.text


@pytest.mark.parametrize(
    ("kwargs", "ok", "permanent", "needle"),
    [
        ({"returncode": 0, "stdout_tail": "done"}, True, False, "done"),
        ({"returncode": 2, "stderr_tail": "boom"}, False, False, "exit code 2: boom"),
        ({"returncode": None, "timed_out": True}, False, False, "timed out after 60s"),
    ],
)
def test_judge_table(kwargs: dict[str, object], ok: bool, permanent: bool, needle: str) -> None:
    args: dict[str, object] = {
        "stdout_tail": "",
        "stderr_tail": "",
        "timed_out": False,
        "timeout": 60.0,
    }
    args.update(kwargs)
    v = judge(**args)  # type: ignore[arg-type]
    assert (v.ok, v.permanent) == (ok, permanent) and needle in v.text


def test_render_argv_keeps_prompt_after_double_dash() -> None:
    model = ModelSpec(
        name="mine",
        command=("mine", "--allowedTools", "Bash", "--", "{prompt}"),
        prompt=PromptMode.ARG,
    )
    argv, stdin = render_argv(
        model, prompt="do it", prompt_file="/p", workdir="/w", python="py", extra_args=("-m", "o")
    )
    assert argv == ["mine", "--allowedTools", "Bash", "-m", "o", "--", "do it"] and stdin is None


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"sim"}))
def test_no_preset_puts_the_prompt_in_argv(preset: str) -> None:
    # Every preset CLI reads its prompt from stdin or a file (CLI-FACTS.md): `ps` shows no task.
    argv, stdin = render_argv(
        PRESETS[preset],
        prompt="SECRET-TASK-TEXT",
        prompt_file="/logs/t-1.prompt.md",
        workdir="/w",
        python="py",
        extra_args=("--model", "m1"),
    )
    assert not any("SECRET-TASK-TEXT" in a for a in argv), argv
    assert stdin == "SECRET-TASK-TEXT" or "/logs/t-1.prompt.md" in argv
    assert argv[argv.index("--model") + 1] == "m1"


def test_render_argv_codex_reads_stdin_after_its_args() -> None:
    codex = PRESETS["codex"]
    argv, stdin = render_argv(
        codex, prompt="do it", prompt_file="/p", workdir="/w", python="py", extra_args=("-m", "o3")
    )
    assert argv[-3:] == ["-m", "o3", "-"] and stdin == "do it"


def test_render_argv_sim_uses_stdin() -> None:
    argv, stdin = render_argv(
        PRESETS["sim"], prompt="hi", prompt_file="/p", workdir="/w", python="/usr/bin/python3"
    )
    assert argv == ["/usr/bin/python3", "-m", "reconciler.agents.sim"] and stdin == "hi"


def test_a_rejection_is_a_review_section_and_a_failure_is_not() -> None:
    common = {"task_id": "build", "description": "Build it", "agent": "dev", "town": "t"}
    reviewed = build_prompt(
        attempt=2,
        previous_error="rejected: add a changelog entry",
        rejection="add a changelog entry",
        **common,
    )
    assert (
        "## Review\nYour previous attempt was rejected by a reviewer:\nadd a changelog entry\n"
        in (reviewed)
    )
    assert "## The previous attempt failed" not in reviewed
    failed = build_prompt(attempt=2, previous_error="exit code 1", **common)
    assert "## The previous attempt failed\nexit code 1\n" in failed and "## Review" not in failed
    # a model's own error that reads like one is a failure, not a person's review
    lookalike = build_prompt(attempt=2, previous_error="rejected: by the API", **common)
    assert "## Review" not in lookalike and "## The previous attempt failed" in lookalike
