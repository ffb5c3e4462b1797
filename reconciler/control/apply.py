"""One reconcile pass: load the files, hold the apply lock, read Redis, plan, execute, record.

`apply` is what `tt apply`, `tt sync push`, the file-editing verbs and the watch loop call.
Invalid files raise before anything is written; the plan is computed by the pure `plan.diff`;
writes go through store scripts in batches; processes through `fleet`. No click, no printing.
Files unchanged since an apply that left nothing to do take a checked fast path
(`fingerprint`, `_unchanged` below); a small edit of the task list since then, a checked
incremental one (`incremental`, from the `snapshot` that apply kept).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .. import rundir, server
from ..agents.models import OVERRIDE_ENV
from ..errors import TtError, ValidationFailed
from ..plan.actions import DeleteAgent, DeleteTask, OrphanAgent, Plan
from ..plan.agentdiff import agent_actions
from ..plan.diff import diff, task_actions
from ..plan.drift import files_changed, healing_only
from ..plan.graph import Graph
from ..plan.state import Observed
from ..spec import loader
from ..spec.desired import Desired
from ..store.cleanrows import Row, RowsAfter
from ..store.client import Store, is_embedded
from ..store.coordination import PendingCheck
from ..store.observed import observe, read_agents, with_changed_specs, with_tombstones
from . import fleet, incremental, revision, snapshot
from .applylock import apply_lock
from .execute import execute, execute_actions
from .fingerprint import clean_fingerprint, digests_of, file_fingerprint
from .followcopy import CopyPaths
from .gcpause import gc_paused
from .gitpreflight import preflight
from .limits import write_budgets
from .session import Session
from .snapshot import Snapshot


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: bool = False
    prune: bool = True
    allow_empty: bool = False
    allow_empty_roster: bool = False  # `tt kill` of the last agent: the roster may empty
    rerun_changed: bool = False
    model: str | None = None  # `--model sim`: every agent runs this model
    lock_timeout: float = 0.0
    start_agents: bool = True
    command: str = "tt apply"
    # The watch loop's guards against a file caught mid-save (see loop.py): apply only files
    # with this fingerprint (`fingerprint.file_fingerprint`), and hold back a plan that would
    # prune more than `[town] max_prune` tasks or more than half of them.
    expect: str | None = None
    guard_prune: bool = False
    adopt: bool = False  # `--adopt`: record this folder as the town's source (identity.py)
    up: bool = True  # bring a town `tt down` stopped back up (a loop's own passes do not)
    # Where the files come from when the caller knows (`tt rollback`: a commit's files), recorded
    # as the applied revision instead of asking git (`revision.py`).
    revision: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    applied: bool
    generation: int
    fleet: tuple[fleet.FleetChange, ...] = ()
    seconds: float = 0.0
    # Why nothing was applied although asked to: "moved" (the files are not those of
    # `expect`), "guarded" (the plan prunes too much for `guard_prune`), "suspended" (the files
    # suspend the town: the plan was computed, not applied); "" otherwise.
    held: str = ""
    tasks: int = 0  # how many tasks the town had before this plan ran (known when planned)
    problems: int = 0  # held INVALID: an edit verb saved files that are not valid yet


SUSPENDED = "suspended"  # `ApplyResult.held` of files that suspend the town (`tt suspend`)
INVALID = "invalid"  # `ApplyResult.held` of an edit saved while the town is not valid yet
REFUSAL = (
    "refusing to apply: it would delete every task or agent the files owned "
    "(is tasks.toml or town.toml empty or truncated?)"
)
REFUSAL_HINT = "check the files; if you mean it, run again with --allow-empty"


class Refused(TtError):
    """`REFUSAL`: the plan would empty the files' tasks or roster unasked."""


def refused(plan: Plan, opts: ApplyOptions) -> bool:
    """Whether `tt apply` refuses this plan: it empties the files' tasks or roster unasked."""
    roster_only = opts.allow_empty_roster and not plan.deletes_every_task
    return plan.deletes_everything and not (opts.allow_empty or roster_only)


def apply(session: Session, opts: ApplyOptions) -> ApplyResult:
    with gc_paused():
        return _apply(session, opts)


