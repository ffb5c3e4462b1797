"""`tt init`: write a new town's town.toml and tasks.toml, and keep `.tt/` out of git.

It never overwrites a file without `force`, and imports what a Tinytown (Rust) `tinytown.toml`
knows (name, default CLI, custom CLIs). It does not start anything or talk to Redis. A file it
writes starts with a `#:schema` line (Taplo's directive, a TOML comment) naming the JSON Schema
tt ships by a path relative to the file, when that schema lies in the town's git work tree;
never by a path of one machine (the files are meant to be committed).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from ..errors import TtError
from ..filelock import atomic_write_text, exclusive_lock
from ..git import branch_of, checkout_of, may_be_in_work_tree
from ..spec import names
from ..spec.names import is_valid_name
from ..spec.presets import PRESETS
from ..spec.schemacheck import schema_dir
from ..town import STATE_DIR, TASKS_FILE, TINYTOWN_FILE, TOWN_FILE, TownPaths
from .transaction import LOCK_FILE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TASKS_TEMPLATE = """\
# The work of this town and its order. `tt plan` shows what `tt apply` would change.
[meta]
description = "{name}"

# [[tasks]]
# id = "design"
# description = "Design a REST API for user authentication with JWT tokens"
# agent = "architect"
#
# [[tasks]]
# id = "implement"
# description = "Implement the auth API from the architect's design"
# agent = "developer"
# parent = "design"          # runs after design completed
"""


def schema_directive(which: str, folder: Path) -> str:
    """`#:schema ../schema/WHICH.schema.json`, the first line of a file tt writes in `folder`
    (Taplo and Even Better TOML read it, relative to the file; TOML reads a comment), or ""
    when tt's schema is not in the same git work tree as `folder`: a path outside it would be
    one machine's (a site-packages folder) in a file meant to be committed. Then an editor is
    pointed at `tt schema WHICH --uri` by its own settings (README: CI and editors)."""
    schema = (schema_dir() / f"{which}.schema.json").resolve()
    here = folder.resolve()
    checkout = checkout_of(here) if may_be_in_work_tree(here) else None
    if checkout is None or not schema.is_relative_to(checkout.top.resolve()):
        return ""
    return f"#:schema {Path(os.path.relpath(schema, here)).as_posix()}\n"


@dataclass(frozen=True)
class InitResult:
    root: Path
    name: str
    written: tuple[Path, ...]
    imported_from: Path | None
    dropped: tuple[str, ...] = ()  # what of tinytown.toml was not imported, one line each


# tinytown.toml's settings tt does not import, and what says the same in tt (issue #20 point 8).
NOT_IMPORTED = {
    "max_agents": "tt's [town] max_agents in town.toml (default 256)",
    "redis": 'tt\'s [town] redis = "embedded" (its own Valkey under .tt/, persisted) or a URL',
    "use_central_redis": "tt's [town] redis = a redis:// URL shared by towns",
    "use_streams": "tt's event stream is always a Redis stream (tt events)",
    "townhall": "tt has no REST server: the tt commands and -o json",
    "agent": "tt's [town] heartbeat and lease, and restart per agent",
    "conductor_cli": "tt's conductor is the reconcile loop, with no model",
}


def slug(text: str) -> str:
    """A valid town/agent name from free text ("My Repo@main" → "my-repo-main")."""
    return names.slug(text, fallback="town")


def default_name(root: Path) -> str:
    """The folder name, or `repo-branch` inside a git work tree."""
    found = branch_of(root)
    if found is not None:
        return slug(f"{found[0].name}-{found[1]}")
    return slug(root.resolve().name)


def init_town(root: Path, name: str | None = None, *, force: bool = False) -> InitResult:
    root = root.expanduser().resolve()
    town_file, tasks_file = root / TOWN_FILE, root / TASKS_FILE
    existing = [p for p in (town_file, tasks_file) if p.exists()]
    for path in existing:
        if not path.is_file():  # checked first: --force must not write one file of the two
            raise TtError(f"{path} exists and is not a file", hint="move it away first")
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise TtError(
            f"{', '.join(str(p) for p in existing)} already {verb}",
            hint="tt init --force overwrites them; tt apply runs the town as it is",
        )
    if name is not None and not is_valid_name(name):
        raise TtError(
            f"invalid town name {name!r}: {names.name_problem(name)}",
            hint=f"for example tt init --name {slug(name)}",
        )
    legacy = _read_tinytown(root / TINYTOWN_FILE)
    town_name = name or (slug(str(legacy["name"])) if legacy.get("name") else default_name(root))
    root.mkdir(parents=True, exist_ok=True)
    # Same lock and atomic writes as `edit`, so `--force` never races a concurrent `tt` edit.
    with exclusive_lock(root / STATE_DIR / LOCK_FILE):
        atomic_write_text(town_file, schema_directive("town", root) + _town_text(town_name, legacy))
        text = schema_directive("tasks", root) + TASKS_TEMPLATE.format(name=town_name)
        atomic_write_text(tasks_file, text)
    written = [town_file, tasks_file]
    if _ensure_gitignored(root):
        written.append(root / ".gitignore")
    return InitResult(
        root=root,
        name=town_name,
        written=tuple(written),
        imported_from=(root / TINYTOWN_FILE) if legacy else None,
        dropped=tuple(f"{k}: not imported; {v}" for k, v in NOT_IMPORTED.items() if k in legacy),
    )


def _read_tinytown(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        data: dict[str, object] = tomllib.loads(path.read_text())
        return data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TtError(f"{path}: cannot import it: {e}") from e


def _town_text(name: str, legacy: dict[str, object]) -> str:
    doc = tomlkit.document()
    doc.add(tomlkit.comment("The roster of this town: which agents exist, on which model CLI."))
    doc.add(tomlkit.comment("`tt spawn NAME --model M` adds an agent here; `tt apply` applies it."))
    town = tomlkit.table()
    town.add("name", name)
    town.add("redis", "embedded")
    town["redis"].comment("or redis://host:6379/0, rediss://, unix:// (TT_REDIS_URL overrides)")
    default_cli = legacy.get("default_cli")
    town.add("default_model", default_cli if isinstance(default_cli, str) else "claude")
    doc.add("town", town)
    clis = legacy.get("agent_clis")
    if isinstance(clis, dict):
        models = tomlkit.table(is_super_table=True)
        for cli_name, cli in clis.items():
            command = cli.get("command") if isinstance(cli, dict) else None
            model_name = slug(str(cli_name))
            if model_name in PRESETS or not isinstance(command, str):
                continue
            entry = tomlkit.table()
            entry.add("command", shlex.split(command))
            entry.add("prompt", "arg")
            models.add(model_name, entry)
        if models:
            doc.add(tomlkit.nl())
            doc.add("models", models)
    return tomlkit.dumps(doc)


def _ensure_gitignored(root: Path) -> bool:
    """Add `.tt/` to .gitignore unless it is there already. True when the file changed."""
    path = root / ".gitignore"
    lines = path.read_text().splitlines() if path.exists() else []
    if any(line.strip() in (STATE_DIR, f"{STATE_DIR}/", f"/{STATE_DIR}/") for line in lines):
        return False
    with path.open("a") as f:
        if lines and not path.read_text().endswith("\n"):
            f.write("\n")
        f.write(f"{STATE_DIR}/\n")
    return True


STARTER_TASKS = """\
# Starter tasks (`tt plan --init`). A task with no agent goes to the town's backlog:
# any idle agent may claim it.
[meta]
description = "First steps"

