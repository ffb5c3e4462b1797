"""What the running server says about itself (INFO), for `tt server status` and `tt down`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import RedisUnavailable
from ..town import TownPaths
from .location import socket_path
from .resp import ReplyError, request


@dataclass(frozen=True)
class ServerStatus:
    """What a running embedded server says of itself (`tt server status`)."""

    pid: int
    socket: str
    url: str
    server: str  # "valkey" or "redis" (the PATH fallback)
    version: str
    used_memory: int
    used_memory_human: str
    uptime_seconds: int
    loading: bool
    data_dir: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def status(paths: TownPaths) -> ServerStatus | None:
    """What the running server says about itself (INFO); None when nothing listens."""
    sock = socket_path(paths)
    try:
        text = request(sock, "INFO")
    except ReplyError as e:
        raise RedisUnavailable(f"the town's server on {sock} refuses INFO: {e}") from None
    except OSError as e:
        raise RedisUnavailable(
            f"the town's server does not answer on {sock}: {e.strerror or e}",
            hint="`tt server stop` and retry",
        ) from None
    if text is None:
        return None
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")
    return ServerStatus(
        pid=int(info.get("process_id", "0")),
        socket=str(sock),
        url=f"unix://{sock}",
        server=info.get("server_name", "redis"),
        version=info.get("valkey_version") or info.get("redis_version", "?"),
        used_memory=int(info.get("used_memory", "0")),
        used_memory_human=info.get("used_memory_human", "?"),
        uptime_seconds=int(info.get("uptime_in_seconds", "0")),
        loading=info.get("loading") == "1",
        data_dir=str(paths.data_dir),
    )
