"""Tinytown's verbs in tt (issue #20), each checked for what a person notices: the files after
it, what it says, the state in Redis. On the embedded Valkey; agents run `sim`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from tests.cli.inproc import town_files, tt

AGENTS = '[agents.dev]\nmodel = "sim"\n\n[agents.qa]\nmodel = "sim"\nsuspended = true\n'
TASKS = '[[tasks]]\nid = "fix"\ndescription = "x"\nagent = "qa"\n'


@pytest.fixture
def town(
    tmp_path: Path, valkey_url: str, town_name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("TT_MODEL_OVERRIDE", "sim")
    monkeypatch.setenv("TT_SIM_DELAY", "0.05")
    yield from town_files(tmp_path, valkey_url, town_name, AGENTS, TASKS)
    tt_down(tmp_path)


def tt_down(root: Path) -> None:
    from cli.main import main

    with pytest.raises(SystemExit):
        main(["down", "--town", str(root)])


def test_interrupt_and_resume_one_agent_edit_its_entry(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = ("-t", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    code, out, _ = tt(capsys, "interrupt", "dev", *at)
    assert code == 0 and out.startswith("suspended dev (suspended = true in town.toml")
    assert '[agents.dev]\nmodel = "sim"\nsuspended = true' in (town / "town.toml").read_text()
    code, out, _ = tt(capsys, "resume", "dev", *at)
    assert (code, out.splitlines()[0]) == (0, "resumed dev")
    assert (town / "town.toml").read_text().count("suspended = true") == 1  # qa's
    code, _, err = tt(capsys, "resume", "nobody", *at)
    assert code != 0 and "no agent 'nobody' in town.toml" in err


def test_reclaim_lists_then_moves_the_tasks_of_a_suspended_agent(
    town: Path, capsys: pytest.CaptureFixture[str], valkey_url: str, town_name: str
) -> None:
    at = ("--town", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    code, out, _ = tt(capsys, "reclaim", *at)
    assert code == 0 and out.splitlines() == [
        "fix: ready, agent qa",
        "move them with tt reclaim --to AGENT or --to-backlog",
    ]
    code, out, _ = tt(capsys, "reclaim", "--to", "dev", *at)
    assert code == 0 and out.splitlines()[-1] == "moved 1 task(s) to dev in tasks.toml"
    assert 'agent = "dev"' in (town / "tasks.toml").read_text()
    with Store.open(valkey_url, town_name) as store:
        assert store.task_hash("fix")["target"] == "dev"


def test_spawn_without_a_model_uses_the_default_and_keeps_tinytown_fields(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = ("--town", str(town))
    code, out, _ = tt(capsys, "config", "default_cli", "sim", *at)
    assert code == 0 and "default_model = 'sim'" in out
    code, out, _ = tt(capsys, "spawn", "api", "--nickname", "API Dev", "--parent", "dev", *at)
    assert code == 0 and out.splitlines()[0] == "spawned api (sim)"
    text = (town / "town.toml").read_text()
    assert '[agents.api]\nmodel = "sim"\nnickname = "API Dev"\nparent = "dev"' in text
    code, _, err = tt(capsys, "spawn", "x", "--parent", "nobody", *at)
    assert code != 0 and "unknown agent 'nobody'" in err
    code, out, _ = tt(capsys, "spawn", "y", "--max-rounds", "5", *at)
    assert code == 0 and out.splitlines()[0] == "spawned y (sim)"
    assert '[agents.y]\nmodel = "sim"\nmax_rounds = 5' in (town / "town.toml").read_text()
    code, _, err = tt(capsys, "spawn", "z", "--max-rounds", "0", *at)
    assert code == 2 and "'--max-rounds': 0 is not in the range" in err


def test_wait_for_one_agent_takes_seconds_and_returns_when_it_is_idle(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = ("--town", str(town))
    assert tt(capsys, "assign", "dev", "Build it", *at)[0] == 0
    code, out, _ = tt(capsys, "wait", "dev", "--timeout", "60", *at)
    assert (code, out) == (0, "dev is idle\n")
    code, out, _ = tt(capsys, "task", "list", "--state", "completed", *at)
    assert out == "t-build-it: completed, agent dev\n"
    code, out, _ = tt(capsys, "status", "--deep", *at)
    deep = out[out.index("\ndev: ") + 1 :].splitlines()
    assert code == 0 and deep[0].startswith("dev: idle, heartbeat ")
    assert deep[1] == "  dev/t-build-it-1.log:" and deep[2].startswith("    ")


def test_init_again_and_plan_init_keep_what_is_there(
    town: Path, capsys: pytest.CaptureFixture[str], town_name: str
) -> None:
    before = (town / "town.toml").read_text(), (town / "tasks.toml").read_text()
    code, out, _ = tt(capsys, "init", "--town", str(town))
    assert (code, out) == (
        0,
        f"town '{town_name}' is here already; nothing written (tt apply runs it)\n",
    )
    code, out, _ = tt(capsys, "plan", "--init", "--town", str(town))
    assert code == 0 and out.endswith(
        "already has tasks: kept as is (edit it; tt plan shows what it asks for)\n"
    )
    assert ((town / "town.toml").read_text(), (town / "tasks.toml").read_text()) == before


def test_tinytown_commands_tt_lacks_say_the_tt_way_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args in (["mission", "start", "-i", "23"], ["towns", "list"], ["reset", "--force"]):
        code, out, err = tt(capsys, *args)
        assert code == 1 and out == ""
        [line] = err.splitlines()
        assert line.startswith("error: ") and "tt " in line
    code, out, _ = tt(capsys, "bootstrap", "8.0.2")
    assert code == 0 and out.startswith("tt needs no bootstrap")
