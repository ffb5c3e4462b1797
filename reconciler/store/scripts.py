"""The store's primitives, the base of every operation mixed into `Store`: Lua scripts from
`store/lua` (the shared `lib.lua` prepended), writes that are not scripts (MULTI/EXEC), events.

A store that acts as leader (`fence`) has every write refused once a newer leader holds the
town (`LeaderFenced`). No module of the store but `client` imports redis.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ..errors import LeaderFenced
from .keys import Keys

LUA_DIR = Path(__file__).parent / "lua"
EVENTS_MAXLEN = 10000
FENCED_REPLY = "TTFENCED"  # lib.lua's refusal of a stale leader epoch
# Scripts any process runs whoever leads: taking the lease itself, and the apply lock's own
# compare-and-set (a deposed leader must still release the lock it holds).
UNFENCED = frozenset({"leader", "unlock", "take_over_lock"})

_P = ParamSpec("_P")
_T = TypeVar("_T")


def fencing(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn lib.lua's refusal of a stale fence into `LeaderFenced`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not str(e).startswith(FENCED_REPLY):
                raise
            raise _fenced(str(e)[len(FENCED_REPLY) :].strip()) from e

    return wrapper


def _fenced(detail: str) -> LeaderFenced:
    return LeaderFenced(
        f"a newer leader holds the town: {detail}",
        hint="another `tt watch`/`tt conductor` took over; this one stands by",
    )


@cache
def lua_source(name: str) -> str:
    return (LUA_DIR / "lib.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()


class Scripted:
    client: Any
    blocking: Any
    keys: Keys
    url: str
    _scripts: dict[str, Any]
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
                    raise _fenced(f"{self.fence} is no longer the leader epoch (e:{epoch})")
                pipe.multi()
            yield pipe
            try:
                pipe.execute()
            except Exception as e:  # redis' WatchError: the epoch moved under the writes
                if type(e).__name__ != "WatchError":
                    raise
                raise _fenced(f"{self.fence}: the leader epoch moved") from e

    @fencing
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
