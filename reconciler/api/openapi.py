"""`GET /v1/openapi.json`: the OpenAPI 3.1 document of the API, written here by hand (every route,
its parameters, its body's schema from `bodies`, its answers). Shapes are those of the CLI's
`-o json` (README.md), named in each description rather than repeated as schemas.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .bodies import SCHEMAS

ERROR = {
    "description": "An error: the CLI's message and hint.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "hint": {"type": ["string", "null"]}},
            }
        }
    },
}
JSON: dict[str, Any] = {"content": {"application/json": {"schema": {}}}}


def _param(name: str, where: str, what: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": what,
        "schema": {"type": kind},
    }


TASK = _param("id", "path", "The task id.")
# (method, path, summary, parameters, body schema name or None)
ROUTES: tuple[tuple[str, str, str, list[dict[str, Any]], str | None], ...] = (
    ("get", "/v1/town", "The town: `tt status -o json` (`deep=1`: `--deep`).",
     [_param("deep", "query", "Add each agent's attempt and log tail.", "boolean")], None),
    ("get", "/v1/agents", "The agents: `tt list -o json`.", [], None),
    ("get", "/v1/tasks", "The tasks: the `tasks` of `tt status -o json`.", [], None),
    ("post", "/v1/tasks", "Append a task to tasks.toml and apply it (`tt assign`).", [],
     "NewTask"),
    ("get", "/v1/tasks/{id}", "One task with attempts: `tt show -o json`, plus `log_tail`.",
     [TASK, _param("tail", "query", "Lines of the log tail (default 50).", "integer")], None),
    ("post", "/v1/tasks/{id}/retry", "Re-run a failed, completed or cancelled task.", [TASK],
     None),
    ("post", "/v1/tasks/{id}/cancel", "Cancel a task (status = cancelled in tasks.toml).",
     [TASK], None),
    ("post", "/v1/agents/{name}/restart", "Stop an agent's process and start it again.",
     [_param("name", "path", "The agent instance.")], None),
    ("post", "/v1/messages", "Send a message to an agent (`tt send`).", [], "Message"),
    ("get", "/v1/graph", "The task DAG with states: `tt graph -o json`.",
     [_param("counts", "query", "Only `version`, `town`, `counts` and `total` (tasks).",
             "boolean")], None),
    ("get", "/v1/plan", "What an apply would change: `tt plan -o json`.",
     [_param("prune", "query", "Delete what left the files (default true).", "boolean"),
      _param("rerun_changed", "query", "Re-run changed completed tasks.", "boolean")], None),
    ("post", "/v1/apply", "Apply the files: `tt apply -o json`.", [], "Apply"),
    ("get", "/v1/events", "Events: `tt events -o json` as a list.",
     [_param("after", "query", "Only the events after this id."),
      _param("last", "query", "Without `after`: the newest N (default 50).", "integer"),
      _param("agent", "query", "Only this agent's events.")], None),
    ("get", "/v1/events/stream",
     "Server-Sent Events, each as it is written; `id:` is the event id; resume with the "
     "Last-Event-ID header (or `after`); a comment every 5 s keeps the connection open.",
     [_param("after", "query", "Start after this event id."),
      _param("Last-Event-ID", "header", "Start after this event id.")], None),
    ("get", "/v1/openapi.json", "This document.", [], None),
    ("get", "/metrics", "Prometheus metrics (text exposition format).", [], None),
)  # fmt: skip


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, params, body in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "parameters": params,
            "responses": {
                "201" if body in ("NewTask", "Message") else "200": {
                    "description": "OK",
                    **(
                        {"content": {"text/event-stream": {}}}
                        if path.endswith("stream")
                        else {"content": {"text/plain": {}}}
                        if path == "/metrics"
                        else JSON
                    ),
                },
                **{
                    code: ERROR
                    for code in ("400", "401", "403", "404", "405", "409", "413", "422", "503")
                },
            },
        }
        if body is not None:
            op["requestBody"] = {
                "required": body != "Apply",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                },
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tinytown control plane (tt serve)",
            "version": __version__,
            "description": "The town's state and verbs over HTTP; JSON shapes are the CLI's "
            "`-o json`. With a token configured every request needs "
            "`Authorization: Bearer TOKEN`.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }
