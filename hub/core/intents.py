"""Decisions the core hands to the adapters and the app to carry out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Show(StrEnum):
    """What an XMPP client shows for a contact (RFC 6121 ``<show/>``, plus unavailable)."""

    AVAILABLE = "available"  # no <show/>: online
    AWAY = "away"  # online but silent longer than expected
    XA = "xa"  # sleeping by design
    DND = "dnd"  # an alert is active
    UNAVAILABLE = "unavailable"  # offline


@dataclass(frozen=True, slots=True)
class PublishMqtt:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class SubscribeMqtt:
    """Topics a discovered device named that the hub's subscriptions may not cover yet (external broker)."""

    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SendPresence:
    sender: str  # bare JID of the device (or the component domain)
    to: str  # bare JID of the operator
    show: Show
    status: str = ""


@dataclass(frozen=True, slots=True)
class SendSubscription:
    """Answer or ask about a subscription: ``subscribed``, ``unsubscribed`` or ``subscribe``."""

    sender: str
    to: str
    kind: str
    #: The name a client should show for the contact (XEP-0172), with ``subscribe``.
    nick: str = ""


@dataclass(frozen=True, slots=True)
class SendChat:
    sender: str
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class StoreSubscription:
    """Persist (``present=True``) or forget one operator's subscription to one device."""

    device_jid: str
    operator: str
    present: bool


@dataclass(frozen=True, slots=True)
class Log:
    """A structured log line the app writes: ``event`` is a short stable name."""

    level: str  # "debug" | "info" | "warning" | "error"
    event: str
    fields: Mapping[str, object] = field(default_factory=dict)


Intent = PublishMqtt | SubscribeMqtt | SendPresence | SendSubscription | SendChat | StoreSubscription | Log
