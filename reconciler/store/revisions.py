"""The applied revision, the newest attempted one and the apply history, mixed into `Store`.

Records are JSON made by `control/revision.py`; this module only keeps them: two fields of the
meta hash and a list capped at `HISTORY_MAX`, newest first. Writes go through `_writes`, so a
deposed leader's pass records nothing.
"""

from __future__ import annotations

import json
from typing import Any

from .scripts import Scripted

HISTORY_MAX = 20
REVISION = "revision"
ATTEMPTED = "attempted_revision"
FOLLOW = "follow"  # the branch a town follows (`control/follow.py`)
FOLLOW_STATE = "follow_state"  # where that branch was last seen, and a failing fetch


def _loaded(raw: object) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(str(raw))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class RevisionOps(Scripted):
    def revisions(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
        """(applied revision, newest attempted revision, followed branch), one round trip."""
        applied, attempted, follow = self.client.hmget(self.keys.meta, REVISION, ATTEMPTED, FOLLOW)
        return _loaded(applied), _loaded(attempted), str(follow) if follow else None

    def record_revision(
        self,
        applied: dict[str, Any] | None,
        attempted: dict[str, Any] | None,
        entry: dict[str, Any] | None,
    ) -> None:
        """Store what is given (None: left as it is) in one MULTI: the applied and attempted
        revisions, and `entry` pushed onto the history (trimmed to `HISTORY_MAX`)."""
        fields = {
            name: json.dumps(value, sort_keys=True)
            for name, value in ((REVISION, applied), (ATTEMPTED, attempted))
            if value is not None
        }
        if not fields and entry is None:
            return
        with self._writes() as pipe:
            if fields:
                pipe.hset(self.keys.meta, mapping=fields)
            if entry is not None:
                pipe.lpush(self.keys.history, json.dumps(entry, sort_keys=True))
                pipe.ltrim(self.keys.history, 0, HISTORY_MAX - 1)

    def follow_state(self) -> dict[str, Any] | None:
        return _loaded(self.client.hget(self.keys.meta, FOLLOW_STATE))

    def set_follow(self, follow: str | None, state: dict[str, Any] | None = None) -> None:
        """The followed branch and its state (`follow` None: the town follows none)."""
        with self._writes() as pipe:
            if follow is None:
                pipe.hdel(self.keys.meta, FOLLOW, FOLLOW_STATE)
            else:
                fields = {FOLLOW: follow}
                if state is not None:
                    fields[FOLLOW_STATE] = json.dumps(state, sort_keys=True)
                pipe.hset(self.keys.meta, mapping=fields)

    def history(self) -> list[dict[str, Any]]:
        """The history, newest first (records that do not read as JSON objects left out)."""
        raw = self.client.lrange(self.keys.history, 0, HISTORY_MAX - 1)
        return [r for r in (_loaded(x) for x in raw) if r is not None]