[[tasks]]
id = "explore"
description = "Read the repository and write a short summary of its structure"
status = "pending"
"""


class HasTasks(TtError):
    """`tt plan --init` where tasks.toml already holds tasks: Tinytown's page goes on to edit it."""


def starter_tasks(paths: TownPaths) -> Path:
    """`tt plan --init`: a starter task in tasks.toml. A missing file is written whole; a file
    without tasks (the `tt init` template: `[[tasks]]` only in comments) keeps its text and gets
    the task appended; a file with tasks, or one that is not TOML, is refused and left as is."""
    path = paths.tasks_file
    with exclusive_lock(paths.state_dir / LOCK_FILE):
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            atomic_write_text(path, schema_directive("tasks", paths.root) + STARTER_TASKS)
            return path
        except (OSError, UnicodeDecodeError) as e:
            raise TtError(f"{path}: cannot read it: {e}") from e
        try:
            tasks = tomllib.loads(text.removeprefix("\ufeff")).get("tasks")
        except tomllib.TOMLDecodeError as e:
            raise TtError(
                f"{path}: not valid TOML ({e}); nothing was changed",
                hint="fix the file first; `tt validate` lists every problem",
            ) from e
        if tasks:
            raise HasTasks(
                f"{path} already has tasks", hint="edit it (tt plan shows what it asks for)"
            )
        if tasks is not None:
            raise TtError(
                f"{path}: `tasks` is already defined (empty); nothing was changed",
                hint="add a [[tasks]] table by hand",
            )
        newline = "\r\n" if "\r\n" in text else "\n"
        head = text if not text or text.endswith("\n") else text + newline
        block = STARTER_TASKS[STARTER_TASKS.index("[[tasks]]") :]
        gap = newline if head.strip() else ""
        atomic_write_text(path, head + gap + block.replace("\n", newline))
    return path
