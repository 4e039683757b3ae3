"""The zigbee2mqtt mapper and profile on recorded bridge/devices traffic (tests/fixtures/zigbee2mqtt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.discovery import MAPPERS, Discovery, DiscoveryError, DiscoveryInput
from hub.core.events import (
    ChatReceived,
    MqttClientConnected,
    MqttClientDisconnected,
    MqttLinkUp,
    MqttMessageReceived,
    SubscriptionRequested,
    XmppLinkUp,
)
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat, SendPresence, Show
from hub.core.mapping import Binding
from hub.core.profile import PropertyKind, Role

FIXTURES = Path(__file__).parents[2] / "fixtures" / "zigbee2mqtt"
DEVICES_TOPIC = "zigbee2mqtt/bridge/devices"
ADMIN = "admin@example.org"
DOMAIN = "hub.example"
PLUG = "0x00158d00018255df"
BULB = "0x90fd9ffffe6494fc"
SENSOR = "0x00158d0001a2b3c4"
SWITCH = "0x0017880104e45517"
THERMOSTAT = "0x00158d000420c0de"
UNSUPPORTED = "0x00169a00022256da"
T0 = 14 * 3600.0


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def binding() -> Binding:
    return Binding("zigbee2mqtt", builtin_profiles()["zigbee2mqtt"], {})


def mapped(binding: Binding, payload: bytes, topic: str = DEVICES_TOPIC) -> Discovery:
    return MAPPERS["zigbee2mqtt"](DiscoveryInput(topic, payload, binding, {topic: payload}))


def make_hub(binding: Binding) -> Hub:
    settings = HubSettings(domain=DOMAIN, bindings=(binding,), grants={ADMIN: Grant(Role.ADMIN)})
    hub = Hub(settings)
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    return hub


def feed(hub: Hub, topic: str, payload: bytes | str, now: float = T0, retain: bool = False) -> list[Intent]:
    data = payload.encode() if isinstance(payload, str) else payload
    return hub.handle(MqttMessageReceived(topic, data, retain), now)


def started(hub: Hub) -> None:
    """The retained messages a subscriber finds first: the device list and the bridge's state."""
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)
    feed(hub, "zigbee2mqtt/bridge/state", "online", retain=True)


def say(hub: Hub, device: str, body: str, now: float = T0) -> list[Intent]:
    return hub.handle(ChatReceived(ADMIN + "/pc", f"{device}@{DOMAIN}", body), now)


def replies(intents: list[Intent]) -> list[str]:
    return [i.body for i in intents if isinstance(i, SendChat)]


def published(intents: list[Intent]) -> list[tuple[str, object]]:
    return [(i.topic, json.loads(i.payload)) for i in intents if isinstance(i, PublishMqtt)]


def test_every_device_is_named_by_its_ieee_address_and_the_coordinator_is_the_bridge(binding: Binding) -> None:
    found = {d.device_id: d for d in mapped(binding, fixture("bridge_devices.json")).devices}
    assert set(found) == {"zigbee2mqtt", PLUG, BULB, SENSOR, SWITCH, THERMOSTAT, UNSUPPORTED}
    bridge = found["zigbee2mqtt"]
    assert bridge.aliases == ("0x00124b00120144ae",)  # the coordinator entry is the bridge, no contact of its own
    assert [a.topic.source for a in bridge.profile.availability] == ["zigbee2mqtt/bridge/state"]
    assert all(d.parent == "zigbee2mqtt" for k, d in found.items() if k != "zigbee2mqtt")
    bulb = found[BULB]
    assert (bulb.name, bulb.model) == ("kitchen/floor_light", "IKEA LED1624G9")
    assert [t.topic.source for t in bulb.profile.telemetry] == ["zigbee2mqtt/kitchen/floor_light"]
    assert [a.topic.source for a in bulb.profile.availability] == ["zigbee2mqtt/kitchen/floor_light/availability"]
    assert bulb.profile.commands is not None
    assert bulb.profile.commands.topic.source == "zigbee2mqtt/kitchen/floor_light/set"


