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
class FormField:
    """One XEP-0004 field as plain data; the XMPP bridge renders it."""

    var: str
    type: str  # "text-single" | "list-single" | "text-multi" | "fixed"
    label: str = ""
    values: tuple[str, ...] = ()
    #: ``(label, value)`` pairs of a ``list-single``.
    options: tuple[tuple[str, str], ...] = ()
    desc: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Form:
    """A XEP-0004 data form: ``form`` asks for values, ``result`` shows them."""

    type: str  # "form" | "result"
    title: str = ""
    instructions: str = ""
    fields: tuple[FormField, ...] = ()


@dataclass(frozen=True, slots=True)
class DiscoIdentity:
    category: str
    type: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class DiscoItem:
    jid: str
    node: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class AnswerDisco:
    """The answer to a :class:`~hub.core.events.DiscoRequested`; ``error`` is a stanza error condition."""

    sender: str
    to: str
    iq_id: str
    kind: str  # "info" | "items"
    node: str = ""
    identities: tuple[DiscoIdentity, ...] = ()
    features: tuple[str, ...] = ()
    items: tuple[DiscoItem, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class AnswerCommand:
    """The answer to one ad-hoc command step; ``error`` (e.g. ``forbidden``) replaces the whole answer."""

    sender: str
    to: str
    iq_id: str
    node: str
    session: str = ""
    status: str = "completed"  # "executing" | "completed" | "canceled"
    form: Form | None = None
    #: ``(type, text)`` with type ``info``, ``warning`` or ``error``.
    notes: tuple[tuple[str, str], ...] = ()
    #: Next actions offered while executing, e.g. ``("complete",)``.
    actions: tuple[str, ...] = ()
    error: str = ""


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


Intent = (
    PublishMqtt
    | SubscribeMqtt
    | SendPresence
    | SendSubscription
    | SendChat
    | AnswerDisco
    | AnswerCommand
    | StoreSubscription
    | Log
)
