"""The town-wide switches and read-outs mixed into `Store`: suspend and resume (no agent claims a
task while suspended: lua/lib.lua's `suspended`), the tasks counted by state, and the health the
reconcile loop saw last. No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

from .scripts import Scripted


class SuspendOps(Scripted):
    def set_suspended(self, on: bool, by: str) -> bool:
        """Suspend (`on`) or resume the town; resuming puts the tasks agents popped meanwhile
        back at the head of their queues. True when the town changed (an event says so)."""
        return bool(self._run("suspend", "1" if on else "0", by))

    def is_suspended(self) -> bool:
        return self.client.get(self.keys.suspended) is not None

    def parked_ids(self) -> list[str]:
        """The ready tasks agents popped while suspended, in the order they were taken."""
        return [str(i) for i in self.client.lrange(self.keys.parked, 0, -1)]

    def state_counts(self) -> dict[str, int]:
        """How many tasks are in each state (one script: the tasks are not sent over)."""
        flat = self._run("state_counts")
        return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def swap_health(self, value: str) -> str | None:
        """Record the town's health (`value`) and return the one recorded before, if any."""
        old = self.client.execute_command("GETSET", self.keys.health, value)
        return None if old is None else str(old)
