"""Who sends a Redis server its commands, for the scale benchmark: snapshots of one server or of
every primary of a cluster (INFO commands, CPU, memory; CLIENT LIST with each connection's
`tot-cmds`, Valkey 8+), each connection traced to the process that holds its other end through
`ss -p` (a unix socket's peer inode, a TCP connection's port), so a window's commands are split
by role (agents, nodes, leader, the benchmark itself). Reads only; signals nothing.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis


@dataclass
class Snapshot:
    at: float
    commands: int  # total_commands_processed, summed over the servers
    cpu_s: float  # used_cpu_user + used_cpu_sys of the servers
    memory: int  # used_memory of the servers
    by_command: Counter[str]  # calls per command (INFO commandstats)
    per_server: list[int] = field(default_factory=list)  # total_commands_processed of each
    clients: dict[tuple[int, int], tuple[int | None, int]] = field(default_factory=dict)
    # (server index, client id) → (pid of the process at the other end, tot-cmds)


def _users_pid(tokens: list[str]) -> int | None:
    for t in tokens:
        if "pid=" in t:
            return int(t.split("pid=", 1)[1].split(",", 1)[0])
    return None


def socket_owners() -> tuple[dict[str, int], dict[tuple[int, int], int]]:
    """TCP: "ip:port" of a connection's local end → pid. Unix: (server pid, server fd) → the pid
    at the other end (the server's socket names its peer's inode)."""
    out = subprocess.run(
        ["ss", "-xtnpH"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    tcp: dict[str, int] = {}
    inode_pid: dict[int, int] = {}
    server_side: dict[tuple[int, int], int] = {}  # (pid, fd) → peer inode
    for line in out.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        pid = _users_pid(tokens)
        if tokens[0] == "tcp" and pid is not None:
            tcp[tokens[4]] = pid
        elif tokens[0] == "u_str" and len(tokens) >= 8 and pid is not None:
            local, peer = int(tokens[5]), int(tokens[7])
            inode_pid[local] = pid
            fd = next(t for t in tokens if "fd=" in t).split("fd=", 1)[1].split(")", 1)[0]
            server_side[(pid, int(fd))] = peer
    unix = {k: inode_pid[v] for k, v in server_side.items() if v in inode_pid}
    return tcp, unix


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, protocol=2, decode_responses=True, socket_timeout=30)


def snapshot(servers: list[redis.Redis]) -> Snapshot:
    at = time.time()
    commands, memory, cpu = 0, 0, 0.0
    calls: Counter[str] = Counter()
    lists: list[tuple[int, list[dict[str, Any]]]] = []
    per_server = []
    for s in servers:
        info = s.info("everything")
        per_server.append(int(info["total_commands_processed"]))
        commands += per_server[-1]
        memory += int(info["used_memory"])
        cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        for key, value in info.items():
            if key.startswith("cmdstat_") and isinstance(value, dict):
                calls[key.removeprefix("cmdstat_")] += int(value["calls"])
        lists.append((int(info["process_id"]), s.client_list()))
    tcp, unix = socket_owners()
    clients: dict[tuple[int, int], tuple[int | None, int]] = {}
    for i, (server_pid, entries) in enumerate(lists):
        for c in entries:
            addr = str(c.get("addr", ""))
            unix_socket = addr.startswith(("/", "[/"))  # Valkey 9 writes "[/path:0]:0"
            pid = unix.get((server_pid, int(c["fd"]))) if unix_socket else tcp.get(addr)
            clients[(i, int(c["id"]))] = (pid, int(c.get("tot-cmds", 0)))
    return Snapshot(at, commands, cpu, memory, calls, per_server, clients)


def window(
    before: Snapshot, after: Snapshot, role_of: Callable[[int | None], str]
) -> dict[str, Any]:
    """Commands between two snapshots: in all, per second, by role and by command. `closed` is
    the server's count minus the connections' (connections that closed in between, whose
    counts CLIENT LIST no longer shows; a few either way from the snapshots' own commands)."""
    seconds = after.at - before.at
    total = after.commands - before.commands
    by_role: Counter[str] = Counter()
    for key, (pid, cmds) in after.clients.items():
        by_role[role_of(pid)] += cmds - before.clients.get(key, (pid, 0))[1]
    by_role["closed"] = total - sum(by_role.values())
    calls = after.by_command - before.by_command
    mine = by_role.get("bench", 0)
    return {
        "seconds": round(seconds, 2),
        "commands": total,
        "commands_without_bench": total - mine,
        "commands_per_s_without_bench": round((total - mine) / seconds, 1),
        "commands_by_role": dict(sorted(by_role.items())),
        "commands_per_s_by_role": {k: round(v / seconds, 1) for k, v in sorted(by_role.items())},
        "top_commands": dict(calls.most_common(8)),
        "commands_by_server": [
            b - a for a, b in zip(before.per_server, after.per_server, strict=True)
        ],
        "server_cpu_s": round(after.cpu_s - before.cpu_s, 3),
        "server_cpu_percent_of_one_core": round(100 * (after.cpu_s - before.cpu_s) / seconds, 2),
        "server_cpu_us_per_command": round(1e6 * (after.cpu_s - before.cpu_s) / max(total, 1), 2),
        "used_memory_delta_bytes": after.memory - before.memory,
    }
