"""The `/v1` routes of `tt serve`: each calls one `control.townops` operation (the CLI's `-o json`
shapes) on a fresh `Session` sharing the server's one Redis connection pool, and answers JSON.
A `TtError` becomes `{"error", "hint"}` with the CLI's message and a status by its kind; any
other exception a 500 without a traceback. Routes run in worker threads (the engine blocks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles

from ..control import townops
from ..control.apply import ApplyOptions, Refused
from ..control.followcopy import Following
from ..control.identity import TownClaimed
from ..control.session import Session
from ..errors import (
    Conflict,
    LeaderFenced,
    NotFound,
    RedisUnavailable,
    TtError,
    ValidationFailed,
)
from . import auth, bodies, metrics, openapi, stream

STATIC = Path(__file__).with_name("static")

log = logging.getLogger("tt.serve")

STATUS: tuple[tuple[type[TtError], int], ...] = (
    (bodies.BadBody, 400),  # its own status: 400 or 422
    (NotFound, 404),
    (ValidationFailed, 422),
    (Conflict, 409),
    (Refused, 409),
    (Following, 409),
    (TownClaimed, 409),
    (LeaderFenced, 409),
    (RedisUnavailable, 503),
)


def status_of(error: TtError) -> int:
    if isinstance(error, bodies.BadBody):
        return error.status
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 400  # the engine refused what was asked (bad input), with the CLI's words


def error_response(error: TtError) -> JSONResponse:
    body: dict[str, Any] = {"error": error.message, "hint": error.hint}
    if isinstance(error, ValidationFailed):
        body["problems"] = [p.as_dict() for p in error.problems]
    return JSONResponse(body, status_code=status_of(error))


async def _tt_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TtError)
    return error_response(exc)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("tt serve: %s %s failed", request.method, request.url.path)
    return JSONResponse(
        {"error": f"internal error ({type(exc).__name__})", "hint": "see tt serve's log"},
        status_code=500,
    )


def _int(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise bodies.BadBody(f"{name} = {value[:40]!r} is not a whole number", None, 400)
    return int(value)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value.lower() in ("1", "true", "yes")


async def _body(request: Request, schema: str) -> dict[str, Any]:
    """The request's body, read no further than `bodies.MOST_BYTES` (413 beyond), checked."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > bodies.MOST_BYTES:
        raise bodies.too_big(int(declared))
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > bodies.MOST_BYTES:
            raise bodies.too_big(len(raw))
    return bodies.parse(schema, bytes(raw))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route or file: 404; a method a route does not take:
    405) as JSON, as every other error."""
    assert isinstance(exc, HTTPException)
    hint = (
        "see GET /v1/openapi.json for the routes"
        if request.url.path.startswith("/v1")
        else "the dashboard is at /"
    )
    return JSONResponse(
        {"error": f"{exc.detail}: {request.method} {request.url.path[:200]}", "hint": hint},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def _graph(s: Session, *, counts: bool) -> dict[str, Any]:
    """`tt graph -o json`; with `counts`, only the town, its counts and how many tasks (for
    the dashboard above what it draws: a 10,000-task graph is megabytes)."""
    report = townops.graph(s)
    if not counts:
        return report
    keep = ("version", "town", "counts")
    return {**{k: report[k] for k in keep}, "total": len(report["tasks"])}


def build(base: Session, stopping: threading.Event | None = None) -> Starlette:
    """The app over `base`, the server's session: its store is shared by the fresh session each
    request gets (files are read anew per request, as each `tt` command reads them). `stopping`:
    set when the server stops, it ends the event streams."""

    def fresh() -> Session:
        return base.sharing()

    def read(op: Callable[[Session, Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return JSONResponse(op(fresh(), request))

        return endpoint

    def posted(
        schema: str, op: Callable[[Session, dict[str, Any]], Any], status: int = 200
    ) -> Callable[[Request], Awaitable[Response]]:
        """A write route: its body checked against `schema` (nothing done otherwise), then
        `op(session, body)` in a worker thread."""

        async def endpoint(request: Request) -> Response:
            body = await _body(request, schema)
            done = await run_in_threadpool(op, fresh(), body)
            return JSONResponse(done, status_code=status)

        return endpoint

    def add_task(s: Session, body: dict[str, Any]) -> Any:
        return townops.add_task(
            s,
            body["agent"],
            body["description"],
            task_id=body.get("id"),
            after=body.get("after"),
            save=body.get("save", True),
            opts=ApplyOptions(command="tt serve: POST /v1/tasks"),
        )

    def send(s: Session, body: dict[str, Any]) -> Any:
        return townops.send_message(
            s,
            body["to"],
            body["text"],
            urgent=body.get("urgent", False),
            kind=body.get("kind", ""),
            sender=body.get("from", "conductor"),
        )

    def apply(s: Session, body: dict[str, Any]) -> Any:
        opts = ApplyOptions(
            dry_run=body.get("dry_run", False),
            prune=body.get("prune", True),
            allow_empty=body.get("allow_empty", False),
            rerun_changed=body.get("rerun_changed", False),
            command="tt serve: POST /v1/apply",
        )
        return townops.apply(s, opts)

    def task_op(op: Callable[[Session, str], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return JSONResponse(op(fresh(), request.path_params["id"]))

        return endpoint

    def restart(request: Request) -> Response:
        return JSONResponse(townops.restart_agent(fresh(), request.path_params["name"]))

    def spec(request: Request) -> Response:
        return JSONResponse(openapi.document())

    routes: list[BaseRoute] = [
        Route("/v1/town", read(lambda s, r: townops.town_status(s, deep=_flag(r, "deep", False)))),
        Route("/v1/agents", read(lambda s, r: townops.agents(s))),
        Route("/v1/tasks", read(lambda s, r: townops.tasks(s))),
        Route("/v1/tasks", posted("NewTask", add_task, 201), methods=["POST"]),
        Route(
            "/v1/tasks/{id}",
            read(lambda s, r: townops.task(s, r.path_params["id"], tail=_int(r, "tail", 50) or 0)),
        ),
        Route("/v1/tasks/{id}/retry", task_op(townops.retry), methods=["POST"]),
        Route("/v1/tasks/{id}/cancel", task_op(townops.cancel), methods=["POST"]),
        Route("/v1/agents/{name}/restart", restart, methods=["POST"]),
        Route("/v1/messages", posted("Message", send, 201), methods=["POST"]),
        Route("/v1/graph", read(lambda s, r: _graph(s, counts=_flag(r, "counts", False)))),
        Route(
            "/v1/plan",
            read(
                lambda s, r: townops.plan(
                    s,
                    prune=_flag(r, "prune", True),
                    rerun_changed=_flag(r, "rerun_changed", False),
                )
            ),
        ),
        Route("/v1/apply", posted("Apply", apply), methods=["POST"]),
        Route(
            "/v1/events",
            read(
                lambda s, r: townops.events(
                    s,
                    after=r.query_params.get("after"),
                    last=_int(r, "last", 50),
                    agent=r.query_params.get("agent"),
                )
            ),
        ),
        Route("/v1/events/stream", stream.endpoint(fresh, stopping or threading.Event())),
        Route("/v1/openapi.json", spec),
        Route("/metrics", metrics.endpoint(fresh)),
    ]
    # The dashboard at / (static files shipped in the wheel; no build step, nothing fetched
    # from elsewhere): it reads the town through /v1 like any client. Its files only, each a
    # route of its own: a mount at / would answer every other path (404 for GET /v1/apply
    # rather than 405).
    files = StaticFiles(directory=STATIC, html=True)
    routes += [Route(path, files, methods=["GET", "HEAD"]) for path in sorted(auth.DASHBOARD)]
    app = Starlette(
        routes=routes,
        exception_handlers={TtError: _tt_error, HTTPException: _http_error, Exception: _crash},
    )
    return app
