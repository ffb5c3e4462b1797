"""edit: writes of town.toml and tasks.toml (the verbs' edits, `tt init`'s scaffold); the only door
to tomlkit. May import `spec` and the base modules; beside the layers, used by `control` and cli.

Each edit is one transaction under `.tt/edit.lock`: read, change with tomlkit (comments, order and
formatting survive), validate with an injected callable, write atomically; a failed step writes
nothing. No Redis, no processes, and no `loader` import: validation is passed in.
"""

from __future__ import annotations

from .roster import add_agent, remove_agent, set_agent_fields, set_model, set_town_fields
from .tasks import (
    GENERATED_ID_MAX,
    append_task,
    new_task_id,
    remove_task,
    set_task_status,
    write_back,
)
from .transaction import LOCK_FILE, Validate, edit_tasks, edit_town, replace_files

__all__ = [
    "GENERATED_ID_MAX",
    "LOCK_FILE",
    "Validate",
    "add_agent",
    "append_task",
    "edit_tasks",
    "edit_town",
    "new_task_id",
    "remove_agent",
    "remove_task",
    "replace_files",
    "set_agent_fields",
    "set_model",
    "set_task_status",
    "set_town_fields",
    "write_back",
]
