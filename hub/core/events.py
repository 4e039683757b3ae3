"""Facts the adapters report to the core.

Every event is a frozen value. Adapters build them from their wire library's
objects (amqtt sessions, paho messages, slixmpp stanzas) and never decide
anything themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MqttMessageReceived:
    """A message a device published, seen after the broker's ACL passed it."""

    topic: str
    payload: bytes
    retain: bool = False
    #: MQTT client id of the publisher, when the broker is embedded and knows it.
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class MqttClientConnected:
    """A device's MQTT session opened (embedded broker only)."""

    client_id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class MqttClientDisconnected:
    """A device's MQTT session closed, cleanly or not (embedded broker only)."""

    client_id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class MqttLinkUp:
    """The hub can publish and receives device traffic (broker started or client connected)."""


@dataclass(frozen=True, slots=True)
class MqttLinkDown:
    """The hub lost its broker (external mode): device state can no longer be trusted."""


@dataclass(frozen=True, slots=True)
class XmppLinkUp:
    """The component stream is authenticated: presence must be (re-)announced."""


@dataclass(frozen=True, slots=True)
class XmppLinkDown:
    """The component stream is gone; nothing can be sent until it is back."""


@dataclass(frozen=True, slots=True)
class ChatUndelivered:
    """A chat message the core said to send never reached the stream (it was down before the core knew)."""

    sender: str
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class ChatReceived:
    """A chat message addressed to a device JID or to the hub's own JID."""

    sender: str  # full or bare JID of the person
    to: str  # bare JID of the device or the component domain
    body: str


@dataclass(frozen=True, slots=True)
class SubscriptionRequested:
    """Someone asks to see a device's presence (``<presence type='subscribe'/>``)."""

    sender: str
    to: str


@dataclass(frozen=True, slots=True)
class SubscriptionCancelled:
    """Someone no longer wants a device's presence (``unsubscribe``) or removed it."""

    sender: str
    to: str


@dataclass(frozen=True, slots=True)
class PresenceProbed:
    """The server asks for a device's current presence on someone's behalf."""

    sender: str
    to: str


@dataclass(frozen=True, slots=True)
class DiscoRequested:
    """A service discovery query (XEP-0030) to a device JID or the hub's own JID.

    ``iq_id`` comes back in the answer so the bridge can address it without
    keeping the request.
    """

    sender: str  # full JID of the asking client
    to: str  # bare JID of the device or the component domain
    iq_id: str
    kind: str  # "info" | "items"
    node: str = ""


@dataclass(frozen=True, slots=True)
class AdHocRequested:
    """One step of an ad-hoc command (XEP-0050): run ``node``, or submit its form.

    ``values`` is ``None`` when no form was submitted, else the submitted
    fields (``var``, first value) in the order they came.
    """

    sender: str
    to: str
    iq_id: str
    node: str
    action: str = "execute"  # "execute" | "complete" | "cancel" | "next" | "prev"
    session: str = ""
    values: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: silence, confirmations and alert repeats are checked."""


Event = (
    MqttMessageReceived
    | MqttClientConnected
    | MqttClientDisconnected
    | MqttLinkUp
    | MqttLinkDown
    | XmppLinkUp
    | XmppLinkDown
    | ChatUndelivered
    | ChatReceived
    | SubscriptionRequested
    | SubscriptionCancelled
    | PresenceProbed
    | DiscoRequested
    | AdHocRequested
    | Tick
)
