"""`GET /v1/events/stream`: the town's events as Server-Sent Events, each as it lands in the
Redis stream. `id:` is the stream id, so a client that reconnects with `Last-Event-ID` (or
`?after=ID`) resumes right after the last event it got: nothing lost, nothing twice.

New events come from the server's one reader (`fanout.Hub`); a resuming client first reads what
it missed (in a worker thread, once), then takes the reader's batches. An id older than the
oldest event kept (the stream is capped) gets `event: gap` first, `{"from", "oldest"}`: events
in between are gone; an id newer than the newest starts from the newest. A comment goes out when
nothing came for 5 s, so proxies keep the connection open and a gone client is noticed. A
stopping server, a reader that failed (`event: error`, `{"error"}`) or a client too far behind
ends the stream; `EventSource` then reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..control.session import Session
from ..control.townops import event_key
from ..errors import TtError
from ..spec.events import event_json
from . import fanout

WAIT = 1.0  # seconds a stream waits for the reader before looking at `stopping` again
HEARTBEAT = 5  # waits with nothing before a comment goes out
MOST_STREAMS = 100  # open streams at once; beyond, 503
BATCH = fanout.BATCH


def frame(event_id: str, fields: dict[str, str]) -> str:
    """One SSE message: `id:` the stream id, `data:` the event's JSON (`tt events -o json`)."""
    return f"id: {event_id}\ndata: {json.dumps(event_json(event_id, fields))}\n\n"


def named(kind: str, data: dict[str, str]) -> str:
    """An SSE message of its own type (`event: gap`, `event: error`): no id, so a resume
    starts from the last event."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def endpoint(
    fresh: Callable[[], Session], stopping: threading.Event
) -> Callable[[Request], Awaitable[Response]]:
    """The stream route; every stream ends once `stopping` is set (the server is stopping)."""
    hub = fanout.Hub(lambda: fresh().store, stopping, MOST_STREAMS)

    async def stream(request: Request) -> Response:
        after = request.headers.get("last-event-id") or request.query_params.get("after")
        asked = None if after is None else event_key(after, "Last-Event-ID / after")
        store = fresh().store
        try:
            client, joined = await run_in_threadpool(hub.join, asyncio.get_running_loop())
        except fanout.Full:
            return JSONResponse(
                {
                    "error": f"{MOST_STREAMS} event streams are open already",
                    "hint": "close one, or poll GET /v1/events?after=ID",
                },
                status_code=503,
                headers={"Retry-After": "5"},
            )
        try:
            oldest = await run_in_threadpool(store.events_since, "-", 1)
        except BaseException:
            hub.leave(client)
            raise
        # Where this client stands: after the last event it got, never beyond what the reader
        # hands out (an id from the future, or none: the newest now; an event written while it
        # connects is not skipped, as XREAD's `$` would).
        cursor = joined if asked is None or asked >= event_key(joined) else str(after)
        gap = None
        if asked is not None and asked > (0, 0) and oldest and asked < event_key(oldest[0][0]):
            gap = {"from": str(after), "oldest": oldest[0][0]}

        async def events() -> AsyncIterator[str]:
            nonlocal cursor
            try:
                yield ": connected\n\n"
                if gap is not None:
                    yield named("gap", gap)
                # What it missed, up to where the reader took over.
                while event_key(cursor) < event_key(joined):
                    got = await run_in_threadpool(store.events_since, cursor, BATCH)
                    got = [e for e in got if event_key(e[0]) <= event_key(joined)]
                    if not got:
                        break
                    cursor = got[-1][0]
                    yield "".join(frame(i, f) for i, f in got)
                cursor = max(cursor, joined, key=event_key)
                idle = 0
                while not stopping.is_set():
                    batches = await client.take(WAIT)
                    if client.error is not None:
                        yield named("error", {"error": client.error})
                        return
                    fresh_ones = [
                        e for b in batches for e in b if event_key(e[0]) > event_key(cursor)
                    ]
                    if fresh_ones:
                        idle, cursor = 0, fresh_ones[-1][0]
                        yield "".join(frame(i, f) for i, f in fresh_ones)
                    elif not client.dropped:
                        idle += 1
                        if idle >= HEARTBEAT:
                            idle = 0
                            yield ": keep-alive\n\n"
                    if client.dropped:
                        return  # too far behind: it reconnects and reads what it missed
            except TtError as e:  # Redis gone while it caught up: said, and ended cleanly
                yield named("error", {"error": e.message})
            finally:
                hub.leave(client)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return stream
