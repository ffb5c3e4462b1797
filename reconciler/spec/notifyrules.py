"""`[[notify]]` of town.toml as frozen values: which events a rule tells and to which sink (a
command, a webhook, Slack). Built only by `loader` (`notifycheck`); matching an event is pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0  # seconds one command run or one HTTP request may take
PLACEHOLDERS = ("event", "task", "agent", "summary")  # `{name}` in a command's arguments


class SinkKind(str, Enum):
    COMMAND = "command"
    WEBHOOK = "webhook"
    SLACK = "slack_webhook_env"


@dataclass(frozen=True)
class NotifyRule:
    """One `[[notify]]` of town.toml: which events are told, to a command or a webhook."""

    on: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()  # as written (agent tables)
    instances: frozenset[str] = frozenset()  # `agents` and the replicas of their pools
    command: tuple[str, ...] = ()
    webhook: str | None = None
    secret_env: str | None = None  # names the variable holding the webhook's HMAC secret
    slack_webhook_env: str | None = None  # names the variable holding the Slack URL
    timeout: float = DEFAULT_TIMEOUT
    env: tuple[tuple[str, str], ...] = ()  # a command's own variables (town.toml)
    env_from: tuple[str, ...] = ()  # names a command gets from the watcher's environment

    @property
    def kind(self) -> SinkKind:
        if self.command:
            return SinkKind.COMMAND
        return SinkKind.WEBHOOK if self.webhook is not None else SinkKind.SLACK

    def key(self) -> str:
        """What names the rule in Redis (its delivery cursor): a digest of which events it
        tells to which sink, not how (its timeout, a command's environment). An edited rule is
        a new one; two equal tables are one."""
        said = [self.on, self.tasks, self.agents, self.command, self.webhook, self.secret_env]
        text = json.dumps([*said, self.slack_webhook_env], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def sink_words(self) -> str:
        """The sink for people, with no secret in it: `command notify-send`, `webhook
        https://hooks.example.com/…`, `slack $SLACK_URL`."""
        if self.kind is SinkKind.COMMAND:
            return f"command {self.command[0]}"
        if self.kind is SinkKind.SLACK:
            return f"slack ${self.slack_webhook_env}"
        parts = urlsplit(self.webhook or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"webhook {parts.scheme}://{host}{port}/…"

    def matches(self, fields: dict[str, str]) -> bool:
        """Whether the event (its stream fields) is one this rule tells."""
        if fields.get("type", "") not in self.on:
            return False
        if self.tasks:
            named = {fields.get("task", ""), *fields.get("tasks", "").split(" ")}
            if not named.intersection(self.tasks):
                return False
        return not self.agents or fields.get("agent", "") in self.instances
