"""Home Assistant MQTT discovery, in memory: recorded configs and states in, contacts, presence and commands out.

The fixtures under tests/fixtures/homeassistant follow ESPHome's, zigbee2mqtt's,
OpenMQTTGateway's and Home Assistant's own documentation (each file says
which pages). Most tests drive the whole core (``Hub``) with them; the
bad-input tests call the mapper directly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.codecs import PayloadError
from hub.core.discovery import MAPPERS, DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.discovery.homeassistant import ABBREVIATIONS, map_homeassistant
from hub.core.events import ChatReceived, Event, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat, SendPresence, Show
from hub.core.mapping import Binding
from hub.core.profile import DiscoverySpec, Profile, Role, TelemetrySpec
from hub.core.templates import TemplateSyntaxError
from hub.core.topics import TopicTemplate

FIXTURES = Path(__file__).parents[2] / "fixtures" / "homeassistant"
DOMAIN = "hub.example"
OPERATOR = "op@example.org"
LIVINGROOM = f"a4cf12345678@{DOMAIN}"
PLUG = f"0x00124b0012345678@{DOMAIN}"
BOILER = f"boiler01@{DOMAIN}"
KITCHEN = f"kitchen_light@{DOMAIN}"
T0 = 1000.0

IntentT = TypeVar("IntentT", bound=Intent)


def of(kind: type[IntentT], intents: Sequence[Intent]) -> list[IntentT]:
    return [i for i in intents if isinstance(i, kind)]


def messages(name: str) -> list[MqttMessageReceived]:
    """A fixture's messages as the broker hands them to the core."""
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    out = []
    for m in data["messages"]:
        payload = m["payload"]
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        out.append(MqttMessageReceived(m["topic"], raw, retain=m["retain"]))
    return out


def config_message(topic: str, payload: dict[str, Any] | str) -> MqttMessageReceived:
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return MqttMessageReceived(topic, raw, retain=True)


@pytest.fixture(scope="module")
def ha_binding() -> Binding:
    return Binding("homeassistant", builtin_profiles()["homeassistant"])


def make_hub(*bindings: Binding) -> Hub:
    settings = HubSettings(domain=DOMAIN, bindings=bindings, grants={OPERATOR: Grant(Role.ADMIN)})
    subscriptions = [(jid, OPERATOR) for jid in (LIVINGROOM, PLUG, BOILER, KITCHEN, f"a4c138aabbcc@{DOMAIN}")]
    hub = Hub(settings, subscriptions=subscriptions)
    hub.handle(XmppLinkUp(), T0 - 10)
    hub.handle(MqttLinkUp(), T0 - 10)
    return hub


def feed(hub: Hub, events: Iterable[Event], now: float = T0) -> list[Intent]:
    out: list[Intent] = []
    for event in events:
        out += hub.handle(event, now)
    return out


def say(hub: Hub, jid: str, body: str, now: float = T0 + 1) -> list[Intent]:
    return hub.handle(ChatReceived(f"{OPERATOR}/phone", jid, body), now)


def replies(intents: Sequence[Intent]) -> list[str]:
    return [i.body for i in of(SendChat, intents)]


def last_presence(intents: Sequence[Intent], jid: str) -> SendPresence:
    return [p for p in of(SendPresence, intents) if p.sender == jid][-1]


# ------------------------------------------------------------------ the shipped profile


def test_the_profile_reads_both_discovery_topic_shapes_and_ranks_below_native_families() -> None:
    profiles = builtin_profiles()
    profile = profiles["homeassistant"]
    assert [d.topic.source for d in profile.discovery] == [
        "{prefix}/{component}/{object_id}/config",
        "{prefix}/{component}/{node_id}/{object_id}/config",
    ]
    assert {d.mapper for d in profile.discovery} == {"homeassistant"}
    assert profile.defaults == {"prefix": "homeassistant"}
    assert profile.rank < profiles["hub"].rank
    hub = make_hub(Binding("ha", profile, {"prefix": "ha-test"}))
    assert hub.router.discovery_rule("ha-test/sensor/node/temp/config") is not None
    assert hub.router.discovery_rule("homeassistant/sensor/node/temp/config") is None


# ------------------------------------------------------------------ ESPHome