def test_exposes_become_readings_with_units_and_settable_properties(binding: Binding) -> None:
    found = {d.device_id: d.profile for d in mapped(binding, fixture("bridge_devices.json")).devices}
    plug = found[PLUG]
    assert plug.readings["power"].unit == "W"
    assert plug.readings["linkquality"].unit == "lqi"
    assert set(plug.properties) == {"state", "power_outage_memory"}  # power is access 5: read, not set
    state = plug.properties["state"]
    assert (state.kind, state.choices, state.to_device) == (
        PropertyKind.ENUM,
        ("on", "off"),
        {"on": "ON", "off": "OFF", "toggle": "TOGGLE"},
    )
    assert plug.switch is not None and plug.switch.property == "state"
    bulb = found[BULB]
    brightness = bulb.properties["brightness"]
    assert (brightness.kind, brightness.minimum, brightness.maximum) == (PropertyKind.INTEGER, 0, 254)
    assert "color.x" in bulb.readings and "color.x" not in bulb.properties  # composite: read, not set alone
    assert "effect" in bulb.verbs and bulb.verbs["effect"].param is not None  # write-only: a verb
    assert bulb.verbs["effect"].param.choices == ("blink", "breathe", "okay")
    setpoint = found[THERMOSTAT].properties["occupied_heating_setpoint"]
    assert (setpoint.kind, setpoint.minimum, setpoint.maximum, setpoint.step, setpoint.unit) == (
        PropertyKind.NUMBER,
        5,
        30,
        0.5,
        "°C",
    )
    switch = found[SWITCH]
    assert set(switch.properties) == {"state_l1", "state_l2", "child_lock"}  # endpoint suffixes
    assert switch.switch is not None and (switch.switch.property, switch.switch.channel_property) == (
        "state_l1",
        "state_l{channel}",
    )
    assert switch.properties["child_lock"].choices == ("lock", "unlock")
    assert switch.properties["child_lock"].to_device == {"lock": "LOCK", "unlock": "UNLOCK"}
    assert found[UNSUPPORTED].properties == {} and found[UNSUPPORTED].telemetry  # definition null: readings only


def test_state_echo_readings_status_and_a_confirmed_command(binding: Binding) -> None:
    hub = make_hub(binding)
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)
    feed(hub, "zigbee2mqtt/bridge/state", '{"state": "online"}', retain=True)
    feed(hub, "zigbee2mqtt/my_plug", fixture("state_my_plug.json"))
    plug = hub.devices[f"{PLUG}@{DOMAIN}"]
    assert plug.name == "my_plug" and plug.online
    assert plug.readings["power"] == 12.5
    (status,) = replies(say(hub, PLUG, "status"))
    assert "power 12.5 W" in status and "energy 1.24 kWh" in status
    out = say(hub, PLUG, "off")
    assert published(out) == [("zigbee2mqtt/my_plug/set", {"state": "OFF"})]
    assert replies(out) == ["→ sent: off"]
    echo = feed(hub, "zigbee2mqtt/my_plug", '{"state": "OFF", "power": 0}', now=T0 + 0.4)
    assert replies(echo) == ["✓ off: confirmed in 0.4 s"]
    out = say(hub, PLUG, "toggle")
    assert published(out) == [("zigbee2mqtt/my_plug/set", {"state": "TOGGLE"})]


def test_set_brightness_on_a_light_whose_name_holds_a_slash(binding: Binding) -> None:
    hub = make_hub(binding)
    started(hub)
    feed(hub, "zigbee2mqtt/kitchen/floor_light", fixture("state_floor_light.json"))
    assert replies(say(hub, BULB, "set brightness 300")) == ["300 is out of range: brightness takes 0–254."]
    out = say(hub, BULB, "set brightness 128")
    assert published(out) == [("zigbee2mqtt/kitchen/floor_light/set", {"brightness": 128})]
    assert replies(feed(hub, "zigbee2mqtt/kitchen/floor_light", '{"brightness": 128}', now=T0 + 1))[0].startswith(
        "✓ set brightness 128: confirmed"
    )
    out = say(hub, BULB, "effect blink")
    assert published(out) == [("zigbee2mqtt/kitchen/floor_light/set", {"effect": "blink"})]
    help_text = replies(say(hub, BULB, "help"))[0]
    assert "switch: on · off · toggle" in help_text and "set brightness <0–254>" in help_text


