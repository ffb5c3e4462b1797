"""Which Redis a process uses: `TT_REDIS_URL` if set, else the town's `redis` value ('embedded'
or a redis://, rediss:// or unix:// URL), checked before anything connects. Reaches no server.
"""

from __future__ import annotations

import os

from ..errors import TtError, mask_url

ENV_URL = "TT_REDIS_URL"
EMBEDDED = "embedded"
SCHEMES = ("redis", "rediss", "unix")


def configured(redis_setting: str) -> str:
    """What this process should use: `TT_REDIS_URL` if set, else the town's `redis` value."""
    value = os.environ.get(ENV_URL, "").strip() or redis_setting.strip()
    scheme, sep, _ = value.partition("://")
    if value != EMBEDDED and (not sep or scheme not in SCHEMES):
        source = ENV_URL if os.environ.get(ENV_URL, "").strip() else "[town] redis"
        raise TtError(
            f"{source} = {mask_url(value)!r} is neither 'embedded' nor a redis://, rediss:// "
            "or unix:// URL",
            hint="e.g. redis://:PASSWORD@HOST:6379/0, or 'embedded' for the town's own server",
        )
    return value