def failed(session: Session, opts: ApplyOptions, error: TtError, seconds: float) -> None:
    """An invalid or refused pass of the loop, recorded as the newest attempted revision (and
    in the history). A one-shot apply says it and leaves Redis as it was (DESIGN.md, invariant
    3). Only on a store already open: invalid files start no server to say so."""
    if "store" not in session.__dict__ or not isinstance(error, ValidationFailed | Refused):
        return
    if isinstance(error, ValidationFailed):
        result, problems = "invalid", [p.render() for p in error.problems]
    else:
        result, problems = "refused", [error.message]
    store, paths = session.store, session.paths
    revision.record_failed(store, paths, opts.command, result, problems, seconds, opts.revision)


def _apply(session: Session, opts: ApplyOptions) -> ApplyResult:
    started = time.monotonic()
    if opts.dry_run and not isinstance(session.paths, CopyPaths):
        session.paths = session.files_paths()  # `tt plan` of a followed town: its copy
    fingerprint, town_text = file_fingerprint(session.paths)
    if opts.expect is not None and fingerprint != opts.expect:
        return ApplyResult(Plan(), False, 0, held="moved")
    # Invalid files start nothing: with the embedded server down, they are checked before it is.
    first = _checked_before_start(session)
    store = session.store
    if not opts.dry_run and not isinstance(session.paths, CopyPaths):
        session.edit_paths()  # the local files: refused while the town follows a branch
    # The files are those of the last apply that left nothing to do: plan only if Redis moved.
    clean = store.clean_fingerprint()
    quick = fingerprint is not None and clean == fingerprint
    # Else that apply's snapshot, if kept, spares checking the task tables found unchanged and,
    # once Redis proves it still as recorded, reading and planning the tasks left alone. Redis
    # walks its tasks for that proof while this process checks the files.
    ahead = None if quick or not snapshot.path(session.paths).is_file() else clean
    early = None if ahead is None else store.clean_check_sent(ahead)
    try:
        base = None if ahead is None else snapshot.load(session.paths, ahead)
        reuse = base.reuse if base is not None else None
        checked = None if quick else first or session.validate(reuse)  # raises: nothing written
        with apply_lock(store, opts.command, opts.lock_timeout):
            if not opts.dry_run:
                if session.identity.claim(store, adopt=opts.adopt):
                    _moved_here(session)
                rundir.remember_town(session.paths, store.town, store.url)  # for `tt down`
                if opts.up:
                    rundir.clear_down(session.paths)
            if checked is None and fingerprint is not None and town_text is not None:
                result = _unchanged(session, opts, fingerprint, town_text, started)
                if result is not None:
                    return result
            if checked is None or file_fingerprint(session.paths)[0] != _fingerprint(checked):
                # Read (again) under the lock: files another command changed while this one
                # waited would otherwise be applied as they were, and prune would undo that.
                checked = session.validate(reuse)
            if opts.expect is not None and _fingerprint(checked) != opts.expect:
                return ApplyResult(Plan(), False, 0, held="moved")
            assert checked.desired is not None
            if checked.desired.town.suspend and not opts.dry_run:
                # Suspended (`tt suspend`): no agent claims a task from now on; the plan is
                # computed and shown, nothing of it applied, pruned or started.
                # The suspension first: planning may still fail (a [git] preflight), and the
                # town must stop taking work all the same.
                store.set_suspended(True, opts.command)
                dry = replace(opts, dry_run=True)
                result = _planned(session, dry, started, checked, base, early)
                return replace(result, held=SUSPENDED)
            if not opts.dry_run:
                store.set_suspended(False, opts.command)  # resumed, if it was
            result = _planned(session, opts, started, checked, base, early)
            if not opts.dry_run and not result.held:
                write_budgets(store, checked.desired)  # a raised budget resumes what waited
            return result
    finally:
        if early is not None:
            store.clean_check_done(early)


def _checked_before_start(session: Session) -> loader.Validation | None:
    if "store" in session.__dict__ or not is_embedded(session.settings.redis, session.paths):
        return None
    return None if server.is_running(session.paths) else session.validate()


def _moved_here(session: Session) -> None:
    """The town was adopted by this folder: every agent of the folder it was managed from is
    asked to stop (on any host); this apply's fleet stops those of this host and starts its own
    (an agent also refuses to start for a folder that is not its town's source)."""
    root, host = str(session.paths.root), session.identity.host
    for name, rec in session.store.agent_records().items():
        if (rec.get("root"), rec.get("host")) != (root, host):
            session.store.request_stop(name, "stop")
            session.store.set_agent(name, {"stopped_by": f"adopted by {root}"})