def test_an_esphome_node_is_one_contact_with_its_name_model_and_readings(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    out = feed(hub, messages("esphome_livingroom"))
    assert list(hub.devices) == [LIVINGROOM]
    device = hub.devices[LIVINGROOM]
    assert (device.name, device.model) == ("livingroom", "espressif esp32dev")
    assert device.readings == {"temperature": 21.63, "humidity": 48, "motion": "off", "relay": "off"}
    assert device.profile.readings["temperature"].unit == "°C"
    assert device.profile.readings["temperature"].device_class == "temperature"
    assert [log.fields["device"] for log in of(Log, out) if log.event == "device.new"] == ["a4cf12345678"]
    status = replies(say(hub, LIVINGROOM, "status"))[0]
    assert status.splitlines()[:5] == [
        "livingroom (a4cf12345678): online",
        "  Temperature 21.6 °C",
        "  Humidity 48 %",
        "  Motion off",
        "  Relay off",
    ]
    live = feed(hub, [MqttMessageReceived("livingroom/sensor/temperature/state", b"22.04")], T0 + 5)
    assert last_presence(live, LIVINGROOM) == SendPresence(
        LIVINGROOM, OPERATOR, Show.AVAILABLE, "Temperature 22.0 °C · Humidity 48 % · Motion off · Relay off"
    )


def test_help_lists_the_readings_the_switch_and_the_buttons(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("esphome_livingroom"))
    assert replies(say(hub, LIVINGROOM, "help")) == [
        "livingroom (a4cf12345678): a homeassistant device. Commands:\n"
        "  read: status · temperature? · humidity? · motion? · relay?\n"
        "  switch: on · off · toggle\n"
        "  restart: press Restart"
    ]


def test_the_switch_is_commanded_on_its_own_topic_and_confirmed_by_its_state(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("esphome_livingroom"))
    out = say(hub, LIVINGROOM, "on")
    assert of(PublishMqtt, out) == [PublishMqtt("livingroom/switch/relay/command", b"ON", qos=0)]
    assert replies(out) == ["→ sent: on"]
    echo = feed(hub, [MqttMessageReceived("livingroom/switch/relay/state", b"ON")], T0 + 1.5)
    assert replies(echo) == ["✓ on: confirmed in 0.5 s"]
    assert of(PublishMqtt, say(hub, LIVINGROOM, "toggle", T0 + 2)) == [
        PublishMqtt("livingroom/switch/relay/command", b"TOGGLE", qos=0)
    ]
    assert of(PublishMqtt, say(hub, LIVINGROOM, "set relay off", T0 + 3)) == [
        PublishMqtt("livingroom/switch/relay/command", b"OFF", qos=0)
    ]
    refused = say(hub, LIVINGROOM, "on 2", T0 + 4)
    # each switch has its own topic: a channel the device does not list is not sent to the first one's
    assert replies(refused) == ["a4cf12345678 cannot be sent that command."] and not of(PublishMqtt, refused)


def test_a_button_is_a_verb_that_publishes_its_press_payload(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("esphome_livingroom"))
    out = say(hub, LIVINGROOM, "restart")
    assert of(PublishMqtt, out) == [PublishMqtt("livingroom/button/restart/command", b"PRESS", qos=0)]
    assert replies(out) == ["→ sent: restart"]


def test_the_availability_topic_takes_the_device_offline_and_back(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("esphome_livingroom"))
    gone = feed(hub, [MqttMessageReceived("livingroom/status", b"offline", retain=True)], T0 + 60)
    presence = last_presence(gone, LIVINGROOM)
    assert presence.show is Show.UNAVAILABLE and presence.status.startswith("offline since")
    back = feed(hub, [MqttMessageReceived("livingroom/status", b"online", retain=True)], T0 + 120)
    assert last_presence(back, LIVINGROOM).show is Show.AVAILABLE


# ------------------------------------------------------------------ zigbee2mqtt and OpenMQTTGateway


def test_zigbee2mqtt_devices_are_named_by_their_ieee_address_and_read_their_json_state(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("zigbee2mqtt_plug"))
    device = hub.devices[PLUG]
    assert (device.device_id, device.name, device.model) == (
        "0x00124b0012345678",
        "Hall plug",
        "Example Smart plug (EX-PLUG-1)",
    )
    assert device.readings == {"switch": "off", "power": 0.0}  # linkquality is disabled by default: not shown
    assert device.profile.readings["power"].unit == "W"
    out = say(hub, PLUG, "on")
    assert of(PublishMqtt, out) == [PublishMqtt("zigbee2mqtt/Hall plug/set", b"ON", qos=0)]
    echo = feed(hub, [MqttMessageReceived("zigbee2mqtt/Hall plug", b'{"state": "ON", "power": 41.5}')], T0 + 2)
    assert replies(echo) == ["✓ on: confirmed in 1.0 s"]
    assert hub.devices[PLUG].readings == {"switch": "on", "power": 41.5}


def test_an_availability_list_reads_json_through_its_value_template(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("zigbee2mqtt_plug"))
    gone = feed(hub, [MqttMessageReceived("zigbee2mqtt/bridge/state", b'{"state": "offline"}', retain=True)], T0 + 9)
    assert last_presence(gone, PLUG).show is Show.UNAVAILABLE
    back = feed(hub, [MqttMessageReceived("zigbee2mqtt/bridge/state", b'{"state": "online"}', retain=True)], T0 + 10)
    assert last_presence(back, PLUG).show is Show.AVAILABLE


def test_openmqttgateway_sensors_group_by_mac_and_a_wildcard_state_topic_is_refused(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    out = feed(hub, messages("openmqttgateway_ble"))
    rejected = [log for log in of(Log, out) if log.event == "discovery.rejected"]
    assert [log.fields for log in rejected] == [
        {
            "topic": "homeassistant/sensor/A4C138AABBCC-tempc/config",
            "reason": "state_topic: topic '+/+/BTtoMQTT/A4C138AABBCC' contains a wildcard",
        }
    ]
    device = hub.devices[f"a4c138aabbcc@{DOMAIN}"]
    assert device.name == "LYWSD03MMC-AABBCC"
    # '| is_defined': the battery message lacks 'hum', which keeps its last value
    assert device.readings == {"hum": 52.9, "batt": 87}
    assert device.profile.readings["batt"].unit == "%"


# ------------------------------------------------------------------ Home Assistant's own examples


def test_a_json_light_with_a_base_topic(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("ha_documentation"))
    light = hub.devices[KITCHEN]
    assert light.name == "Kitchen"
    assert light.readings == {"kitchen": "on", "kitchen_brightness": 40}
    assert of(PublishMqtt, say(hub, KITCHEN, "off")) == [
        PublishMqtt("homeassistant/light/kitchen/set", b'{"state":"OFF"}', qos=0)
    ]
    out = say(hub, KITCHEN, "set kitchen_brightness 75", T0 + 2)
    assert of(PublishMqtt, out) == [
        PublishMqtt("homeassistant/light/kitchen/set", b'{"state":"ON","brightness":75}', qos=0)
    ]
    assert replies(say(hub, KITCHEN, "set kitchen_brightness 101", T0 + 3)) == [
        "101 is out of range: kitchen_brightness takes 0–100, step 1."
    ]
    echo = feed(
        hub, [MqttMessageReceived("homeassistant/light/kitchen/state", b'{"state":"ON","brightness":75}')], T0 + 4
    )
    assert replies(echo) == ["✓ set kitchen_brightness 75: confirmed in 2.0 s"]


def test_a_device_config_describes_all_its_components(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("ha_documentation"))
    boiler = hub.devices[BOILER]
    assert (boiler.name, boiler.model) == ("Boiler", "Example B-1")
    assert boiler.readings == {
        "water": 55.5,
        "setpoint": 60,
        "program": "Eco",
        "room_temperature": 20.5,
        "room_target": 21,
        "room_mode": "heat",
    }
    sent = {
        "set setpoint 62.5": PublishMqtt("boiler/set", b'{"setpoint":62.5}', qos=0),
        "set program comfort": PublishMqtt("boiler/program/set", b"Comfort", qos=0),
        "set room_target 22.5": PublishMqtt("boiler/room/set", b"22.5", qos=0),
        "set room_mode off": PublishMqtt("boiler/mode/set", b"off", qos=0),
        "flush": PublishMqtt("boiler/flush", b"GO", qos=0),
    }
    for command, publish in sent.items():
        assert of(PublishMqtt, say(hub, BOILER, command)) == [publish], command
    assert replies(say(hub, BOILER, "set setpoint 62.3")) == ["setpoint moves in steps of 0.5: 30–80 °C, step 0.5."]
    assert replies(say(hub, BOILER, "set room_target 40")) == [
        "40 is out of range: room_target takes 10–28 °C, step 0.5."
    ]
    gone = feed(hub, [MqttMessageReceived("boiler/availability", b"offline", retain=True)], T0 + 5)
    assert last_presence(gone, BOILER).show is Show.UNAVAILABLE


def test_a_component_left_with_only_its_platform_is_removed(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    feed(hub, messages("ha_documentation"))
    config = json.loads(json.dumps(json.loads(messages("ha_documentation")[1].payload)))
    config["cmps"]["flush"] = {"p": "button"}
    feed(hub, [config_message("homeassistant/device/boiler01/config", config)], T0 + 1)
    assert "flush" not in hub.devices[BOILER].profile.verbs
    assert "setpoint" in hub.devices[BOILER].profile.properties


def test_without_availability_the_device_follows_its_state_topics(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    config = {"name": "Mailbox", "uniq_id": "mailbox_1", "stat_t": "mailbox/state", "pl_on": "full", "pl_off": "empty"}
    out = feed(hub, [config_message("homeassistant/binary_sensor/mailbox/config", config)])
    jid = f"mailbox_1@{DOMAIN}"
    assert hub.devices[jid].profile.availability == ()
    assert hub.devices[jid].name == "Mailbox"
    assert not hub.devices[jid].online
    out = feed(hub, [MqttMessageReceived("mailbox/state", b"full")], T0 + 1)
    assert hub.devices[jid].online and hub.devices[jid].readings == {"mailbox": "on"}
    assert not of(Log, [i for i in out if isinstance(i, Log) and i.level == "warning"])


def test_availability_mode_all_needs_every_topic_online(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    config = {
        "name": "Pump",
        "uniq_id": "pump",
        "cmd_t": "pump/set",
        "stat_t": "pump/state",
        "avty_mode": "all",
        "avty": [{"t": "pump/lwt", "pl_avail": "Online", "pl_not_avail": "Offline"}, {"t": "bridge/lwt"}],
    }
    feed(hub, [config_message("homeassistant/switch/pump/config", config)])
    jid = f"pump@{DOMAIN}"
    feed(hub, [MqttMessageReceived("pump/lwt", b"Online", retain=True)])
    assert not hub.devices[jid].online  # the bridge has not said so yet
    feed(hub, [MqttMessageReceived("bridge/lwt", b"online", retain=True)])
    assert hub.devices[jid].online
    feed(hub, [MqttMessageReceived("bridge/lwt", b"offline", retain=True)], T0 + 1)
    assert not hub.devices[jid].online
    config["avty_mode"] = "any"
    feed(hub, [config_message("homeassistant/switch/pump/config", config)], T0 + 2)
    feed(hub, [MqttMessageReceived("pump/lwt", b"Online", retain=True)], T0 + 3)
    assert hub.devices[jid].online


# ------------------------------------------------------------------ removal


def test_an_empty_config_removes_its_entity_and_the_last_one_the_device(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    esphome = messages("esphome_livingroom")
    feed(hub, esphome)
    configs = [m.topic for m in esphome if m.topic.endswith("/config")]
    feed(hub, [MqttMessageReceived("homeassistant/switch/livingroom/relay/config", b"", retain=True)], T0 + 1)
    profile = hub.devices[LIVINGROOM].profile
    assert "relay" not in profile.properties and profile.switch is None
    assert "temperature" in profile.readings
    out: list[Intent] = []
    for topic in configs:
        out += hub.handle(MqttMessageReceived(topic, b"", retain=True), T0 + 2)
    assert LIVINGROOM not in hub.devices
    assert [log.fields["device"] for log in of(Log, out) if log.event == "device.removed"] == ["a4cf12345678"]
    assert last_presence(out, LIVINGROOM) == SendPresence(
        LIVINGROOM, OPERATOR, Show.UNAVAILABLE, "removed from homeassistant"
    )
    assert not hub.router.routes("livingroom/sensor/temperature/state")


# ------------------------------------------------------------------ one device, two conventions


@register("test-native-zigbee")
def _native_zigbee(message: DiscoveryInput) -> Discovery:
    """A stand-in for the zigbee2mqtt family: ``bridge/devices`` lists IEEE addresses and friendly names."""
    found = []
    for entry in json.loads(message.payload or b"[]"):
        topic = TopicTemplate.parse(f"zigbee2mqtt/{entry['friendly_name']}")
        profile = replace(message.binding.profile, telemetry=(TelemetrySpec(topic),), discovery=())
        found.append(DiscoveredDevice(entry["ieee_address"], entry["friendly_name"], profile))
    return Discovery(message.topic, tuple(found))


NATIVE = Binding(
    "zigbee2mqtt",
    Profile(
        name="zigbee2mqtt-test",
        rank=10,
        discovery=(DiscoverySpec(TopicTemplate.parse("zigbee2mqtt/bridge/devices"), "test-native-zigbee"),),
    ),
)
BRIDGE_DEVICES = MqttMessageReceived(
    "zigbee2mqtt/bridge/devices",
    json.dumps([{"ieee_address": "0x00124b0012345678", "friendly_name": "Hall plug"}]).encode(),
    retain=True,
)


@pytest.mark.parametrize("native_first", [True, False])
def test_a_zigbee2mqtt_device_seen_through_both_conventions_is_listed_once_natively(
    ha_binding: Binding, native_first: bool
) -> None:
    hub = make_hub(ha_binding, NATIVE)
    ha = messages("zigbee2mqtt_plug")
    out = feed(hub, [BRIDGE_DEVICES, *ha] if native_first else [*ha, BRIDGE_DEVICES])
    assert list(hub.devices) == [PLUG]
    assert hub.devices[PLUG].binding.name == "zigbee2mqtt"
    assert hub.devices[PLUG].name == "Hall plug"
    out += feed(hub, [MqttMessageReceived("zigbee2mqtt/Hall plug", b'{"state": "ON"}')], T0 + 1)
    assert hub.devices[PLUG].readings["state"] == "ON"  # read by the native profile, not as 'switch'
    assert "switch" not in hub.devices[PLUG].readings
    listing = replies(hub.handle(ChatReceived(f"{OPERATOR}/phone", DOMAIN, "devices"), T0 + 1))
    assert listing == [f"{PLUG}: Hall plug (0x00124b0012345678), online"]
    events = [log.event for log in of(Log, out)]
    if native_first:
        assert "discovery.duplicate" in events and "device.removed" not in events
    else:
        removed = [log for log in of(Log, out) if log.event == "device.removed"]
        assert [log.fields["binding"] for log in removed] == ["homeassistant"]
    # further Home Assistant configs for it change nothing
    again = feed(hub, ha[:1], T0 + 2)
    assert hub.devices[PLUG].binding.name == "zigbee2mqtt"
    assert "discovery.duplicate" in [log.event for log in of(Log, again)]


def _as_my_plug(message: MqttMessageReceived) -> MqttMessageReceived:
    """The recorded Home Assistant copy of a zigbee2mqtt plug, as the zigbee2mqtt fixture's 'my_plug'."""
    text = message.payload.decode().replace("0x00124b0012345678", "0x00158d00018255df").replace("Hall plug", "my_plug")
    return replace(
        message, topic=message.topic.replace("0x00124b0012345678", "0x00158d00018255df"), payload=text.encode()
    )


@pytest.mark.parametrize("native_first", [True, False])
def test_with_the_zigbee2mqtt_family_each_device_and_the_bridge_are_listed_once(
    ha_binding: Binding, native_first: bool
) -> None:
    native = Binding("zigbee2mqtt", builtin_profiles()["zigbee2mqtt"])
    hub = make_hub(ha_binding, native)
    devices = (FIXTURES.parent / "zigbee2mqtt" / "bridge_devices.json").read_bytes()
    bridge_config = {
        "stat_t": "zigbee2mqtt/bridge/state",
        "val_tpl": "{{ value_json.state }}",
        "dev": {"ids": ["zigbee2mqtt_bridge_0x00124b00120144ae"], "name": "Zigbee2MQTT Bridge"},
    }
    ha = [
        *(_as_my_plug(m) for m in messages("zigbee2mqtt_plug") if m.topic.endswith("/config")),
        config_message(
            "homeassistant/binary_sensor/1221051039810110150109113116116_0x00124b00120144ae/connection_state/config",
            bridge_config,
        ),
    ]
    listing = MqttMessageReceived("zigbee2mqtt/bridge/devices", devices, retain=True)
    out = feed(hub, [listing, *ha] if native_first else [*ha, listing])
    event = "discovery.duplicate" if native_first else "device.removed"
    assert {log.fields["device"] for log in of(Log, out) if log.event == event} == {
        "0x00158d00018255df",
        "0x00124b00120144ae",
    }
    by_binding = {jid: d.binding.name for jid, d in hub.devices.items()}
    assert set(by_binding.values()) == {"zigbee2mqtt"}, by_binding
    assert f"0x00158d00018255df@{DOMAIN}" in hub.devices and f"0x00124b00120144ae@{DOMAIN}" not in hub.devices


def test_zigbee2mqtt_identifiers_give_the_ieee_address_as_id_and_alias(ha_binding: Binding) -> None:
    message = messages("zigbee2mqtt_plug")[0]
    found = map_homeassistant(DiscoveryInput(message.topic, message.payload, ha_binding, {}))
    assert found.source == message.topic
    assert [(d.device_id, d.aliases) for d in found.devices] == [("0x00124b0012345678", ("0x00124b0012345678",))]


def test_the_zigbee2mqtt_bridge_is_named_by_its_coordinator_address(ha_binding: Binding) -> None:
    config = {"stat_t": "zigbee2mqtt/bridge/state", "dev": {"ids": ["zigbee2mqtt_bridge_0x00124B00AAAAAAAA"]}}
    device = describe(
        ha_binding,
        "homeassistant/binary_sensor/1221051039810110150109113116116_0x00124b00aaaaaaaa/connection_state/config",
        config,
    )
    assert (device.device_id, device.aliases) == ("0x00124b00aaaaaaaa", ("0x00124b00aaaaaaaa",))


def test_a_mac_connection_is_an_alias_as_other_families_write_it(ha_binding: Binding) -> None:
    message = messages("openmqttgateway_ble")[1]
    (device,) = map_homeassistant(DiscoveryInput(message.topic, message.payload, ha_binding, {})).devices
    assert device.device_id == "a4c138aabbcc"
    assert device.aliases == ("a4c138aabbcc", "a4:c1:38:aa:bb:cc")


# ------------------------------------------------------------------ keys, abbreviations and templates


def describe(binding: Binding, topic: str, config: dict[str, Any]) -> DiscoveredDevice:
    (device,) = map_homeassistant(DiscoveryInput(topic, json.dumps(config).encode(), binding, {})).devices
    return device


def test_base_topic_at_the_start_or_end_and_full_keys_win_over_abbreviations(ha_binding: Binding) -> None:
    device = describe(
        ha_binding,
        "homeassistant/sensor/t/config",
        {"~": "base/x", "stat_t": "~/state", "avty_t": "lwt/~", "state_topic": "full/state", "uniq_id": "T1"},
    )
    assert [t.topic.source for t in device.profile.telemetry] == ["full/state"]
    assert [a.topic.source for a in device.profile.availability] == ["lwt/base/x"]
    assert device.device_id == "t1"


@pytest.mark.parametrize(
    ("template", "payload"),
    [
        (None, "{value}"),
        ("{{ value }}", "{value}"),
        ('{"setpoint": {{ value }}}', {"setpoint": "{value}"}),
        ('{"mode": "{{value}}", "on": true}', {"mode": "{value}", "on": True}),
        ("SET {{ value }}", "SET {value}"),
    ],
)
def test_command_templates_become_payload_templates(ha_binding: Binding, template: str | None, payload: object) -> None:
    config: dict[str, Any] = {"cmd_t": "n/set", "stat_t": "n/state", "min": 0, "max": 10}
    if template is not None:
        config["cmd_tpl"] = template
    device = describe(ha_binding, "homeassistant/number/n/config", config)
    command = device.profile.properties["n"].command
    assert command is not None and command.set_payload == payload


def test_every_abbreviation_spells_out_to_a_full_key() -> None:
    assert all(full.replace("_", "").isalpha() and full not in ABBREVIATIONS for full in ABBREVIATIONS.values())
    assert ABBREVIATIONS["stat_t"] == "state_topic" and ABBREVIATIONS["dev"] == "device"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("homeassistant/sensor/x/config", b"{not json", "config is not JSON"),
        ("homeassistant/sensor/x/config", b"[1, 2]", "config is JSON list, expected an object"),
        ("homeassistant/sensor/x/config", b"\xff\xfe", "config is not UTF-8"),
        ("homeassistant/sensor/x/config", b"{" * 100_000, "config of 100000 bytes is over the 65536-byte limit"),
        ("homeassistant/sensor/x/config", b"[" * 60_000, "config is not JSON"),
        ("homeassistant/sensor/x/y/z/config", b"{}", "is not <prefix>/<component>/[<node_id>/]<object_id>/config"),
    ],
)
def test_unreadable_configs_are_refused_with_a_reason(
    ha_binding: Binding, topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(DiscoveryError) as refused:
        map_homeassistant(DiscoveryInput(topic, payload, ha_binding, {}))
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("component", "config", "reason"),
    [
        ("sensor", {"stat_t": "a/+/b"}, "state_topic: topic 'a/+/b' contains a wildcard"),
        ("sensor", {"stat_t": "a/{id}/b"}, "state_topic: braces are not supported"),
        ("sensor", {"stat_t": 5}, "state_topic: 5 is not a topic"),
        ("sensor", {"stat_t": "s", "val_tpl": "{% for x in value %}{% endfor %}"}, "value_template: statement 'for'"),
        ("sensor", {"stat_t": "s", "val_tpl": "{{ value.__class__ }}"}, "value_template: member name '__class__'"),
        ("sensor", {"stat_t": "s", "avty_t": "a", "avty_tpl": "{{ value | lower }}"}, "availability_template: only"),
        ("sensor", {"stat_t": "s", "avty": [{"pl_avail": "up"}]}, "availability: an entry without topic"),
        ("sensor", {"stat_t": "s", "avty": [{"t": "a"}] * 17}, "over the limit of 16"),
        ("switch", {"cmd_t": "c", "cmd_tpl": "{{ value | upper }}"}, "command_template: only {{ value }}"),
        ("switch", {"cmd_t": "c", "cmd_tpl": '{"x": "{name}", "v": {{ value }}}'}, "text in braces"),
        ("button", {"cmd_t": "c", "pl_prs": "{cid}"}, "payload_press: text in braces"),
        ("light", {"cmd_t": "c", "schema": "template"}, "light schema 'template' is not supported"),
        ("light", {"cmd_t": "c", "bri_scl": 0}, "brightness_scale: 0.0 is out of range"),
        ("number", {"cmd_t": "c", "min": 10, "max": 1}, "min/max/step: 10.0/1.0/1.0 is not a range"),
        ("number", {"cmd_t": "c", "max": "high"}, "max: 'high' is not a number"),
        ("select", {"cmd_t": "c"}, "options: a select needs a list"),
        ("climate", {"temp_cmd_t": "c", "min_temp": 30, "max_temp": 10}, "min_temp/max_temp/temp_step"),
        ("sensor", {"stat_t": "s", "dev": {"ids": "x" * 200}}, "is too long or has control characters"),
    ],
)
def test_configs_that_cannot_work_are_refused_with_the_key_that_is_wrong(
    ha_binding: Binding, component: str, config: dict[str, Any], reason: str
) -> None:
    with pytest.raises(DiscoveryError) as refused:
        describe(ha_binding, f"homeassistant/{component}/x/config", config)
    assert reason in str(refused.value)


def test_a_component_overrides_the_shared_options_of_its_device_config(ha_binding: Binding) -> None:
    config = {
        "dev": {"ids": "d1", "name": "Two"},
        "~": "two",
        "state_topic": "~/shared",
        "cmps": {
            "a": {"p": "sensor", "stat_t": "~/own"},
            "b": {"p": "sensor", "~": "other", "unit_of_meas": "W"},
        },
    }
    device = describe(ha_binding, "homeassistant/device/d1/config", config)
    assert [(t.field, t.topic.source) for t in device.profile.telemetry] == [("a", "two/own"), ("b", "other/shared")]
    assert (device.device_id, device.name) == ("d1", "Two")


def test_a_bad_component_is_left_out_naming_itself(ha_binding: Binding) -> None:
    components: dict[str, Any] = {"bad": {"p": "select", "cmd_t": "c"}, "good": {"p": "sensor", "stat_t": "d1/good"}}
    config = {"dev": {"ids": "d1"}, "cmps": components}
    message = DiscoveryInput("homeassistant/device/d1/config", json.dumps(config).encode(), ha_binding, {})
    found = map_homeassistant(message)
    assert [d.device_id for d in found.devices] == ["d1"]
    assert list(found.devices[0].profile.readings) == ["good"]
    assert found.skipped == ("component 'bad': options: a select needs a list of 1 to 64 options",)
    hub = make_hub(ha_binding)
    out = hub.handle(MqttMessageReceived(message.topic, message.payload, retain=True), T0)
    assert [log.fields["reason"] for log in of(Log, out) if log.event == "discovery.skipped"] == list(found.skipped)
    del components["good"]
    with pytest.raises(DiscoveryError, match="component 'bad': options"):
        describe(ha_binding, "homeassistant/device/d1/config", config)
    with pytest.raises(DiscoveryError, match="needs 'components'"):
        describe(ha_binding, "homeassistant/device/d1/config", {"dev": {"ids": "d1"}})


def test_a_refused_config_is_logged_and_the_hub_serves_the_others(ha_binding: Binding) -> None:
    hub = make_hub(ha_binding)
    out = feed(hub, [config_message("homeassistant/sensor/x/config", "{oops"), *messages("esphome_livingroom")])
    assert [log.fields for log in of(Log, out) if log.event == "discovery.rejected"] == [
        {"topic": "homeassistant/sensor/x/config", "reason": "config is not JSON"}
    ]
    assert list(hub.devices) == [LIVINGROOM]


def test_things_without_a_device_or_a_known_component_describe_nothing(ha_binding: Binding) -> None:
    trigger = {"atype": "trigger", "t": "z/action", "type": "action", "stype": "single"}
    found = map_homeassistant(
        DiscoveryInput("homeassistant/device_automation/x/config", json.dumps(trigger).encode(), ha_binding, {})
    )
    assert found.devices == ()
    migrating = map_homeassistant(
        DiscoveryInput("homeassistant/sensor/x/config", b'{"migrate_discovery": true}', ha_binding, {})
    )
    assert migrating.devices == ()


# ------------------------------------------------------------------ generated configs

_keys = st.sampled_from(
    [*ABBREVIATIONS, *ABBREVIATIONS.values(), "~", "schema", "brightness", "min", "max", "step", "options", "name"]
)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True),
    st.sampled_from(
        ["~/state", "a/b", "ON", "{{ value_json.x }}", "{{ value }}", "json", "{% if %}", "+/#", "x" * 300]
    ),
    st.text(max_size=20),
)
_json = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=6), max_leaves=25
)
_configs = st.dictionaries(_keys, _json, max_size=12)
_components = st.sampled_from(
    ["sensor", "binary_sensor", "switch", "light", "number", "select", "button", "climate", "device", "fan"]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_components, _configs)
def test_any_config_describes_a_device_or_is_refused(
    ha_binding: Binding, component: str, config: dict[str, Any]
) -> None:
    if component == "device":
        config = {"dev": {"ids": "d"}, "cmps": {"a": {"p": "sensor", **config}, "b": {"p": "switch", **config}}}
    message = DiscoveryInput(f"homeassistant/{component}/n/o/config", json.dumps(config).encode(), ha_binding, {})
    try:
        found = MAPPERS["homeassistant"](message)
    except (DiscoveryError, PayloadError, TemplateSyntaxError):
        return
    assert len(found.devices) <= 1
    for device in found.devices:
        assert device.device_id and len(device.device_id) <= 128
        hub = make_hub(ha_binding)
        hub.handle(MqttMessageReceived(message.topic, message.payload, retain=True), T0)
        for spec in device.profile.telemetry:
            hub.handle(MqttMessageReceived(spec.topic.source, b'{"x": 1, "state": "ON"}'), T0 + 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_are_a_config_or_refused(ha_binding: Binding, payload: bytes) -> None:
    with contextlib.suppress(DiscoveryError):
        found = map_homeassistant(DiscoveryInput("homeassistant/sensor/x/config", payload, ha_binding, {}))
        assert len(found.devices) <= 1
