"""The incremental apply on fakeredis: an edit, addition or removal of a task is read and planned
alone, with the plan a full apply would make; anything it cannot prove (a definition rewritten
by hand, a lost task, another town.toml, a damaged or stale snapshot) is planned in full; an
invalid file still changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.control import apply as apply_mod
from reconciler.control import snapshot
from reconciler.control.apply import ApplyOptions, ApplyResult, apply
from reconciler.control.session import Session
from reconciler.errors import ValidationFailed
from reconciler.plan.diff import CreateTask, DeleteTask, UpdateTask
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.redis_fixtures import fake_store, town_name  # noqa: F401

TOWN = '[town]\nname = "unit"\n\n[agents.dev]\nmodel = "sim"\nsuspended = true\n'
TASKS = "".join(
    [
        '[[tasks]]\nid = "epic"\ndescription = "a group"\nsequential = true\n\n',
        *(
            f'[[tasks]]\nid = "t{i}"\ndescription = "task {i}"\nagent = "dev"\nparent = "epic"\n\n'
            for i in range(4)
        ),
        '[[tasks]]\nid = "b"\ndescription = "after t0"\nagent = "dev"\ndepends_on = ["t0"]\n\n',
        '[[tasks]]\nid = "loose"\ndescription = "anyone"\n',
    ]
)
OPTS = ApplyOptions(start_agents=False)


class Spied(Session):
    """A session on a given store that counts full reads of the town's tasks."""

    def __init__(self, paths: TownPaths, store: Store) -> None:
        super().__init__(paths)
        self.__dict__["store"] = store
        self.full_reads = 0


@pytest.fixture
def session(
    tmp_path: Path,
    fake_store: Store,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Spied]:
    (tmp_path / "town.toml").write_text(TOWN)
    (tmp_path / "tasks.toml").write_text(TASKS)
    spied = Spied(TownPaths(tmp_path), fake_store)
    real = apply_mod.observe

    def counted(store: Store, ids: Any = None) -> Any:
        spied.full_reads += ids is None
        return real(store, ids)

    monkeypatch.setattr(apply_mod, "observe", counted)
    assert apply(spied, OPTS).applied
    assert snapshot.path(spied.paths).is_file()
    yield spied


def edit(session: Spied, old: str, new: str) -> None:
    tasks = session.paths.tasks_file
    text = tasks.read_text()
    assert old in text
    tasks.write_text(text.replace(old, new, 1))


def apply_counted(session: Spied, opts: ApplyOptions = OPTS) -> tuple[ApplyResult, int]:
    before = session.full_reads
    result = apply(session, opts)
    return result, session.full_reads - before


def full_plan(session: Spied) -> list[Any]:
    """The plan of the files as they are, planned in full (no snapshot): nothing is written."""
    blob = snapshot.path(session.paths).read_bytes()
    snapshot.path(session.paths).unlink()
    try:
        result = apply(session, ApplyOptions(dry_run=True, start_agents=False))
    finally:
        snapshot.path(session.paths).write_bytes(blob)
    return sorted(map(repr, result.plan.actions))


def keys_of(store: Store) -> dict[str, Any]:
    client = store.client
    out: dict[str, Any] = {}
    for key in sorted(client.keys(store.keys.prefix + "*")):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))
        elif kind == "stream":
            out[key] = client.xlen(key)
    return out


@pytest.mark.parametrize(
    ("old", "new", "kind", "ids"),
    [
        ('"task 2"', '"task 2, edited"', UpdateTask, ["t2"]),
        (
            '"anyone"\n',
            '"anyone"\n\n[[tasks]]\nid = "new"\ndescription = "added"\n',
            CreateTask,
            ["new"],
        ),
        ('[[tasks]]\nid = "loose"\ndescription = "anyone"\n', "", DeleteTask, ["loose"]),
        # A member moves out of a sequential group: the one after it now waits for another.
        ('"task 2"\nagent = "dev"\nparent = "epic"', '"task 2"\nagent = "dev"', UpdateTask, None),
    ],
)
def test_an_edit_is_planned_alone_as_a_full_plan_would(
    session: Spied, old: str, new: str, kind: type, ids: list[str] | None
) -> None:
    edit(session, old, new)
    expected = full_plan(session)
    result, full_reads = apply_counted(session)
    assert full_reads == 0  # only the touched tasks were read
    assert sorted(map(repr, result.plan.actions)) == expected
    assert any(isinstance(a, kind) for a in result.plan.actions)
    if ids is not None:  # the plan names only that task
        assert [getattr(a, "id", None) or a.spec.id for a in result.plan.actions] == ids
    # What it recorded holds: the next apply of these files is a no-op on the fast path.
    again, full_reads = apply_counted(session)
    assert again.plan.is_empty and full_reads == 0


def test_a_definition_rewritten_by_hand_is_noticed_by_the_next_edit(session: Spied) -> None:
    store = session.store
    store.client.hset(store.keys.task("b"), "target", "somewhere-else")  # drift
    edit(session, '"task 2"', '"task 2, edited"')
    result, full_reads = apply_counted(session)
    assert full_reads == 1  # the walk failed: planned in full...
    assert {a.id for a in result.plan.actions if isinstance(a, UpdateTask)} == {"t2", "b"}
    assert store.client.hget(store.keys.task("b"), "target") == "dev"  # ...and repaired


def test_a_lost_task_is_noticed_by_the_next_edit(session: Spied) -> None:
    store = session.store
    store.client.delete(store.keys.task("t3"))
    edit(session, '"task 2"', '"task 2, edited"')
    result, full_reads = apply_counted(session)
    assert full_reads == 1
    assert [a.spec.id for a in result.plan.actions if isinstance(a, CreateTask)] == ["t3"]


