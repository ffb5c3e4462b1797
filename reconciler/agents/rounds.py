"""An agent's round limit (Tinytown's `tt spawn --max-rounds N`, `max_rounds` in town.toml): a
worker process counts the tasks it finished and, after N, exits cleanly, its record saying so.
Whether it starts again is the fleet's call on its `restart` (`control.heal.rounds_spent`).
Pure bookkeeping: no Redis, no processes.
"""

from __future__ import annotations

# The `stopped_by` of a worker that finished its rounds: set by the worker itself, it tells
# this clean exit from a person's stop (no `stopped_by`) and from tt's (a reason).
MAX_ROUNDS = "max_rounds"


class Rounds:
    """The tasks one process of an agent finished, against its limit (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.done = 0

    def finished_one(self) -> bool:
        """Count a task that ran to its end (completed or not); True when that was the last."""
        self.done += 1
        return self.spent

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.done >= self.limit

    def exit_fields(self) -> dict[str, str]:
        """The record fields the worker writes on exit, beyond `state = stopped`."""
        if not self.spent:
            return {}
        reason = f"finished {self.done} task{'s' if self.done != 1 else ''} (max_rounds)"
        return {"stopped_by": MAX_ROUNDS, "reason": reason, "rounds": str(self.done)}

    def exit_reason(self, otherwise: str) -> str:
        """The `agent.exited` event's reason."""
        return MAX_ROUNDS if self.spent else otherwise
