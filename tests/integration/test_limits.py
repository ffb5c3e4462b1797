"""Cost and limits with live agents running the fake CLIs (tests/fakes, the real JSON shapes):
`tt usage` sums the ledger exactly; a usage limit pauses every agent of its provider until the
reset its message names, spends no retry and resumes by itself; a rate limit without a reset
pauses for the backoff until `tt resume-provider`; a budget stops dispatch at the attempt that
reaches it (under budget_hard it kills the attempt running under it), and a raised budget
resumes it."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import clis
from tests.integration.live import LiveTown, alive, live_town, until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc"),
]

FAKE = json.dumps(str(Path(clis.__file__).resolve()))


def model(name: str, cli: str, scenario: str, output: str, *extra: str) -> str:
    args = "".join(f", {json.dumps(a)}" for a in extra)
    return (
        f'[models.{name}]\ncommand = ["{{python}}", {FAKE}, "{cli}", "{scenario}"{args}]\n'
        f'output = "{output}"\nprovider = "{cli}"\n'
    )


def tasks(*pairs: tuple[str, str]) -> str:
    return "".join(
        f'[[tasks]]\nid = "{tid}"\ndescription = "do {tid}"\nagent = "{agent}"\n\n'
        for tid, agent in pairs
    )


def show(town: LiveTown, task: str) -> dict[str, Any]:
    return json.loads(town.tt("show", task, "-o", "json").stdout)


def status(town: LiveTown) -> dict[str, Any]:
    return json.loads(town.tt("status", "-o", "json").stdout)


def test_tt_usage_sums_the_tokens_and_cost_of_every_attempt_exactly(tmp_path: Path) -> None:
    town_toml = (
        '[town]\nname = "usage"\nretries = 0\n\n[agents.dev]\nmodel = "fake-claude"\n\n'
        '[agents.ops]\nmodel = "fake-codex"\n\n'
        + model("fake-claude", "claude", "success", "claude-json")
        + model("fake-codex", "codex", "success", "codex-jsonl")
    )
    with live_town(tmp_path / "t") as town:
        town.write(town_toml, tasks(("build", "dev"), ("test", "dev"), ("lint", "ops")))
        run = town.tt("apply", "--wait", "--timeout", "60s")
        assert run.returncode == 0, run.stdout + run.stderr
        attempts = {t: show(town, t)["attempts"] for t in ("build", "test", "lint")}
        usage = json.loads(town.tt("usage", "-o", "json").stdout)

        every = [a for found in attempts.values() for a in found]
        total = usage["total"]
        assert total["attempts"] == 3 and total["unknown_cost"] == 1  # codex tells no cost
        assert total["cost_usd"] == round(math.fsum([clis.CLAUDE_COST] * 2), 10)
        for k in ("input", "output", "cache_read", "cache_write"):
            assert total["tokens"][k] == sum(a["tokens"][k] or 0 for a in every), k
        assert total["tokens"]["input"] == 2 * 12 + 24763
        agents = {r["name"]: r for r in usage["agents"]}
        assert agents["dev"]["cost_usd"] == total["cost_usd"] and agents["dev"]["attempts"] == 2
        assert (agents["ops"]["cost_usd"], agents["ops"]["unknown_cost"]) == (0, 1)
        models = {r["name"]: r["attempts"] for r in usage["models"]}
        assert models == {"fake-claude": 2, "fake-codex": 1}
        by_task = {r["name"]: r for r in usage["tasks"]}
        assert by_task["build"]["cost_usd"] == clis.CLAUDE_COST
        assert by_task["build"]["tokens"] == attempts["build"][0]["tokens"]

        text = town.tt("usage").stdout
        assert "town   usage" in text and "0.0844" in text
        assert "1 attempt(s) of unknown cost (the CLI told none) counted as $0" in text


def test_a_usage_limit_pauses_every_agent_of_its_provider_until_its_reset(
    tmp_path: Path,
) -> None:
    marker = str(tmp_path / "limit-hit")  # the first run of either agent meets the limit
    town_toml = (
        # the default limit_backoff (5m): the first limit waits for the reset the CLI named
        '[town]\nname = "paused"\nretries = 0\n\n'
        '[agents.dev]\nmodel = "claude-a"\n\n'
        '[agents.ops]\nmodel = "claude-b"\n\n'
        + model("claude-a", "claude", "usage_limit_once", "claude-json", marker)
        + model("claude-b", "claude", "usage_limit_once", "claude-json", marker)
    )
    work = [(f"d{i}", "dev") for i in range(3)] + [(f"o{i}", "ops") for i in range(3)]
    with live_town(tmp_path / "t") as town:
        town.write(town_toml, tasks(*work))
        run = town.tt("apply", "--wait", "--timeout", "90s", timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr  # retries = 0, yet all completed

        limited = [
            (tid, show(town, tid)["attempts"])
            for tid, _ in work
            if show(town, tid)["attempts"][0]["exit_class"] == "usage_limit"
        ]
        [(_, attempts)] = limited
        assert [a["exit_class"] for a in attempts] == ["usage_limit", "success"]
        assert "usage limit reached" in attempts[0]["error"]

        [paused] = town.events("provider.paused")
        assert paused["provider"] == "claude" and paused["reason"] == "claude usage limit"
        reset = float(paused["resumes_at"])
        assert reset == int(reset) and reset - float(paused["ts"]) <= 3.5  # the fake's epoch
        resumed = town.events("provider.resumed")
        assert [e["reason"] for e in resumed] == ["reset reached"]  # by itself, at the reset
        # No agent of the provider claimed a task during the pause; both did after it.
        events = town.events()
        after = events[[e["id"] for e in events].index(paused["id"]) + 1 :]
        claims = [e for e in after if e["type"] == "task.claimed"]
        assert claims and all(float(e["ts"]) >= reset for e in claims)
        assert {e["agent"] for e in claims} == {"dev", "ops"}
        assert float(claims[0]["ts"]) < reset + 3  # woken at the reset, not a poll later
        assert status(town)["providers"] == []


def test_a_rate_limit_without_a_reset_pauses_for_the_backoff_until_resumed(
    tmp_path: Path,
) -> None:
    town_toml = (
        '[town]\nname = "ratelimit"\nretries = 0\nlimit_backoff = "10m"\n\n'
        '[agents.dev]\nmodel = "fake-claude"\n\n'
        + model("fake-claude", "claude", "rate_limit_once", "claude-json", str(tmp_path / "m"))
    )
    with live_town(tmp_path / "t") as town:
        town.write(town_toml, tasks(("build", "dev")))
        assert town.tt("apply").returncode == 0
        pause = until(lambda: status(town)["providers"], 60, "the provider paused")[0]
        assert (pause["provider"], pause["reason"], pause["class"]) == (
            "claude",
            "claude rate limit",
            "rate_limited",
        )
        assert 590 < pause["paused_until"] - pause["since"] <= 600  # 10 min, no reset named
        task = show(town, "build")
        assert task["state"] == "ready" and task["attempts"][0]["exit_class"] == "rate_limited"
        clock = time.strftime("%H:%M", time.localtime(pause["paused_until"]))
        text = town.tt("status").stdout
        assert f"claude: paused until {clock} (claude rate limit)" in text

        unknown = town.tt("resume-provider", "nope")
        assert unknown.returncode == 1 and "unknown provider 'nope'" in unknown.stderr
        assert "claude" in unknown.stderr  # the hint names the town's providers
        resumed = town.tt("resume-provider", "claude")
        assert resumed.returncode == 0 and "resumed provider 'claude'" in resumed.stdout
        until(lambda: show(town, "build")["state"] == "completed", 30, "build completed")
        assert [a["exit_class"] for a in show(town, "build")["attempts"]] == [
            "rate_limited",
            "success",
        ]
        assert town.tt("resume-provider", "claude").stdout.strip() == (
            "provider 'claude' was not paused"
        )


def test_a_budget_stops_dispatch_at_the_attempt_that_reaches_it_and_a_raised_one_resumes(
    tmp_path: Path,
) -> None:
    def town_toml(budget: float) -> str:
        return (
            f'[town]\nname = "budget"\nbudget_usd = {budget}\n\n'
            '[agents.dev]\nmodel = "fake-claude"\n\n'
            + model("fake-claude", "claude", "success", "claude-json")
        )

    with live_town(tmp_path / "t") as town:
        # Each attempt costs $0.0421875: the second reaches $0.05, the third must not start.
        town.write(town_toml(0.05), tasks(("a", "dev"), ("b", "dev"), ("c", "dev")))
        assert town.tt("apply").returncode == 0

        def waiting() -> dict[str, Any] | None:
            st = status(town)
            rows = {t["id"]: t for t in st["tasks"]}
            return st if rows["c"]["waiting_for"] == "budget" else None

        st = until(waiting, 60, "c waiting for the budget")
        states = {t["id"]: t["state"] for t in st["tasks"]}
        assert states == {"a": "completed", "b": "completed", "c": "ready"}
        assert st["budgets"]["town"] == {
            "limit": 0.05,
            "spent": pytest.approx(2 * clis.CLAUDE_COST),
            "reached": True,
        }
        assert show(town, "c")["attempts"] == [] and show(town, "c")["waiting_for"] == "budget"
        text = town.tt("status").stdout
        assert "waits for budget" in text and "budget town: $0.0844 of $0.0500: reached" in text
        assert len(town.events("budget.exhausted")) == 1

        town.save("town.toml", town_toml(1.0))
        assert town.tt("apply").returncode == 0
        until(lambda: show(town, "c")["state"] == "completed", 30, "c completed")
        assert [e["scope"] for e in town.events("budget.exhausted")] == ["town"]  # told once
        assert [e["scope"] for e in town.events("budget.resumed")] == ["town"]
        usage = json.loads(town.tt("usage", "-o", "json").stdout)
        assert usage["total"]["attempts"] == 3 and usage["budgets"]["town"]["reached"] is False


def test_a_hard_budget_kills_the_attempt_running_under_it_and_a_raised_one_reruns_it(
    tmp_path: Path,
) -> None:
    def town_toml(budget: float) -> str:
        return (
            f'[town]\nname = "hard"\nretries = 0\nbudget_usd = {budget}\nbudget_hard = true\n\n'
            '[agents.dev]\nmodel = "fake-claude"\n\n[agents.ops]\nmodel = "slow-claude"\n\n'
            + model("fake-claude", "claude", "success", "claude-json")
            + model("slow-claude", "claude", "slow_once", "claude-json", str(tmp_path / "m"))
        )

    with live_town(tmp_path / "t") as town:
        town.write(town_toml(0.05), tasks(("slow", "ops")))
        assert town.tt("apply").returncode == 0
        running = until(
            lambda: (r := town.agents().get("ops", {})).get("model_pid", "").isdigit() and r,
            60,
            "the slow attempt running",
        )
        model_pid = int(running["model_pid"])
        # Two attempts of $0.0421875 on dev reach $0.05: the slow one is killed with them.
        town.save("tasks.toml", tasks(("slow", "ops"), ("a", "dev"), ("b", "dev")))
        assert town.tt("apply").returncode == 0
        until(lambda: show(town, "slow")["attempts"][0]["exit_class"], 60, "slow stopped")
        [killed] = show(town, "slow")["attempts"]
        assert (killed["exit_class"], killed["reason"]) == ("killed", "budget")
        until(lambda: not alive(model_pid), 15, "the slow model's process gone")
        assert show(town, "slow")["state"] == "ready"
        assert show(town, "slow")["waiting_for"] == "budget"

        town.save("town.toml", town_toml(1.0))
        assert town.tt("apply").returncode == 0
        until(lambda: show(town, "slow")["state"] == "completed", 60, "slow completed")
        assert [a["exit_class"] for a in show(town, "slow")["attempts"]] == ["killed", "success"]


def test_failing_work_whose_output_mentions_a_rate_limit_fails_and_spends_its_retries(
    tmp_path: Path,
) -> None:
    # A model implementing a rate limiter: its failing test run prints "429 Too Many Requests"
    # (the model's transcript, on stdout) and it exits 1. That is no provider limit: no
    # deferral, no pause; retries = 0 fails it at once.
    cli = tmp_path / "tests_fail.py"
    cli.write_text(
        "import sys\nsys.stdin.read()\n"
        "print('FAILED tests/test_limiter.py::test_blocks - expected 429 Too Many Requests')\n"
        "print('1 failed, 12 passed in 0.4s')\nsys.exit(1)\n"
    )
    town_toml = (
        '[town]\nname = "loop"\nretries = 0\n\n[agents.dev]\nmodel = "tester"\n\n'
        f'[models.tester]\ncommand = ["{{python}}", {json.dumps(str(cli))}]\n'
    )
    with live_town(tmp_path / "t") as town:
        town.write(town_toml, tasks(("limiter", "dev")))
        town.tt("apply", "--wait", "--timeout", "30s", timeout=60)
        task = show(town, "limiter")
        assert task["state"] == "failed"
        assert [a["exit_class"] for a in task["attempts"]] == ["failed"]
        assert town.events("provider.paused") == [] and town.events("task.deferred") == []
