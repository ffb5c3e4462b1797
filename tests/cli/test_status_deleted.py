"""`tt status --deleted` prints a tombstone's result (a model's text) through cli.common.echo:
a terminal control sequence in it is shown as text, never sent to the terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.client import Store
from tests.cli.inproc import DEV, town_files, tt

HOSTILE = "\x1b]52;c;cm0gLXJmIH4=\x07done\x1b[2J"


@pytest.fixture
def town(tmp_path: Path, redis_url: str, town_name: str) -> Iterator[Path]:
    yield from town_files(
        tmp_path,
        redis_url,
        town_name,
        DEV,
        '[[tasks]]\nid = "one"\ndescription = "x"\nagent = "dev"\n\n'
        '[[tasks]]\nid = "two"\ndescription = "y"\nagent = "dev"\n',
    )


def test_status_deleted_escapes_a_hostile_result(
    town: Path, capsys: pytest.CaptureFixture[str], redis_url: str, town_name: str
) -> None:
    assert tt(capsys, "apply", "--town", str(town))[0] == 0
    store = Store.open(redis_url, town_name)
    try:
        store.client.lrem(store.keys.queue("dev"), 0, "one")
        assert store.claim("one", "dev", "tok") is not None
        assert store.complete("one", "tok", HOSTILE)
    finally:
        store.close()
    (town / "tasks.toml").write_text('[[tasks]]\nid = "two"\ndescription = "y"\nagent = "dev"\n')
    assert tt(capsys, "apply", "--town", str(town))[0] == 0

    code, out, err = tt(capsys, "status", "--deleted", "--town", str(town))
    assert (code, err) == (0, "")
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07done\\x1b[2J" in out
    assert "1 deleted task(s) kept as tombstones" in out
    # JSON keeps the text as it is, escaped the JSON way.
    code, out, _ = tt(capsys, "status", "--deleted", "--town", str(town), "-o", "json")
    assert "\x1b" not in out
    assert json.loads(out)["deleted"][0]["result"] == HOSTILE
