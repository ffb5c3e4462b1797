"""One reader of the town's event stream for every open `/v1/events/stream` client: a thread that
blocks on XREAD (at most `BLOCK_MS`, so a stopping server is noticed) and hands each batch to
every client's `Client` inbox, waking its coroutine on the event loop. A client holds no worker
thread and no Redis connection while it waits (anyio has 40 threads for every route), and the
clients are capped (`Full` beyond). The thread runs while there are clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("tt.serve")

Batch = list[tuple[str, dict[str, str]]]

BLOCK_MS = 1000  # the longest XREAD wait: how soon a stopping server or a last client is seen
BATCH = 500
PENDING_MOST = 1000  # batches a client may leave unread; beyond, it is dropped (it resumes)


class EventSource(Protocol):
    def last_event_id(self) -> str: ...

    def events_since(
        self, last_id: str = "-", count: int = 1000, block_ms: int | None = None
    ) -> Batch: ...


class Full(Exception):
    """Every stream the server allows is open."""


class Client:
    """One stream's inbox: batches put by the reader thread, read on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[Batch] = deque()
        self.wake = asyncio.Event()
        self.dropped = False  # it fell `PENDING_MOST` batches behind: its stream ends
        self.error: str | None = None  # the reader failed (Redis gone): its stream ends

    def put(self, batch: Batch | None, error: str | None = None) -> bool:
        """From the reader thread: add `batch` (None: only wake); False once the client has
        fallen too far behind."""
        if batch is not None:
            if len(self.pending) >= PENDING_MOST:
                self.dropped = True
            else:
                self.pending.append(batch)
        if error is not None:
            self.error = error
        with contextlib.suppress(RuntimeError):  # the loop closed (the server stopped)
            self.loop.call_soon_threadsafe(self.wake.set)
        return not self.dropped

    async def take(self, timeout: float) -> list[Batch]:
        """What came (waiting at most `timeout` seconds for something); [] if nothing."""
        if not self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()
        taken = []
        while self.pending:
            taken.append(self.pending.popleft())
        return taken


class Hub:
    """The reader thread and its clients (at most `most`). `source()` gives the store to read;
    `stopping`, set when the server stops, ends the thread and wakes every client."""

    def __init__(
        self, source: Callable[[], EventSource], stopping: threading.Event, most: int
    ) -> None:
        self.source, self.stopping, self.most = source, stopping, most
        self.lock = threading.Lock()
        self.clients: set[Client] = set()
        self.cursor = "0-0"  # the newest id the reader has handed out (or started after)
        self.running = False

    def join(self, loop: asyncio.AbstractEventLoop) -> tuple[Client, str]:
        """A new client, and the id after which the reader hands it every event (the events
        up to it are the client's to read, if it wants older ones). Blocks (Redis): call from
        a worker thread. `Full` when `most` clients are open."""
        with self.lock:
            if len(self.clients) >= self.most:
                raise Full
            if not self.running:
                store = self.source()
                self.cursor = store.last_event_id()
                threading.Thread(
                    target=self._read, args=(store,), name="tt-serve-events", daemon=True
                ).start()
                self.running = True
            client = Client(loop)
            self.clients.add(client)
            return client, self.cursor

    def leave(self, client: Client) -> None:
        with self.lock:
            self.clients.discard(client)

    def _read(self, store: EventSource) -> None:
        error: str | None = None
        while not self.stopping.is_set():
            with self.lock:
                cursor = self.cursor
                if not self.clients:
                    self.running = False
                    return
            try:
                got = store.events_since(cursor, BATCH, BLOCK_MS)
            except Exception as e:  # Redis gone, or any failure: told to the clients
                log.warning("tt serve: reading the event stream failed: %s", e)
                error = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                break
            if not got:
                continue
            with self.lock:
                self.cursor = got[-1][0]
                self.clients = {c for c in self.clients if c.put(got)}
        with self.lock:  # stopping, or failed: every client is told and forgotten
            self.running = False
            for client in self.clients:
                client.put(None, error)
            self.clients.clear()
