"""An edit, addition or removal applied through the incremental path (the snapshot's specs and
table texts reused, only the changed tables parsed) leaves Redis exactly as a full apply of the
same files does, with the same plan; what a full check refuses it refuses the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from reconciler.control import snapshot
from reconciler.control.apply import ApplyOptions, apply
from reconciler.control.session import Session
from reconciler.errors import ValidationFailed
from reconciler.spec import loader
from reconciler.store.client import Store
from reconciler.town import TownPaths
from tests.control.test_incremental import TOWN, keys_of

OPTS = ApplyOptions(start_agents=False)
TASKS = "".join(
    [
        '[meta]\ndescription = "twins"\n\n',
        '[[tasks]]\nid = "epic"\nsequential = true\n\n',
        *(
            f'[[tasks]]\nid = "t{i}"\ndescription = "task {i}"\nagent = "dev"\nparent = "epic"\n\n'
            for i in range(4)
        ),
        '[[tasks]]\nid = "b"\ndescription = """after t0,\nover two lines"""\nagent = "dev"\n'
        'depends_on = ["t0"]\ntimeout = "5m"\n\n',
        '[[tasks]]\nid = "loose"\ndescription = "anyone"\n',
    ]
)


class Twin(Session):
    def __init__(self, paths: TownPaths, store: Store) -> None:
        super().__init__(paths)
        self.__dict__["store"] = store


def twin(root: Path, name: str) -> Twin:
    root.mkdir()
    (root / "town.toml").write_text(TOWN)
    (root / "tasks.toml").write_text(TASKS)
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    session = Twin(TownPaths(root), Store.from_client(client, name))
    assert apply(session, OPTS).applied
    return session


def state(session: Session) -> dict[str, Any]:
    """The town's keys, without what holds a time, nor the town's source (the twins are two
    folders, each the source of its own Redis)."""
    out = keys_of(session.store)
    out.pop(session.store.keys.source, None)
    out.pop(session.store.keys.history, None)  # each apply's time and duration
    for key, value in out.items():
        if isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if not k.endswith("_at")}
    # The applied revision: the same files (digests), applied at other times from other folders.
    meta = out.get(session.store.keys.meta, {})
    for field in ("revision", "attempted_revision"):
        if field in meta:
            meta[field] = json.loads(meta[field])["digests"]
    deleted = session.store.keys.deleted  # the tombstones, scored by when they were pruned
    if deleted in out:
        out[deleted] = [member for member, _ in out[deleted]]
    return out


@pytest.fixture
def twins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Twin, Twin, list[int]]:
    """`fast` keeps its snapshot; `full` has it removed before each apply. `parsed` counts the
    task tables the checks of `fast` parsed. Snapshots in chunks of two specs or rows, so that
    a save keeps some chunks' bytes and remakes others."""
    monkeypatch.setattr(snapshot, "_CHUNK", 2)
    fast, full = twin(tmp_path / "fast", "twin"), twin(tmp_path / "full", "twin")
    parsed = [0]
    real = loader.parse_tasks

    def counted(doc: Any, town_digest: str, reuse: Any) -> Any:
        result = real(doc, town_digest, reuse)
        if result.data is not None:
            tables = result.data.get("tasks") or []
            parsed[0] += sum(1 for i in range(len(tables)) if i not in result.known)
        return result

    monkeypatch.setattr(loader, "parse_tasks", counted)
    return fast, full, parsed


