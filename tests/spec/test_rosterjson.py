"""The applied roster as JSON (`spec/rosterjson.py`), what a node without the town's files runs
by: every example's roster comes back equal (agents, custom models, `[town]`'s policy, `[git]`),
without its tasks, notify rules or Redis URL; a roster of a newer version, or with a key this tt
does not know (it may be a restriction), is refused, never read loosely; one that is not a roster
is a ValueError naming why."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.spec import loader
from reconciler.spec.desired import Desired
from reconciler.spec.rosterjson import (
    VERSION,
    NewerRoster,
    roster_digest,
    roster_from_json,
    roster_json,
)

EXAMPLES = sorted(p for p in Path("examples").iterdir() if (p / "town.toml").is_file())
TOWN = """[town]
name = "rt"
redis = "redis://:secret@db.example:6379/0"
lease = "3s"
self_heal = false

[agents.dev]
model = "mine"
replicas = 2
env = { A = "1" }
env_from = ["KEY"]
node = "gpu-1"
restart = "on-failure"

[models.mine]
command = ["my-llm", "--print"]
prompt = "file"
fail_patterns = ["quota"]

[git]
base = "trunk"
checks = ["true"]
push = "origin"

[[notify]]
on = ["task.failed"]
command = ["notify-send", "tt"]
"""


def _expected(d: Desired) -> Desired:
    town = dataclasses.replace(d.town, redis="", follow=None)
    return dataclasses.replace(d, town=town, tasks=(), notify=(), digests=())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_examples_roster_comes_back_equal(example: Path) -> None:
    desired = loader.load_texts((example / "town.toml").read_text(), None)
    assert roster_from_json(roster_json(desired)) == _expected(desired)


def test_models_policy_git_and_placement_travel_and_the_redis_url_and_notify_do_not() -> None:
    desired = loader.load_texts(TOWN, None)
    text = roster_json(desired)
    back = roster_from_json(text)
    assert back == _expected(desired)
    assert back.models[0].command == ("my-llm", "--print") and back.models[0].fail_patterns
    assert (back.town.policy.lease, back.town.policy.self_heal) == (3.0, False)
    assert back.git is not None and (back.git.base, back.git.push) == ("trunk", "origin")
    assert back.agents[0].node == "gpu-1" and back.agents[0].env == (("A", "1"),)
    assert "secret" not in text and "notify-send" not in text
    assert roster_digest(text) == roster_digest(roster_json(loader.load_texts(TOWN, None)))


def test_a_newer_rosters_version_and_unknown_keys_are_refused_never_dropped() -> None:
    data = json.loads(roster_json(loader.load_texts(TOWN, None)))
    assert data["v"] == VERSION
    newer = {**data, "v": VERSION + 1}
    with pytest.raises(NewerRoster, match=f"version {VERSION + 1}, written by a newer tt"):
        roster_from_json(json.dumps(newer))
    # a key this version does not know may be a restriction: refused, not dropped
    top = {**data, "future": 1}
    with pytest.raises(ValueError, match=r"keys this tt does not know: \['future'\]"):
        roster_from_json(json.dumps(top))
    inner = json.loads(json.dumps(data))
    inner["agents"][0]["sandbox"] = "strict"
    with pytest.raises(
        ValueError, match=r"AgentSpec has keys this tt does not know: \['sandbox'\]"
    ):
        roster_from_json(json.dumps(inner))
    for bad, said in [
        ("nope", "not JSON"),
        ("[]", r"no \[town\]"),
        ('{"town": {}}', "no valid version"),
        ('{"town": {}, "v": "1"}', "no valid version"),
        ('{"town": {}, "v": 1}', "cannot be read"),
    ]:
        with pytest.raises(ValueError, match=said):
            roster_from_json(bad)
