"""An attempt's run read through its CLI's JSON (the fakes of tests/fakes, real processes): the
verdict carries the result, exit class, session, tokens and cost, and its ledger entry is
mirrored beside its log, private."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from reconciler.agents.attempt import Runner
from reconciler.agents.exitclass import ExitClass
from reconciler.agents.ledger import settle
from reconciler.agents.prompt import Verdict
from reconciler.spec.desired import AgentSpec, ModelSpec, OutputMode
from reconciler.town import TownPaths
from tests.agents.test_attempt import FakeStore
from tests.fakes import clis

FAKE = str(Path(clis.__file__).resolve())


def run(tmp_path: Path, cli: str, scenario: str, output: OutputMode) -> tuple[Verdict, Path]:
    model = ModelSpec(
        name=f"fake-{cli}", command=(sys.executable, FAKE, cli, scenario), output=output
    )
    spec = AgentSpec(name="dev", model=model.name)
    r = Runner(TownPaths(tmp_path), "dev", spec, model, FakeStore())
    log = tmp_path / ".tt" / "logs" / "dev" / "t-1.log"
    return r.invoke("do it", log, 30.0, "t", 1, "tok", lambda: False), log


def test_a_claude_json_success_gives_its_result_and_costs(tmp_path: Path) -> None:
    verdict, log = run(tmp_path, "claude", "success", OutputMode.CLAUDE_JSON)
    assert verdict.ok and verdict.text == "Done: wrote hello.txt"  # not the raw JSON
    assert verdict.exit_class is ExitClass.SUCCESS and verdict.facts is not None
    assert verdict.facts.cost_usd == clis.CLAUDE_COST and verdict.facts.exit_code == 0
    assert verdict.facts.tokens.cache_read == 14012 and verdict.facts.session_id == clis.SESSION
    settle(verdict, log.parent, 100.0, "t", 1, "dev", "fake-claude", None)
    mirror = log.with_suffix(".json")
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o600
    entry = json.loads(mirror.read_text())
    assert entry["tokens"] == {"input": 12, "output": 287, "cache_read": 14012, "cache_write": 1523}
    assert (entry["cost_usd"], entry["exit_class"], entry["turns"]) == (
        clis.CLAUDE_COST,
        "success",
        3,
    )
    assert (entry["task"], entry["attempt"], entry["model"]) == ("t", 1, "fake-claude")
    assert entry["result"] == "Done: wrote hello.txt" and entry["error"] is None
    assert entry["node"] and entry["started_at"] == 100.0 and entry["finished_at"] > 100.0


def test_claude_not_logged_in_fails_for_good_with_its_message(tmp_path: Path) -> None:
    verdict, _ = run(tmp_path, "claude", "auth", OutputMode.CLAUDE_JSON)
    assert not verdict.ok and verdict.permanent and verdict.exit_class is ExitClass.AUTH
    assert verdict.text == "exit code 1: Not logged in · Please run /login"


@pytest.mark.parametrize(
    ("cli", "output"),
    [
        ("claude", OutputMode.CLAUDE_JSON),
        ("codex", OutputMode.CODEX_JSONL),
        ("gemini", OutputMode.GEMINI_JSON),
        ("copilot", OutputMode.COPILOT_JSONL),
    ],
)
def test_limits_are_classed_and_stay_retryable(
    tmp_path: Path, cli: str, output: OutputMode
) -> None:
    usage, _ = run(tmp_path, cli, "usage_limit", output)
    assert usage.exit_class is ExitClass.USAGE_LIMIT and not usage.ok and not usage.permanent
    rate, _ = run(tmp_path, cli, "rate_limit", output)
    assert rate.exit_class is ExitClass.RATE_LIMITED and not rate.permanent


def test_truncated_json_with_exit_0_fails_with_its_raw_tail(tmp_path: Path) -> None:
    verdict, _ = run(tmp_path, "claude", "truncated", OutputMode.CLAUDE_JSON)
    assert not verdict.ok and verdict.exit_class is ExitClass.FAILED
    assert verdict.text.startswith("failed: no readable claude-json output: {")
    assert verdict.facts is not None and verdict.facts.cost_usd is None


def test_text_mode_keeps_the_raw_output_as_the_result(tmp_path: Path) -> None:
    verdict, _ = run(tmp_path, "claude", "success", OutputMode.TEXT)
    # the stream as claude printed it: its init event first, its result last
    assert verdict.ok and verdict.text.startswith('{"type": "system"')
    assert verdict.text.rstrip().splitlines()[-1].startswith('{"type": "result"')
    assert verdict.facts is not None and verdict.facts.tokens.input is None
    assert verdict.facts.cost_usd is None and verdict.facts.session_id is None
