"""The store's primitives, the base of every operation mixed into `Store`: Lua scripts from
`store/lua` (the shared `LIBRARY` prepended), writes that are not scripts (MULTI/EXEC), events.

A store that acts as leader (`fence`) has every write refused once a newer leader holds the
town (`LeaderFenced`). No module of the store but `client` imports redis; `client` also
translates every error of redis-py raised by a public operation (`Store`'s guard), so these
modules neither import nor sort redis' exceptions, but for those they name (`errors`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import LeaderFenced
from .keys import Keys

LUA_DIR = Path(__file__).parent / "lua"
EVENTS_MAXLEN = 10000
FENCED_REPLY = "TTFENCED"  # lib.lua's refusal of a stale leader epoch
# Scripts any process runs whoever leads: taking the lease itself, and the apply lock's own
# compare-and-set (a deposed leader must still release the lock it holds).
UNFENCED = frozenset({"leader", "unlock", "take_over_lock"})


def fenced(detail: str) -> LeaderFenced:
    return LeaderFenced(
        f"a newer leader holds the town: {detail}",
        hint="another `tt watch`/`tt conductor` took over; this one stands by",
    )


# The shared functions, prepended to every script in this order (each uses those before it):
# keys and events, readiness (`run_if`, the release cascade), attempts.
LIBRARY = ("lib", "ready", "attempts")
# Scripts that also need the provider pauses and budgets (`lua/limits_lib.lua`, after those).
WITH_LIMITS = frozenset({"turn", "budgets", "resume_provider"})


@cache
def lua_source(name: str) -> str:
    parts = [*LIBRARY, *(["limits_lib"] if name in WITH_LIMITS else []), name]
    return "\n".join((LUA_DIR / f"{part}.lua").read_text() for part in parts)


@dataclass(frozen=True)
class ErrorTypes:
    """The redis-py exceptions an operation handles itself, given by `client` (the door)."""

    watch: type[Exception]  # a WATCHed key moved: the MULTI did not run
    response: type[Exception]  # the server refused one command
    no_script: type[Exception]  # that refusal: EVALSHA of a script the server has not loaded


class Scripted:
    client: Any
    blocking: Any
    keys: Keys
    url: str
    errors: ErrorTypes
    _scripts: dict[str, Any]
    # A Redis Cluster's client (redis-py's): it has no one connection pool, so what would send
    # on a connection of its own (`Lane`, batches in flight) runs command by command instead.
    cluster: bool = False
    # '' = unfenced; 'e:N' = this store writes as the leader of epoch N (see lua/lib.lua). Set by
    # the loop from `hold_leader` at each step, cleared when it does not lead.
    fence: str = ""

    def _script(self, name: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(lua_source(name))
        return script

    @contextmanager
    def _writes(self) -> Iterator[Any]:
        """A MULTI/EXEC pipeline for writes that are not scripts. A store writing as the leader
        (`fence`) WATCHes the leader epoch: they commit only while it is still its own, else
        `LeaderFenced` and nothing is written (what lib.lua does for the scripts)."""
        with self.client.pipeline(transaction=True) as pipe:
            if self.fence:
                pipe.watch(self.keys.leader_epoch)
                epoch = pipe.get(self.keys.leader_epoch) or "0"
                if self.fence != f"e:{epoch}":
                    raise fenced(f"{self.fence} is no longer the leader epoch (e:{epoch})")
                pipe.multi()
            yield pipe
            try:
                pipe.execute()
            except self.errors.watch as e:  # the epoch moved under the writes
                raise fenced(f"{self.fence}: the leader epoch moved") from e

    def check_fence(self) -> None:
        """`LeaderFenced` unless this store's fence is still the leader epoch: a leader looks
        again before an act outside Redis (a push, a move of base) that no script can fence."""
        if self.fence:
            epoch = self.client.get(self.keys.leader_epoch) or "0"
            if self.fence != f"e:{epoch}":
                raise fenced(f"{self.fence} is no longer the leader epoch (e:{epoch})")

    def _run(self, name: str, *args: object) -> Any:
        fence = "" if name in UNFENCED else self.fence
        argv = [self.keys.prefix, repr(time.time()), fence, *args]
        return self._script(name)(keys=[self.keys.meta], args=argv)

    # -- events ----------------------------------------------------------------------------------
    def event(self, etype: str, **fields: str) -> None:
        self._xadd(self.client, etype, **fields)

    def _xadd(self, target: Any, etype: str, **fields: str) -> None:
        body = {"type": etype, "ts": repr(time.time()), **fields}
        target.xadd(self.keys.events, body, maxlen=EVENTS_MAXLEN, approximate=True)
