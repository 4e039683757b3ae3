"""Discovered devices in the core: described, updated, removed, parented, deduplicated, commanded.

A small mapper registered here reads an inventory (a JSON list of devices with
their literal topics), so these tests exercise the hub's handling of any
convention without depending on one family's details.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hub.core.auth import Grant
from hub.core.codecs import PayloadError
from hub.core.device import DeviceConfig
from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, SubscriptionRequested, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Log, PublishMqtt, SendChat, SendPresence, SendSubscription, Show, SubscribeMqtt
from hub.core.mapping import Binding
from hub.core.profile import (
    AvailabilityMode,
    AvailabilitySpec,
    CommandSpec,
    DiscoverySpec,
    FieldSpec,
    Profile,
    PropertyKind,
    PropertySpec,
    ReadingSpec,
    Role,
    SwitchSpec,
    TelemetrySpec,
    VerbSpec,
)
from hub.core.topics import TopicTemplate

t = TopicTemplate.parse
DOMAIN = "hub.example"
OP = "op@example.org"
T0 = 1000.0


@register("test-inventory")
def _inventory(given: DiscoveryInput) -> Discovery:
    try:
        entries = json.loads(given.payload) if given.payload else []
    except ValueError:
        raise DiscoveryError("inventory is not JSON") from None
    if not isinstance(entries, list):
        raise DiscoveryError("inventory is not a list")
    base = given.binding.profile
    devices = []
    for entry in entries:
        name = entry["id"]
        power = PropertySpec(
            "power",
            PropertyKind.ENUM,
            choices=("on", "off"),
            key="state",
            to_device={"on": "ON", "off": "OFF"},
            command=CommandSpec(t(f"inv/{name}/set"), set_payload={"{property}": "{value}"}),
        )
        profile = replace(
            base,
            discovery=(),
            availability=tuple(AvailabilitySpec(t(topic), path="state") for topic in entry.get("avail", [])),
            availability_mode=AvailabilityMode(entry.get("mode", "latest")),
            telemetry=(
                TelemetrySpec(
                    t(f"inv/{name}"),
                    fields=(
                        FieldSpec("power", "state", values={"ON": "on", "OFF": "off"}),
                        FieldSpec("temperature", "t"),
                    ),
                ),
            ),
            properties={"power": power},
            switch=SwitchSpec(),
            verbs={
                "dim": VerbSpec(
                    "dim",
                    command=CommandSpec(t(f"inv/{name}/dim"), verb_payload="{arg}"),
                    param=PropertySpec("level", PropertyKind.INTEGER, minimum=0, maximum=100, unit="%"),
                )
            },
        )
        devices.append(
            DiscoveredDevice(
                entry["id"],
                entry.get("name", ""),
                profile,
                parent=entry.get("parent"),
                aliases=tuple(entry.get("aliases", [])),
            )
        )
    return Discovery(given.topic, tuple(devices))


def _family(name: str, rank: int, topic: str) -> Profile:
    return Profile(
        name=name,
        rank=rank,
        discovery=(DiscoverySpec(t(topic), "test-inventory"),),
        readings={"temperature": ReadingSpec("temperature", unit="°C", show_label=False)},
    )


NATIVE = Binding("native", _family("native", 10, "inv/{source}/inventory"))
OTHER = Binding("other", _family("other", 0, "other/{source}/inventory"))


def make_hub(**overrides: object) -> Hub:
    settings = HubSettings(
        domain=DOMAIN,
        bindings=(NATIVE, OTHER),
        grants={OP: Grant(Role.OPERATOR, notify_new_devices=True)},
        **overrides,  # type: ignore[arg-type]
    )
    hub = Hub(settings, subscriptions=[("lamp@hub.example", OP)])
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    return hub


def inventory(devices: list[dict[str, object]], topic: str = "inv/a/inventory") -> MqttMessageReceived:
    return MqttMessageReceived(topic, json.dumps(devices).encode(), retain=True)


LAMP = {"id": "lamp", "name": "Kitchen lamp", "avail": ["inv/lamp/availability"]}


def test_a_described_device_becomes_a_contact_with_its_name_and_topics() -> None:
    hub = make_hub()
    out = hub.handle(inventory([LAMP, {"id": "fan", "name": "Fan"}]), T0)
    assert set(hub.devices) == {"lamp@hub.example", "fan@hub.example"}
    assert hub.devices["lamp@hub.example"].name == "Kitchen lamp"
    assert SubscribeMqtt(("inv/lamp/availability", "inv/lamp")) in out
    # The operator asked for new devices: a subscription request carrying the name (XEP-0172).
    assert SendSubscription("fan@hub.example", OP, "subscribe", nick="Fan") in out
    assert Log("info", "device.new", {"device": "lamp", "jid": "lamp@hub.example", "topic": "inv/a/inventory"}) in out
    # Its literal topics are routed to it.
    hub.handle(MqttMessageReceived("inv/lamp/availability", b'{"state": "online"}', retain=True), T0)
    out = hub.handle(MqttMessageReceived("inv/lamp", b'{"state": "ON", "t": 21.5}'), T0 + 1)
    assert hub.devices["lamp@hub.example"].readings == {"power": "on", "temperature": 21.5}
    assert SendPresence("lamp@hub.example", OP, Show.AVAILABLE, "21.5 °C · power on") in out


def test_a_source_that_no_longer_lists_a_device_removes_it() -> None:
    hub = make_hub()
    hub.handle(inventory([LAMP]), T0)
    hub.handle(MqttMessageReceived("inv/lamp/availability", b"online"), T0)
    out = hub.handle(inventory([]), T0 + 5)
    assert "lamp@hub.example" not in hub.devices
    assert SendPresence("lamp@hub.example", OP, Show.UNAVAILABLE, "removed from native") in out
    # Its topics are no longer routed: a late message creates nothing.
    assert hub.handle(MqttMessageReceived("inv/lamp", b'{"state": "ON"}'), T0 + 6) == []
    assert "lamp@hub.example" not in hub.devices


def test_a_renamed_device_keeps_its_jid() -> None:
    hub = make_hub()
    hub.handle(inventory([LAMP]), T0)
    hub.handle(inventory([{**LAMP, "name": "Hall lamp"}]), T0 + 1)
    assert list(hub.devices) == ["lamp@hub.example"]
    assert hub.devices["lamp@hub.example"].name == "Hall lamp"


def test_a_configured_name_wins_and_a_device_bound_elsewhere_is_not_discovered() -> None:
    hub = make_hub(devices={"lamp": DeviceConfig("lamp", name="My lamp"), "fan": DeviceConfig("fan", binding="other")})
    out = hub.handle(inventory([LAMP, {"id": "fan"}]), T0)
    assert hub.devices["lamp@hub.example"].name == "My lamp"
    assert Log("info", "discovery.overridden", {"device": "fan", "binding": "other"}) in out


def test_a_bridge_that_goes_offline_takes_its_devices_with_it() -> None:
    hub = make_hub()
    bridge = {"id": "bridge", "name": "Bridge", "avail": ["inv/bridge/state"]}
    hub.handle(inventory([bridge, {**LAMP, "parent": "bridge"}]), T0)
    hub.handle(MqttMessageReceived("inv/bridge/state", b"online"), T0)
    hub.handle(MqttMessageReceived("inv/lamp/availability", b"online"), T0)
    lamp = hub.devices["lamp@hub.example"]
    assert lamp.online
    out = hub.handle(MqttMessageReceived("inv/bridge/state", b"offline"), T0 + 60)
    assert not lamp.online
    assert [p for p in out if isinstance(p, SendPresence) and p.sender == "lamp@hub.example"] == [
        SendPresence("lamp@hub.example", OP, Show.UNAVAILABLE, "offline since 00:17 UTC")
    ]
    hub.handle(MqttMessageReceived("inv/bridge/state", b"online"), T0 + 120)
    assert lamp.online


def test_a_parent_described_after_its_child_is_linked() -> None:
    hub = make_hub()
    hub.handle(inventory([{**LAMP, "parent": "bridge"}], topic="inv/a/inventory"), T0)
    hub.handle(inventory([{"id": "bridge", "avail": ["inv/bridge/state"]}], topic="inv/b/inventory"), T0)
    assert hub.devices["lamp@hub.example"].parent is hub.devices["bridge@hub.example"]


def test_contributions_of_two_sources_merge_into_one_device() -> None:
    hub = make_hub()
    hub.handle(inventory([{**LAMP, "avail": ["inv/lamp/a"]}], topic="inv/a/inventory"), T0)
    hub.handle(inventory([{**LAMP, "avail": ["inv/lamp/b"]}], topic="inv/b/inventory"), T0)
    lamp = hub.devices["lamp@hub.example"]
    assert [a.topic.source for a in lamp.profile.availability] == ["inv/lamp/a", "inv/lamp/b"]
    # One source withdrawing keeps the device with what the other says.
    hub.handle(inventory([], topic="inv/a/inventory"), T0 + 1)
    assert [a.topic.source for a in hub.devices["lamp@hub.example"].profile.availability] == ["inv/lamp/b"]


@pytest.mark.parametrize(
    ("mode", "a", "b", "online"),
    [
        ("all", "online", "offline", False),
        ("all", "online", "online", True),
        ("any", "offline", "online", True),
        ("any", "offline", "offline", False),
        ("latest", "online", "offline", False),
        ("latest", "offline", "online", True),
    ],
)
def test_availability_modes(mode: str, a: str, b: str, online: bool) -> None:
    hub = make_hub()
    hub.handle(inventory([{"id": "x", "avail": ["inv/x/a", "inv/x/b"], "mode": mode}]), T0)
    hub.handle(MqttMessageReceived("inv/x/a", a.encode()), T0)
    hub.handle(MqttMessageReceived("inv/x/b", b.encode()), T0 + 1)
    assert hub.devices["x@hub.example"].online is online


def test_the_higher_ranked_convention_lists_a_device_once() -> None:
    hub = make_hub()
    # Listed first through the lower-ranked convention, under an id the native one knows as an alias.
    hub.handle(inventory([{"id": "lamp", "aliases": ["0xabc"]}], topic="other/a/inventory"), T0)
    assert [d.binding.name for d in hub.devices.values()] == ["other"]
    out = hub.handle(inventory([{"id": "lamp", "name": "Lamp", "aliases": ["0xabc"]}]), T0 + 1)
    assert [d.binding.name for d in hub.devices.values()] == ["native"]
    assert Log("info", "device.removed", {"device": "lamp", "jid": "lamp@hub.example", "binding": "other"}) in out
    # The lower-ranked one saying it again changes nothing.
    out = hub.handle(inventory([{"id": "lamp", "aliases": ["0xabc"]}], topic="other/a/inventory"), T0 + 2)
    assert [d.binding.name for d in hub.devices.values()] == ["native"]
    assert any(isinstance(i, Log) and i.event == "discovery.duplicate" for i in out)


def test_a_bad_discovery_message_is_logged_and_changes_nothing() -> None:
    hub = make_hub()
    hub.handle(inventory([LAMP]), T0)
    out = hub.handle(MqttMessageReceived("inv/a/inventory", b"{not json"), T0 + 1)
    assert out == [
        Log("warning", "discovery.rejected", {"topic": "inv/a/inventory", "reason": "inventory is not JSON"})
    ]
    assert "lamp@hub.example" in hub.devices


def _online_lamp() -> Hub:
    hub = make_hub()
    hub.handle(inventory([LAMP]), T0)
    hub.handle(MqttMessageReceived("inv/lamp/availability", b"online"), T0)
    hub.handle(MqttMessageReceived("inv/lamp", b'{"state": "OFF"}'), T0)
    return hub


def test_a_switch_command_goes_to_the_property_topic_in_the_device_words_and_is_confirmed() -> None:
    hub = _online_lamp()
    out = hub.handle(ChatReceived(OP, "lamp@hub.example", "on"), T0 + 1)
    assert PublishMqtt("inv/lamp/set", b'{"state":"ON"}', qos=1) in out
    out = hub.handle(MqttMessageReceived("inv/lamp", b'{"state": "ON"}'), T0 + 1.5)
    assert SendChat("lamp@hub.example", OP, "✓ on: confirmed in 0.5 s") in out


def test_a_verb_with_an_argument_is_checked_and_sent() -> None:
    hub = _online_lamp()
    out = hub.handle(ChatReceived(OP, "lamp@hub.example", "dim 40"), T0 + 1)
    assert PublishMqtt("inv/lamp/dim", b"40", qos=1) in out
    assert SendChat("lamp@hub.example", OP, "→ sent: dim 40") in out
    out = hub.handle(ChatReceived(OP, "lamp@hub.example", "dim 400"), T0 + 2)
    assert out == [SendChat("lamp@hub.example", OP, "400 is out of range: level takes 0–100 %.")]
    out = hub.handle(ChatReceived(OP, "lamp@hub.example", "dim"), T0 + 3)
    assert out == [SendChat("lamp@hub.example", OP, "Usage: dim <0–100 %>.")]


def test_strangers_cannot_command_discovered_devices() -> None:
    hub = _online_lamp()
    out = hub.handle(ChatReceived("eve@elsewhere.example", "lamp@hub.example", "on"), T0 + 1)
    assert not [i for i in out if isinstance(i, PublishMqtt)]
    out = hub.handle(SubscriptionRequested("eve@elsewhere.example", "lamp@hub.example"), T0 + 1)
    assert SendSubscription("lamp@hub.example", "eve@elsewhere.example", "unsubscribed") in out


def test_the_inventory_mapper_rejects_what_is_not_a_list() -> None:
    with pytest.raises(DiscoveryError):
        _inventory(DiscoveryInput("inv/a/inventory", b"{}", NATIVE, {}))
    assert PayloadError  # the other error a mapper may raise


def test_discovery_survives_a_restart_through_the_snapshot() -> None:
    hub = make_hub()
    hub.handle(inventory([{**LAMP, "name": "Kitchen lamp"}]), T0)
    hub.handle(MqttMessageReceived("inv/lamp/availability", b"online"), T0)
    changes = hub.take_changes()
    assert [(d.binding, d.topic) for d in changes.discovery] == [("native", "inv/a/inventory")]
    assert hub.take_changes().discovery == ()  # said once
    again = make_hub()
    out = again.restore(changes.devices, (), None, changes.discovery)
    lamp = again.devices["lamp@hub.example"]
    assert lamp.name == "Kitchen lamp"
    assert [a.topic.source for a in lamp.profile.availability] == ["inv/lamp/availability"]
    assert SubscribeMqtt(("inv/lamp/availability", "inv/lamp")) in out
    assert "inv/lamp" in again.router.subscription_filters()
    assert again.take_changes().discovery == ()
    # A withdrawal is a change to store too.
    hub.handle(inventory([]), T0 + 1)
    assert [(d.topic, d.payload) for d in hub.take_changes().discovery] == [("inv/a/inventory", b"[]")]


def test_describing_a_device_again_asks_for_no_topic_twice() -> None:
    hub = make_hub()
    first = hub.handle(inventory([LAMP]), T0)
    assert [i for i in first if isinstance(i, SubscribeMqtt)] == [SubscribeMqtt(("inv/lamp/availability", "inv/lamp"))]
    again = hub.handle(inventory([{**LAMP, "name": "Hall lamp"}]), T0 + 1)
    assert [i for i in again if isinstance(i, SubscribeMqtt)] == []
    more = hub.handle(inventory([{**LAMP, "avail": ["inv/lamp/availability", "inv/lamp/extra"]}]), T0 + 2)
    assert [i for i in more if isinstance(i, SubscribeMqtt)] == [SubscribeMqtt(("inv/lamp/extra",))]


def test_a_boolean_property_is_summarised_as_on_or_off() -> None:
    profile = Profile(
        name="heaters",
        telemetry=(TelemetrySpec(t("heaters/{id}")),),
        commands=CommandSpec(t("heaters/{id}/set"), set_payload={"{property}": "{value}"}),
        properties={"heater": PropertySpec("heater", PropertyKind.BOOLEAN)},
    )
    hub = Hub(HubSettings(domain=DOMAIN, bindings=(Binding("heaters", profile),), grants={OP: Grant(Role.OPERATOR)}))
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    hub.handle(MqttMessageReceived("heaters/h1", b'{"heater": false}'), T0)
    out = hub.handle(ChatReceived(OP, "h1@hub.example", "set heater on"), T0 + 1)
    assert PublishMqtt("heaters/h1/set", b'{"heater":true}', qos=1) in out
    assert SendChat("h1@hub.example", OP, "→ sent: set heater on") in out