def test_an_invalid_edit_changes_nothing(session: Spied) -> None:
    before = keys_of(session.store)
    for old, new in [
        ("sequential = true", "sequential = 1"),  # equal to true for Python, not for the schema
        ('depends_on = ["t0"]', 'depends_on = ["t9"]'),
        ('id = "b"', 'id = "t1"'),
    ]:
        edit(session, old, new)
        with pytest.raises(ValidationFailed):
            apply(session, OPTS)
        assert keys_of(session.store) == before
        edit(session, new, old)


def test_a_move_that_makes_a_cycle_in_a_sequential_group_is_refused(session: Spied) -> None:
    """Members of a sequential group wait in file order: moving t1 (which depends on t0) above
    t0 makes t0 wait for t1 and t1 for t0. The reused checks must not skip the cycle check."""
    edit(session, '"task 1"\nagent = "dev"', '"task 1"\nagent = "dev"\ndepends_on = ["t0"]')
    assert apply(session, OPTS).applied  # valid: t1 waits for t0 twice over
    before = keys_of(session.store)
    t1 = (
        '[[tasks]]\nid = "t1"\ndescription = "task 1"\nagent = "dev"\ndepends_on = ["t0"]\n'
        'parent = "epic"\n\n'
    )
    edit(session, t1, "")
    edit(session, '[[tasks]]\nid = "t0"', t1 + '[[tasks]]\nid = "t0"')
    with pytest.raises(ValidationFailed, match="dependency cycle"):
        apply(session, OPTS)
    assert keys_of(session.store) == before


def test_tasks_moved_in_the_file_are_planned_in_full(session: Spied) -> None:
    """Moving a member of a sequential group changes what its neighbours wait for."""
    t1 = '[[tasks]]\nid = "t1"\ndescription = "task 1"\nagent = "dev"\nparent = "epic"\n\n'
    edit(session, t1, "")
    edit(session, '[[tasks]]\nid = "b"', t1 + '[[tasks]]\nid = "b"')
    expected = full_plan(session)
    result, full_reads = apply_counted(session)
    assert full_reads == 1
    assert sorted(map(repr, result.plan.actions)) == expected
    assert {a.id for a in result.plan.actions if isinstance(a, UpdateTask)} == {"t1", "t2"}


def test_a_town_toml_change_is_planned_in_full(session: Spied) -> None:
    session.paths.town_file.write_text(TOWN + '\n[agents.qa]\nmodel = "sim"\nsuspended = true\n')
    edit(session, '"task 2"', '"task 2, edited"')
    result, full_reads = apply_counted(session)
    assert full_reads == 1 and result.applied


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale"])
def test_a_damaged_or_stale_snapshot_means_a_full_plan(session: Spied, damage: str) -> None:
    path = snapshot.path(session.paths)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:])
    else:  # another apply recorded other files as clean since
        session.store.client.hset(session.store.keys.meta, "clean", "another fingerprint")
    edit(session, '"task 2"', '"task 2, edited"')
    expected = full_plan(session) if damage != "stale" else None
    result, full_reads = apply_counted(session)
    assert full_reads == 1
    if expected is not None:
        assert sorted(map(repr, result.plan.actions)) == expected
    assert apply_counted(session)[0].plan.is_empty


def test_a_task_writer_between_the_early_walk_and_the_lock_means_a_full_plan(
    session: Spied, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk is sent before the files are checked; a writer that ran meanwhile (it clears
    the clean mark) voids it."""
    real = Session.validate

    def validate_while_a_requeue_runs(self: Session, reuse: Any = None) -> Any:
        self.store.requeue(["b"])
        return real(self, reuse)

    monkeypatch.setattr(Spied, "validate", validate_while_a_requeue_runs)
    edit(session, '"task 2"', '"task 2, edited"')
    result, full_reads = apply_counted(session)
    assert full_reads == 1
    assert [a.id for a in result.plan.actions] == ["t2"]


def test_an_edit_checked_as_text_first_is_applied_incrementally(session: Spied) -> None:
    """`tt assign` validates the text it writes (`check_texts`); the apply after it reuses that
    check, and still plans only the new task."""
    from reconciler.spec.loader import check_texts

    text = session.paths.tasks_file.read_text() + '\n[[tasks]]\nid = "new"\ndescription = "x"\n'
    assert check_texts(TOWN, text).valid
    session.paths.tasks_file.write_text(text)
    result, full_reads = apply_counted(session)
    assert full_reads == 0
    assert [a.id for a in result.plan.actions] == ["new"]


def test_what_waits_on_an_edited_task_is_planned_with_it(session: Spied) -> None:
    """Cancelling a task fails what waits on it upstream, un-cancelling it releases them: the
    tasks waiting on an edited one are read and planned too, as a full plan would."""
    for old, new in [
        ('"task 0"\nagent = "dev"', '"task 0"\nagent = "dev"\nstatus = "cancelled"'),
        ('\nstatus = "cancelled"', ""),
    ]:
        edit(session, old, new)
        expected = full_plan(session)
        result, full_reads = apply_counted(session)
        assert full_reads == 0
        assert sorted(map(repr, result.plan.actions)) == expected
        again, full_reads = apply_counted(session)
        assert again.plan.is_empty and full_reads == 0
    states = {t: session.store.client.hget(session.store.keys.task(t), "state") for t in "b"}
    assert states == {"b": "blocked"}
