"""`tt` run in this process (its exit code, stdout, stderr) and a town on a given Redis whose keys
are deleted afterwards: what the CLI tests of a real server share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from reconciler.store.client import Store
from tests.redis_fixtures import flush_town

DEV = '[agents.dev]\nmodel = "sim"\nsuspended = true\n'  # an agent that never starts


def tt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def town_files(root: Path, redis_url: str, name: str, agents: str, tasks: str) -> Iterator[Path]:
    """For a fixture to `yield from`: the two files in `root` (the town on `redis_url`), then
    the town's keys deleted."""
    (root / "town.toml").write_text(f'[town]\nname = "{name}"\nredis = "{redis_url}"\n\n{agents}')
    (root / "tasks.toml").write_text(tasks)
    yield root
    store = Store.open(redis_url, name)
    flush_town(store.client, name)
    store.close()
