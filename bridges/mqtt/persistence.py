"""What the embedded broker keeps across restarts: retained messages and persistent sessions.

The broker records what changed (:class:`BrokerChanges`) and hands it, in
batches, to a :class:`BrokerStateStore` (the hub's SQLite store); at start it
reads :class:`BrokerState` back. A persistent session is one whose client
connected with clean_session=false: its subscriptions and the QoS 1/2
messages queued for it while it was away (already bounded per session).
Messages in flight to a connected client (sent, not yet acknowledged) are not
kept: amqtt does not re-send them after a reconnect either.

Not amqtt's contrib session plugin: it keeps a database of its own and, by
default, deletes it on a graceful shutdown; this state belongs with the rest of
the hub's in one SQLite file, written in the hub's batches.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "BrokerChanges",
    "BrokerState",
    "BrokerStateStore",
    "QueuedMessage",
    "RetainedMessage",
    "SessionRecord",
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
class BrokerState:
    retained: tuple[RetainedMessage, ...] = ()
    sessions: tuple[SessionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerChanges:
    """What to write: by topic and by client id; ``None`` deletes the stored one."""

    retained: dict[str, RetainedMessage | None] = field(default_factory=dict)
    sessions: dict[str, SessionRecord | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.retained or self.sessions)


class BrokerStateStore(Protocol):
    """Where the broker's state lives (``hub.store.Store``)."""

    def broker_state(self) -> tuple[BrokerState, list[str]]:
        """What was stored, and the keys of rows that no longer decode (skipped)."""
        ...

    def save_broker_changes(self, changes: BrokerChanges) -> None:
        """Write ``changes`` in one transaction; raise on failure (the caller keeps them for the next try)."""
        ...


def session_to_json(record: SessionRecord) -> str:
    return json.dumps(
        {
            "username": record.username,
            "subscriptions": [list(pair) for pair in record.subscriptions],
            "queued": [[m.topic, base64.b64encode(m.payload).decode("ascii"), m.qos] for m in record.queued],
            "disconnected_at": record.disconnected_at,
        },
        separators=(",", ":"),
    )


def session_from_json(client_id: str, text: str) -> SessionRecord:
    """The stored session, or ``ValueError`` for a row that does not decode."""
    try:
        data = json.loads(text)
        username = data["username"]
        disconnected_at = data["disconnected_at"]
        subscriptions = tuple((_text(f), _qos(q)) for f, q in data["subscriptions"])
        queued = tuple(
            QueuedMessage(_text(t), base64.b64decode(p, validate=True), _qos(q)) for t, p, q in data["queued"]
        )
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise ValueError(f"MQTT session {client_id!r}: {exc}") from None
    if username is not None and not isinstance(username, str):
        raise ValueError(f"MQTT session {client_id!r}: username is not text")
    if disconnected_at is not None and not isinstance(disconnected_at, int | float):
        raise ValueError(f"MQTT session {client_id!r}: disconnected_at is not a number")
    return SessionRecord(client_id, username, subscriptions, queued, disconnected_at)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a topic")
    return value


def _qos(value: object) -> int:
    if value not in (0, 1, 2) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a QoS")
    assert isinstance(value, int)
    return value
