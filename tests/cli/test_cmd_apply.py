"""`tt apply` as the `tt` program runs it: no cycle collector left on after the pass (the process
ends at once), but in a process that goes on (a test's CliRunner, `--wait`'s loop) it stays on."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import common
from cli.main import cli
from reconciler.store.client import Store
from tests.redis_fixtures import flush_town
from tests.towngen import tasks_toml, town_toml


@pytest.fixture
def town(valkey_url: str, town_name: str, tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "town.toml").write_text(town_toml(town_name).replace("embedded", valkey_url))
    (tmp_path / "tasks.toml").write_text(tasks_toml(10))
    yield tmp_path
    with Store.open(valkey_url, town_name) as store:
        flush_town(store.client, town_name)


@pytest.mark.parametrize("program", [True, False], ids=["tt-program", "in-a-longer-process"])
def test_the_collector_is_left_off_only_where_the_process_ends(
    town: Path, program: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(common.PROGRAM, "exits_after_command", program)
    try:
        for _ in range(2):  # the first apply, then the no-op one
            done = CliRunner().invoke(cli, ["apply", "--town", str(town)])
            assert done.exit_code == 0, done.output
            assert gc.isenabled() is not program
    finally:
        gc.enable()
