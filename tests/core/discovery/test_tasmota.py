"""Tasmota: native discovery, FullTopic layouts, readings, relays, commands and removal, in memory.

The traffic is tests/fixtures/tasmota/traffic.json, written from Tasmota's own
documentation (each message names the page it follows).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.discovery import MAPPERS, Discovery, DiscoveryError, DiscoveryInput
from hub.core.events import MqttLinkUp, MqttMessageReceived, SubscriptionRequested, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, SendPresence, SendSubscription, Show
from hub.core.mapping import Binding
from hub.core.profile import Role
from tests.core.discovery import family
from tests.core.discovery.family import T0, chats, linked_hub, play, publishes
from tests.support.traffic import load_traffic

TRAFFIC = load_traffic("tasmota")
DOMAIN = "hub.example"
ADMIN = "admin@example.org"
OPERATOR = "op@example.org"
PLUG = f"a0b1c2d3e4f5@{DOMAIN}"
DUAL = f"b0c1d2e3f405@{DOMAIN}"
TOPIC_FIRST = {"tele": "{id}/tele", "stat": "{id}/stat", "cmnd": "{id}/cmnd"}
PROFILE = builtin_profiles()["tasmota"]


def make_hub(slots: Mapping[str, str] | None = None) -> Hub:
    binding = Binding("tasmota", PROFILE, dict(slots or {}))
    grants = {ADMIN: Grant(Role.ADMIN), OPERATOR: Grant(Role.OPERATOR)}
    return linked_hub(binding, grants)


def feed(hub: Hub, scenario: str, now: float = T0) -> list[Intent]:
    return play(hub, TRAFFIC[scenario], now)


def say(hub: Hub, jid: str, body: str, now: float = T0 + 1, sender: str = OPERATOR) -> list[Intent]:
    return family.say(hub, jid, body, sender, now)


def logs(intents: Sequence[Intent], event: str) -> list[Log]:
    return [i for i in intents if isinstance(i, Log) and i.event == event]


def test_discovered_plug_is_listed_by_its_mac_with_name_model_and_readings() -> None:
    hub = make_hub()
    feed(hub, "plug")
    assert list(hub.devices) == [PLUG]  # the LWT heard first under its topic was taken over
    plug = hub.devices[PLUG]
    assert (plug.device_id, plug.name, plug.model) == ("a0b1c2d3e4f5", "Kitchen plug", "Gosund SP111 · Tasmota 13.2.0")
    assert plug.online
    assert plug.readings == {
        "power": "on",
        "signal": -59,
        "load": 1850,
        "energy": 12.345,
        "energy_today": 0.101,
        "voltage": 231,
        "current": 8.05,
    }
    out = hub.handle(SubscriptionRequested(OPERATOR, PLUG), T0 + 1)
    presence = [p for p in out if isinstance(p, SendPresence)]
    assert presence[-1].show is Show.AVAILABLE
    assert presence[-1].status == (
        "power on · load 1850 W · energy 12.345 kWh · today 0.101 kWh · voltage 231 V · current 8.05 A · Wi-Fi -59 dBm"
    )


def test_heard_before_discovery_keeps_its_state_and_the_topic_contact_goes() -> None:
    hub = make_hub()
    hub.handle(SubscriptionRequested(OPERATOR, f"kitchen_plug@{DOMAIN}"), T0)
    out = feed(hub, "plug")
    gone = [p for p in out if isinstance(p, SendPresence) and p.sender == f"kitchen_plug@{DOMAIN}"]
    assert gone[-1].show is Show.UNAVAILABLE and PLUG in gone[-1].status
    assert hub.devices[PLUG].available is True  # the retained LWT said Online before the config came


def test_the_offer_of_the_provisional_contact_is_withdrawn() -> None:
    binding = Binding("tasmota", PROFILE)
    hub = Hub(
        HubSettings(domain=DOMAIN, bindings=(binding,), grants={ADMIN: Grant(Role.ADMIN, notify_new_devices=True)})
    )
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    out = feed(hub, "plug")
    offers = [(i.sender, i.kind, i.nick) for i in out if isinstance(i, SendSubscription)]
    assert offers == [
        (f"kitchen_plug@{DOMAIN}", "subscribe", "kitchen_plug"),
        (f"kitchen_plug@{DOMAIN}", "unsubscribe", ""),
        (PLUG, "subscribe", "Kitchen plug"),
    ]


def test_on_off_toggle_go_to_the_relay_topic_and_are_confirmed_by_the_echo() -> None:
    hub = make_hub()
    feed(hub, "plug")
    out = say(hub, PLUG, "off")
    assert publishes(out) == [("cmnd/kitchen_plug/POWER", b"OFF")]
    assert chats(out) == ["→ sent: off"]
    out = feed(hub, "plug_power_off", T0 + 1.4)
    assert chats(out) == ["✓ off: confirmed in 0.4 s"]
    assert hub.devices[PLUG].readings["power"] == "off"
    out = say(hub, PLUG, "toggle", T0 + 2)
    assert publishes(out) == [("cmnd/kitchen_plug/POWER", b"TOGGLE")]
    out = hub.handle(MqttMessageReceived("stat/kitchen_plug/POWER", b"ON"), T0 + 2.5)
    assert chats(out) == ["✓ toggle: power on: confirmed in 0.5 s"]


def test_verbs_restart_needs_admin_and_teleperiod_takes_seconds() -> None:
    hub = make_hub()
    feed(hub, "plug")
    out = say(hub, PLUG, "restart")
    assert publishes(out) == [] and "needs admin" in chats(out)[0]
    assert publishes(say(hub, PLUG, "restart", sender=ADMIN)) == [("cmnd/kitchen_plug/Restart", b"1")]
    assert publishes(say(hub, PLUG, "teleperiod 60")) == [("cmnd/kitchen_plug/TelePeriod", b"60")]
    out = say(hub, PLUG, "teleperiod 5")
    assert publishes(out) == [] and chats(out) == ["5 is out of range: teleperiod takes 10–3600 s."]
    assert publishes(say(hub, PLUG, "refresh")) == [("cmnd/kitchen_plug/STATE", b"")]


def test_two_relays_with_the_topic_first_full_topic_from_discovery() -> None:
    hub = make_hub()
    feed(hub, "dual")
    dual = hub.devices[DUAL]
    assert dual.name == "Hall lights"
    assert dual.readings["power1"] == "on" and dual.readings["power2"] == "off"
    assert dual.profile.reading("temperature").unit == "°F"  # TempUnit from the sensors message
    assert publishes(say(hub, DUAL, "on 2")) == [("hall_dual/cmnd/POWER2", b"ON")]
    assert chats(feed(hub, "dual_power2_on", T0 + 2)) == ["✓ on 2: confirmed in 1.0 s"]
    assert publishes(say(hub, DUAL, "off", T0 + 3)) == [("hall_dual/cmnd/POWER1", b"OFF")]
    help_text = chats(say(hub, DUAL, "help"))[0]
    assert "switch: on · off · toggle [channel]" in help_text
    assert "temperature 71.2 °F" in chats(say(hub, DUAL, "temperature?"))[0]


def test_full_topic_tokens_hostname_and_id_are_filled() -> None:
    config = {**GOOD, "ft": "home/%hostname%/%id%/%prefix%/"}
    (device,) = _mapped(CONFIG, json.dumps(config).encode()).devices
    assert [a.topic.source for a in device.profile.availability] == ["home/kitchen-plug-4660/A0B1C2D3E4F5/tele/LWT"]
    power = device.profile.properties["power"].command
    assert power is not None and power.topic.source == "home/kitchen-plug-4660/A0B1C2D3E4F5/cmnd/POWER"


def test_a_light_reports_its_dimmer_and_takes_set_brightness() -> None:
    hub = make_hub()
    feed(hub, "plug")
    hub.handle(MqttMessageReceived("tele/kitchen_plug/STATE", b'{"POWER":"ON","Dimmer":40}'), T0 + 1)
    assert hub.devices[PLUG].readings["brightness"] == 40
    out = say(hub, PLUG, "set brightness 60", T0 + 2)
    assert publishes(out) == [("cmnd/kitchen_plug/Dimmer", b"60")]
    out = hub.handle(MqttMessageReceived("stat/kitchen_plug/RESULT", b'{"POWER":"ON","Dimmer":60}'), T0 + 2.5)
    assert chats(out) == ["✓ set brightness 60 %: confirmed in 0.5 s"]
    assert chats(say(hub, PLUG, "set brightness 120", T0 + 3)) == ["120 is out of range: brightness takes 0–100 %."]


def test_a_channel_the_profile_does_not_list_never_drives_the_first_relay() -> None:
    hub = make_hub()
    feed(hub, "dual")
    out = say(hub, DUAL, "on 9")
    assert publishes(out) == [] and chats(out) == ["b0c1d2e3f405 cannot be sent that command."]


def test_an_empty_retained_config_removes_the_device() -> None:
    hub = make_hub()
    feed(hub, "plug")
    hub.handle(SubscriptionRequested(OPERATOR, PLUG), T0)
    out = feed(hub, "plug_removed", T0 + 5)
    assert PLUG not in hub.devices
    assert [p.show for p in out if isinstance(p, SendPresence) and p.sender == PLUG] == [Show.UNAVAILABLE]
    assert logs(out, "device.removed")
    # Its topics are no longer routed to it; a later STATE makes a plain contact by topic, not the MAC one.
    hub.handle(MqttMessageReceived("tele/kitchen_plug/STATE", b'{"POWER":"ON"}'), T0 + 6)
    assert PLUG not in hub.devices


def test_without_discovery_the_topic_first_full_topic_is_set_through_slots() -> None:
    hub = make_hub(TOPIC_FIRST)
    for message in TRAFFIC["static"]:
        topic = message["topic"].split("/")  # the fixture uses the default layout: swap prefix and topic
        event = MqttMessageReceived("/".join([topic[1], topic[0], topic[2]]), message["payload"].encode())
        hub.handle(event, T0)
    device = hub.devices[f"garage_sensor@{DOMAIN}"]
    assert device.online
    assert device.readings == {"temperature": 4.5, "humidity": 81.0, "pressure": 1013.2, "power": "off", "signal": -65}
    assert publishes(say(hub, device.jid, "on")) == [("garage_sensor/cmnd/POWER", b"ON")]
    hub.handle(MqttMessageReceived("garage_sensor/tele/LWT", b"Offline", retain=True), T0 + 2)
    assert not device.online


def test_default_layout_without_discovery() -> None:
    hub = make_hub()
    feed(hub, "static")
    device = hub.devices[f"garage_sensor@{DOMAIN}"]
    assert device.readings["temperature"] == 4.5  # the first sensor that reports one (DS18B20)
    feed(hub, "static_offline", T0 + 1)
    assert not device.online


def _mapped(topic: str, payload: bytes, seen: Mapping[str, bytes] | None = None) -> Discovery:
    binding = Binding("tasmota", PROFILE)
    return MAPPERS["tasmota"](DiscoveryInput(topic, payload, binding, dict(seen or {topic: payload})))


CONFIG = "tasmota/discovery/A0B1C2D3E4F5/config"
GOOD = json.loads(TRAFFIC["plug"][1]["payload"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mac": "not-a-mac"}, "'mac' 'not-a-mac' is not 12 hexadecimal digits"),
        ({"t": "a+b"}, "topic 't' 'a+b' cannot be part of a topic"),
        ({"t": 5}, "'t' is not text"),
        ({"ft": "%prefix%/%topic%/%group%/"}, "uses a token the hub does not know"),
        ({"ft": "%topic%/"}, "has no %prefix%"),
        ({"tp": ["cmnd"]}, "'tp' is not a list of the three prefixes"),
        ({"rl": "1,1"}, "'rl' is not a list"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(DiscoveryError, match=reason.replace("+", r"\+").replace("'", "'")):
        _mapped(CONFIG, json.dumps({**GOOD, **change}).encode())


def test_a_bad_config_is_logged_and_changes_nothing() -> None:
    hub = make_hub()
    out = hub.handle(MqttMessageReceived(CONFIG, b"{not json", retain=True), T0)
    assert [log.fields["reason"] for log in logs(out, "discovery.rejected")] == [f"{CONFIG}: not a JSON object"]
    assert hub.devices == {}


def test_sensors_before_the_config_describe_nothing_yet() -> None:
    sensors = "tasmota/discovery/A0B1C2D3E4F5/sensors"
    assert _mapped(sensors, b'{"sn":{"TempUnit":"C"}}').devices == ()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)
config_keys = st.sampled_from(["mac", "t", "ft", "tp", "rl", "dn", "fn", "onln", "ofln", "md", "sw", "hn"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(config_keys, json_values, max_size=12))
def test_any_config_is_mapped_or_refused_with_a_discovery_error(fields: dict[str, object]) -> None:
    payload = json.dumps({**GOOD, **fields}).encode()
    try:
        result = _mapped(CONFIG, payload)
    except DiscoveryError:
        return
    assert result.source == "tasmota/discovery/A0B1C2D3E4F5"
    assert all(d.device_id == d.device_id.lower() for d in result.devices)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_mapped_or_refused(payload: bytes) -> None:
    with contextlib.suppress(DiscoveryError):
        _mapped(CONFIG, payload)
