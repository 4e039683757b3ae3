"""The shipped generic JSON profile, driven through the core in memory."""

from __future__ import annotations

import pytest

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import PublishMqtt, SendChat
from hub.core.mapping import Binding
from hub.core.profile import Role

OP = "op@example.org"
JID = "garden-pump@hub.example"


@pytest.fixture
def hub() -> Hub:
    binding = Binding("garden", builtin_profiles()["generic-json"], {"base": "garden"})
    hub = Hub(HubSettings(domain="hub.example", bindings=(binding,), grants={OP: Grant(Role.OPERATOR)}))
    hub.handle(XmppLinkUp(), 0.0)
    hub.handle(MqttLinkUp(), 0.0)
    return hub


def test_state_fields_become_readings_and_availability_may_be_json(hub: Hub) -> None:
    hub.handle(MqttMessageReceived("garden/garden-pump/availability", b'{"state":"online"}', retain=True), 1.0)
    hub.handle(MqttMessageReceived("garden/garden-pump", b'{"state":"OFF","flow":3.5,"temperature":11.24}'), 2.0)
    device = hub.devices[JID]
    assert device.online
    assert device.readings == {"power": "off", "flow": 3.5, "temperature": 11.24}
    (reply,) = hub.handle(ChatReceived(OP, JID, "status"), 3.0)
    assert isinstance(reply, SendChat)
    assert reply.body.splitlines()[1:4] == ["  temperature 11.2 °C", "  power off", "  flow 3.5"]
    hub.handle(MqttMessageReceived("garden/garden-pump/availability", b"offline", retain=True), 4.0)
    assert not device.online


def test_on_and_toggle_are_sent_in_the_device_words_and_confirmed_by_the_state(hub: Hub) -> None:
    hub.handle(MqttMessageReceived("garden/garden-pump", b'{"state":"OFF"}'), 1.0)
    out = hub.handle(ChatReceived(OP, JID, "on"), 2.0)
    assert PublishMqtt("garden/garden-pump/set", b'{"state":"ON"}', qos=1) in out
    out = hub.handle(MqttMessageReceived("garden/garden-pump", b'{"state":"ON"}'), 2.2)
    assert SendChat(JID, OP, "✓ on: confirmed in 0.2 s") in out
    out = hub.handle(ChatReceived(OP, JID, "toggle"), 3.0)
    assert PublishMqtt("garden/garden-pump/set", b'{"state":"TOGGLE"}', qos=1) in out
    out = hub.handle(MqttMessageReceived("garden/garden-pump", b'{"state":"OFF"}'), 3.5)
    assert SendChat(JID, OP, "✓ toggle: power off: confirmed in 0.5 s") in out


def test_brightness_is_checked_against_its_range(hub: Hub) -> None:
    hub.handle(MqttMessageReceived("garden/garden-pump", b'{"state":"ON","brightness":10}'), 1.0)
    assert hub.handle(ChatReceived(OP, JID, "set brightness 300"), 2.0) == [
        SendChat(JID, OP, "300 is out of range: brightness takes 0–255.")
    ]
    out = hub.handle(ChatReceived(OP, JID, "set brightness 128"), 3.0)
    assert PublishMqtt("garden/garden-pump/set", b'{"brightness":128}', qos=1) in out
