"""The JSON bodies the write routes take: one JSON Schema each, used to check a request before
anything is done (400 for a body that is not JSON, 422 for one the schema refuses) and, as they
are, in the OpenAPI document; 413 for one over `MOST_BYTES`. Pure; no I/O.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..errors import TtError

NAME = {"type": "string", "minLength": 1, "maxLength": 63}
MOST_BYTES = 1024 * 1024  # a body beyond is refused (413) before it is all read
FLAG = {"type": "boolean"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "NewTask": {
        "type": "object",
        "description": "A task appended to tasks.toml and applied (as `tt assign`).",
        "additionalProperties": False,
        "required": ["agent", "description"],
        "properties": {
            "agent": {**NAME, "description": "An agent, a replica or a pool of town.toml."},
            "description": {
                "type": "string",
                "maxLength": 100_000,
                "description": "What the agent is asked to do.",
            },
            "id": {**NAME, "description": "The task id (default: made from the description)."},
            "after": {**NAME, "description": "Run after this task completed (its parent)."},
            "save": {
                **FLAG,
                "description": "false: in Redis only, tasks.toml untouched (`--no-save`).",
            },
        },
    },
    "Message": {
        "type": "object",
        "description": "A message to an agent's inbox (as `tt send`).",
        "additionalProperties": False,
        "required": ["to", "text"],
        "properties": {
            "to": {**NAME, "description": "An agent, or conductor / supervisor (a person)."},
            "text": {"type": "string", "minLength": 1, "maxLength": 100_000},
            "urgent": {**FLAG, "description": "Delivered before every normal message."},
            "kind": {"enum": ["query", "info", "ack"], "description": "Tinytown's kinds."},
            "from": {**NAME, "description": "The sender (default conductor)."},
        },
    },
    "Apply": {
        "type": "object",
        "description": "An apply of the files (as `tt apply`); every field is optional.",
        "additionalProperties": False,
        "properties": {
            "dry_run": {**FLAG, "description": "Plan only; write nothing."},
            "prune": {**FLAG, "description": "Delete file-owned objects that left the files."},
            "allow_empty": {**FLAG, "description": "Allow deleting every managed object."},
            "rerun_changed": {**FLAG, "description": "Re-run completed tasks whose spec changed."},
        },
    },
}


@cache
def _validator(name: str) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    return jsonschema.Draft202012Validator(SCHEMAS[name])


class BadBody(TtError):
    """A request body that is not JSON (`status` 400) or not of its schema (422)."""

    def __init__(self, message: str, hint: str | None, status: int) -> None:
        super().__init__(message, hint)
        self.status = status


def too_big(size: int) -> BadBody:
    return BadBody(
        f"the request body is over {MOST_BYTES // 1024} KiB ({size} bytes or more)",
        "send less: a task's description is at most 100,000 characters",
        413,
    )


def parse(name: str, raw: bytes) -> dict[str, Any]:
    """The body `raw` checked against `SCHEMAS[name]` (an empty body is `{}`)."""
    if len(raw) > MOST_BYTES:
        raise too_big(len(raw))
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        raise BadBody(f"the request body is not JSON: {e}", "send a JSON object", 400) from None
    except RecursionError:
        raise BadBody(
            "the request body is nested too deeply", "send a flat JSON object", 400
        ) from None
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path
        )
        fields = ", ".join(sorted(SCHEMAS[name].get("properties", {})))
        raise BadBody(f"request body: {where}: {first.message}", f"fields: {fields}", 422)
    assert isinstance(data, dict)
    return data
