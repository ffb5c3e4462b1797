"""The reconcile loop's event follower (`loop.py`): a thread of its own, on a connection of its
own, reads the town's event stream from where the loop started, reports each event, wakes the
loop on those that call for a pass, and notes `tt down` (another host's) and `tt refresh`.

It only reads: it never writes to Redis nor acts on the town (the loop does, in its passes).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import TtError
from .follow import REFRESH_EVENT
from .outcome import DONE_EVENTS

if TYPE_CHECKING:
    from .loop import Loop

DOWN_EVENT = "town.down"
WAKE_EVENTS = ("agent.exited", "agent.stopped", "task.retrying", "config.changed", "town.adopted")
WAKE_EVENTS_ALL = (*WAKE_EVENTS, DOWN_EVENT, REFRESH_EVENT)


def follow_events(loop: Loop, cursor: str) -> None:
    """Until the loop stops: each event after `cursor` reported, and the loop woken or marked
    down by it."""
    from .session import Session

    # A connection of its own: the main loop's client must not wait behind a blocking read.
    # Opened lazily (and again, if Redis was away at first): the thread must not die of it.
    session = Session(loop.s.paths)
    while not loop.stop.is_set():
        try:
            entries = session.store.events_since(cursor, block_ms=1000)
        except TtError:  # Redis restarting: the main loop reports it; keep following
            loop.stop.wait(0.5)
            continue
        for eid, fields in entries:
            cursor = eid
            loop.report("event", fields)
            loop.follow.heard(etype := fields.get("type", ""))  # `tt refresh`: fetch now
            loop.downed = loop.downed or etype == DOWN_EVENT  # `_is_down` stops the loop
            if etype in WAKE_EVENTS_ALL or (loop.opts.until_done and etype in DONE_EVENTS):
                loop.wake.set()
    with contextlib.suppress(TtError):
        session.close()
