"""Shelly Gen2+: found by online word and notifications, readings merged, JSON-RPC commands, in memory.

The traffic is tests/fixtures/shelly_gen2/traffic.json, written from Shelly's
Gen2 API documentation (each message names the page it follows).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.discovery import MAPPERS, Discovery, DiscoveryError, DiscoveryInput
from hub.core.events import MqttMessageReceived, SubscriptionRequested
from hub.core.hub import Hub
from hub.core.intents import Intent, Log, PublishMqtt, SendPresence
from hub.core.mapping import Binding
from hub.core.profile import Role
from tests.core.discovery import family
from tests.core.discovery.family import T0, chats, linked_hub, play
from tests.support.traffic import load_traffic

TRAFFIC = load_traffic("shelly_gen2")
PROFILE = builtin_profiles()["shelly-gen2"]
DOMAIN = "hub.example"
OPERATOR = "op@example.org"
ADMIN = "admin@example.org"
PLUS = f"shellyplus1pm-a8032ab12345@{DOMAIN}"
PRO = f"shellypro2pm-ec62608a1b2c@{DOMAIN}"


def make_hub() -> Hub:
    grants = {OPERATOR: Grant(Role.OPERATOR), ADMIN: Grant(Role.ADMIN)}
    return linked_hub(Binding("shelly-gen2", PROFILE), grants)


def feed(hub: Hub, scenario: str, now: float = T0) -> list[Intent]:
    return play(hub, TRAFFIC[scenario], now)


def say(hub: Hub, jid: str, body: str, now: float = T0 + 1, sender: str = OPERATOR) -> list[Intent]:
    return family.say(hub, jid, body, sender, now)


def rpc(intents: Sequence[Intent]) -> list[tuple[str, Any]]:
    return [(i.topic, json.loads(i.payload)) for i in intents if isinstance(i, PublishMqtt)]


def test_found_by_its_online_word_and_full_status_with_readings_in_units() -> None:
    hub = make_hub()
    feed(hub, "plus1pm")
    assert list(hub.devices) == [PLUS]
    device = hub.devices[PLUS]
    assert device.online and device.available is True  # the online topic is discovery and availability
    assert device.model == "shellyplus1pm"
    assert device.readings == {
        "power": "off",
        "load": 0.0,
        "voltage": 231.4,
        "current": 0.0,
        "energy": 12.345678,
        "temperature": 41.3,
    }
    out = hub.handle(SubscriptionRequested(OPERATOR, PLUS), T0 + 1)
    presence = [p for p in out if isinstance(p, SendPresence)][-1]
    assert presence.status == "power off · load 0 W · energy 12.346 kWh · voltage 231 V · current 0.00 A · 41.3 °C"


def test_notify_status_is_merged_into_the_readings() -> None:
    hub = make_hub()
    feed(hub, "plus1pm")
    feed(hub, "plus1pm_on", T0 + 60)
    readings = hub.devices[PLUS].readings
    assert (readings["power"], readings["load"], readings["current"]) == ("on", 1180.5, 5.12)
    assert readings["voltage"] == 231.4 and readings["energy"] == 12.345678  # untouched by the partial updates
    feed(hub, "plus1pm_event", T0 + 70)  # an input event carries no reading
    assert hub.devices[PLUS].readings == readings


def test_switch_set_goes_as_json_rpc_and_the_status_echo_confirms_it() -> None:
    hub = make_hub()
    feed(hub, "plus1pm")
    out = say(hub, PLUS, "on")
    assert rpc(out) == [
        (
            "shellyplus1pm-a8032ab12345/rpc",
            {"id": "h-1", "src": "mqtt-xmpp-hub", "method": "Switch.Set", "params": {"id": 0, "on": True}},
        )
    ]
    assert chats(feed(hub, "plus1pm_reply", T0 + 1.1)) == []  # the reply goes to <src>/rpc; the echo confirms
    assert chats(feed(hub, "plus1pm_on", T0 + 1.5)) == ["✓ on: confirmed in 0.5 s"]


def test_toggle_is_switch_toggle_and_channels_are_switch_ids() -> None:
    hub = make_hub()
    feed(hub, "pro2pm_custom_prefix")
    assert list(hub.devices) == [PRO]  # named by its src, whatever its prefix
    out = say(hub, PRO, "toggle 1")
    assert rpc(out)[0][0] == "garage-relays/rpc"
    assert rpc(out)[0][1]["method"] == "Switch.Toggle" and rpc(out)[0][1]["params"] == {"id": 1}
    echo = {"src": "shellypro2pm-ec62608a1b2c", "method": "NotifyStatus", "params": {"switch:1": {"output": True}}}
    out = hub.handle(MqttMessageReceived("garage-relays/events/rpc", json.dumps(echo).encode()), T0 + 2)
    assert chats(out) == ["✓ toggle 1: power 1 on: confirmed in 1.0 s"]
    assert rpc(say(hub, PRO, "off 1", T0 + 3))[0][1]["params"] == {"id": 1, "on": False}
    assert rpc(say(hub, PRO, "reboot", T0 + 3)) == []  # admin only
    assert rpc(say(hub, PRO, "reboot", T0 + 3, sender=ADMIN))[0][1]["method"] == "Shelly.Reboot"


def test_a_sensor_reports_temperature_humidity_and_battery() -> None:
    hub = make_hub()
    ht = "shellyplusht-e86beae8ca14"
    frame = {
        "src": ht,
        "dst": f"{ht}/events",
        "method": "NotifyFullStatus",
        "params": {
            "ts": 3.1,
            "devicepower:0": {"id": 0, "battery": {"V": 5.2, "percent": 87}, "external": {"present": False}},
            "humidity:0": {"id": 0, "rh": 40.7},
            "temperature:0": {"id": 0, "tC": 21.4, "tF": 70.5},
        },
    }
    hub.handle(MqttMessageReceived(f"{ht}/events/rpc", json.dumps(frame).encode()), T0)
    device = hub.devices[f"{ht}@{DOMAIN}"]
    assert device.readings == {"temperature": 21.4, "humidity": 40.7, "battery": 87}
    status = chats(say(hub, device.jid, "status"))[0].splitlines()[1:4]
    assert status == ["  temperature 21.4 °C", "  humidity 41 %", "  battery 87 %"]


def test_offline_by_its_last_will() -> None:
    hub = make_hub()
    feed(hub, "plus1pm")
    feed(hub, "plus1pm_offline", T0 + 5)
    assert not hub.devices[PLUS].online


def test_another_familys_online_topic_is_not_taken_for_a_shelly() -> None:
    hub = make_hub()
    out = feed(hub, "not_a_shelly")
    assert hub.devices == {}
    assert not [i for i in out if isinstance(i, Log) and i.level == "warning"]


def test_status_topic_heard_before_discovery_is_the_same_contact() -> None:
    hub = make_hub()
    status = TRAFFIC["plus1pm"][2]
    hub.handle(MqttMessageReceived(status["topic"], status["payload"].encode()), T0)
    assert list(hub.devices) == [PLUS]  # routed by the status rule, under its prefix (its id)
    feed(hub, "plus1pm", T0 + 1)
    assert list(hub.devices) == [PLUS] and hub.devices[PLUS].own_profile is not None


def test_a_custom_prefix_heard_before_discovery_is_taken_over_by_the_device_id() -> None:
    hub = make_hub()
    hub.handle(MqttMessageReceived("garage-relays/status/switch:0", b'{"id":0,"output":true,"apower":15.2}'), T0)
    assert list(hub.devices) == [f"garage-relays@{DOMAIN}"]
    feed(hub, "pro2pm_custom_prefix", T0 + 1)
    assert list(hub.devices) == [PRO]


def _mapped(topic: str, payload: bytes) -> Discovery:
    binding = Binding("shelly-gen2", PROFILE)
    return MAPPERS["shelly_gen2"](DiscoveryInput(topic, payload, binding, {topic: payload}))


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("shellyplus1-a8032abe54dc/events/rpc", b"[1, 2]", "not a JSON-RPC frame"),
        ("shellyplus1-a8032abe54dc/events/rpc", b"{oops", "not a JSON-RPC frame"),
        ("x/events/rpc", b'{"method": "NotifyStatus", "src": "a/b"}', "NotifyStatus frame without a usable 'src'"),
        ("shellyplus1-a8032abe54dc/online", b"online", "a Shelly says true or false here"),
        ("{id}/online", b"true", "cannot be part of a topic template"),
    ],
)
def test_bad_input_is_refused_with_the_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DiscoveryError, match=reason.replace("(", r"\(")):
        _mapped(topic, payload)


def test_a_bad_frame_is_logged_with_its_topic_and_the_hub_carries_on() -> None:
    hub = make_hub()
    out = hub.handle(MqttMessageReceived("shellyplus1-a8032abe54dc/events/rpc", b"{oops"), T0)
    rejected = [i for i in out if isinstance(i, Log) and i.event == "discovery.rejected"]
    assert rejected[0].fields["topic"] == "shellyplus1-a8032abe54dc/events/rpc"
    feed(hub, "plus1pm", T0 + 1)
    assert hub.devices[PLUS].online


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["shellyplus1pm-a8032ab12345/online", "p/events/rpc", "shellyplus1pm-a8032ab12345/events/rpc"]),
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["src", "method", "params", "dst"]),
            st.one_of(st.text(max_size=30), st.integers(), st.none(), st.just("NotifyStatus")),
        ).map(lambda d: json.dumps(d).encode()),
    ),
)
def test_any_payload_is_mapped_or_refused(topic: str, payload: bytes) -> None:
    with contextlib.suppress(DiscoveryError):
        result = _mapped(topic, payload)
        assert all(d.device_id == d.device_id.lower() for d in result.devices)
