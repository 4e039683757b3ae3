"""Operators who asked for new devices get a subscription request, with the device's name."""

from __future__ import annotations

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.device import DeviceConfig
from hub.core.events import MqttLinkUp, MqttMessageReceived, SubscriptionRequested, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import SendSubscription
from hub.core.mapping import Binding
from hub.core.profile import Role

DOMAIN = "devices.example.org"


def make_hub() -> Hub:
    settings = HubSettings(
        domain=DOMAIN,
        bindings=(Binding("hub", builtin_profiles()["hub"]),),
        devices={"cellar": DeviceConfig("cellar", name="Cellar sensor", group="basement")},
        grants={
            "alice@example.org": Grant(Role.ADMIN, notify_new_devices=True),
            "bob@example.org": Grant(Role.OPERATOR),
            "carol@example.org": Grant(Role.VIEWER, frozenset({"kitchen"}), notify_new_devices=True),
        },
    )
    hub = Hub(settings)
    hub.handle(MqttLinkUp(), 0.0)
    hub.handle(XmppLinkUp(), 0.0)
    return hub


def requests(intents: list[object]) -> list[SendSubscription]:
    return [i for i in intents if isinstance(i, SendSubscription) and i.kind == "subscribe"]


def test_a_new_device_is_offered_to_operators_who_asked_for_new_devices() -> None:
    hub = make_hub()
    out = hub.handle(MqttMessageReceived("devices/garage-door/status", b"online", retain=True), 1.0)
    assert requests(out) == [SendSubscription(f"garage-door@{DOMAIN}", "alice@example.org", "subscribe", "garage-door")]


def test_a_device_is_offered_once_and_not_to_those_already_subscribed() -> None:
    hub = make_hub()
    hub.handle(SubscriptionRequested("alice@example.org", f"garage@{DOMAIN}"), 1.0)
    first = hub.handle(MqttMessageReceived("devices/garage/telemetry", b'{"temperature": 7}'), 2.0)
    again = hub.handle(MqttMessageReceived("devices/garage/telemetry", b'{"temperature": 8}'), 3.0)
    assert requests(first) == [] and requests(again) == []


def test_configured_devices_are_not_offered_and_groups_are_respected() -> None:
    hub = make_hub()
    out = hub.handle(MqttMessageReceived("devices/cellar/telemetry", b'{"temperature": 12}'), 1.0)
    assert requests(out) == []  # known from the configuration, not new
    out = hub.handle(MqttMessageReceived("devices/attic/telemetry", b'{"temperature": 30}'), 2.0)
    assert [r.to for r in requests(out)] == ["alice@example.org"]  # carol only sees the kitchen group
