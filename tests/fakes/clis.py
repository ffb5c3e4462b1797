"""Fake model CLIs that print the JSON shapes of the real ones (`python clis.py CLI SCENARIO
[ARGS…]`): what tests use instead of claude, codex, gemini and copilot, which need logins and a
network.

The shapes follow CLI-FACTS.md where it observed them (claude's stream-json, as the preset runs
it: its `init` event, an `assistant` event per message, the `result` object with `is_error`
under a success subtype and its message on stdout; gemini's error object on stderr with exit
41, copilot's errors in its JSONL on stdout) and the CLIs' documented output otherwise.
Self-contained (a model runs it by path, from the town's folder): it reads its prompt from stdin
and exits with the real CLI's code.

Sessions: ARGS may carry the CLI's own session arguments (a preset's `session_args` or
`resume_args`: claude and gemini `--session-id ID` / `--resume ID`, codex `resume ID`, copilot
`--session-id=ID` / `--resume=ID`); the JSON then names that session. With $FAKE_CLI_RECORD set,
every run appends a JSON line to that file: its argv, the session it resumed (or null), the one
it started, and the pid of the child a hanging run started. Scenarios that use it:
- `hang`: prints nothing and sleeps for ever, with a child process that sleeps too;
- `hang_once` (any `SCENARIO_once`): the first run hangs (is SCENARIO), every later one
  succeeds (resumed or not);
- `resume_rejected`: a resume is refused as the real CLI refuses a session it does not have
  (`REJECTED`: fast, non-zero, the error on stderr); the first fresh run hangs, later ones
  succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SESSION = "5f0c1c2e-7d1a-4c5b-9a57-0f3e2b8d6a41"
CLAUDE_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 1523,
    "cache_read_input_tokens": 14012,
    "output_tokens": 287,
    "server_tool_use": {"web_search_requests": 0},
    "service_tier": "standard",
}
CLAUDE_COST = 0.0421875
RATE_429 = (
    'API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"This request '
    'would exceed the rate limit for your organization of 50,000 input tokens per minute."}}'
)


def _claude_result(result: str, is_error: bool, cost: float, usage: dict[str, object]) -> str:
    return json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "duration_ms": 2866,
            "duration_api_ms": 4467,
            "num_turns": 3 if not is_error else 1,
            "result": result,
            "session_id": SESSION,
            "total_cost_usd": cost,
            "usage": usage,
            "permission_denials": [],
            "uuid": "a7a3c0de-0000-4000-8000-000000000001",
        }
    )


def _claude_init() -> str:
    """The first event of `claude -p --output-format stream-json --verbose` (trimmed)."""
    return json.dumps(
        {
            "type": "system",
            "subtype": "init",
            "cwd": os.getcwd(),
            "session_id": SESSION,
            "tools": ["Bash", "Edit", "Read", "Write"],
            "model": "claude-sonnet-4-5",
            "permissionMode": "acceptEdits",
            "apiKeySource": "none",
        }
    )


def _claude_message(n: int, text: str, usage: dict[str, object]) -> str:
    """An `assistant` event: one block of message `n`, with the message's usage."""
    message = {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": None,
        "usage": usage,
    }
    event = {"type": "assistant", "message": message, "parent_tool_use_id": None}
    return json.dumps({**event, "session_id": SESSION})


# What one streamed message of a working run costs in tokens (its cost is told only at the end).
CLAUDE_STEP = {
    "input_tokens": 4,
    "cache_creation_input_tokens": 500,
    "cache_read_input_tokens": 4000,
    "output_tokens": 90,
}