def _planned(
    session: Session,
    opts: ApplyOptions,
    started: float,
    checked: loader.Validation,
    base: Snapshot | None,
    early: PendingCheck | None,
) -> ApplyResult:
    """Plan, execute and record, under the lock."""
    store = session.store
    desired = checked.desired
    assert desired is not None  # validate raises otherwise
    if desired.git is not None:
        preflight(session.paths.root, desired.git)  # raises: nothing written
    if desired.notify and not opts.dry_run:  # rules new to the town: told from here on
        from . import notifier  # (with its HTTP door: only where a town has rules)

        notifier.register(store, desired.notify)
    edit = incremental.edit_of(checked, base) if base is not None else None
    seen = incremental.observe_edit(store, desired, base, edit, early) if base and edit else None
    graph: Graph | None = None
    if seen is not None:
        observed, rows, graph = seen
    else:
        observed, rows = observe(store)
    # Tombstones first: a town emptied and filled again restores its pruned tasks, on the
    # streaming path of a town without tasks as on the planned one.
    observed = with_tombstones(store, observed, graph.nodes if graph else desired.task_ids())
    if seen is None and not observed.tasks and desired.tasks and not opts.dry_run:
        return _new_tasks(session, opts, started, checked, observed, rows)
    observed = with_changed_specs(store, observed, desired)
    plan = diff(
        desired,
        observed,
        time.time(),
        prune=opts.prune,
        rerun_changed=opts.rerun_changed,
        graph=graph,
    )
    if not desired.town.policy.self_heal and not files_changed(desired, observed):
        plan = healing_only(plan)  # the files are as last applied: every change undoes drift
    if refused(plan, opts) and not opts.dry_run:  # a dry run shows the plan, then the refusal
        raise Refused(REFUSAL, hint=REFUSAL_HINT)
    seconds = time.monotonic() - started
    if opts.dry_run:
        return ApplyResult(plan, False, observed.generation, (), seconds, tasks=len(rows))
    if opts.guard_prune and _prunes_too_much(plan, len(rows), desired.town.policy.max_prune):
        return ApplyResult(plan, False, observed.generation, (), seconds, "guarded", len(rows))
    generation = observed.generation + (0 if plan.is_empty else 1)
    after = RowsAfter(rows)
    after.add(execute(store, plan, desired, generation, started) if not plan.is_empty else [])
    return _done(session, opts, started, checked, observed, after, plan, generation)


def _new_tasks(
    session: Session,
    opts: ApplyOptions,
    started: float,
    checked: loader.Validation,
    observed: Observed,
    rows: list[Row],
) -> ApplyResult:
    """`_planned` for a town without tasks yet (every task is created; the plan cannot be
    empty): each batch of records is written as soon as it is planned, Redis running it while
    the next is planned. The agents' part of the plan, which comes first, is checked first."""
    desired = checked.desired
    assert desired is not None
    agents = agent_actions(desired, observed, opts.prune)
    emptying = not desired.agents and any(isinstance(a, DeleteAgent) for a in agents)
    if refused(Plan(tuple(agents), emptying), opts):  # what `diff` would say of the whole plan
        raise Refused(REFUSAL, hint=REFUSAL_HINT)
    keep_until = time.time() + desired.town.policy.keep_deleted
    tasks = task_actions(
        desired, observed, prune=opts.prune, rerun_changed=opts.rerun_changed, keep_until=keep_until
    )
    generation = observed.generation + 1
    after = RowsAfter(rows)  # the clean rows, made from each batch while Redis writes it
    actions = itertools.chain(agents, tasks)
    # What the snapshot holds of the files is made while Redis runs the last batch.
    ahead = snapshot.preparer(checked.reuse)
    _, done = execute_actions(
        session.store, actions, generation, after.add, desired, started, ahead
    )
    plan = Plan(done, emptying)
    return _done(session, opts, started, checked, observed, after, plan, generation)


