"""What the reconcile loop tells of the town as a whole: its health, recorded in Redis and written
as a `town.health` event only when it changes (`plan/health.py` rolls it up), and a suspension's
held plan, said once per plan. Kept out of loop.py, which calls it after its passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..plan.health import Health
from ..spec.desired import Desired
from ..store.client import Store
from .report import health_report

HEALTH_EVENT = "town.health"
# The health is read again once an event was written since the last read (a task or an agent
# moved), at most every `HEALTH_EVERY` seconds, and every `HEALTH_RESYNC` seconds anyway.
HEALTH_EVERY = 1.0
HEALTH_RESYNC = 30.0

Report = Callable[[str, dict[str, str]], None]


class TownWatch:
    def __init__(self, report: Report, clock: Callable[[], float] = time.monotonic) -> None:
        self.report, self.clock = report, clock
        self.checked = float("-inf")
        self.last_event = ""  # the newest event when the health was last read
        self.told_held: str | None = None  # the held plan said last, while suspended
        self.counts: dict[str, int] | None = None  # the tasks by state, as last read (a new dict)

    def held(self, summary: str) -> None:
        """An apply found the town suspended and applied nothing of its plan (`summary`)."""
        if summary != self.told_held:
            self.told_held = summary
            self.report("suspended", {"detail": f"town suspended; not applied: {summary}"})

    def check(self, store: Store, desired: Desired | None) -> Health | None:
        """Read the health when due and record it; on a change, a `town.health` event. Returns
        the health read, None when not due."""
        now = self.clock()
        since = now - self.checked
        if since < HEALTH_EVERY:
            return None
        last = store.last_event_id()
        if last == self.last_event and since < HEALTH_RESYNC:
            return None
        self.checked, self.last_event = now, last
        self.counts = store.state_counts()  # (the notifier's `town.completed` reads them too)
        health = health_report(store, desired, counts=self.counts)
        if health.state.value != "suspended":
            self.told_held = None
        value = json.dumps(health.as_json())
        old = store.swap_health(value)
        if old != value:
            was = str(json.loads(old).get("state", "")) if old else ""
            store.event(
                HEALTH_EVENT,
                state=health.state.value,
                reasons="; ".join(health.reasons),
                was=was,
            )
        return health
