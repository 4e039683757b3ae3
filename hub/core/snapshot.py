"""The hub's durable state as plain values, and their JSON form.

The core never writes anything: :meth:`hub.core.hub.Hub.take_changes` hands
out these records for what changed, the app stores them (SQLite, see
``hub/store.py``), and :meth:`hub.core.hub.Hub.restore` takes them back at
start-up. JSON keeps the stored rows readable with the ``sqlite3`` shell and
independent of Python's pickle.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from hub.core.codecs import Reading


@dataclass(frozen=True, slots=True)
class AlertRecord:
    rule: str
    since: float
    last_sent: float
    value: float
    reading: Reading


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What the hub knows about one device: enough to show it and judge its alerts after a restart."""

    jid: str
    binding: str
    device_id: str
    available: bool | None = None
    sleeping: bool = False
    last_live: float | None = None
    offline_since: float | None = None
    readings: tuple[tuple[str, Reading], ...] = ()
    alerts: tuple[AlertRecord, ...] = ()
    #: Whether the embedded broker had a session open for it (None: no broker session seen, e.g. external).
    session: bool | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command the hub accepted and has not finished: sent and unconfirmed, or queued for an offline device."""

    cid: str
    device_jid: str
    operator: str
    summary: str
    sent_at: float
    deadline: float
    topic: str
    payload: bytes
    #: Set while the command waits for its device: when it expires.
    expires: float | None = None
    queued_at: float | None = None
    replace_key: str | None = None
    expect: tuple[tuple[str, Reading], ...] | None = None
    toggle_key: str | None = None
    toggle_from: Reading | None = None


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """Chat messages held while XMPP is down, as ``(sender, to, body)``, and how many did not fit."""

    chats: tuple[tuple[str, str, str], ...] = ()
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class DiscoveryRecord:
    """One discovery message a binding's mapper read; an empty payload means it was withdrawn."""

    binding: str
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Changes:
    """What to write after an event: changed devices, all commands if any changed, the outbox if it changed,
    and the discovery messages that came or went."""

    devices: tuple[DeviceRecord, ...] = ()
    commands: tuple[CommandRecord, ...] | None = None
    outbox: OutboxRecord | None = None
    discovery: tuple[DiscoveryRecord, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.devices) or self.commands is not None or self.outbox is not None or bool(self.discovery)


class RecordError(ValueError):
    """A stored row that does not decode (written by another version, or damaged)."""


def _reading(value: Any) -> Reading:
    if isinstance(value, bool | int | float | str):
        return value
    raise RecordError(f"{value!r} is not a reading")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def device_to_json(record: DeviceRecord) -> str:
    return json.dumps(
        {
            "jid": record.jid,
            "binding": record.binding,
            "device_id": record.device_id,
            "available": record.available,
            "sleeping": record.sleeping,
            "last_live": record.last_live,
            "offline_since": record.offline_since,
            "readings": dict(record.readings),
            "alerts": [[a.rule, a.since, a.last_sent, a.value, a.reading] for a in record.alerts],
            "session": record.session,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def device_from_json(text: str) -> DeviceRecord:
    try:
        data = json.loads(text)
        available = data["available"]
        session = data.get("session")
        return DeviceRecord(
            jid=str(data["jid"]),
            binding=str(data["binding"]),
            device_id=str(data["device_id"]),
            available=None if available is None else bool(available),
            sleeping=bool(data["sleeping"]),
            last_live=_opt_float(data["last_live"]),
            offline_since=_opt_float(data["offline_since"]),
            readings=tuple((str(k), _reading(v)) for k, v in data["readings"].items()),
            alerts=tuple(
                AlertRecord(str(rule), float(since), float(last), float(value), _reading(reading))
                for rule, since, last, value, reading in data["alerts"]
            ),
            session=None if session is None else bool(session),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"bad device record: {exc}") from None


def command_to_json(record: CommandRecord) -> str:
    return json.dumps(
        {
            "cid": record.cid,
            "device_jid": record.device_jid,
            "operator": record.operator,
            "summary": record.summary,
            "sent_at": record.sent_at,
            "deadline": record.deadline,
            "topic": record.topic,
            "payload": base64.b64encode(record.payload).decode("ascii"),
            "expires": record.expires,
            "queued_at": record.queued_at,
            "replace_key": record.replace_key,
            "expect": None if record.expect is None else dict(record.expect),
            "toggle_key": record.toggle_key,
            "toggle_from": record.toggle_from,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def command_from_json(text: str) -> CommandRecord:
    try:
        data = json.loads(text)
        expect = data["expect"]
        toggle_from = data["toggle_from"]
        return CommandRecord(
            cid=str(data["cid"]),
            device_jid=str(data["device_jid"]),
            operator=str(data["operator"]),
            summary=str(data["summary"]),
            sent_at=float(data["sent_at"]),
            deadline=float(data["deadline"]),
            topic=str(data["topic"]),
            payload=base64.b64decode(data["payload"], validate=True),
            expires=_opt_float(data["expires"]),
            queued_at=_opt_float(data["queued_at"]),
            replace_key=None if data["replace_key"] is None else str(data["replace_key"]),
            expect=None if expect is None else tuple((str(k), _reading(v)) for k, v in expect.items()),
            toggle_key=None if data["toggle_key"] is None else str(data["toggle_key"]),
            toggle_from=None if toggle_from is None else _reading(toggle_from),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"bad command record: {exc}") from None


def outbox_to_json(record: OutboxRecord) -> str:
    return json.dumps(
        {"chats": [list(chat) for chat in record.chats], "dropped": record.dropped},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def outbox_from_json(text: str) -> OutboxRecord:
    try:
        data = json.loads(text)
        chats = tuple((str(sender), str(to), str(body)) for sender, to, body in data["chats"])
        return OutboxRecord(chats, int(data["dropped"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"bad outbox record: {exc}") from None
