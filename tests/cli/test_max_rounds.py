"""`max_rounds` (Tinytown's `tt spawn --max-rounds N`): a worker exits cleanly after N tasks and,
under `restart = on-failure`, stays stopped (it did not fail) until `tt restart NAME --rounds M`,
which sets the new limit in town.toml and starts it. On the embedded Valkey; agents run `sim`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from tests.cli.inproc import town_files, tt
from tests.cli.test_tinytown_verbs import tt_down

AGENTS = '[agents.dev]\nmodel = "sim"\nmax_rounds = 1\nrestart = "on-failure"\n'
TASKS = "".join(f'[[tasks]]\nid = "t{i}"\ndescription = "x"\nagent = "dev"\n\n' for i in (1, 2))


@pytest.fixture
def town(
    tmp_path: Path, valkey_url: str, town_name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("TT_MODEL_OVERRIDE", "sim")
    monkeypatch.setenv("TT_SIM_DELAY", "0.05")
    yield from town_files(tmp_path, valkey_url, town_name, AGENTS, TASKS)
    tt_down(tmp_path)


def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_an_agent_stops_after_its_rounds_and_tt_restart_rounds_gives_it_more(
    town: Path, capsys: pytest.CaptureFixture[str], valkey_url: str, town_name: str
) -> None:
    at = ("-t", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    with Store.open(valkey_url, town_name) as store:

        def states() -> list[str]:
            return [store.task_hash(t).get("state", "") for t in ("t1", "t2")]

        def agent() -> dict[str, str]:
            return store.agent_records()["dev"]

        until(lambda: agent().get("stopped_by") == "max_rounds")
        assert agent()["state"] == "stopped" and agent()["rounds"] == "1"
        assert sorted(states()) == ["completed", "ready"]
        assert tt(capsys, "recover", *at)[0] == 0  # a heal pass leaves it stopped
        assert agent()["stopped_by"] == "max_rounds" and "ready" in states()

        code, out, err = tt(capsys, "restart", "dev", "--rounds", "3", *at)
        assert code == 0 and out.startswith("dev was not running; started it: pid "), err
        assert "max_rounds = 3" in (town / "town.toml").read_text()
        until(lambda: states() == ["completed", "completed"])
        assert agent()["state"] in ("idle", "working")
