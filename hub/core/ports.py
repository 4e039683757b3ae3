"""The two small ports every adapter implements, so the app wires them alike.

An adapter is handed an ``emit`` callable (a :data:`EventSink`) that must not
block: the app backs it with one bounded queue that the core drains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hub.core.events import Event
from hub.core.intents import AnswerCommand, AnswerDisco, PublishMqtt, SendChat, SendPresence, SendSubscription

EventSink = Callable[[Event], None]


class Room(Protocol):
    """Whether the queue behind an :data:`EventSink` takes device traffic now; adapters that can slow
    their senders (stop reading a socket) wait for it instead of emitting into a full queue."""

    def room_available(self) -> bool: ...

    async def wait_for_room(self) -> None: ...


XmppIntent = SendPresence | SendSubscription | SendChat | AnswerDisco | AnswerCommand


class MqttPort(Protocol):
    async def run(self) -> None:
        """Serve until cancelled; emit ``MqttLinkUp``/``MqttLinkDown`` and device traffic."""

    async def publish(self, intent: PublishMqtt) -> None:
        """Deliver one message to the devices."""

    async def subscribe(self, topics: tuple[str, ...]) -> None:
        """Make sure device traffic on these topics reaches the hub (a no-op where it already does)."""


class XmppPort(Protocol):
    async def run(self) -> None:
        """Keep the component connected until cancelled; emit link and stanza events."""

    async def send(self, intent: XmppIntent) -> None:
        """Send one stanza, or drop it (counted) while the stream is down."""

    async def drain(self, timeout: float) -> None:
        """Wait until stanzas handed to ``send`` are written, at most ``timeout`` seconds."""
