"""Which log `tt logs NAME [TASK]` shows: an agent's own log, or the latest attempt of a task.

Reads the town's files and the log folder; asks Redis only whether an unknown name is a task
that has not run yet. A name becomes a path only once it is valid (no `..`, no `/`), and what it
raises names agents and tasks, never a file path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .. import server
from ..errors import NotFound, RedisUnavailable, ValidationFailed
from ..spec import loader
from ..spec.names import did_you_mean, is_valid_name
from ..store.client import is_embedded
from .session import Session


def log_file(s: Session, name: str, task_id: str | None = None) -> Path:
    """Agent NAME's log, or its latest attempt of TASK_ID; a NAME that is a task (and no
    TASK_ID): that task's latest attempt, whichever agent ran it. Only ever a file inside the
    town's log folder: a symlink there that leads out of it is refused."""
    path = _find(s, name, task_id)
    if not _inside(s.paths.state_dir, path):
        what = name if task_id is None else f"{name} {task_id}"
        raise NotFound(
            f"the log of {what} leads outside the town's log folder; not shown",
            hint="a symlink in .tt/logs points elsewhere: remove it",
        )
    return path


def _inside(state_dir: Path, path: Path) -> bool:
    """`path`, all links followed, is in `.tt/logs` (a real folder, not a link elsewhere)."""
    folder = os.path.join(os.path.realpath(state_dir), "logs")
    return os.path.realpath(path).startswith(folder + os.sep)


def _find(s: Session, name: str, task_id: str | None) -> Path:
    agents, tasks = _known(s)
    logs = s.paths.logs_dir
    is_agent = is_valid_name(name) and (name in agents or (logs / name).is_dir())
    if task_id is not None:
        if not is_agent:
            raise NotFound(f"no agent named {name}", hint=did_you_mean(name, agents))
        found = _latest(logs / name, task_id) if is_valid_name(task_id) else None
        if found is None:
            raise NotFound(
                f"agent {name} has no log of task {task_id}", hint="tt status shows who ran it"
            )
        return found
    if is_agent:
        path = logs / name / "agent.log"
        if not path.is_file():
            raise NotFound(f"agent {name} has no log yet", hint="has it started? tt list")
        return path
    found = _latest_of_task(logs, name) if is_valid_name(name) else None
    if found is not None:
        return found
    if is_valid_name(name) and (name in tasks or _stored_task(s, name)):
        raise NotFound(f"task {name} has no log yet: no agent has run it", hint="tt status")
    raise NotFound(f"no agent or task named {name}", hint=did_you_mean(name, agents | tasks))


def _known(s: Session) -> tuple[set[str], set[str]]:
    """Agent instance names and task ids of the files (none of either when they are invalid:
    logs stay readable)."""
    desired = loader.check(s.paths).desired
    if desired is None:
        return set(), set()
    agents = {n for a in desired.agents for n in a.instances()}
    return agents, set(desired.task_ids())


def _stored_task(s: Session, task_id: str) -> bool:
    """A task made with `--no-save` lives only in Redis (asked only where it runs: a town's
    embedded server is not started to tell a typo)."""
    try:
        if is_embedded(s.settings.redis, s.paths) and not server.is_running(s.paths):
            return False
        return bool(s.store.task_hash(task_id))
    except (RedisUnavailable, ValidationFailed):
        return False


def _latest(folder: Path, task_id: str) -> Path | None:
    return _last_attempt(folder.glob(f"{task_id}-*.log"), task_id)


def _latest_of_task(logs: Path, task_id: str) -> Path | None:
    # Attempt numbers count up across agents: the highest is the latest, whoever ran it.
    return _last_attempt(logs.glob(f"*/{task_id}-*.log"), task_id)


def _last_attempt(paths: Iterable[Path], task_id: str) -> Path | None:
    """The log of the highest attempt among TASK-N.log (not those of a task `TASK-x`)."""
    attempts = [(int(n), p) for p in paths if (n := p.stem[len(task_id) + 1 :]).isdigit()]
    return max(attempts)[1] if attempts else None
