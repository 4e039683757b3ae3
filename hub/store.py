"""Durable hub state: subscriptions, devices (readings, availability, alerts), unfinished commands,
and the embedded broker's retained messages and persistent MQTT sessions.

SQLite in WAL mode under the state directory, so a restart (even after
SIGKILL) keeps every operator's roster; without it a restarted hub would
answer probes with ``unsubscribed`` and devices would vanish from rosters.
Devices and commands are the core's records (:mod:`hub.core.snapshot`) as
JSON, one row each. Every write is its own committed transaction: with
``synchronous=NORMAL`` a killed process loses nothing that was committed; a
power cut may lose the last few.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from bridges.mqtt.persistence import (
    BrokerChanges,
    BrokerState,
    QueuedMessage,
    RetainedMessage,
    SessionRecord,
    queued_from_row,
    session_from_json,
    session_to_json,
)
from hub.core.snapshot import (
    CommandRecord,
    DeviceRecord,
    DiscoveryRecord,
    OutboxRecord,
    RecordError,
    command_from_json,
    command_to_json,
    device_from_json,
    device_to_json,
    outbox_from_json,
    outbox_to_json,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    device_jid TEXT NOT NULL,
    operator TEXT NOT NULL,
    PRIMARY KEY (device_jid, operator)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    jid TEXT PRIMARY KEY,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    cid TEXT PRIMARY KEY,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS discovery (
    binding TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (binding, topic)
) WITHOUT ROWID;
"""


