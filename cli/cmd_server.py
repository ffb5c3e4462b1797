"""`tt server start|status|stop`: the town's embedded Valkey server, or a word on an external one.

The loader and store are imported inside the commands: `tt --help` must not pay for them.
"""

from __future__ import annotations

import click

from reconciler import server
from reconciler.spec.durations import format_duration
from reconciler.town import TownPaths

from .common import echo, emit_json, output_option, resolve_town, town_option


def register(group: click.Group) -> None:
    group.add_command(server_group)


@click.group("server")
def server_group() -> None:
    """The town's embedded Valkey server (town.toml: redis = "embedded")."""


def _external_url(paths: TownPaths) -> tuple[str, str] | None:
    """(town name, URL) when the town uses a Redis of its own choosing, else None."""
    from reconciler.spec.loader import load_settings
    from reconciler.store.client import configured, is_embedded

    settings = load_settings(paths)
    if is_embedded(settings.redis, paths):
        return None
    return settings.name, configured(settings.redis)


@server_group.command("start")
@town_option
@output_option
def start(town_dir: str | None, output: str) -> None:
    """Start the town's server unless it runs already (every tt command does this anyway)."""
    from reconciler.errors import mask_url

    paths = resolve_town(town_dir)
    external = _external_url(paths)
    if external is not None:
        name, url = external
        if output == "json":
            emit_json({"external": True, "url": mask_url(url), "started": False})
        else:
            echo(f"town '{name}' uses the external Redis at {mask_url(url)}; nothing to start")
        return
    was_running = server.is_running(paths)
    server.ensure_running(paths)
    st = server.status(paths)
    if output == "json":
        emit_json({"external": False, "started": not was_running, **(st.as_dict() if st else {})})
        return
    verb = "already running" if was_running else "started"
    pid = f" (pid {st.pid})" if st else ""
    echo(f"server {verb}{pid} on {server.socket_path(paths)}")


@server_group.command("status")
@town_option
@output_option
def status(town_dir: str | None, output: str) -> None:
    """Pid, socket, version, memory and uptime of the town's server (exit 0 when stopped)."""
    paths = resolve_town(town_dir)
    external = _external_url(paths)
    if external is not None:
        _external_status(*external, output)
        return
    st = server.status(paths)
    if st is None:
        if output == "json":
            emit_json(
                {
                    "external": False,
                    "running": False,
                    "socket": str(server.socket_path(paths)),
                    "url": server.url(paths),
                }
            )
        else:
            echo(f"not running (socket {server.socket_path(paths)})")
        return
    if output == "json":
        emit_json({"external": False, "running": True, **st.as_dict()})
        return
    rows = [
        ("state", "loading data" if st.loading else "running"),
        ("pid", str(st.pid)),
        ("socket", st.socket),
        ("version", f"{st.server} {st.version}"),
        ("memory", st.used_memory_human),
        ("uptime", format_duration(st.uptime_seconds)),
        ("data", st.data_dir),
    ]
    for key, value in rows:
        echo(f"{key + ':':<9}{value}")


def _external_status(name: str, url: str, output: str) -> None:
    from reconciler.errors import mask_url
    from reconciler.store.client import Store

    with Store.open(url, name) as store:  # raises RedisUnavailable (exit 1) when unreachable
        info = store.server_info()
    version = info.get("valkey_version") or info.get("redis_version", "?")
    kind = info.get("server_name", "redis")
    if output == "json":
        emit_json(
            {
                "external": True,
                "running": True,
                "url": mask_url(url),
                "server": kind,
                "version": str(version),
                "used_memory": info.get("used_memory"),
                "used_memory_human": info.get("used_memory_human"),
                "uptime_seconds": info.get("uptime_in_seconds"),
            }
        )
        return
    uptime = format_duration(int(info.get("uptime_in_seconds", 0)))
    echo(
        f"town '{name}' uses the external Redis at {mask_url(url)}: reachable, {kind} {version}, "
        f"memory {info.get('used_memory_human', '?')}, up {uptime}"
    )


@server_group.command("stop")
@town_option
@output_option
@click.option(
    "--timeout",
    type=float,
    default=server.STOP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the server to exit.",
)
def stop(town_dir: str | None, output: str, timeout: float) -> None:
    """Stop the town's server (its data stays in .tt/data; agents lose their connection)."""
    from reconciler.errors import mask_url

    paths = resolve_town(town_dir)
    external = _external_url(paths)
    if external is not None:
        name, url = external
        if output == "json":
            emit_json({"external": True, "url": mask_url(url), "stopped": False})
        else:
            echo(f"town '{name}' uses the external Redis at {mask_url(url)}; nothing to stop")
        return
    stopped = server.stop(paths, timeout)
    if output == "json":
        emit_json({"external": False, "stopped": stopped})
    else:
        echo("server stopped" if stopped else "server was not running")