def _claude(result: str, is_error: bool, cost: float, usage: dict[str, object]) -> str:
    """The whole stream of a run: init, its message, the result."""
    return "".join(
        line + "\n"
        for line in (
            _claude_init(),
            _claude_message(1, result, usage),
            _claude_result(result, is_error, cost, usage),
        )
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def claude(scenario: str) -> tuple[str, str, int]:
    zero = {k: 0 for k in CLAUDE_USAGE if k.endswith("tokens")}
    if scenario == "success":
        return _claude("Done: wrote hello.txt", False, CLAUDE_COST, CLAUDE_USAGE), "", 0
    if scenario in ("auth", "is_error"):  # the real not-logged-in run: rc 1, stderr empty
        return _claude("Not logged in · Please run /login", True, 0, zero), "", 1
    if scenario == "usage_limit":
        reset = int(time.time()) + 3
        return _claude(f"Claude AI usage limit reached|{reset}", True, 0, zero), "", 1
    if scenario == "rate_limit":
        return _claude(RATE_429, True, 0, zero), "", 1
    if scenario == "slow":  # starts, says one thing, works long in silence (a stall, a kill)
        _say(_claude_init())
        _say(_claude_message(1, "Reading the code first.", CLAUDE_STEP))
        time.sleep(120)
        return _claude_result("Done: wrote hello.txt", False, CLAUDE_COST, CLAUDE_USAGE), "", 0
    if scenario == "explore":  # reads and thinks for a while, writes no file, then answers
        _say(_claude_init())
        for n in range(1, 13):
            _say(_claude_message(n, f"Reading part {n} of the code.", CLAUDE_STEP))
            time.sleep(0.4)
        return _claude_result("Summary: it is fine.", False, CLAUDE_COST, CLAUDE_USAGE), "", 0
    if scenario == "truncated":
        whole = _claude("Done: wrote hello.txt", False, CLAUDE_COST, CLAUDE_USAGE)
        return whole[: len(whole) - 40], "", 0
    raise SystemExit(f"unknown scenario {scenario}")


def _lines(*events: dict[str, object]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def codex(scenario: str) -> tuple[str, str, int]:
    head = [{"type": "thread.started", "thread_id": SESSION}, {"type": "turn.started"}]
    if scenario == "success":
        return (
            _lines(
                *head,
                {
                    "type": "item.completed",
                    "item": {"id": "item_0", "type": "reasoning", "text": "**Writing the file**"},
                },
                {
                    "type": "item.completed",
                    "item": {
                        "id": "item_1",
                        "type": "agent_message",
                        "text": "Done: wrote hello.txt",
                    },
                },
                {
                    "type": "turn.completed",
                    "usage": {
                        "input_tokens": 24763,
                        "cached_input_tokens": 24448,
                        "output_tokens": 122,
                    },
                },
            ),
            "",
            0,
        )
    message = {
        "usage_limit": "You've hit your usage limit. Upgrade to Pro "
        "(https://openai.com/chatgpt/pricing) or try again in 2 hours 5 minutes.",
        "rate_limit": "exceeded retry limit, last status: 429 Too Many Requests",
        "auth": "unexpected status 401 Unauthorized: Missing bearer or basic authentication "
        "in header",
    }[scenario]
    return (
        _lines(
            *head,
            {"type": "error", "message": message},
            {"type": "turn.failed", "error": {"message": message}},
        ),
        "",
        1,
    )


def gemini(scenario: str) -> tuple[str, str, int]:
    if scenario == "success":
        doc = {
            "session_id": SESSION,
            "response": "Done: wrote hello.txt",
            "stats": {
                "models": {
                    "gemini-2.5-pro": {
                        "api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5120},
                        "tokens": {
                            "prompt": 9010,
                            "candidates": 120,
                            "total": 9310,
                            "cached": 4000,
                            "thoughts": 180,
                            "tool": 0,
                        },
                    }
                },
                "tools": {"totalCalls": 1, "totalSuccess": 1, "totalFail": 0},
                "files": {"totalLinesAdded": 1, "totalLinesRemoved": 0},
            },
        }
        return json.dumps(doc, indent=2) + "\n", "", 0
    error = {
        "auth": (
            "Please set an Auth method in your ~/.gemini/settings.json or specify one "
            "of the following environment variables before running: GEMINI_API_KEY, "
            "GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA",
            41,
            41,
        ),
        "usage_limit": ("You have exhausted your daily quota on this model.", 1, 1),
        "rate_limit": (
            '[API Error: got status: 429 Too Many Requests. {"error":{"code":429,'
            '"status":"RESOURCE_EXHAUSTED"}}]',
            1,
            1,
        ),
    }[scenario]
    message, code, rc = error
    doc = {"session_id": SESSION, "error": {"type": "Error", "message": message, "code": code}}
    # Warnings come first on stderr (TERM=dumb, ripgrep), then the error object.
    return "", "Basic terminal detected (TERM=dumb).\n" + json.dumps(doc, indent=2) + "\n", rc


def copilot(scenario: str) -> tuple[str, str, int]:
    def result(code: int) -> dict[str, object]:
        return {
            "type": "result",
            "sessionId": SESSION,
            "exitCode": code,
            "usage": {"premiumRequests": 1, "totalApiDurationMs": 3100, "sessionDurationMs": 5200},
        }

    if scenario == "success":
        return (
            _lines(
                {
                    "type": "assistant.message",
                    "data": {"messageId": "m1", "content": "Done: wrote hello.txt"},
                },
                {
                    "type": "assistant.usage",
                    "data": {
                        "model": "claude-sonnet-4.5",
                        "inputTokens": 5120,
                        "outputTokens": 210,
                        "cacheReadTokens": 4096,
                        "cacheWriteTokens": 0,
                    },
                },
                result(0),
            ),
            "",
            0,
        )
    message = {
        "auth": "Authentication token found but could not be validated.",
        "rate_limit": "Sorry, you have been rate-limited. Please wait a moment before trying "
        "again.",
        "usage_limit": "You have reached your monthly premium request usage limit.",
    }[scenario]
    return _lines({"type": "session.error", "data": {"message": message}}, result(1)), "", 1


FAKES = {"claude": claude, "codex": codex, "gemini": gemini, "copilot": copilot}
# What each real CLI says, and its exit code, when asked to resume a session it does not have
# (observed on the installed CLIs, not logged in; tests/integration/test_real_clis.py checks
# each against its preset's `resume_rejected`). {id} is the session asked for.
REJECTED = {
    "claude": ("No conversation found with session ID: {id}", 1),
    "codex": (
        "Error: thread/resume: thread/resume failed: no rollout found for thread id {id} "
        "(code -32600)",
        1,
    ),
    "gemini": ("Error resuming session: No previous sessions found for this project.", 42),
    "copilot": ("Error: No session, task, or name matched '{id}'.", 1),
}
ONCE = "_once"  # SCENARIO_once: the first run is SCENARIO, every later one succeeds


def shape(cli: str, scenario: str, session: str | None = None) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of `cli` in `scenario`, naming `session` where given."""
    out, err, code = FAKES[cli](scenario)
    if session is not None:
        out, err = out.replace(SESSION, session), err.replace(SESSION, session)
    return out, err, code


def sessions(cli: str, args: list[str]) -> tuple[str | None, str | None]:
    """(the session `args` resume, the one they start) as the CLI would read them."""
    resumed = started = None
    for i, arg in enumerate(args):
        value = args[i + 1] if i + 1 < len(args) else None
        if (cli == "codex" and arg == "resume") or arg in ("--resume", "-r"):
            resumed = value
        elif arg == "--session-id":
            started = value
        elif arg.startswith("--resume="):
            resumed = arg.split("=", 1)[1]
        elif arg.startswith("--session-id="):
            started = arg.split("=", 1)[1]
    return resumed, started


def hang(note: dict[str, object]) -> None:
    """Say nothing and never exit, with a child that sleeps too (its pid in the record)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    record({**note, "child": child.pid})
    while True:
        time.sleep(3600)


def record(note: dict[str, object]) -> None:
    path = os.environ.get("FAKE_CLI_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(note) + "\n")


def runs_before() -> int:
    path = os.environ.get("FAKE_CLI_RECORD")
    if not path or not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def main(argv: list[str]) -> int:
    cli, scenario, args = argv[1], argv[2], argv[3:]
    sys.stdin.read()  # the prompt, as the real CLIs read it
    resumed, started = sessions(cli, args)
    first = runs_before() == 0
    note: dict[str, object] = {"argv": argv, "resumed": resumed, "started": started}
    if scenario == "resume_rejected":
        if resumed is not None:
            record(note)
            message, code = REJECTED[cli]
            sys.stderr.write(message.format(id=resumed) + "\n")
            return code
        scenario = "hang" if first else "success"
    elif scenario.endswith(ONCE) and args and not args[0].startswith("-") and args[0] != "resume":
        scenario = once(scenario, args.pop(0))  # `SCENARIO_once MARKER`: the marker file says
    elif scenario.endswith(ONCE):
        scenario = scenario[: -len(ONCE)] if first else "success"
    if scenario == "hang":
        hang(note)
    record(note)
    out, err, code = shape(cli, scenario, resumed or started)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def once(scenario: str, marker: str) -> str:
    """`SCENARIO_once MARKER`: the scenario on the first run (it creates the file `marker`),
    success on every run after (a limit that has passed)."""
    try:
        with open(marker, "x"):
            return scenario.removesuffix("_once")
    except FileExistsError:
        return "success"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
