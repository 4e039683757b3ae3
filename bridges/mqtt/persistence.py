"""What the embedded broker keeps across restarts: retained messages and persistent sessions.

The broker records what changed (:class:`BrokerChanges`) and hands it, in
batches, to a :class:`BrokerStateStore` (the hub's SQLite store); at start it
reads :class:`BrokerState` back. A session's queue is written as a difference
(messages added, a sequence number below which they are gone), so a write
costs what changed, not the whole queue. A persistent session is one whose client
connected with clean_session=false: its subscriptions and the QoS 1/2
messages queued for it while it was away (already bounded per session).
Messages in flight to a connected client (sent, not yet acknowledged) are not
kept: amqtt does not re-send them after a reconnect either.

Not amqtt's contrib session plugin: it keeps a database of its own and, by
default, deletes it on a graceful shutdown; this state belongs with the rest of
the hub's in one SQLite file, written in the hub's batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Protocol

__all__ = [
    "BrokerChanges",
    "BrokerState",
    "BrokerStateStore",
    "QueuedMessage",
    "RetainedMessage",
    "SessionRecord",
    "SessionUpdate",
    "queued_from_row",
    "session_from_json",
    "session_to_json",
]


@dataclass(frozen=True, slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    #: Increases with every message the broker queues (for any session), across restarts.
    seq: int
    topic: str
    payload: bytes
    qos: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    client_id: str
    username: str | None
    #: (topic filter, granted QoS), in the order they were granted.
    subscriptions: tuple[tuple[str, int], ...]
    #: Messages waiting for the client, oldest first.
    queued: tuple[QueuedMessage, ...] = ()
    #: When the client went away (seconds since the epoch); None while it was connected.
    disconnected_at: float | None = None


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """A persistent session as it is now, its queue as the difference from what was written before."""

    #: The session; ``queued`` holds only the messages not written yet.
    record: SessionRecord
    #: Written messages with a lower ``seq`` are gone (delivered or dropped); None: all of them are.
    first_kept: int | None

    def after(self, older: SessionUpdate) -> SessionUpdate:
        """This update together with an ``older`` one that was never written."""
        kept = tuple(m for m in older.record.queued if self.first_kept is not None and m.seq >= self.first_kept)
        return SessionUpdate(replace(self.record, queued=kept + self.record.queued), self.first_kept)


@dataclass(frozen=True, slots=True)
class BrokerState:
    retained: tuple[RetainedMessage, ...] = ()
    sessions: tuple[SessionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerChanges:
    """What to write: by topic and by client id; ``None`` deletes the stored one."""

    retained: dict[str, RetainedMessage | None] = field(default_factory=dict)
    sessions: dict[str, SessionUpdate | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.retained or self.sessions)

    def merge(self, newer: BrokerChanges) -> None:
        """Add ``newer`` changes to these unwritten ones."""
        self.retained.update(newer.retained)
        for client_id, update in newer.sessions.items():
            older = self.sessions.get(client_id)
            self.sessions[client_id] = update.after(older) if update is not None and older is not None else update


class BrokerStateStore(Protocol):
    """Where the broker's state lives (``hub.store.Store``)."""

    def broker_state(self) -> tuple[BrokerState, list[str]]:
        """What was stored, and the keys of rows that no longer decode (skipped)."""
        ...

    def save_broker_changes(self, changes: BrokerChanges) -> None:
        """Write ``changes`` in one transaction; raise on failure (the caller keeps them for the next try)."""
        ...


def session_to_json(record: SessionRecord) -> str:
    """The session without its queue (whose messages are rows of their own)."""
    return json.dumps(
        {
            "username": record.username,
            "subscriptions": [list(pair) for pair in record.subscriptions],
            "disconnected_at": record.disconnected_at,
        },
        separators=(",", ":"),
    )


def session_from_json(client_id: str, text: str, queued: tuple[QueuedMessage, ...] = ()) -> SessionRecord:
    """The stored session with its ``queued`` messages, or ``ValueError`` for a row that does not decode."""
    try:
        data = json.loads(text)
        username = data["username"]
        disconnected_at = data["disconnected_at"]
        subscriptions = tuple((_text(f), _qos(q)) for f, q in data["subscriptions"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"MQTT session {client_id!r}: {exc}") from None
    if username is not None and not isinstance(username, str):
        raise ValueError(f"MQTT session {client_id!r}: username is not text")
    if disconnected_at is not None and not isinstance(disconnected_at, int | float):
        raise ValueError(f"MQTT session {client_id!r}: disconnected_at is not a number")
    return SessionRecord(client_id, username, subscriptions, queued, disconnected_at)


def queued_from_row(seq: object, topic: object, payload: object, qos: object) -> QueuedMessage:
    """A stored queued message, or ``ValueError``."""
    if not isinstance(seq, int) or not isinstance(payload, bytes):
        raise ValueError("a queued message needs an integer seq and a binary payload")
    return QueuedMessage(seq, _text(topic), payload, _qos(qos))


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a topic")
    return value


def _qos(value: object) -> int:
    if value not in (0, 1, 2) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a QoS")
    assert isinstance(value, int)
    return value
