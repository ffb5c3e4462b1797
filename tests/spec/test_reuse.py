"""`loader.check` with the `Reuse` of a previous valid check (what an incremental apply passes):
the same desired state as a check from scratch, and never a pass for a file that is invalid."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.spec.desired import TaskSpec
from reconciler.spec.loader import Reuse, Validation, check, table_key
from reconciler.town import TownPaths

TOWN = '[town]\nname = "demo"\n\n[agents.dev]\nmodel = "sim"\n\n[agents.qa]\nrole = "review"\n'
TASKS = """\
[meta]
description = "reuse"

[[tasks]]
id = "epic"
description = "a group"
sequential = true

[[tasks]]
id = "a"
description = "first"
agent = "dev"
parent = "epic"
retries = 1
timeout = "5m"

[[tasks]]
id = "b"
description = "second"
role = "review"
parent = "epic"
depends_on = ["a"]
"""


def town(root: Path, tasks: str, town_text: str = TOWN) -> TownPaths:
    (root / "town.toml").write_text(town_text)
    (root / "tasks.toml").write_text(tasks)
    return TownPaths(root)


def reuse_of(paths: TownPaths) -> Reuse:
    first = check(paths)
    reuse = first.reuse()
    assert reuse is not None and reuse.ids == ("epic", "a", "b")
    return reuse


def checked_both_ways(paths: TownPaths, reuse: Reuse) -> Validation:
    fresh, again = check(paths), check(paths, reuse)
    assert again.desired == fresh.desired
    assert [p.render() for p in again.problems] == [p.render() for p in fresh.problems]
    return again


@pytest.mark.parametrize(
    "edit",
    [
        ('"first"', '"first, edited"'),  # a table's own field
        ("retries = 1\n", ""),  # a field removed
        ('depends_on = ["a"]\n', ""),  # an edge removed
        ('[[tasks]]\nid = "b"', '[[tasks]]\nid = "c"\ndescription = "new"\n\n[[tasks]]\nid = "b"'),
        (TASKS[TASKS.index('[[tasks]]\nid = "b"') :], ""),  # a task removed
    ],
)
def test_an_edited_file_checks_as_from_scratch(tmp_path: Path, edit: tuple[str, str]) -> None:
    paths = town(tmp_path, TASKS)
    reuse = reuse_of(paths)
    paths.tasks_file.write_text(TASKS.replace(*edit))
    again = checked_both_ways(paths, reuse)
    assert again.valid and again.table_keys is not None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # Python finds these equal to what the valid file had; the schema does not.
        (("retries = 1", "retries = true"), "expected an integer, got true"),
        (("sequential = true", "sequential = 1"), "expected true or false, got an integer (1)"),
        (('timeout = "5m"', "timeout = true"), "expected a duration"),
        (('timeout = "5m"', 'timeout = "0s"'), "timeout must be greater than zero"),
        (('depends_on = ["a"]', 'depends_on = ["z"]'), "unknown task id 'z'"),
        (('id = "b"', 'id = "a"'), "duplicate task id 'a'"),
        (('parent = "epic"\nretries', 'parent = "b"\nretries'), "dependency cycle"),
    ],
)
def test_an_invalid_edit_never_passes(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    paths = town(tmp_path, TASKS)
    reuse = reuse_of(paths)
    assert table_key({"retries": 1}) != table_key({"retries": True})
    paths.tasks_file.write_text(TASKS.replace(*edit))
    again = checked_both_ways(paths, reuse)
    assert not again.valid
    assert any(message in p.message for p in again.problems), [p.render() for p in again.problems]


def test_a_table_unchanged_under_another_roster_is_checked_again(tmp_path: Path) -> None:
    paths = town(tmp_path, TASKS)
    reuse = reuse_of(paths)
    town(tmp_path, TASKS, TOWN.replace('role = "review"', 'role = "testing"'))
    again = checked_both_ways(paths, reuse)
    assert [p.message for p in again.problems] == ["unknown role 'review': no agent has it"]


def test_a_removed_task_still_named_elsewhere_is_reported(tmp_path: Path) -> None:
    paths = town(tmp_path, TASKS)
    reuse = reuse_of(paths)
    start = TASKS.index('[[tasks]]\nid = "a"')
    paths.tasks_file.write_text(TASKS[:start] + TASKS[TASKS.index('[[tasks]]\nid = "b"') :])
    again = checked_both_ways(paths, reuse)
    assert [p.message for p in again.problems] == ["unknown task id 'a'"]


def test_a_checked_spec_is_the_dataclasss_own() -> None:
    """`TaskSpec.checked` (the loader's fast constructor) must set every field."""
    fields: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskSpec)}
    fields.update(id="x", description="d", depends_on=("a",), tags=(), priority=1)
    fields.update(sequential=False)
    fast, slow = TaskSpec.checked(dict(fields)), TaskSpec(**fields)
    assert fast == slow and repr(fast) == repr(slow) and hash(fast) == hash(slow)
    assert fast.spec_hash() == slow.spec_hash()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.id = "y"  # type: ignore[misc]


