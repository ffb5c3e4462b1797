"""`GET /v1/events/stream`: the town's events as Server-Sent Events, each as it lands in the
Redis stream. `id:` is the stream id, so a client that reconnects with `Last-Event-ID` (or
`?after=ID`) resumes right after the last event it got: nothing lost, nothing twice. A blocking
XREAD (through the store) runs in a worker thread; a comment goes out whenever nothing came for
`BLOCK_MS`, so proxies keep the connection open and a gone client is noticed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..control.session import Session
from ..control.townops import EVENT_ID
from ..errors import TtError
from ..spec.events import event_json

BLOCK_MS = 5000  # the longest XREAD wait, and so the heartbeat interval
BATCH = 500


def frame(event_id: str, fields: dict[str, str]) -> str:
    """One SSE message: `id:` the stream id, `data:` the event's JSON (`tt events -o json`)."""
    return f"id: {event_id}\ndata: {json.dumps(event_json(event_id, fields))}\n\n"


def endpoint(fresh: Callable[[], Session]) -> Callable[[Request], Response]:
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
            while True:  # until the client goes: the response then cancels this
                got = await run_in_threadpool(store.events_since, cursor, BATCH, BLOCK_MS)
                if not got:
                    yield ": keep-alive\n\n"
                    continue
                cursor = got[-1][0]
                yield "".join(frame(i, f) for i, f in got)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return stream
