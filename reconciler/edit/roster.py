"""The town.toml edits: add an agent, remove one, set an agent's fields, set [town] fields.

Adding and removing place whole tables with `agenttext` (so heading comments go along) and fall
back to tomlkit's own edit for layouts it does not handle; names are checked before any read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import tomlkit
from tomlkit.items import InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from ..errors import NotFound, TtError
from ..spec.names import RESERVED_AGENT_NAMES, did_you_mean, is_valid_name, name_problem
from ..town import TownPaths
from .agenttext import insert_agent_text, remove_agent_text, tidy_or_plain
from .transaction import Validate, edit_town, parse, transact
from .values import set_fields, table_of, to_item


def add_agent(
    paths: TownPaths, name: str, fields: Mapping[str, object], validate: Validate | None = None
) -> None:
    """Add `[agents.NAME]` after the last agent; an existing name is refused."""
    _check_agent_name(name)
    path = paths.town_file

    def change(text: str) -> tuple[str, None]:
        agents = _agents(parse(path, text), path)
        if name in agents:
            raise TtError(
                f"{path}: agent {name!r} already exists",
                hint=f"edit [agents.{name}] in the file, or remove it first (`tt kill {name}`)",
            )

        def plain(doc: TOMLDocument) -> None:
            if "agents" not in doc:
                doc.add("agents", tomlkit.table(is_super_table=True))
            roster = doc["agents"]
            inline = isinstance(roster, InlineTable)
            roster[name] = to_item(fields) if inline else table_of(fields)

        tidy = tidy_or_plain(path, text, lambda: insert_agent_text(text, name, fields), plain)
        return tidy, None

    transact(paths, "town", change, validate)


def remove_agent(paths: TownPaths, name: str, validate: Validate | None = None) -> None:
    """Remove `[agents.NAME]` with its sub-tables and the comment lines directly above it."""
    path = paths.town_file

    def change(text: str) -> tuple[str, None]:
        _agent(parse(path, text), path, name)

        def plain(doc: TOMLDocument) -> None:
            del doc["agents"][name]
            if not doc["agents"]:
                del doc["agents"]

        return tidy_or_plain(path, text, lambda: remove_agent_text(text, name), plain), None

    transact(paths, "town", change, validate)


def set_agent_fields(
    paths: TownPaths, name: str, fields: Mapping[str, object], validate: Validate | None = None
) -> None:
    """Set fields of one agent in place (e.g. suspended = true); None removes a field."""
    path = paths.town_file
    edit_town(paths, lambda doc: set_fields(_agent(doc, path, name), fields), validate)


def set_town_fields(
    paths: TownPaths, fields: Mapping[str, object], validate: Validate | None = None
) -> bool:
    """Set fields of [town] in place (e.g. suspend = true); None removes a field. True when the
    file changed."""
    path = paths.town_file

    def mutate(doc: TOMLDocument) -> bool:
        town = doc.get("town")
        if not isinstance(town, (Table, InlineTable)):
            raise TtError(f"{path}: `town` is not a table, so tt cannot edit it")
        return set_fields(town, fields)

    return edit_town(paths, mutate, validate)


def set_model(
    paths: TownPaths, name: str, fields: Mapping[str, object], validate: Validate | None = None
) -> bool:
    """Set `[models.NAME]` to `fields` (added, or its fields replaced in place; `tt config
    agent_clis.NAME`). True when the file changed."""
    path = paths.town_file

    def mutate(doc: TOMLDocument) -> bool:
        if "models" not in doc:
            doc.add("models", tomlkit.table(is_super_table=True))
        models = doc["models"]
        if not isinstance(models, (Table, InlineTable)):
            raise TtError(f"{path}: `models` is not a table, so tt cannot edit it")
        entry = models.get(name)
        if isinstance(entry, (Table, InlineTable)):
            return set_fields(entry, fields)
        models[name] = table_of(fields)
        return True

    return edit_town(paths, mutate, validate)


def _check_agent_name(name: str) -> None:
    if name.lower() in RESERVED_AGENT_NAMES:
        raise TtError(f"{name!r} is a reserved name (a mailbox), not an agent")
    if not is_valid_name(name):
        raise TtError(f"invalid agent name {name!r}: {name_problem(name)}")


def _agents(doc: TOMLDocument, path: Path) -> Mapping[str, object]:
    agents = doc.get("agents", {})
    if not isinstance(agents, Mapping):
        raise TtError(f"{path}: `agents` is not a table, so tt cannot edit it")
    return agents


def _agent(doc: TOMLDocument, path: Path, name: str) -> Table | InlineTable:
    agents = _agents(doc, path)
    agent = agents.get(name)
    if agent is None:
        raise NotFound(f"{path}: no agent named {name!r}", did_you_mean(name, agents))
    if not isinstance(agent, (Table, InlineTable)):
        raise TtError(f"{path}: agents.{name} is not a table, so tt cannot edit it")
    return agent