def test_sensor_readings_with_units_in_presence(binding: Binding) -> None:
    hub = make_hub(binding)
    started(hub)
    hub.handle(SubscriptionRequested(ADMIN, f"{SENSOR}@{DOMAIN}"), T0)
    out = feed(hub, "zigbee2mqtt/hall climate", fixture("state_hall_climate.json"))
    (presence,) = [p for p in out if isinstance(p, SendPresence) and p.sender == f"{SENSOR}@{DOMAIN}"]
    assert presence.show is Show.AVAILABLE
    assert presence.status.startswith("21.6 °C · 48 % · battery 87 %")


def test_availability_legacy_text_and_json_and_the_bridge_taking_its_devices_offline(binding: Binding) -> None:
    hub = make_hub(binding)
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)
    feed(hub, "zigbee2mqtt/bridge/state", "online", retain=True)
    plug = hub.devices[f"{PLUG}@{DOMAIN}"]
    bulb = hub.devices[f"{BULB}@{DOMAIN}"]
    feed(hub, "zigbee2mqtt/my_plug/availability", "online")
    feed(hub, "zigbee2mqtt/kitchen/floor_light/availability", '{"state": "online"}')
    assert plug.online and bulb.online
    feed(hub, "zigbee2mqtt/kitchen/floor_light/availability", '{"state": "offline"}')
    assert not bulb.online and plug.online
    feed(hub, "zigbee2mqtt/bridge/state", '{"state": "offline"}', now=T0 + 5)
    assert not plug.online
    assert "offline" in replies(say(hub, PLUG, "status"))[0]
    feed(hub, "zigbee2mqtt/bridge/state", "online", now=T0 + 9)
    assert plug.online


def test_a_rename_keeps_the_jid_and_moves_the_topics(binding: Binding) -> None:
    hub = make_hub(binding)
    started(hub)
    renamed = fixture("bridge_devices.json").replace(b'"my_plug"', b'"desk/plug"')
    feed(hub, DEVICES_TOPIC, renamed, retain=True)
    plug = hub.devices[f"{PLUG}@{DOMAIN}"]
    assert plug.name == "desk/plug"
    feed(hub, "zigbee2mqtt/desk/plug", '{"state": "ON"}')
    assert plug.readings["state"] == "ON"
    assert published(say(hub, PLUG, "on")) == [("zigbee2mqtt/desk/plug/set", {"state": "ON"})]
    feed(hub, "zigbee2mqtt/my_plug", '{"state": "OFF"}')  # the old topic is no longer this device's
    assert plug.readings["state"] == "ON"


def test_a_device_that_leaves_the_list_is_removed_and_an_empty_list_removes_all(binding: Binding) -> None:
    hub = make_hub(binding)
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)
    entries = [e for e in json.loads(fixture("bridge_devices.json")) if e["ieee_address"] != SENSOR]
    out = feed(hub, DEVICES_TOPIC, json.dumps(entries), retain=True)
    assert f"{SENSOR}@{DOMAIN}" not in hub.devices and f"{PLUG}@{DOMAIN}" in hub.devices
    assert any(isinstance(i, Log) and i.event == "device.removed" for i in out)
    feed(hub, DEVICES_TOPIC, b"", retain=True)
    assert hub.devices == {}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"ieee_address": "0x1"}', "expected a list"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_lists_are_refused_with_a_reason_and_change_nothing(binding: Binding, payload: bytes, reason: str) -> None:
    with pytest.raises(DiscoveryError, match=reason):
        mapped(binding, payload)
    hub = make_hub(binding)
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)
    before = set(hub.devices)
    out = feed(hub, DEVICES_TOPIC, payload, retain=True)
    assert set(hub.devices) == before
    assert [(i.event, i.fields["topic"]) for i in out if isinstance(i, Log)] == [("discovery.rejected", DEVICES_TOPIC)]


