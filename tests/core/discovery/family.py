"""A family's recorded traffic driven through an in-memory hub, and the parts of its answers tests read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.core.auth import Grant
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, PublishMqtt, SendChat
from hub.core.mapping import Binding

DOMAIN = "hub.example"
T0 = 1000.0


def linked_hub(binding: Binding, grants: Mapping[str, Grant]) -> Hub:
    """A hub with one binding whose XMPP and MQTT links are up at ``T0``."""
    hub = Hub(HubSettings(domain=DOMAIN, bindings=(binding,), grants=dict(grants)))
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    return hub


def play(hub: Hub, messages: Sequence[Mapping[str, Any]], now: float = T0) -> list[Intent]:
    """Each recorded message as the broker would hand it to the hub, in order; every answer."""
    out: list[Intent] = []
    for message in messages:
        event = MqttMessageReceived(message["topic"], message["payload"].encode(), retain=message["retain"])
        out += hub.handle(event, now)
    return out


def say(hub: Hub, jid: str, body: str, sender: str, now: float = T0 + 1) -> list[Intent]:
    return hub.handle(ChatReceived(f"{sender}/phone", jid, body), now)


def chats(intents: Sequence[Intent]) -> list[str]:
    return [i.body for i in intents if isinstance(i, SendChat)]


def publishes(intents: Sequence[Intent]) -> list[tuple[str, bytes]]:
    return [(i.topic, i.payload) for i in intents if isinstance(i, PublishMqtt)]
