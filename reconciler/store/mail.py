"""Agents' mail on Redis, mixed into `store.Store` with the task operations: send, take to answer
(kept in the agent's `answering` list until answered or seen through), answer, peek, and `tt
inbox`'s read. Every take is one script, so a message is never held only in a process's memory.
Like the task operations, this module does not import redis: it uses the client `Store` owns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .scripts import Scripted

SEEN_MAXLEN = 1000
# Tinytown's message kinds (`tt send --query | --info | --ack`), kept on the message.
KINDS = ("query", "info", "ack")
# The person's mailbox has two names (Tinytown's agents write to `supervisor`, its docs read
# `conductor`): both are one list, stored under the first.
PERSON_MAILBOX = "conductor"
PERSON_ALIASES = frozenset({"conductor", "supervisor"})


def mailbox(name: str) -> str:
    """The stored mailbox of `name`: `supervisor` and `conductor` are the same one."""
    return PERSON_MAILBOX if name.lower() in PERSON_ALIASES else name


@dataclass(frozen=True)
class Message:
    """One message in an agent's mailbox (`tt send`)."""

    sender: str
    text: str
    urgent: bool = False
    ts: float = 0.0
    kind: str = ""  # query / info / ack; "" for a plain message (and every one stored before)


def parse_message(raw: str, urgent: bool) -> Message:
    """A message as stored by `tt send` (JSON); a bare string is kept as the text."""
    try:
        data = json.loads(raw)
        kind = str(data.get("kind") or "")
        return Message(
            str(data.get("from", "?")),
            str(data.get("text", "")),
            urgent,
            float(data.get("ts", 0)),
            kind if kind in KINDS else "",
        )
    except (ValueError, AttributeError):
        return Message("?", raw, urgent)


class MailOps(Scripted):
    def send(self, to: str, sender: str, text: str, urgent: bool = False, kind: str = "") -> None:
        if kind and kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        pipe = self.client.pipeline(transaction=True)
        self._post(pipe, to, sender, text, urgent, kind)
        pipe.execute()

    def _post(
        self, pipe: Any, to: str, sender: str, text: str, urgent: bool, kind: str = ""
    ) -> None:
        """Queue a message and ring its agent's bell (kept at one entry) on `pipe`."""
        to = mailbox(to)
        fields: dict[str, Any] = {"from": sender, "text": text, "ts": time.time(), "urgent": urgent}
        if kind:
            fields["kind"] = kind
        body = json.dumps(fields)
        pipe.rpush(self.keys.urgent(to) if urgent else self.keys.inbox(to), body)
        pipe.rpush(self.keys.bell(to), "1")
        pipe.ltrim(self.keys.bell(to), -1, -1)
        extra = {"kind": kind} if kind else {}
        self._xadd(
            pipe, "message.sent", agent=to, sender=sender, urgent="1" if urgent else "0", **extra
        )

    def take_mail(self, agent: str) -> list[tuple[str, Message]]:
        """`lua/take_mail.lua`: move the agent's mail to its `answering` list; returns every
        message it has not answered yet, each with its stored form (for `answer_mail`)."""
        raws = self._run("take_mail", agent, SEEN_MAXLEN, "1")
        return [(str(raw), kept_message(str(raw))) for raw in raws]

    def delivered(self, agent: str, taken: Sequence[str]) -> None:
        """`taken` messages went into a task's prompt and that attempt ran to its end: they are
        no longer the agent's to answer (until then a restarted agent answers them)."""
        if taken:
            with self._writes() as pipe:
                for raw in taken:
                    pipe.lrem(self.keys.answering(agent), 1, raw)

    def answer_mail(self, agent: str, taken: Sequence[str], answer: str) -> None:
        """Send `answer` to each sender of the `taken` messages and drop them from `answering`,
        in one transaction: an agent that dies before this answers them again, never twice."""
        senders = list(dict.fromkeys(kept_message(raw).sender for raw in taken))
        pipe = self.client.pipeline(transaction=True)
        for to in senders:
            self._post(pipe, to, agent, answer, False)
        for raw in taken:
            pipe.lrem(self.keys.answering(agent), 1, raw)
        self._xadd(pipe, "message.answered", agent=agent, to=",".join(senders))
        pipe.execute()

    def unanswered(self, agent: str) -> list[Message]:
        """Messages the agent took to answer and has not answered (it is answering them now, or
        died doing so and its next process will)."""
        raws = self.client.lrange(self.keys.answering(mailbox(agent)), 0, -1)
        return [kept_message(str(raw)) for raw in raws]

    def take_messages(self, agent: str) -> list[Message]:
        """Every pending message, urgent first, read by a person (`tt inbox`): moved to the
        mailbox's `seen` list in one script."""
        raws = self._run("take_mail", mailbox(agent), SEEN_MAXLEN, "0")
        return [kept_message(str(raw)) for raw in raws]

    def peek_messages(self, agent: str) -> list[Message]:
        agent = mailbox(agent)
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(self.keys.urgent(agent), 0, -1)
        pipe.lrange(self.keys.inbox(agent), 0, -1)
        urgent, normal = pipe.execute()
        return [parse_message(raw, True) for raw in urgent] + [
            parse_message(raw, False) for raw in normal
        ]


def kept_message(raw: str) -> Message:
    """A stored message whose mailbox is no longer known: its body says if it was urgent."""
    try:
        urgent = bool(json.loads(raw).get("urgent"))
    except (ValueError, AttributeError):
        urgent = False
    return parse_message(raw, urgent)


def heading(m: Message) -> str:
    """How a message is introduced to its reader (the prompt, `tt inbox`): `URGENT query from
    conductor`; a plain message, `from conductor`."""
    return " ".join(x for x in ("URGENT" if m.urgent else "", m.kind, f"from {m.sender}") if x)
