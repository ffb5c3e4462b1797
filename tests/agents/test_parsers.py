"""The CLI output parsers on the fakes' real shapes: result, session id, tokens, cost and the
exit class each CLI's own signals give; unknown or truncated JSON fails with its raw tail."""

from __future__ import annotations

import json

import pytest

from reconciler.agents.exitclass import ExitClass, classify_error, classify_record
from reconciler.agents.parsers import Parsed, Tokens, parse
from reconciler.spec.desired import OutputMode
from tests.fakes.clis import CLAUDE_COST, SESSION, shape

MODES = {
    "claude": OutputMode.CLAUDE_JSON,
    "codex": OutputMode.CODEX_JSONL,
    "gemini": OutputMode.GEMINI_JSON,
    "copilot": OutputMode.COPILOT_JSONL,
}


def parsed(cli: str, scenario: str) -> Parsed:
    got = parse(MODES[cli], *shape(cli, scenario))
    assert got is not None
    return got


def test_claude_success_gives_result_session_tokens_cost_and_turns() -> None:
    p = parsed("claude", "success")
    assert p.exit_class is ExitClass.SUCCESS and p.text == "Done: wrote hello.txt"
    assert p.session_id == SESSION and p.turns == 3
    assert p.tokens == Tokens(input=12, output=287, cache_read=14012, cache_write=1523)
    assert p.cost_usd == CLAUDE_COST


def test_claude_is_error_with_a_success_subtype_is_a_failure_named_by_its_message() -> None:
    p = parsed("claude", "is_error")
    assert p.exit_class is ExitClass.AUTH
    assert p.text == "Not logged in · Please run /login"  # from stdout: stderr is empty


def test_claude_is_error_even_with_exit_0_fails() -> None:
    out, err, _ = shape("claude", "is_error")
    p = parse(OutputMode.CLAUDE_JSON, out, err, 0)
    assert p is not None and p.exit_class is ExitClass.AUTH


@pytest.mark.parametrize("cli", sorted(MODES))
def test_usage_limits_rate_limits_and_logins_are_told_apart(cli: str) -> None:
    assert parsed(cli, "usage_limit").exit_class is ExitClass.USAGE_LIMIT
    assert parsed(cli, "rate_limit").exit_class is ExitClass.RATE_LIMITED
    assert parsed(cli, "auth").exit_class is ExitClass.AUTH


def test_codex_tokens_without_a_price_leave_the_cost_null() -> None:
    p = parsed("codex", "success")
    assert p.exit_class is ExitClass.SUCCESS and p.text == "Done: wrote hello.txt"
    assert p.session_id == SESSION and p.turns == 1
    assert p.tokens == Tokens(input=24763, output=122, cache_read=24448, cache_write=None)
    assert p.cost_usd is None


def test_gemini_reads_its_pretty_printed_object_and_sums_model_tokens() -> None:
    p = parsed("gemini", "success")
    assert p.exit_class is ExitClass.SUCCESS and p.text == "Done: wrote hello.txt"
    assert p.session_id == SESSION and p.turns == 2
    assert p.tokens == Tokens(input=9010, output=300, cache_read=4000)  # thoughts are output
    assert p.cost_usd is None


def test_gemini_exit_41_is_auth_with_the_message_from_its_stderr_object() -> None:
    p = parsed("gemini", "auth")
    assert p.exit_class is ExitClass.AUTH and p.text.startswith("Please set an Auth method")
    bare = parse(OutputMode.GEMINI_JSON, "", "no json here", 41)
    assert bare is not None and bare.exit_class is ExitClass.AUTH


def test_copilot_reads_its_jsonl_errors_from_stdout() -> None:
    ok = parsed("copilot", "success")
    assert ok.exit_class is ExitClass.SUCCESS and ok.text == "Done: wrote hello.txt"
    assert ok.session_id == SESSION and ok.cost_usd is None
    assert ok.tokens == Tokens(input=5120, output=210, cache_read=4096, cache_write=0)
    p = parsed("copilot", "auth")
    assert p.text == "Authentication token found but could not be validated."


