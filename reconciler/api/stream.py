"""`GET /v1/events/stream`: the town's events as Server-Sent Events, each as it lands in the
Redis stream. `id:` is the stream id, so a client that reconnects with `Last-Event-ID` (or
`?after=ID`) resumes right after the last event it got: nothing lost, nothing twice. A blocking
XREAD (through the store, at most `BLOCK_MS`) runs in a worker thread; a comment goes out when
nothing came for 5 s, so proxies keep the connection open and a gone client is noticed. A
stopping server ends every stream (else uvicorn would wait for them forever).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..control.session import Session
from ..control.townops import EVENT_ID
from ..errors import TtError
from ..spec.events import event_json

BLOCK_MS = 1000  # the longest XREAD wait: how soon a stopping server ends the stream
HEARTBEAT = 5  # XREADs that got nothing before a comment goes out (every 5 s when idle)
BATCH = 500


def frame(event_id: str, fields: dict[str, str]) -> str:
    """One SSE message: `id:` the stream id, `data:` the event's JSON (`tt events -o json`)."""
    return f"id: {event_id}\ndata: {json.dumps(event_json(event_id, fields))}\n\n"


def endpoint(
    fresh: Callable[[], Session], stopping: threading.Event
) -> Callable[[Request], Response]:
    """The stream route; every stream ends once `stopping` is set (the server is stopping)."""

    def stream(request: Request) -> Response:
        after = request.headers.get("last-event-id") or request.query_params.get("after")
        if after is not None and not EVENT_ID.match(after):
            raise TtError(
                f"Last-Event-ID / after = {after[:40]!r} is not an event id",
                hint="an id like 1765100000000-0, as events carry it",
            )
        store = fresh().store
        # From now on when no id is given: the newest id now, so an event written while the
        # client connects is not skipped (XREAD's `$` would skip it).
        cursor = after or store.last_event_id()

        async def events() -> AsyncIterator[str]:
            nonlocal cursor
            yield ": connected\n\n"
            idle = 0
            # Until the server stops, or the client goes (the response then cancels this).
            while not stopping.is_set():
                got = await run_in_threadpool(store.events_since, cursor, BATCH, BLOCK_MS)
                if not got:
                    idle += 1
                    if idle >= HEARTBEAT:
                        idle = 0
                        yield ": keep-alive\n\n"
                    continue
                idle = 0
                cursor = got[-1][0]
                yield "".join(frame(i, f) for i, f in got)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return stream
