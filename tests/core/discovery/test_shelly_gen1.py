"""Shelly Gen1: shellies/<id>/ topics, plain readings with units, relay commands, the announce, in memory.

The traffic is tests/fixtures/shelly_gen1/traffic.json, written from Shelly's
Gen1 API documentation (each message names the page it follows).
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.discovery import MAPPERS, Discovery, DiscoveryError, DiscoveryInput
from hub.core.events import MqttMessageReceived, SubscriptionRequested
from hub.core.hub import Hub
from hub.core.intents import Intent, Log, SendPresence, Show
from hub.core.mapping import Binding
from hub.core.profile import Role
from tests.core.discovery import family
from tests.core.discovery.family import T0, chats, linked_hub, play, publishes
from tests.support.traffic import load_traffic

TRAFFIC = load_traffic("shelly_gen1")
PROFILE = builtin_profiles()["shelly-gen1"]
DOMAIN = "hub.example"
OPERATOR = "op@example.org"
PLUG = f"shelly1pm-84cca8abcdef@{DOMAIN}"
HT = f"shellyht-6f1a2b@{DOMAIN}"


def make_hub() -> Hub:
    return linked_hub(Binding("shelly-gen1", PROFILE), {OPERATOR: Grant(Role.OPERATOR)})


def feed(hub: Hub, scenario: str, now: float = T0) -> list[Intent]:
    return play(hub, TRAFFIC[scenario], now)


def say(hub: Hub, jid: str, body: str, now: float = T0 + 1) -> list[Intent]:
    return family.say(hub, jid, body, OPERATOR, now)


def test_relay_readings_in_units_and_the_announce_gives_the_model() -> None:
    hub = make_hub()
    feed(hub, "plug")
    assert list(hub.devices) == [PLUG]
    plug = hub.devices[PLUG]
    assert plug.device_id == "shelly1pm-84CCA8ABCDEF" and plug.online
    assert plug.model == "SHSW-PM · 20230913-112003/v1.14.0-gcb84623"
    assert plug.readings == {"power": "off", "load": 0.0, "energy": 0.075, "device_temperature": 38.52}
    out = hub.handle(SubscriptionRequested(OPERATOR, PLUG), T0 + 1)
    presence = [p for p in out if isinstance(p, SendPresence)][-1]
    assert presence.status == "power off · load 0 W · energy 0.075 kWh · device 38.5 °C"


def test_relay_commands_are_plain_words_confirmed_by_the_relay_topic() -> None:
    hub = make_hub()
    feed(hub, "plug")
    base = "shellies/shelly1pm-84CCA8ABCDEF"
    out = say(hub, PLUG, "on")
    assert publishes(out) == [(f"{base}/relay/0/command", b"on")]
    assert chats(feed(hub, "plug_on", T0 + 1.3)) == ["✓ on: confirmed in 0.3 s"]
    assert hub.devices[PLUG].readings["load"] == 1520.3
    assert publishes(say(hub, PLUG, "toggle", T0 + 2)) == [(f"{base}/relay/0/command", b"toggle")]
    assert publishes(say(hub, PLUG, "off 1", T0 + 2)) == [(f"{base}/relay/1/command", b"off")]
    assert publishes(say(hub, PLUG, "refresh", T0 + 2)) == [(f"{base}/command", b"update")]


def test_offline_by_its_last_will() -> None:
    hub = make_hub()
    feed(hub, "plug")
    feed(hub, "plug_offline", T0 + 5)
    assert not hub.devices[PLUG].online


def test_a_sensor_without_announce_is_routed_by_its_topics() -> None:
    hub = make_hub()
    feed(hub, "ht")
    ht = hub.devices[HT]
    assert ht.readings == {"temperature": 21.75, "humidity": 48.5, "battery": 87}
    out = hub.handle(SubscriptionRequested(OPERATOR, HT), T0 + 1)
    assert [p.status for p in out if isinstance(p, SendPresence)][-1] == "21.8 °C · 48 % · battery 87 %"
    assert [p.show for p in out if isinstance(p, SendPresence)][-1] is Show.AVAILABLE


def test_one_devices_announce_leaves_the_others_described() -> None:
    hub = make_hub()
    feed(hub, "plug")
    other = {"id": "shellyplug-s-7AB123", "model": "SHPLG-S", "mac": "E8DB847AB123"}
    hub.handle(MqttMessageReceived("shellies/announce", json.dumps(other).encode()), T0 + 1)
    assert hub.devices[PLUG].model.startswith("SHSW-PM")
    assert hub.devices[f"shellyplug-s-7ab123@{DOMAIN}"].model == "SHPLG-S"


def _mapped(topic: str, payload: bytes) -> Discovery:
    return MAPPERS["shelly_gen1"](DiscoveryInput(topic, payload, Binding("shelly-gen1", PROFILE), {topic: payload}))


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("shellies/announce", b"not json", "not a JSON object"),
        ("shellies/announce", b'{"id": "a/b"}', "'id' 'a/b' is not a Shelly id"),
        ("shellies/announce", b'{"model": "SHSW-1"}', "'id' '' is not a Shelly id"),
        ("shellies/shelly1-AAA/announce", b'{"id": "shelly1-BBB"}', "another device's id"),
    ],
)
def test_bad_announces_are_refused_with_the_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DiscoveryError, match=reason):
        _mapped(topic, payload)


def test_a_bad_announce_is_logged_and_changes_nothing() -> None:
    hub = make_hub()
    out = hub.handle(MqttMessageReceived("shellies/announce", b"[]"), T0)
    assert [i.fields["reason"] for i in out if isinstance(i, Log) and i.event == "discovery.rejected"] == [
        "shellies/announce: not a JSON object"
    ]
    assert hub.devices == {}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["id", "model", "mac", "fw_ver", "name"]),
            st.one_of(st.text(max_size=70), st.integers(), st.none()),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_any_announce_is_mapped_or_refused(payload: bytes) -> None:
    with contextlib.suppress(DiscoveryError):
        result = _mapped("shellies/announce", payload)
        assert all(d.aliases == tuple(a.lower() for a in d.aliases) for d in result.devices)