def test_truncated_json_fails_with_its_raw_tail_kept() -> None:
    out, err, code = shape("claude", "truncated")
    assert code == 0
    p = parse(OutputMode.CLAUDE_JSON, out, err, code)
    assert p is not None and p.unreadable and p.exit_class is ExitClass.FAILED
    assert out.strip()[-200:] in p.text and p.cost_usd is None
    # The stream was cut in its result: the message streamed before it still counts.
    assert p.tokens == Tokens(12, 287, 14012, 1523) and p.session_id == SESSION


def test_a_claude_stream_cut_off_tells_its_session_and_tokens_so_far_not_a_cost() -> None:
    # A run killed for a timeout, a stall or a hard budget: no result event. Each message's
    # usage counts once (claude repeats it on every block of the message).
    init = json.dumps({"type": "system", "subtype": "init", "session_id": SESSION})
    step = {"input_tokens": 4, "output_tokens": 90, "cache_read_input_tokens": 4000}

    def block(n: int) -> str:
        message = {"id": f"msg_{n}", "role": "assistant", "content": [], "usage": step}
        return json.dumps({"type": "assistant", "message": message, "session_id": SESSION})

    out = "\n".join([init, block(1), block(1), block(2)]) + "\n"
    p = parse(OutputMode.CLAUDE_JSON, out, "", None)
    assert p is not None and p.unreadable and p.exit_class is ExitClass.FAILED
    assert p.session_id == SESSION and p.cost_usd is None and p.turns == 2
    assert p.tokens == Tokens(input=8, output=180, cache_read=8000)


def test_claude_stream_json_is_read_to_its_result_event() -> None:
    out, err, code = shape("claude", "success")
    assert len(out.splitlines()) == 3  # init, the message, the result
    p = parse(OutputMode.CLAUDE_JSON, out, err, code)
    assert p is not None and p.exit_class is ExitClass.SUCCESS and p.cost_usd == CLAUDE_COST
    assert p.text == "Done: wrote hello.txt" and p.session_id == SESSION


@pytest.mark.parametrize("mode", list(MODES.values()))
def test_text_that_is_no_json_fails_in_every_json_mode(mode: OutputMode) -> None:
    p = parse(mode, "Hello, I did it.\n", "", 0)
    assert p is not None and p.exit_class is ExitClass.FAILED and "Hello, I did it." in p.text


def test_an_unknown_json_object_is_unreadable() -> None:
    p = parse(OutputMode.CLAUDE_JSON, '{"type": "something-else"}', "", 0)
    assert p is not None and p.unreadable and p.exit_class is ExitClass.FAILED


def test_text_mode_has_no_parser() -> None:
    assert parse(OutputMode.TEXT, "anything", "", 0) is None


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("launch_failed: model CLI not found: claude", ExitClass.NOT_INSTALLED),
        ("launch_failed: cannot open the log", ExitClass.LAUNCH_FAILED),
        ("conflict: markers left in a.py (resolve every one)", ExitClass.CONFLICT),
        ("check_failed: pytest exited 1", ExitClass.CHECK_FAILED),
        ("merge_failed: t1 cannot be queued (conflict)", ExitClass.MERGE_FAILED),
        ("timed out after 15s; the process tree was killed", ExitClass.TIMEOUT),
        ("stalled: the CLI kept retrying for 60s (x)", ExitClass.STALLED),
        ("exit code 1: Not logged in · Please run /login", ExitClass.AUTH),
        ("exit code 1: AssertionError in test_x", ExitClass.FAILED),
    ],
)
def test_error_texts_are_classed(error: str, cls: ExitClass) -> None:
    assert classify_error(error) is cls


def test_records_written_before_classes_get_one() -> None:
    assert classify_record("completed", "") is ExitClass.SUCCESS
    assert classify_record("handed back", "") is ExitClass.KILLED
    assert classify_record("failed", "timed out after 3s") is ExitClass.TIMEOUT