def both(fast: Twin, full: Twin, text: str, parsed: list[int]) -> tuple[list[str], list[str], int]:
    """The plans of `fast` and `full` applying `text`, and how many tables `fast` parsed."""
    plans, count = [], 0
    for session in (fast, full):
        session.paths.tasks_file.write_text(text)
        if session is full:
            snapshot.path(session.paths).unlink(missing_ok=True)
        before = parsed[0]
        plans.append([repr(a) for a in apply(session, OPTS).plan.actions])
        count = count if session is full else parsed[0] - before
    assert state(fast) == state(full)
    # What the next edit starts from: as a check from scratch finds it.
    kept = snapshot.load(fast.paths, str(fast.store.clean_mark()[0]))
    fresh = loader.check(fast.paths).reuse()
    assert kept is not None and fresh is not None
    assert (kept.reuse.ids, kept.reuse.specs) == (fresh.ids, fresh.specs)
    assert (kept.reuse.tables, kept.reuse.pieced) == (fresh.tables, fresh.pieced)
    return plans[0], plans[1], count


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('"task 2"', '"task 2, edited"', ["t2"]),
        ("over two lines", "over three\nlines", ["b"]),
        ('"anyone"\n', '"anyone"\n\n[[tasks]]\nid = "new"\ndescription = "added"\n', ["new"]),
        ('[[tasks]]\nid = "loose"\ndescription = "anyone"\n', "", ["loose"]),
        # A new task before the others; one moved out of the sequential group.
        (
            '[[tasks]]\nid = "epic"',
            '[[tasks]]\nid = "first"\ndescription = "x"\n\n[[tasks]]\nid = "epic"',
            None,
        ),
        ('"task 1"\nagent = "dev"\nparent = "epic"', '"task 1"\nagent = "dev"', None),
        # [meta] changed: every table found again.
        ('description = "twins"', 'description = "twins, again"', []),
        # A `[[tasks]]` line inside a string: not a cut between tables, the file is parsed whole.
        ('"task 2"', '"""task 2\n\n[[tasks]]\nid = "hidden"\n"""', None),
    ],
)
def test_the_incremental_path_leaves_what_a_full_apply_does(
    twins: tuple[Twin, Twin, list[int]], old: str, new: str, named: list[str] | None
) -> None:
    fast, full, parsed = twins
    text = TASKS.replace(old, new, 1)
    assert text != TASKS
    got, expected, count = both(fast, full, text, parsed)
    assert sorted(got) == sorted(expected)
    if named is not None:
        assert [a.split("id='")[1].split("'")[0] for a in got] == named
        assert count <= 1  # the changed table alone was parsed
    # And back: the next edit starts from the snapshot this apply kept.
    got, expected, _ = both(fast, full, TASKS, parsed)
    assert sorted(got) == sorted(expected)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'depends_on = ["t0"]',
            'depends_on = ["t9"]',
            "tasks.toml:37: $.tasks[5].depends_on[0]: unknown task id 't9'",
        ),
        (
            '"task 0"\nagent = "dev"',
            '"task 0"\nagent = "dev"\ndepends_on = ["b"]',
            "dependency cycle",
        ),
        ('id = "loose"', 'id = "t1"', "duplicate task id 't1'"),
        # A new table of an existing id, before it: a known table is then the duplicate.
        (
            '[[tasks]]\nid = "loose"',
            '[[tasks]]\nid = "b"\ndescription = "again"\n\n[[tasks]]\nid = "loose"',
            "duplicate task id 'b'",
        ),
        ('[[tasks]]\nid = "t3"', '[meta]\nx = 1\n\n[[tasks]]\nid = "t3"', "meta"),
        ('"task 2"', '"task 2', "invalid TOML"),
        ('"task 2"', '"task\\u0000 2"', "tasks.toml:22: $.tasks[3].description: contains a NUL"),
    ],
)
def test_an_invalid_edit_is_refused_as_a_full_check_refuses_it(
    twins: tuple[Twin, Twin, list[int]], old: str, new: str, message: str | None
) -> None:
    fast, full, _ = twins
    text = TASKS.replace(old, new, 1)
    outcome = []
    for session in (fast, full):
        session.paths.tasks_file.write_text(text)
        if session is full:
            snapshot.path(session.paths).unlink(missing_ok=True)
        before = state(session)
        try:
            result = apply(session, OPTS)
        except ValidationFailed as e:
            assert state(session) == before  # nothing written
            outcome.append([p.render() for p in e.problems])
        else:
            outcome.append([repr(a) for a in result.plan.actions])
    assert outcome[0] == outcome[1]
    if message is not None:
        assert any(message in line for line in outcome[0]), outcome[0]
    assert state(fast) == state(full)


def test_a_snapshot_of_another_schema_or_version_is_not_reused(
    twins: tuple[Twin, Twin, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The specs and table texts a snapshot holds were checked by one tt and one schema."""
    fast, _, parsed = twins
    assert snapshot.load(fast.paths, fast.store.clean_mark()[0]) is not None
    monkeypatch.setattr(snapshot, "_LAYOUT", snapshot._LAYOUT.replace("/5/", "/5-other/"))
    snapshot._format.cache_clear()
    try:
        assert snapshot.load(fast.paths, fast.store.clean_mark()[0]) is None
        before = parsed[0]
        fast.paths.tasks_file.write_text(TASKS.replace('"task 2"', '"task 2, edited"'))
        assert apply(fast, OPTS).applied
        assert parsed[0] - before == TASKS.count("[[tasks]]")  # every table checked afresh
    finally:
        snapshot._format.cache_clear()
