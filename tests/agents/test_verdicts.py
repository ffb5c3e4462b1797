"""The class of a finished run (`verdicts.judge_run`): usage and rate limits come only from the
CLI's own signals (its JSON's error, an error line of its stderr), never from the model's
transcript; an exit-0 run is never a limit; aider's own retry that got through completes."""

from __future__ import annotations

import pytest

from reconciler.agents.exitclass import ExitClass
from reconciler.agents.limits import limit_of
from reconciler.agents.supervisor import RunResult
from reconciler.agents.verdicts import judge_run
from reconciler.spec.desired import ModelSpec, OutputMode
from reconciler.spec.presets import PRESETS

TEXT = ModelSpec(name="tester", command=("tester",))
# What a model working on a rate limiter prints (its test run), then exits 1.
TRANSCRIPT = (
    "Applied edit to limiter.py\n"
    "FAILED tests/test_limiter.py::test_blocks - expected 429 Too Many Requests, got 200\n"
    "1 failed, 12 passed in 0.4s\n"
)


def run(stdout: str, stderr: str = "", rc: int | None = 1) -> RunResult:
    return RunResult(rc, False, False, stdout, stderr, 1.0, stdout=stdout)


@pytest.mark.parametrize("model", [TEXT, PRESETS["codex"], PRESETS["aider"], PRESETS["gemini"]])
def test_a_transcript_that_mentions_a_limit_is_an_ordinary_failure(model: ModelSpec) -> None:
    verdict = judge_run(run(TRANSCRIPT), model, None)
    assert not verdict.ok and verdict.exit_class is ExitClass.FAILED
    assert limit_of(verdict, "x", 0.0) is None  # no deferral, no pause: a retry is spent


def test_codex_progress_on_stderr_is_not_its_error_line() -> None:
    # codex (text) shows the commands it ran on stderr; only its own `ERROR:` line counts.
    shown = "exec bash -lc pytest\n" + TRANSCRIPT
    assert judge_run(run("", shown), PRESETS["codex"], None).exit_class is ExitClass.FAILED
    said = (
        shown
        + "[2026-12-07T08:00:00] ERROR: exceeded retry limit, last status: 429 Too Many Requests\n"
    )
    assert judge_run(run("", said), PRESETS["codex"], None).exit_class is ExitClass.RATE_LIMITED


def test_a_limit_on_a_clis_stderr_error_line_is_a_limit() -> None:
    err = "Error: You've hit your usage limit. Try again in 2 hours.\n"
    verdict = judge_run(run("", err), TEXT, None)
    assert verdict.exit_class is ExitClass.USAGE_LIMIT
    limit = limit_of(verdict, "x", 100.0)
    assert limit is not None and limit.reset == 100.0 + 7200


def test_an_exit_0_run_is_never_a_limit() -> None:
    err = "Error: 429 Too Many Requests (retrying)\n"
    assert judge_run(run("done", err, 0), TEXT, None).exit_class is ExitClass.SUCCESS
    # claude said is_error with a limit, yet exited 0: failed, not deferred
    claude = (
        '{"type":"result","subtype":"success","is_error":true,'
        '"result":"Claude AI usage limit reached|1712345678","session_id":"s"}'
    )
    verdict = judge_run(run(claude, "", 0), PRESETS["claude"], None)
    assert not verdict.ok and verdict.exit_class is ExitClass.FAILED


def test_claudes_answer_is_not_its_error() -> None:
    # exit 1 with is_error false: `result` is the model's answer, not claude's message.
    answer = (
        '{"type":"result","subtype":"success","is_error":false,'
        '"result":"The tests expect 429 Too Many Requests; rate limit reached after 5 calls",'
        '"session_id":"s"}'
    )
    verdict = judge_run(run(answer, "", 1), PRESETS["claude"], None)
    assert verdict.exit_class is ExitClass.FAILED


def test_unreadable_json_names_a_limit_only_from_stderr_error_lines() -> None:
    model = ModelSpec(name="c", command=("claude",), output=OutputMode.CLAUDE_JSON)
    assert judge_run(run(TRANSCRIPT), model, None).exit_class is ExitClass.FAILED
    said = judge_run(run(TRANSCRIPT, "Error: rate limit exceeded\n"), model, None)
    assert said.exit_class is ExitClass.RATE_LIMITED


def test_aider_that_got_past_a_rate_limit_by_its_own_retry_completes() -> None:
    out = (
        "litellm.RateLimitError: AnthropicException - rate_limit_error\n"
        "The API provider has rate limited you. Try again later or check your quotas.\n"
        "Retrying in 0.2 seconds...\n"
        "Applied edit to limiter.py\n"
    )
    verdict = judge_run(run(out, "", 0), PRESETS["aider"], None)
    assert verdict.ok and verdict.exit_class is ExitClass.SUCCESS
    # Its final error, after the last retry, still fails it (aider exits 0 then too).
    failed = out + "litellm.InternalServerError: Connection error.\n"
    assert not judge_run(run(failed, "", 0), PRESETS["aider"], None).ok