def test_the_written_out_spec_json_is_jsons_own() -> None:
    """`TaskSpec.canonical_json` writes the JSON out by hand for speed; the stored hashes
    depend on every byte of it staying `json`'s."""
    rng = random.Random(5)
    texts = ["", "plain", 'q"uote', "back\\slash", "é ü 日本", "\n\t\x00\x1f", "\u2028 😀", "/"]
    for _ in range(500):
        spec = TaskSpec(
            id=rng.choice(["a", "t-1", "x.y_z"]),
            description=rng.choice(texts),
            agent=rng.choice([None, *texts]),
            role=rng.choice([None, "qa"]),
            status=rng.choice([None, "done"]),
            parent=rng.choice([None, "p"]),
            depends_on=tuple(rng.sample(texts, rng.randint(0, 3))),
            tags=tuple(rng.sample(texts, rng.randint(0, 3))),
            retries=rng.choice([None, 0, 3, 10**20]),
            timeout=rng.choice([None, 0.5, 90.0, 1e-7, 1e300, float("inf")]),
            priority=rng.choice([0, -1, 7]),
            sequential=rng.choice([True, False]),
            touches=tuple(rng.sample(texts, rng.randint(0, 2))),
            stall_after=rng.choice([None, 2.0, 600.0, 1e-7]),
        )
        expected = json.dumps(spec.as_dict(), sort_keys=True, separators=(",", ":"))
        assert spec.canonical_json() == expected


def test_a_cycle_made_by_a_new_default_agent_alone_is_reported(tmp_path: Path) -> None:
    """Unchanged tables, but the group now does work: its members wait for it, and it waits
    for one of them. The cycle check is skipped only when the waits cannot have changed."""
    tasks = TASKS.replace("sequential = true\n", 'depends_on = ["b"]\n')
    paths = town(tmp_path, tasks)
    reuse = reuse_of(paths)
    paths.tasks_file.write_text(tasks.replace('description = "reuse"', 'default_agent = "dev"'))
    again = checked_both_ways(paths, reuse)
    assert any("dependency cycle" in p.message for p in again.problems)


def test_a_file_emptied_of_tasks_checks_as_from_scratch(tmp_path: Path) -> None:
    paths = town(tmp_path, TASKS)
    reuse = reuse_of(paths)
    for text in ('[meta]\ndescription = "none left"\n', ""):
        paths.tasks_file.write_text(text)
        assert checked_both_ways(paths, reuse).valid


def test_a_specs_fields_are_every_field_and_make_it_again() -> None:
    """What the snapshot keeps of a spec (`TaskSpec.fields`): every field, none of the cached
    JSON or hash, before and after they are computed."""
    spec = TaskSpec(id="x", description="d", depends_on=("a",), timeout=5.0, sequential=True)
    expected = {f.name: getattr(spec, f.name) for f in dataclasses.fields(TaskSpec)}
    assert spec.fields() == expected
    spec.spec_hash()
    assert spec.fields() == expected and list(spec.fields()) == list(expected)
    again = TaskSpec.checked(spec.fields())
    assert again == spec and again.spec_hash() == spec.spec_hash()