def test_entries_that_cannot_be_devices_are_skipped(binding: Binding) -> None:
    entries = [
        "text",
        {"type": "Router"},  # no IEEE address
        {"ieee_address": "0x01", "friendly_name": "bad+name"},  # no valid topic
        {"ieee_address": "0x02", "friendly_name": "ok", "definition": {"exposes": "nonsense"}},
        {
            "ieee_address": "0x03",
            "friendly_name": "odd",
            "definition": {
                "exposes": [
                    {
                        "type": "numeric",
                        "property": "level",
                        "access": 7,
                        "value_min": 9,
                        "value_max": 1,
                        "value_step": -1,
                    },
                    {"type": "binary", "property": "flag", "access": 3, "value_on": "X", "value_off": "X"},
                    {"type": "enum", "property": "mode", "access": 3, "values": "abc"},
                ]
            },
        },
    ]
    result = mapped(binding, json.dumps(entries).encode())
    found = {d.device_id: d for d in result.devices}
    assert set(found) == {"zigbee2mqtt", "0x02", "0x03"}
    assert result.skipped == (
        "entry 0: not an object",
        "entry 1: no ieee_address",
        "entry 2: 0x01: friendly_name 'bad+name' cannot be a topic ('+', '#', braces or NUL)",
    )
    hub = make_hub(binding)
    out = feed(hub, DEVICES_TOPIC, json.dumps(entries), retain=True)
    skipped = [i for i in out if isinstance(i, Log) and i.event == "discovery.skipped"]
    assert [(i.fields["topic"], i.fields["reason"]) for i in skipped] == [(DEVICES_TOPIC, r) for r in result.skipped]
    level = found["0x03"].profile.properties["level"]
    assert (level.minimum, level.maximum, level.step) == (None, None, None)
    assert set(found["0x03"].profile.properties) == {"level"}


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "ieee_address",
                        "friendly_name",
                        "definition",
                        "exposes",
                        "features",
                        "type",
                        "property",
                        "access",
                        "values",
                        "value_on",
                        "value_off",
                        "value_min",
                        "value_max",
                        "endpoint",
                        "name",
                    ]
                ),
                children,
                max_size=6,
            )
        ),
        max_leaves=40,
    )
)
def test_any_json_is_a_discovery_or_a_discovery_error(binding: Binding, value: object) -> None:
    try:
        result = mapped(binding, json.dumps(value).encode())
    except DiscoveryError:
        return
    assert all(d.device_id for d in result.devices)


def test_a_bridge_logged_in_as_its_base_topic_follows_its_mqtt_session(binding: Binding) -> None:
    hub = make_hub(binding)
    hub.handle(MqttClientConnected("z2m-client", "zigbee2mqtt"), T0)
    feed(hub, DEVICES_TOPIC, fixture("bridge_devices.json"), retain=True)  # no bridge/state heard at all
    plug = hub.devices[f"{PLUG}@{DOMAIN}"]
    feed(hub, "zigbee2mqtt/my_plug", fixture("state_my_plug.json"))
    assert plug.online
    hub.handle(MqttClientDisconnected("z2m-client", "zigbee2mqtt"), T0 + 1)  # no Last Will either
    assert not hub.devices[f"zigbee2mqtt@{DOMAIN}"].online and not plug.online


def test_infinite_ranges_and_write_only_states_give_no_bounds_and_no_switch(binding: Binding) -> None:
    payload = (
        b'[{"ieee_address": "0x1", "definition": {"exposes": ['
        b'{"type": "numeric", "property": "level", "access": 7, "value_min": -Infinity, "value_max": 1e999},'
        b'{"type": "binary", "property": "state", "access": 2, "value_on": "ON", "value_off": "OFF"}]}}]'
    )
    (_, device) = mapped(binding, payload).devices
    level = device.profile.properties["level"]
    assert (level.kind, level.minimum, level.maximum) == (PropertyKind.NUMBER, None, None)
    assert device.profile.switch is None and "state" not in device.profile.properties
