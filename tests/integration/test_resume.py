"""Resume and stall detection with live agents: a fake claude (tests/fakes, the real CLI's JSON
and session arguments, the `claude` preset's resume templates) that hangs is killed with its
child once nothing moves for `stall_after`, classed `stalled`, and its retry goes on with the
session the first attempt was given; a timeout and a usage limit resume alike; a resume the CLI
refuses runs fresh in the same attempt (no retry spent); `resume = false` starts fresh; a dead
agent's task resumes the session its model was started in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.spec.presets import PRESETS
from tests.fakes import clis
from tests.integration.live import alive, live_town, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

FAKE = str(Path(clis.__file__).resolve())
CLAUDE = PRESETS["claude"]


def toml_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items))


def model(name: str, scenario: str) -> str:
    return (
        f"[models.{name}]\n"
        f'command = ["{{python}}", {json.dumps(FAKE)}, "claude", "{scenario}"]\n'
        'output = "claude-json"\n'
        f"resume_args = {toml_list(CLAUDE.resume_args)}\n"
        f"session_args = {toml_list(CLAUDE.session_args)}\n"
        f"resume_rejected = {toml_list(CLAUDE.resume_rejected)}\n\n"
    )


def agent(name: str, model_name: str, record: Path, extra: str = "") -> str:
    env = json.dumps(str(record))
    head = f'[agents.{name}]\nmodel = "{model_name}"\n'
    return head + f"env = {{ FAKE_CLI_RECORD = {env} }}\n{extra}\n"


def runs(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def test_stalled_and_timed_out_attempts_resume_their_session_and_a_refused_resume_runs_fresh(
    tmp_path: Path,
) -> None:
    rec = {n: tmp_path / f"{n}.jsonl" for n in ("res", "rej", "fresh", "slow", "limit")}
    town = (
        # the default limit_backoff (5m): the first limit waits for the reset the CLI named
        '[town]\nname = "resume"\nretries = 1\nretry_backoff = "0.2s"\n\n'
        + agent("res", "fake-claude", rec["res"], 'stall_after = "2s"')
        + agent("rej", "fake-claude-rej", rec["rej"], 'stall_after = "2s"')
        + agent("fresh", "fake-claude", rec["fresh"], 'stall_after = "2s"\nresume = false')
        + agent("slow", "fake-claude", rec["slow"])
        + agent("limit", "fake-claude-limit", rec["limit"])
        + model("fake-claude", "hang_once")
        + model("fake-claude-rej", "resume_rejected")
        + model("fake-claude-limit", "usage_limit_once")
    )
    tasks = "".join(
        f'[[tasks]]\nid = "t-{n}"\ndescription = "write hello.txt"\nagent = "{n}"\n'
        + ('timeout = "3s"\n' if n == "slow" else "")
        + "\n"
        for n in rec
    )
    with live_town(tmp_path / "t") as live:
        live.write(town, tasks)
        run = live.tt("apply", "--wait", "--timeout", "90s", timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr

        def shown(task: str) -> list[dict[str, Any]]:
            got = json.loads(live.tt("show", task, "-o", "json").stdout)
            assert got["state"] == "completed", got
            attempts: list[dict[str, Any]] = got["attempts"]
            return attempts

        # Stalled: nothing moved for 2s; killed with its child; the retry resumed its session.
        first, second = shown("t-res")
        hung, resumed = runs(rec["res"])
        session = hung["started"]
        assert session and hung["resumed"] is None
        assert first["exit_class"] == "stalled" and first["session_id"] == session
        assert "no output and no file change for 2s" in first["error"]
        assert not alive(hung["child"])  # the whole tree was killed
        assert resumed["resumed"] == session and resumed["started"] is None
        assert (second["exit_class"], second["resumed_from"]) == ("success", session)
        assert second["session_id"] == session  # the CLI's JSON names the resumed session
        stalled = [e for e in live.events("attempt.stalled") if e.get("task") == "t-res"]
        assert [e["reason"] for e in stalled] == ["no output and no file change for 2s"]
        log = Path(second["log"]).read_text()
        assert f"resuming session {session}" in log and "was interrupted" in log
        assert "write hello.txt" not in log.split("--- output ---")[0]  # the short prompt
        assert f"resumed from {session}" in live.tt("show", "t-res").stdout

        # A timeout is resumed alike.
        first, second = shown("t-slow")
        hung, resumed = runs(rec["slow"])
        assert first["exit_class"] == "timeout" and not alive(hung["child"])
        assert resumed["resumed"] == hung["started"] == second["resumed_from"]

        # A usage limit is resumed alike (its JSON named the session it was given).
        first, second = shown("t-limit")
        limited, resumed = runs(rec["limit"])
        assert first["exit_class"] == "usage_limit" and first["session_id"] == limited["started"]
        assert resumed["resumed"] == limited["started"] == second["resumed_from"]

        # Refused: the CLI has no such session; the same attempt ran fresh and completed, with
        # retries = 1 (a spent retry would have left none for it).
        first, second = shown("t-rej")
        hung, refused, fresh = runs(rec["rej"])
        assert first["exit_class"] == "stalled"
        assert refused["resumed"] == hung["started"]
        assert fresh["resumed"] is None and fresh["started"] not in (None, hung["started"])
        assert second["attempt"] == 2 and second["exit_class"] == "success"
        assert second["resume_rejected"] == hung["started"] and second["resumed_from"] is None
        assert second["session_id"] == fresh["started"]
        refusals = live.events("attempt.resume_rejected")
        assert [(e["task"], e["session"]) for e in refusals] == [("t-rej", hung["started"])]

        # resume = false: the retry starts a fresh session.
        first, second = shown("t-fresh")
        hung, fresh = runs(rec["fresh"])
        assert first["exit_class"] == "stalled" and not alive(hung["child"])
        assert fresh["resumed"] is None and fresh["started"] != hung["started"]
        assert second["resumed_from"] is None
        assert "write hello.txt" in Path(second["log"]).read_text()  # the whole prompt


def test_a_dead_agents_task_resumes_the_session_its_model_was_started_in(tmp_path: Path) -> None:
    record = tmp_path / "pool.jsonl"
    town = (
        '[town]\nname = "dead"\nheartbeat = "0.5s"\nlease = "2s"\nretry_backoff = "0.2s"\n'
        'restart_backoff = "0.2s"\nrestart_backoff_max = "1s"\nresync = "5s"\n\n'
        + agent("worker", "fake-claude", record, "replicas = 2")
        + model("fake-claude", "hang_once")
    )
    tasks = '[[tasks]]\nid = "t"\ndescription = "write hello.txt"\nagent = "worker"\n'
    with live_town(tmp_path / "t") as live:
        live.write(town, tasks)
        live.start_watcher()
        hung = until(lambda: record.exists() and runs(record), 30, "the model started")[0]
        victim = live.tasks()["t"]["assignee"]
        assert live.kill(live.live_agents()[victim])
        until(lambda: live.states()["completed"] == 1, 30, "the task completes")
        first, second = live.attempts("t")
        assert (first["outcome"], first["agent"]) == ("handed back", victim)
        assert (first["session_id"], first["model"]) == (hung["started"], "fake-claude")
        assert second["resumed_from"] == hung["started"]
        assert runs(record)[1]["resumed"] == hung["started"]
        until(lambda: not alive(hung["child"]), 10, "the dead agent's model tree killed")


def test_a_claude_run_streaming_its_work_is_not_stalled_and_off_turns_the_check_off(
    tmp_path: Path,
) -> None:
    # `explore` reads and thinks for ~5 s, writing no file: claude's stream-json (the preset's
    # output) shows each message as it comes, so with stall_after = 2s it is not killed.
    # `slow` says one thing, then works 120 s in silence: its task's stall_after = "off" leaves
    # it to its timeout (a stall would have ended it after 2 s).
    rec = {n: tmp_path / f"{n}.jsonl" for n in ("explore", "quiet")}
    town = (
        '[town]\nname = "streams"\nretries = 0\nstall_after = "2s"\n\n'
        + agent("explore", "fake-explore", rec["explore"])
        + agent("quiet", "fake-slow", rec["quiet"])
        + model("fake-explore", "explore")
        + model("fake-slow", "slow")
    )
    tasks = (
        '[[tasks]]\nid = "review"\ndescription = "read and summarise"\nagent = "explore"\n\n'
        '[[tasks]]\nid = "think"\ndescription = "think"\nagent = "quiet"\n'
        'stall_after = "off"\ntimeout = "6s"\n'
    )
    with live_town(tmp_path / "t") as live:
        live.write(town, tasks)
        live.tt("apply", "--wait", "--timeout", "60s", timeout=90)

        def attempts(task: str) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = json.loads(live.tt("show", task, "-o", "json").stdout)[
                "attempts"
            ]
            return got

        [review] = attempts("review")
        assert review["exit_class"] == "success" and review["duration_s"] > 4
        [think] = attempts("think")
        assert think["exit_class"] == "timeout" and think["duration_s"] >= 5.5
        # Cut off before its result: the tokens its stream showed are kept, its cost unknown.
        assert think["tokens"]["output"] == clis.CLAUDE_STEP["output_tokens"]
        assert think["cost_usd"] is None and think["session_id"]
