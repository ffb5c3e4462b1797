"""`tt diff --drift` on a real server: after a hand `tt retry` of a failed task and a task made
with `tt assign --no-save`, both are listed (text and JSON, exit 2 with --detailed-exitcode), and
`tt status` says how much drift there is under `[town] self_heal = false`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.spec.desired import Policy
from reconciler.store.client import Store
from tests.cli.inproc import DEV, town_files, tt

TASKS = '[[tasks]]\nid = "one"\ndescription = "x"\nagent = "dev"\n'


@pytest.fixture(params=[True, False], ids=["self_heal", "detect-only"])
def town(
    request: pytest.FixtureRequest, tmp_path: Path, valkey_url: str, town_name: str
) -> Iterator[Path]:
    # A key right after the [town] table's own lines belongs to it.
    heal = "" if request.param else "self_heal = false\n\n"
    yield from town_files(tmp_path, valkey_url, town_name, heal + DEV, TASKS)


def test_a_hand_retry_and_a_no_save_task_are_listed_as_drift(
    town: Path, capsys: pytest.CaptureFixture[str], valkey_url: str, town_name: str
) -> None:
    at = ("--town", str(town))
    assert tt(capsys, "apply", *at)[0] == 0
    assert tt(capsys, "diff", "--drift", "--detailed-exitcode", *at)[:2] == (0, "No drift.\n")
    with Store.open(valkey_url, town_name) as store:  # the agent's attempt, failed for good
        store.client.lrem(store.keys.queue("dev"), 0, "one")
        assert store.claim("one", "dev", "tok") is not None
        store.fail("one", "tok", "boom", True, Policy())
    assert tt(capsys, "retry", "one", *at)[0] == 0
    assert tt(capsys, "assign", "dev", "by hand", "--id", "extra", "--no-save", *at)[0] == 0

    code, out, _ = tt(capsys, "diff", "--drift", "-o", "json", "--detailed-exitcode", *at)
    assert code == 2
    data = json.loads(out)
    assert [(d["kind"], d["object"]) for d in data["drift"]] == [
        ("cli_task", "task extra"),
        ("retried", "task one"),
    ]
    assert data["count"] == 2 and data["changed_files"] == []
    code, out, _ = tt(capsys, "diff", "--drift", *at)
    assert code == 0  # without --detailed-exitcode: 0 as for `tt plan`
    lines = out.splitlines()
    assert lines[0].split() == ["cli_task", "task", "extra:", "made", "with", "--no-save;", "ready"]
    assert lines[1].startswith("  retried        task one: re-run by tt retry from attempt 2")
    assert lines[-1].startswith("Drift: 2 items")

    # The drift is not a plan: `tt diff` alone plans nothing.
    assert tt(capsys, "diff", "--detailed-exitcode", *at)[:2] == (0, "No changes.\n")
    status = tt(capsys, "status", *at)[1]
    self_heal = "self_heal = false" not in (town / "town.toml").read_text()
    assert ("drift: 2 items (tt diff --drift)" in status) is not self_heal
    report = json.loads(tt(capsys, "status", "-o", "json", *at)[1])
    assert report.get("drift") == (None if self_heal else 2)


def test_self_heal_must_be_a_boolean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], valkey_url: str, town_name: str
) -> None:
    for _ in town_files(tmp_path, valkey_url, town_name, 'self_heal = "no"\n\n' + DEV, TASKS):
        code, _, err = tt(capsys, "validate", "--town", str(tmp_path))
        assert code == 1
        assert 'town.toml:5: $.town.self_heal: expected true or false, got a string ("no")' in err
