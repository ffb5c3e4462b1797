"""Every Redis key name Tinytown uses, in one place.

All keys of a town share the hash tag `{TOWN}` so multi-key Lua scripts work on Redis Cluster.
Names reaching this module were validated (`names.is_valid_name`); nothing else builds keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """The Redis key names of one town, all in its hash slot (`tt:{TOWN}:...`)."""

    town: str

    @property
    def prefix(self) -> str:
        return f"tt:{{{self.town}}}:"

    def _k(self, suffix: str) -> str:
        return self.prefix + suffix

    @property
    def meta(self) -> str:
        """Hash: schema version, applied file digests, generation; the applied and the newest
        attempted revision (JSON, `revision`, `attempted_revision`); `follow` (the branch the
        town follows, if any); while an apply writes its batches, `upsert_chain` (the last
        that ran, `tasks.CHAIN`; left by an apply that failed, until the next one ends)."""
        return self._k("meta")

    @property
    def history(self) -> str:
        """List of JSON records of the last applies that changed something or failed, newest
        first, capped (`store/revisions.py`)."""
        return self._k("history")

    @property
    def source(self) -> str:
        """Hash: where the town is managed from (its source's key and how to show it) and the
        folders found to be that source (`control/identity.py`)."""
        return self._k("source")

    @property
    def agents(self) -> str:
        """Set of agent instance names known to Redis."""
        return self._k("agents")

    def agent(self, name: str) -> str:
        return self._k(f"agent:{name}")

    def heartbeat(self, name: str) -> str:
        return self._k(f"hb:{name}")

    @property
    def nodes(self) -> str:
        """Set of node names that ever registered (`tt node run`; `store/nodes.py`)."""
        return self._k("nodes")

    def node(self, name: str) -> str:
        """Hash: a node's record (host, pid, instance, version, slots, labels, state...)."""
        return self._k(f"node:{name}")

    @property
    def roster(self) -> str:
        """Hash: the roster the last apply ran by (`json`: spec/rosterjson.py, `digest`), for
        a node without the town's files (`tt node run --redis URL --town-name T`)."""
        return self._k("roster")

    def node_lease(self, name: str) -> str:
        """String: the node process's instance token while its lease lives (`SET PX`)."""
        return self._k(f"nodehb:{name}")

    def node_agents(self, name: str) -> str:
        """Set: the agents whose record names node `name` (kept by a start's claim, the
        worker's registration and forget): what its node process reads, not every agent."""
        return self._k(f"nodeagents:{name}")

    @property
    def placement(self) -> str:
        """Hash: agent instance → the node the leader placed it on (`control/placing.py`)."""
        return self._k("placement")

    @property
    def unplaced(self) -> str:
        """Hash: agent instance → why the leader found no node for it (unschedulable)."""
        return self._k("unplaced")

    @property
    def tasks(self) -> str:
        """Sorted set of task ids, scored by file order."""
        return self._k("tasks")

    def task(self, task_id: str) -> str:
        return self._k(f"task:{task_id}")

    def children(self, task_id: str) -> str:
        """Set of ids that wait for this task (dependents released on completion)."""
        return self._k(f"children:{task_id}")

    def held(self, task_id: str) -> str:
        """Set: the ready tasks held back while this one runs or goes first, as their `touches`
        overlap its own (lua/lib.lua `hold`, `wake`)."""
        return self._k(f"held:{task_id}")

    def queue(self, target: str) -> str:
        """List of ready task ids: an agent name, `@pool` or `%role`, or `*backlog`."""
        return self._k(f"queue:{target}")

    def inbox(self, agent: str) -> str:
        return self._k(f"inbox:{agent}")

    def urgent(self, agent: str) -> str:
        return self._k(f"urgent:{agent}")

    def control(self, agent: str) -> str:
        """List an agent blocks on with its queues: `drain` / `stop` requests wake it at once."""
        return self._k(f"ctl:{agent}")

    def seen(self, agent: str) -> str:
        """Messages an agent has read (capped), so nothing sent is ever dropped unseen."""
        return self._k(f"seen:{agent}")

    def bell(self, agent: str) -> str:
        """List an idle agent blocks on (with its queues) for mail: `send` rings it (one entry
        at most); the messages stay in their mailboxes until the agent takes them."""
        return self._k(f"bell:{agent}")

    def answering(self, agent: str) -> str:
        """Messages an agent took to answer and has not answered yet: moved here from its
        mailboxes atomically and dropped when the answer is sent, so an agent that dies
        mid-answer leaves them for its next process (and `tt inbox` still shows them)."""
        return self._k(f"answering:{agent}")

    @property
    def merge_queue(self) -> str:
        """List of task ids waiting to be merged into base, in completion order."""
        return self._k("mergeq")

    @property
    def timers(self) -> str:
        """Sorted set of retrying task ids by the time their backoff ends."""
        return self._k("timers")

    @property
    def events(self) -> str:
        return self._k("events")

    @property
    def leader(self) -> str:
        return self._k("leader")

    @property
    def leader_epoch(self) -> str:
        """Counter bumped on every change of leader (fences a deposed leader's writes)."""
        return self._k("leader:epoch")

    @property
    def slot_probe(self) -> str:
        """A key never written: every script reads it first (lib.lua), so a cluster node whose
        slot is migrating away refuses the script before it writes anything."""
        return self._k("slot-probe")

    @property
    def apply_lock(self) -> str:
        return self._k("lock:apply")

    def attempts(self, task_id: str) -> str:
        """List of JSON attempt records (every error kept)."""
        return self._k(f"attempts:{task_id}")

    @property
    def deleted(self) -> str:
        """Sorted set of tombstoned task ids by the time they were pruned (`keep_deleted`)."""
        return self._k("deleted")

    def tombstone(self, task_id: str) -> str:
        """A pruned task's hash (`task:ID` renamed, so no queue, count or script sees it)."""
        return self._k(f"deleted:{task_id}")

    def tombstone_attempts(self, task_id: str) -> str:
        """A pruned task's attempt history (`attempts:ID` renamed)."""
        return self._k(f"deleted-attempts:{task_id}")

    @property
    def suspended(self) -> str:
        """String (when it was suspended), present while the town is suspended: no claims."""
        return self._k("suspended")

    @property
    def parked(self) -> str:
        """List of ready task ids agents popped while the town was suspended (back on resume)."""
        return self._k("parked")

    @property
    def notify(self) -> str:
        """Hash: each `[[notify]]` rule's key → the id of the last event it passed (its delivery
        cursor, `store/notifications.py`)."""
        return self._k("notify")

    @property
    def completed(self) -> str:
        """String, present while every task is final: a digest of the task ids and final states
        `town.completed` was written for (lua/town_completed.lua)."""
        return self._k("completed")

    @property
    def health(self) -> str:
        """String: the town's health the reconcile loop saw last (JSON), to event its changes."""
        return self._k("health")

    # -- provider pauses and budgets (lua/limits_lib.lua) -----------------------------------
    @property
    def pauses(self) -> str:
        """Hash: provider -> JSON {until, reason, class, since} of its pause (a usage or rate
        limit): no agent of that provider claims a task until then."""
        return self._k("pauses")

    @property
    def limit_backoff(self) -> str:
        """Hash: provider -> how many limits in a row named no reset (a success deletes it)."""
        return self._k("limit-backoff")

    @property
    def budgets(self) -> str:
        """Hash: the budgets apply wrote: `town`, `agent:ENTRY` (USD), `hard` ('1')."""
        return self._k("budgets")

    @property
    def spent(self) -> str:
        """Hash: USD of the attempts recorded, by `town`, `agent:ENTRY`, `task:ID`, and
        `counted:ID` (the last attempt of ID counted)."""
        return self._k("spent")

    @property
    def exhausted(self) -> str:
        """Hash: budget scope (`town`, `agent:ENTRY`, `task:ID`) -> when it was reached."""
        return self._k("exhausted")

    @property
    def budget_wait(self) -> str:
        """Set of tasks waiting for their own max_cost_usd to be raised (retrying, no timer)."""
        return self._k("budget-wait")