def _done(
    session: Session,
    opts: ApplyOptions,
    started: float,
    checked: loader.Validation,
    observed: Observed,
    after: RowsAfter,
    plan: Plan,
    generation: int,
) -> ApplyResult:
    """After the writes: old tombstones purged, the meta record, the clean record, the fleet."""
    store, desired = session.store, checked.desired
    assert desired is not None
    _purge(store, desired)
    _record(store, desired, generation, observed)
    store.record_roster(desired)  # what a node without the files runs by (not on the no-op path)
    if all(a.write for a in plan.actions):
        # Nothing is left for a next pass to report either: remember the state (the Lua script
        # checks it first), so an apply of the same files can skip planning, and keep the
        # snapshot an edit of these files starts from.
        deleted = [a.id for a in plan.actions if isinstance(a, DeleteTask)]
        _remember(session, checked, tuple(after.rows(deleted)))
    keep = {a.name for a in plan.actions if isinstance(a, OrphanAgent)}
    changes = _fleet(session, desired, opts, keep)
    seconds = time.monotonic() - started
    _revision(session, opts, dict(desired.digests), plan, seconds)
    return ApplyResult(plan, True, generation, tuple(changes), seconds, tasks=after.before)


def _revision(
    session: Session, opts: ApplyOptions, digests: Mapping[str, str], plan: Plan, seconds: float
) -> None:
    """Where the applied files came from (`revision.py`), under the lock."""
    given = dict(opts.revision) if opts.revision is not None else None
    root, by = session.paths.root, opts.command
    revision.record_applied(
        session.store, root, digests, by=by, plan=plan, seconds=seconds, given=given
    )


def _prunes_too_much(plan: Plan, tasks: int, max_prune: int) -> bool:
    """More than `max_prune` tasks, or more than half of the `tasks` there are, to delete."""
    deletes = sum(1 for a in plan.actions if isinstance(a, DeleteTask))
    return deletes > max_prune or 2 * deletes > tasks


def _fingerprint(checked: loader.Validation) -> str:
    assert checked.desired is not None
    return clean_fingerprint(dict(checked.desired.digests))


def _remember(session: Session, checked: loader.Validation, rows: tuple[Row, ...]) -> None:
    fingerprint, reuse, desired = _fingerprint(checked), checked.reuse(), checked.desired
    digest = session.store.store_clean(fingerprint, rows)
    if reuse is not None and desired is not None:
        snapshot.save(session.paths, Snapshot(fingerprint, digest, reuse, rows))


def _fleet(
    session: Session, desired: Desired, opts: ApplyOptions, keep: set[str]
) -> list[fleet.FleetChange]:
    if not opts.start_agents:
        return []
    return fleet.ensure(session.paths, desired, session.store, env=agent_env(opts), keep=keep)


def agent_env(opts: ApplyOptions) -> dict[str, str]:
    """The environment agents are started with: this one, and `--model` as the override."""
    env = dict(os.environ)
    if opts.model:
        env[OVERRIDE_ENV] = opts.model
    return env


def _record(store: Store, desired: Desired, generation: int, observed: Observed) -> None:
    digests = dict(desired.digests)
    if generation != observed.generation or digests != dict(observed.digests):
        fields = {f"digest:{name}": value for name, value in digests.items()}
        fields.update(
            {"generation": str(generation), "applied_at": repr(time.time()), "schema": "1"}
        )
        store.write_meta(fields)


def _unchanged(
    session: Session, opts: ApplyOptions, fingerprint: str, town_text: str, started: float
) -> ApplyResult | None:
    """The fast path's result, or None when a full pass is needed. Runs under the lock."""
    store = session.store
    clean, generation = store.check_clean(fingerprint, record=False)
    if not clean:
        return None
    roster = loader.load_texts(town_text, None)  # valid: these bytes were applied before
    if roster.town.suspend:
        return None  # a full pass: it suspends the town and applies nothing
    agents = diff(roster, Observed(agents=read_agents(store)), time.time(), prune=opts.prune)
    if agents.actions:
        return None
    if opts.dry_run:
        return ApplyResult(Plan(), False, generation, (), time.monotonic() - started)
    store.set_suspended(False, opts.command)  # resumed, if it was
    _purge(store, roster)
    changes = _fleet(session, roster, opts, set())
    seconds = time.monotonic() - started
    _revision(session, opts, digests_of(fingerprint), Plan(), seconds)
    return ApplyResult(Plan(), True, generation, tuple(changes), seconds)


def _purge(store: Store, desired: Desired) -> None:
    """Tombstones older than `keep_deleted` go (one script call; a task hash is not touched,
    so the clean mark stands)."""
    store.purge_tombstones(time.time() - desired.town.policy.keep_deleted)
