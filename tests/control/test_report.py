"""`tt list` / `tt status` show the model that runs: an agent started under TT_MODEL_OVERRIDE (or
`tt apply --model`) runs the override, and says which model town.toml names (`sim (claude
overridden)`; in JSON `model`, `configured_model`, `model_override`). Fakeredis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import cmd_agents, cmd_status
from cli.main import main
from reconciler.control.report import agents_report
from reconciler.control.session import Session
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = (
    '[town]\nname = "report"\n\n[agents.dev]\nmodel = "claude"\n\n[agents.ops]\nmodel = "codex"\n'
)


@pytest.fixture
def session(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Session:
    (tmp_path / "town.toml").write_text(TOWN)
    s = Session(TownPaths(tmp_path))
    s.__dict__["store"] = fake_store
    for module in (cmd_agents, cmd_status):
        monkeypatch.setattr(module, "session", lambda town_dir: s)
    monkeypatch.delenv("TT_MODEL_OVERRIDE", raising=False)
    return s


def running(store: Store, name: str, model: str) -> None:
    """Agent `name`'s process as it registers itself at start, with a live heartbeat."""
    store.register_agent(name, {"pid": "4242", "state": "idle", "model": model, "instance": "i1"})
    store.heartbeat(name, "i1", 10.0)


def models(rows: list[dict[str, object]]) -> dict[object, tuple[object, ...]]:
    return {r["name"]: (r["model"], r["configured_model"], r["model_override"]) for r in rows}


def test_an_agent_started_under_an_override_shows_the_model_it_runs(session: Session) -> None:
    running(session.store, "dev", "sim")  # started by `tt apply --model sim`
    desired = loader.load(session.paths)
    assert models(agents_report(session.store, desired)) == {
        "dev": ("sim", "claude", "sim"),
        "ops": ("codex", "codex", None),
    }


def test_an_override_in_the_environment_is_what_a_stopped_agent_would_run(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    running(session.store, "ops", "codex")  # started before the override: runs codex
    monkeypatch.setenv("TT_MODEL_OVERRIDE", "sim")
    assert models(agents_report(session.store, loader.load(session.paths))) == {
        "dev": ("sim", "claude", "sim"),
        "ops": ("codex", "codex", None),
    }


def test_list_and_status_say_which_model_was_overridden(
    session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    running(session.store, "dev", "sim")
    for argv in (["list"], ["status"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        dev = next(line for line in out.splitlines() if line.startswith("dev "))
        ops = next(line for line in out.splitlines() if line.startswith("ops "))
        assert "sim (claude overridden)" in dev, out
        assert "codex" in ops and "overridden" not in ops, out
    with pytest.raises(SystemExit):
        main(["status", "-o", "json"])
    agents = {a["name"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    assert (agents["dev"]["model"], agents["dev"]["configured_model"]) == ("sim", "claude")
    assert (agents["dev"]["model_override"], agents["ops"]["model_override"]) == ("sim", None)
    with pytest.raises(SystemExit):
        main(["list", "-o", "json"])
    assert json.loads(capsys.readouterr().out)[0]["model_override"] == "sim"


def test_an_agent_pinned_to_a_node_that_never_registered_shows_unschedulable_and_why(
    session: Session, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    session.paths.town_file.write_text(TOWN + 'node = "otherhost"\n')
    desired = loader.load(session.paths)
    rows = {r["name"]: r for r in agents_report(session.store, desired)}
    why = "node otherhost not registered"
    assert (rows["ops"]["state"], rows["ops"]["reason"]) == ("unschedulable", why)
    assert (rows["dev"]["state"], rows["dev"]["reason"]) == ("stopped", None)
    with pytest.raises(SystemExit):
        main(["list"])
    ops = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ops "))
    assert "unschedulable" in ops and ops.endswith(why) and "None" not in ops
    with pytest.raises(SystemExit):
        main(["status"])
    ops = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ops "))
    assert f"unschedulable ({why})" in ops


def test_list_text_shows_the_reason_of_a_quarantined_agent_shortened_to_the_terminal(
    session: Session, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    why = "crashed 5 times in 60s: " + "ModuleNotFoundError: no module named 'x' " * 5
    session.store.register_agent("dev", {"pid": "", "state": "quarantined", "reason": why})
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["list"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == "REASON"
    dev = next(line for line in out if line.startswith("dev "))
    assert "quarantined" in dev and "crashed 5 times in 60s: Module" in dev
    assert len(dev) <= 100 and dev.endswith("…")
    with pytest.raises(SystemExit):
        main(["list", "-o", "json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dev"]["reason"] == why  # JSON keeps it whole
