"""Agent records on Redis, mixed into `Store`: registration, heartbeat leases, the one live
instance of each agent, compare-and-set deaths and starts (`lua/agent_cas.lua`), stop requests,
and the keys a worker blocks on. No redis import: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .scripts import Scripted


class AgentOps(Scripted):
    def register_agent(self, name: str, fields: dict[str, str]) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.keys.agents, name)
        pipe.hset(self.keys.agent(name), mapping=fields)
        if fields.get("node"):  # the node that started it (its claim indexed it already)
            pipe.sadd(self.keys.node_agents(fields["node"]), name)
        pipe.execute()

    def heartbeat(self, name: str, instance: str, lease: float) -> bool:
        """Renew the lease of `instance` (`lua/heartbeat.lua`); False: it was superseded (the
        record names another instance, or none since its death was recorded): it must stop.
        `lease` 0: only the check, nothing renewed."""
        return bool(self._run("heartbeat", name, instance, str(int(lease * 1000))))

    def set_agent(self, name: str, fields: dict[str, str]) -> None:
        with self._writes() as pipe:
            pipe.hset(self.keys.agent(name), mapping=fields)

    def take_instance(self, name: str, instance: str, lease: float) -> bool:
        """Become the one live process of agent `name`; False if another holds a live lease."""
        return bool(
            self.client.set(self.keys.heartbeat(name), instance, px=int(lease * 1000), nx=True)
        )

    def release_instance(self, name: str, instance: str) -> bool:
        return bool(self._run("release_instance", name, instance))

    def agent_records(self) -> dict[str, dict[str, str]]:
        names = sorted(self.client.smembers(self.keys.agents))
        pipe = self.client.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.agent(n))
        return dict(zip(names, pipe.execute(), strict=True))

    def agent_record(self, name: str) -> dict[str, str]:
        """One agent's record, as `agent_records()` has it ({} when it is not registered)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("SISMEMBER", self.keys.agents, name)  # (the lean client too)
        pipe.hgetall(self.keys.agent(name))
        registered, record = pipe.execute()
        return dict(record) if registered else {}

    def heartbeat_alive(self, names: list[str]) -> dict[str, bool]:
        if not names:
            return {}
        values = self.client.mget([self.keys.heartbeat(n) for n in names])
        return {n: v is not None for n, v in zip(names, values, strict=True)}

    def forget_agent(self, name: str) -> None:
        node = self.client.hget(self.keys.agent(name), "node")
        with self._writes() as pipe:
            pipe.srem(self.keys.agents, name)
            if node:
                pipe.srem(self.keys.node_agents(node), name)
            pipe.delete(self.keys.agent(name), self.keys.heartbeat(name), self.keys.control(name))

    def request_stop(self, name: str, how: str) -> None:
        with self._writes() as pipe:
            pipe.rpush(self.keys.control(name), how)

    # Compare-and-set writes of the fleet (`lua/agent_cas.lua`): each applies only if the record
    # still shows the process the caller read (its spawn id and pid), so of two `tt` processes
    # healing the same dead agent, one records its death and one starts its next process.
    def record_death(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool:
        return self._agent_cas(name, seen.get("spawn", ""), seen.get("pid", ""), fields)

    def claim_start(self, name: str, seen: Mapping[str, str], fields: dict[str, str]) -> bool:
        """Claim the start of agent `name`'s next process (`fields` carry a new spawn id); also
        drop the dead process's heartbeat lease, only if still its own, and stale requests."""
        instance = seen.get("instance", "")
        return self._agent_cas(
            name, seen.get("spawn", ""), seen.get("pid", ""), fields, start=True, instance=instance
        )

    def record_spawn(self, name: str, spawn: str, fields: dict[str, str]) -> bool:
        """The pid of the process started under `spawn`, unless another start claimed it since."""
        return self._agent_cas(name, spawn, "*", fields)

    def _agent_cas(
        self,
        name: str,
        spawn: str,
        pid: str,
        fields: dict[str, str],
        *,
        start: bool = False,
        instance: str = "",
    ) -> bool:
        args = (name, spawn, pid, json.dumps(fields), "1" if start else "0", instance)
        return bool(self._run("agent_cas", *args))

    def queue_keys(self, targets: Sequence[str]) -> list[str]:
        return [self.keys.queue(t) for t in targets]

    def bell_key(self, agent: str) -> str:
        return self.keys.bell(agent)

    def control_key(self, agent: str) -> str:
        return self.keys.control(agent)

    def pop_work(self, keys: Sequence[str], timeout: float) -> tuple[str, str] | None:
        got = self.blocking.blpop(list(keys), timeout=timeout)
        return None if got is None else (str(got[0]), str(got[1]))

    def set_agent_spec(
        self, name: str, *, base: str, spec: str, spec_hash: str, suspended: bool
    ) -> None:
        fields = {
            "base": base,
            "spec": spec,
            "spec_hash": spec_hash,
            "source": "file",
            "suspended": "1" if suspended else "0",
        }
        with self._writes() as pipe:
            pipe.sadd(self.keys.agents, name)
            pipe.hset(self.keys.agent(name), mapping=fields)
            pipe.hsetnx(self.keys.agent(name), "state", "stopped")