#: The embedded broker's retained messages and persistent sessions, a queued message per row
#: (``bridges.mqtt.persistence``). Not WITHOUT ROWID: payloads may be large.
_BROKER_SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_retained (
    topic TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_sessions (
    client_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_queued (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_BROKER_SCHEMA)

    @classmethod
    def open_read_only(cls, path: Path) -> Store:
        """The state of a hub that may be running: WAL lets this reader and the hub's writer go on together.

        Never creates or writes anything; ``FileNotFoundError`` if there is no state yet.
        """
        if not path.is_file():
            raise FileNotFoundError(path)
        store = cls.__new__(cls)
        store._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        return store

    def subscriptions(self) -> Iterator[tuple[str, str]]:
        with closing(self._db.execute("SELECT device_jid, operator FROM subscriptions ORDER BY 1, 2")) as rows:
            yield from rows

    def set_subscription(self, device_jid: str, operator: str, present: bool) -> None:
        if present:
            self._db.execute(
                "INSERT OR IGNORE INTO subscriptions (device_jid, operator) VALUES (?, ?)", (device_jid, operator)
            )
        else:
            self._db.execute("DELETE FROM subscriptions WHERE device_jid = ? AND operator = ?", (device_jid, operator))

    def broker_state(self) -> tuple[BrokerState, list[str]]:
        """The embedded broker's retained messages and persistent sessions, and the keys of rows that
        do not decode (skipped)."""
        bad: list[str] = []
        retained: list[RetainedMessage] = []
        with closing(self._db.execute("SELECT topic, payload, qos FROM mqtt_retained ORDER BY topic")) as rows:
            for topic, payload, qos in rows:
                if isinstance(topic, str) and topic and isinstance(payload, bytes) and qos in (0, 1, 2):
                    retained.append(RetainedMessage(topic, payload, qos))
                else:
                    bad.append(f"mqtt_retained:{topic}")
        queued: dict[str, list[QueuedMessage]] = {}
        query = "SELECT client_id, seq, topic, payload, qos FROM mqtt_queued ORDER BY client_id, seq"
        with closing(self._db.execute(query)) as rows:
            for client_id, seq, topic, payload, qos in rows:
                try:
                    queued.setdefault(client_id, []).append(queued_from_row(seq, topic, payload, qos))
                except ValueError:
                    bad.append(f"mqtt_queued:{client_id}:{seq}")
        sessions: list[SessionRecord] = []
        with closing(self._db.execute("SELECT client_id, record FROM mqtt_sessions ORDER BY client_id")) as rows:
            for client_id, text in rows:
                try:
                    sessions.append(session_from_json(client_id, text, tuple(queued.get(client_id, ()))))
                except (ValueError, TypeError):
                    bad.append(f"mqtt_sessions:{client_id}")
        return BrokerState(tuple(retained), tuple(sessions)), bad

    def save_broker_changes(self, changes: BrokerChanges) -> None:
        """Upsert or delete each changed retained topic and session; a session's queue gets its new
        messages and loses those before its first kept one. One transaction."""
        with self._db:
            self._db.execute("BEGIN")
            for topic, message in changes.retained.items():
                if message is None:
                    self._db.execute("DELETE FROM mqtt_retained WHERE topic = ?", (topic,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO mqtt_retained (topic, payload, qos) VALUES (?, ?, ?)",
                        (topic, message.payload, message.qos),
                    )
            for client_id, update in changes.sessions.items():
                if update is None or update.first_kept is None:
                    self._db.execute("DELETE FROM mqtt_queued WHERE client_id = ?", (client_id,))
                else:
                    self._db.execute(
                        "DELETE FROM mqtt_queued WHERE client_id = ? AND seq < ?", (client_id, update.first_kept)
                    )
                if update is None:
                    self._db.execute("DELETE FROM mqtt_sessions WHERE client_id = ?", (client_id,))
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO mqtt_sessions (client_id, record) VALUES (?, ?)",
                    (client_id, session_to_json(update.record)),
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO mqtt_queued (client_id, seq, topic, payload, qos) VALUES (?, ?, ?, ?, ?)",
                    ((client_id, m.seq, m.topic, m.payload, m.qos) for m in update.record.queued),
                )

    def devices(self) -> tuple[list[DeviceRecord], list[str]]:
        """Stored devices, and the keys of rows that do not decode (skipped)."""
        return self._load("SELECT jid, record FROM devices ORDER BY jid", device_from_json)

    def commands(self) -> tuple[list[CommandRecord], list[str]]:
        """Stored unfinished commands, and the keys of rows that do not decode (skipped)."""
        return self._load("SELECT cid, record FROM commands ORDER BY cid", command_from_json)

    def outbox(self) -> tuple[OutboxRecord | None, list[str]]:
        """Chat messages held while XMPP was down, if any were stored (and ``["outbox"]`` if damaged)."""
        found, bad = self._load("SELECT key, value FROM state WHERE key = 'outbox'", outbox_from_json)
        return (found[0] if found else None), bad

    def discovery(self) -> list[DiscoveryRecord]:
        """The discovery messages held at the last save (mappers do not depend on their order)."""
        with closing(self._db.execute("SELECT binding, topic, payload FROM discovery ORDER BY 1, 2")) as rows:
            return [DiscoveryRecord(b, t, bytes(p)) for b, t, p in rows]

    def _load(self, query: str, decode: Callable[[str], T]) -> tuple[list[T], list[str]]:
        good: list[T] = []
        bad: list[str] = []
        with closing(self._db.execute(query)) as rows:
            for key, text in rows:
                try:
                    good.append(decode(text))
                except RecordError:
                    bad.append(key)
        return good, bad

    def save(
        self,
        devices: Iterable[DeviceRecord] = (),
        commands: Iterable[CommandRecord] | None = None,
        outbox: OutboxRecord | None = None,
        discovery: Iterable[DiscoveryRecord] = (),
    ) -> None:
        """Upsert ``devices`` and ``discovery`` (an empty payload deletes); ``commands`` and ``outbox``,
        when given, replace what is stored. One transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO devices (jid, record) VALUES (?, ?)",
                ((d.jid, device_to_json(d)) for d in devices),
            )
            if commands is not None:
                self._db.execute("DELETE FROM commands")
                self._db.executemany(
                    "INSERT INTO commands (cid, record) VALUES (?, ?)",
                    ((c.cid, command_to_json(c)) for c in commands),
                )
            if outbox is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO state (key, value) VALUES ('outbox', ?)", (outbox_to_json(outbox),)
                )
            for entry in discovery:
                if entry.payload:
                    self._db.execute(
                        "INSERT OR REPLACE INTO discovery (binding, topic, payload) VALUES (?, ?, ?)",
                        (entry.binding, entry.topic, entry.payload),
                    )
                else:
                    self._db.execute(
                        "DELETE FROM discovery WHERE binding = ? AND topic = ?", (entry.binding, entry.topic)
                    )

    def close(self) -> None:
        self._db.close()
