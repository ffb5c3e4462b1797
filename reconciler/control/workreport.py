"""What tt knows of a task and its work: `tt show TASK` (its record, attempts and log; under
`[git]` its branch, commits, diffstat and merge) and the merged commits `tt apply --wait` lists.

Reads Redis through the store and git only through `git.repo.Repo`; writes nothing. Plain
dicts out (the CLI renders them); their keys are stable, documented on each function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..agents.exitclass import classify_record
from ..errors import NotFound
from ..git.repo import GitError, Repo, repository_of
from ..spec.desired import Desired
from ..spec.gitsettings import GitSettings
from ..spec.names import did_you_mean, is_valid_name
from ..store.client import Store
from ..town import TownPaths
from ..work.layout import Layout
from .limits import limits_report
from .report import approval_cells

# The stages of a running task whose commit is on its way into base (`tt status`: merging).
MERGING = ("committed", "queued", "waiting")
# The stages whose work is in base (or had none to bring).
IN_BASE = ("merged", "unchanged")


def git_repo(paths: TownPaths, git: GitSettings) -> Repo | None:
    """The repository `[git] repo` names (relative to the town folder), or None outside one."""
    folder = Path(git.repo) if Path(git.repo).is_absolute() else paths.root / git.repo
    return repository_of(folder, git.author)


def _num(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _json_list(value: str | None) -> list[str]:
    try:
        found = json.loads(value or "[]")
    except ValueError:
        return []
    return [str(x) for x in found] if isinstance(found, list) else []


def show_report(
    store: Store, paths: TownPaths, desired: Desired | None, task_id: str
) -> dict[str, Any]:
    """One task as `tt show` gives it. Keys (stable; only ever added to):

    - `id`, `state`, `kind`, `agent` (who ran it last), `target`, `description`, `result`,
      `error`, `upstream`, `approval` (`report.approval_cells`: null without `approve`),
      `waiting_for` (why a ready or retrying task waits: "budget", or the task whose `touches`
      overlap its own; else null), `created_at` / `started_at` / `finished_at` (unix seconds
      or null);
    - `attempts`: a list, oldest first, one per attempt: `attempt`, `agent`, `outcome`
      (completed | failed | deferred | handed back | running), `error`, `reason`, `started_at`,
      `finished_at`, `log` (its log file, null when not on disk), and its ledger entry:
      `exit_class` (`exitclass.ExitClass`; told by the error for a record written before
      classes, null while running), `exit_code`, `model`, `node`, `duration_s`, `session_id`,
      `tokens` (`input`, `output`, `cache_read`, `cache_write`), `cost_usd`, `turns`,
      `result`, `resumed_from` (the session a retry went on with), `resume_rejected` (a
      session its CLI refused: the attempt ran fresh), `workdir` (the folder it ran in: a
      retry resumes its session only there), `record` (the JSON beside its log,
      null when not on disk) — null where not known (never estimated);
    - `log`: the log of the latest attempt that has one (null: none yet);
    - `git`: null without `[git]`, else `branch`, `branch_exists`, `base`, `base_commit`,
      `head` (the branch's commit, else the one recorded), `commits_ahead` /
      `commits_behind` (of base; 0 ahead once its work is in base), `commits` (the task's own
      commits, newest first: `commit`, `subject`), `diffstat`, `files_changed`,
      `files_outside` (changed outside its `touches`), `conflicts`, `merged_commit`,
      `worktree` (its folder, null once removed), `uncommitted` (paths changed in it),
      `stage` (git_stage), `note` (git_note), `queue_position` (1-based, null when not
      queued), `check_log`, `error` (why git could not tell the rest, else null).

    `desired` None (the files are invalid): the record is shown, git from what Redis holds.
    """
    rec = store.task_hash(task_id) if is_valid_name(task_id) else {}
    if not rec:
        known = set(desired.task_ids()) if desired is not None else set(store.task_ids())
        raise NotFound(
            f"no task named {task_id}",
            hint=did_you_mean(task_id, known) or "tt status lists the tasks",
        )
    attempts = _attempts(store, paths, task_id, rec)
    logs = [a["log"] for a in attempts if a["log"]]
    try:
        spec = json.loads(rec.get("spec") or "{}")
    except ValueError:
        spec = {}
    git_on = desired.git is not None if desired is not None else _has_git(rec)
    return {
        "id": task_id,
        "state": rec.get("state"),
        "kind": rec.get("kind") or "work",
        "agent": rec.get("assignee") or None,
        "target": rec.get("target") or None,
        "description": spec.get("description") if isinstance(spec, dict) else None,
        "result": rec.get("result") or None,
        "error": rec.get("error") or None,
        "upstream": rec.get("upstream") or None,
        "approval": approval_cells(rec),
        # "budget": its max_cost_usd, its agent's or the town's budget keeps it from starting
        "waiting_for": rec.get("waiting_for") or _budget_wait(store, desired, rec),
        "created_at": _num(rec.get("created_at")),
        "started_at": _num(rec.get("started_at")),
        "finished_at": _num(rec.get("finished_at")),
        "attempts": attempts,
        "log": logs[-1] if logs else None,
        "git": _git(store, paths, desired, task_id, rec) if git_on else None,
    }


def _budget_wait(store: Store, desired: Desired | None, rec: dict[str, str]) -> str | None:
    """ "budget" for a ready task that the town's or its agent's budget keeps waiting."""
    if rec.get("state") != "ready":
        return None
    row = {"state": "ready", "target": rec.get("target")}
    limits_report(store, desired, [row])
    return row.get("waiting_for")


def ledger_fields(a: dict[str, Any]) -> dict[str, Any]:
    """The ledger entry of a stored attempt; a record from before it has only its class."""
    outcome = str(a.get("outcome") or "")
    cls = a.get("exit_class")
    if not isinstance(cls, str) and outcome != "running":
        cls = classify_record(outcome, str(a.get("error") or "")).value
    found = a.get("tokens")
    tokens: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "exit_class": cls if isinstance(cls, str) else None,
        **{k: a.get(k) for k in ("exit_code", "model", "node", "duration_s", "session_id")},
        "tokens": {k: tokens.get(k) for k in ("input", "output", "cache_read", "cache_write")},
        **{k: a.get(k) for k in ("cost_usd", "turns", "result")},
        **{k: a.get(k) for k in ("resumed_from", "resume_rejected", "workdir")},
    }


def _has_git(rec: dict[str, str]) -> bool:
    return any(k.startswith("git_") for k in rec)


def _attempts(
    store: Store, paths: TownPaths, task_id: str, rec: dict[str, str]
) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = [dict(a) for a in store.attempt_history(task_id)]
    number = int(rec.get("attempt", "0") or 0)
    if rec.get("state") == "running" and not any(a.get("attempt") == number for a in history):
        history.append(
            {
                "attempt": number,
                "agent": rec.get("assignee"),
                "outcome": "running",
                "started_at": rec.get("started_at"),
            }
        )
    out = []
    for a in history:
        agent, n = a.get("agent"), a.get("attempt")
        log = paths.logs_dir / str(agent) / f"{task_id}-{n}.log"
        shown = agent and n is not None and is_valid_name(str(agent)) and log.is_file()
        out.append(
            {
                "attempt": n,
                "agent": agent or None,
                "outcome": a.get("outcome"),
                "error": a.get("error") or None,
                "reason": a.get("reason") or None,
                "started_at": _num(a.get("started_at")),
                "finished_at": _num(a.get("finished_at")),
                "log": str(log) if shown else None,
                **ledger_fields(a),
                "record": str(log.with_suffix(".json"))
                if shown and log.with_suffix(".json").is_file()
                else None,
            }
        )
    return out


def _git(
    store: Store, paths: TownPaths, desired: Desired | None, task_id: str, rec: dict[str, str]
) -> dict[str, Any]:
    town = desired.town.name if desired is not None else store.town
    layout = Layout(paths.state_dir, town)
    stage = rec.get("git_stage") or None
    tree = Path(rec.get("git_tree") or layout.tree(task_id))
    position = None
    if stage in MERGING:
        queue = store.merge_queue()
        position = queue.index(task_id) + 1 if task_id in queue else None
    check_log = layout.check_log(task_id, int(rec.get("attempt", "0") or 0))
    out: dict[str, Any] = {
        "branch": rec.get("git_branch") or layout.branch(task_id),
        "branch_exists": None,
        "base": None,
        "base_commit": None,
        "head": rec.get("git_head") or None,
        "commits_ahead": None,
        "commits_behind": None,
        "commits": [],
        "diffstat": None,
        "files_changed": _json_list(rec.get("git_changed")),
        "files_outside": _json_list(rec.get("git_outside")),
        "conflicts": _json_list(rec.get("git_conflicts")),
        "merged_commit": rec.get("git_merged") or None,
        "worktree": str(tree) if tree.is_dir() else None,
        "uncommitted": [],
        "stage": stage,
        "note": rec.get("git_note") or None,
        "queue_position": position,
        "check_log": str(check_log) if check_log.is_file() else None,
        "error": None,
    }
    settings = desired.git if desired is not None else None
    repo = git_repo(paths, settings) if settings is not None else None
    try:
        if settings is None or repo is None:
            out["error"] = "the repository is unknown (town.toml invalid, or [git] repo not found)"
        else:
            _from_repo(out, repo, settings, stage, rec.get("git_base"))
    except GitError as e:
        out["error"] = e.message
    return out


def _from_repo(
    out: dict[str, Any], repo: Repo, settings: GitSettings, stage: str | None, start: str | None
) -> None:
    """The facts only git knows, into `out` (the task's branch against base)."""
    out["base"] = settings.base
    base = repo.resolve(f"refs/heads/{settings.base}")
    out["base_commit"] = base
    tip = repo.resolve(f"refs/heads/{out['branch']}")
    out["branch_exists"] = tip is not None
    head = tip or (repo.resolve(out["head"]) if out["head"] else None)
    if out["worktree"]:
        out["uncommitted"] = repo.dirty(Path(out["worktree"]))
    if head is None or base is None:
        return
    out["head"] = head
    ahead, behind = repo.ahead_behind(head, base)
    # Where the branch started: recorded, else where it leaves base (once a fast-forward put
    # its commits in base, that is its head: its commits are then not told apart from base's).
    if not (start and repo.resolve(start) and repo.is_ancestor(start, head)):
        start = repo.merge_base(base, head)
    since = start or base
    out["commits_ahead"] = 0 if stage in IN_BASE else ahead
    out["commits_behind"] = behind
    out["commits"] = [{"commit": c, "subject": s} for c, s in repo.commits(since, head)]
    out["diffstat"] = repo.diffstat(since, head) or None
    if not out["files_changed"]:
        out["files_changed"] = repo.changed_files(since, head)


def merged_since(
    store: Store, paths: TownPaths, desired: Desired, since: float
) -> list[dict[str, Any]]:
    """The tasks completed at or after `since` (unix seconds) whose work was merged into base,
    in the order they completed: `id`, `commit` (on base), `subject` (its first line, '' when
    the repository no longer has it). [] without `[git]`."""
    if desired.git is None:
        return []
    rows = store.task_rows(["state", "finished_at", "git_merged"])
    done = [
        (at, str(tid), str(commit))
        for tid, state, finished, commit in rows
        if state == "completed" and commit and (at := _num(finished)) is not None and at >= since
    ]
    done.sort()
    repo = git_repo(paths, desired.git)
    try:
        subjects = repo.subjects([c for _, _, c in done]) if repo is not None else {}
    except GitError:
        subjects = {}
    return [{"id": tid, "commit": c, "subject": subjects.get(c, "")} for _, tid, c in done]
