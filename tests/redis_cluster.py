"""A local Redis Cluster of three primaries, from the embedded server's binary, for the tests that
run tt on a cluster (issue 14, point 5).

`start_cluster(folder)` starts one `valkey-server --cluster-enabled yes` per primary on free
ports of 127.0.0.1, gives each a third of the 16384 slots (CLUSTER ADDSLOTSRANGE), introduces
them (CLUSTER MEET) and waits until every node says `cluster_state:ok` and knows the others.
`LocalCluster.stop` ends the processes by their pids; `restart` starts them again on their ports
(with `persist`, from their append-only files). The test is skipped only when the binary
cannot run in cluster mode (built without it); any other failure to start is an error.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from reconciler.server.binary import find_binary
from reconciler.store.keys import Keys

SLOTS = 16384
READY_TIMEOUT = 20.0
# Keys per MIGRATE in `migrate_slot`. A town's slot moved mid-run is safe when one batch holds
# all its keys (README "Redis Cluster"): between two batches, a script sent on to the importing
# node (ASK) reads the keys still on the other as missing.
MIGRATE_BATCH = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalCluster:
    root: Path
    ports: list[int]
    bus_ports: list[int]  # each node's cluster bus (not port + 10000: both are free ports)
    persist: bool = False
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL of one node, as a user would write it in town.toml: tt finds the others."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, protocol=2, socket_timeout=5)

    def ids(self) -> dict[int, str]:
        """port → node id."""
        out = {}
        for port in self.ports:
            with self.node(port) as r:
                out[port] = str(r.execute_command("CLUSTER MYID"))
        return out

    def owner(self, key: str) -> int:
        """The port of the primary that serves `key`'s slot (CLUSTER KEYSLOT, CLUSTER SLOTS)."""
        with self.node(self.ports[0]) as r:
            slot = int(r.execute_command("CLUSTER KEYSLOT", key))
            for start, end, primary, *_ in r.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise AssertionError(f"no node serves slot {slot}")

    def keys_on(self, port: int) -> list[str]:
        with self.node(port) as r:
            return sorted(str(k) for k in r.scan_iter(count=1000))

    def town_keys(self, town: str) -> dict[int, list[str]]:
        """port → the keys of `town` (`tt:{TOWN}:...`) that node holds, for nodes holding any."""
        prefix = Keys(town).prefix
        found = {p: [k for k in self.keys_on(p) if k.startswith(prefix)] for p in self.ports}
        return {p: keys for p, keys in found.items() if keys}

    def flush(self) -> None:
        """Forget every key (the cluster is the test session's own, shared with no one)."""
        for port in self.ports:
            with self.node(port) as r:
                r.flushall()

    def migrate_slot(
        self,
        key: str,
        to: int,
        while_migrating: Callable[[], object] = lambda: None,
        once_moved: Callable[[], object] = lambda: None,
    ) -> int:
        """Move `key`'s slot, with its keys, to the primary on port `to` the way
        redis-cli --cluster reshard does (IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE), in
        MIGRATE batches of `MIGRATE_BATCH` keys; `while_migrating()` runs with the slot
        MIGRATING, before its keys move, `once_moved()` after they moved, while `to` still
        imports the slot (a client is sent there by ASK). Returns the port it left."""
        source = self.owner(key)
        ids = self.ids()
        with self.node(source) as src, self.node(to) as dst:
            slot = int(src.execute_command("CLUSTER KEYSLOT", key))
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[to])
            while_migrating()
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, MIGRATE_BATCH):
                src.execute_command("MIGRATE", "127.0.0.1", to, "", 0, 5000, "KEYS", *keys)
            once_moved()
            for port in (to, source, *(p for p in self.ports if p not in (to, source))):
                with self.node(port) as r:
                    r.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[to])
        return source

    def stop(self) -> None:
        for proc in self.procs:  # by pid: the processes this cluster started
            if proc.poll() is None:
                proc.terminate()  # a clean shutdown: an append-only file is complete
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop every node, start it again on its port from its nodes.conf (and its data, with
        `persist`), and wait until the cluster is ok again."""
        self.stop()
        self.procs.clear()
        self._launch()
        _wait_answering(self)
        _wait_ok(self)

    def _launch(self) -> None:
        binary = find_binary()
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            folder = self.root / f"node-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "server.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [str(binary), *_config(folder, port, bus, self.persist)],
                        cwd=folder,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )


def start_cluster(root: Path, primaries: int = 3, *, persist: bool = False) -> LocalCluster:
    """`persist`: each node keeps an append-only file, so `restart` keeps the data."""
    ports = [free_port() for _ in range(2 * primaries)]
    cluster = LocalCluster(root, ports[:primaries], ports[primaries:], persist)
    try:
        cluster._launch()
        _wait_answering(cluster)
        share = SLOTS // primaries
        for i, port in enumerate(cluster.ports):
            end = SLOTS - 1 if i == primaries - 1 else (i + 1) * share - 1
            with cluster.node(port) as r:
                r.execute_command("CLUSTER ADDSLOTSRANGE", i * share, end)
                if i:
                    first = ("127.0.0.1", cluster.ports[0], cluster.bus_ports[0])
                    r.execute_command("CLUSTER MEET", *first)
        _wait_ok(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _config(folder: Path, port: int, bus: int, persist: bool) -> list[str]:
    return [
        "--port", str(port),
        "--cluster-port", str(bus),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(folder / "nodes.conf"),
        "--cluster-node-timeout", "5000",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
    ]  # fmt: skip


def _wait_answering(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    for proc, port in zip(cluster.procs, cluster.ports, strict=True):
        while True:
            if proc.poll() is not None:
                log = (cluster.root / f"node-{port}" / "server.log").read_text(errors="replace")
                if "cluster" in log.lower() and "not" in log.lower():
                    pytest.skip(f"the server binary cannot run in cluster mode: {log[-300:]}")
                raise AssertionError(f"node {port} exited: {log[-1000:]}")
            with contextlib.suppress(redis.ConnectionError), cluster.node(port) as r:
                info: dict[str, Any] = r.info("cluster")
                if info.get("cluster_enabled") != 1:
                    pytest.skip("the server binary runs without cluster mode")
                break
            assert time.monotonic() < deadline, f"node {port} does not answer"
            time.sleep(0.02)


def _wait_ok(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        infos = []
        for port in cluster.ports:
            with cluster.node(port) as r:
                infos.append(r.execute_command("CLUSTER INFO"))
        if all(
            i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == len(cluster.ports)
            for i in infos
        ):
            return
        assert time.monotonic() < deadline, f"the cluster is not ok: {infos}"
        time.sleep(0.05)
