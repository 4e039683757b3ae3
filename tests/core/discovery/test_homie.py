"""The Homie 5 and Homie 4 mappers and profile on recorded traffic (tests/fixtures/homie)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import builtin_profiles
from hub.core.auth import Grant
from hub.core.discovery import MAPPERS, DiscoveryError, DiscoveryInput
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat, Show
from hub.core.mapping import Binding
from hub.core.profile import PropertyKind, Role

FIXTURES = Path(__file__).parents[2] / "fixtures" / "homie"
ADMIN = "admin@example.org"
DOMAIN = "hub.example"
T0 = 14 * 3600.0


def recorded(name: str) -> list[tuple[str, bytes]]:
    """A fixture's messages in the order the device sends them."""
    out = []
    for message in json.loads((FIXTURES / name).read_text()):
        payload = message["payload"]
        text = payload if isinstance(payload, str) else json.dumps(payload)
        out.append((message["topic"], text.encode()))
    return out


@pytest.fixture(scope="module")
def binding() -> Binding:
    return Binding("homie", builtin_profiles()["homie"], {})


def make_hub(binding: Binding) -> Hub:
    hub = Hub(HubSettings(domain=DOMAIN, bindings=(binding,), grants={ADMIN: Grant(Role.ADMIN)}))
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    return hub


def feed(hub: Hub, topic: str, payload: bytes | str, now: float = T0, retain: bool = True) -> list[Intent]:
    data = payload.encode() if isinstance(payload, str) else payload
    return hub.handle(MqttMessageReceived(topic, data, retain), now)


def replay(hub: Hub, messages: list[tuple[str, bytes]]) -> None:
    for topic, payload in messages:
        feed(hub, topic, payload)


def say(hub: Hub, device: str, body: str, now: float = T0) -> list[Intent]:
    return hub.handle(ChatReceived(ADMIN + "/pc", f"{device}@{DOMAIN}", body), now)


def replies(intents: list[Intent]) -> list[str]:
    return [i.body for i in intents if isinstance(i, SendChat)]


def published(intents: list[Intent]) -> list[tuple[str, bytes, bool]]:
    return [(i.topic, i.payload, i.retain) for i in intents if isinstance(i, PublishMqtt)]


def test_homie5_description_becomes_readings_properties_and_topics(binding: Binding) -> None:
    hub = make_hub(binding)
    messages = recorded("homie5_kitchen_light.json")
    replay(hub, messages[:-1])  # everything but the closing "ready"
    light = hub.devices[f"kitchen-light@{DOMAIN}"]
    assert (light.name, light.model) == ("Kitchen light", "Homie 5.0")
    assert not light.online  # "init" changes nothing: not there until "ready"
    replay(hub, messages[-1:])
    assert light.online
    assert light.readings == {
        "power": False,
        "brightness": 40,
        "scene": "reading",
        "color": "rgb,255,200,150",
        "temperature": 21.5,
    }
    profile = light.profile
    assert profile.readings["brightness"].unit == "%"
    assert set(profile.properties) == {"power", "brightness", "scene", "color"}  # temperature, motion: read only
    brightness = profile.properties["brightness"]
    assert (brightness.kind, brightness.minimum, brightness.maximum, brightness.step) == (
        PropertyKind.INTEGER,
        0,
        100,
        5,
    )
    assert profile.properties["scene"].choices == ("reading", "dinner", "night")
    (status,) = replies(say(hub, "kitchen-light", "status"))
    assert "21.5 °C" in status and "brightness 40 %" in status


def test_homie5_set_goes_to_the_property_set_topic_as_plain_text_and_the_echo_confirms(binding: Binding) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie5_kitchen_light.json"))
    assert replies(say(hub, "kitchen-light", "set brightness 42")) == [
        "brightness moves in steps of 5: 0–100 %, step 5."
    ]
    out = say(hub, "kitchen-light", "set brightness 60")
    assert published(out) == [("homie/5/kitchen-light/light/brightness/set", b"60", False)]
    assert replies(out) == ["→ sent: set brightness 60 %"]
    echo = feed(hub, "homie/5/kitchen-light/light/brightness", "60", now=T0 + 0.3, retain=False)
    assert replies(echo) == ["✓ set brightness 60 %: confirmed in 0.3 s"]
    assert published(say(hub, "kitchen-light", "set power on")) == [
        ("homie/5/kitchen-light/light/power/set", b"true", False)
    ]
    assert replies(feed(hub, "homie/5/kitchen-light/light/power", "true", now=T0 + 1, retain=False))[0].startswith(
        "✓ set power on"
    )
    assert published(say(hub, "kitchen-light", "set scene Dinner")) == [
        ("homie/5/kitchen-light/light/scene/set", b"dinner", False)
    ]
    assert published(say(hub, "kitchen-light", "set color rgb,0,0,255")) == [
        ("homie/5/kitchen-light/light/color/set", b"rgb,0,0,255", False)
    ]
    assert "no settable property 'temperature'" in replies(say(hub, "kitchen-light", "set temperature 5"))[0]
    help_text = replies(say(hub, "kitchen-light", "help"))[0]
    assert "set brightness <0–100 %, step 5>" in help_text and "set scene <reading|dinner|night>" in help_text


@pytest.mark.parametrize(
    ("word", "online", "show"),
    [("sleeping", True, Show.XA), ("disconnected", False, Show.UNAVAILABLE), ("lost", False, Show.UNAVAILABLE)],
)
def test_homie5_state_lifecycle(binding: Binding, word: str, online: bool, show: Show) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie5_kitchen_light.json"))
    light = hub.devices[f"kitchen-light@{DOMAIN}"]
    feed(hub, "homie/5/kitchen-light/$state", word, now=T0 + 5, retain=False)
    assert light.online is online
    assert hub._presence(light, T0 + 5)[0] is show
    feed(hub, "homie/5/kitchen-light/$state", "init", now=T0 + 6, retain=False)  # transitional: nothing changes
    assert light.online is online
    feed(hub, "homie/5/kitchen-light/$state", "ready", now=T0 + 7, retain=False)
    assert light.online


def test_homie5_a_lost_root_takes_its_tree_with_it(binding: Binding) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie5_bridge_tree.json"))
    relay, light = hub.devices[f"dualrelay@{DOMAIN}"], hub.devices[f"light1@{DOMAIN}"]
    assert relay.readings == {"relay-1.power": True, "relay-2.power": False}  # same id on two nodes
    assert set(relay.profile.properties) == {"relay-1.power", "relay-2.power"}
    assert relay.online and light.online
    feed(hub, "homie/5/bridge/$state", "lost", now=T0 + 3, retain=False)
    assert not relay.online and not light.online
    assert "offline" in replies(say(hub, "light1", "status"))[0]
    feed(hub, "homie/5/bridge/$state", "ready", now=T0 + 4, retain=False)
    assert relay.online and light.online
    assert published(say(hub, "dualrelay", "set relay-2.power on")) == [
        ("homie/5/dualrelay/relay-2/power/set", b"true", False)
    ]


def test_homie5_an_empty_description_removes_the_device(binding: Binding) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie5_kitchen_light.json"))
    feed(hub, "homie/5/kitchen-light/$state", b"")  # the first step of removal: offline, not an error
    assert not hub.devices[f"kitchen-light@{DOMAIN}"].online
    out = feed(hub, "homie/5/kitchen-light/$description", b"")
    assert f"kitchen-light@{DOMAIN}" not in hub.devices
    assert any(isinstance(i, Log) and i.event == "device.removed" for i in out)


@pytest.mark.parametrize("order", ["as sent", "reversed"])
def test_homie4_device_is_rebuilt_from_every_attribute_whatever_the_order(binding: Binding, order: str) -> None:
    hub = make_hub(binding)
    messages = recorded("homie4_super_car.json")
    attributes = [m for m in messages if "/$" in m[0] and not m[0].endswith("/$state")]
    values = [m for m in messages if m not in attributes]
    replay(hub, (attributes if order == "as sent" else attributes[::-1]) + values)
    car = hub.devices[f"super-car@{DOMAIN}"]
    assert (car.name, car.model, car.online) == ("Super car", "Homie 4.0.0", True)
    assert car.readings == {"speed": 1200, "temperature": 82.5, "intensity": 60, "mode": "low"}
    assert car.profile.readings["speed"].unit == "rpm" and car.profile.readings["temperature"].unit == "°C"
    assert set(car.profile.properties) == {"intensity", "mode"}
    assert (car.profile.properties["intensity"].minimum, car.profile.properties["intensity"].maximum) == (0, 100)
    out = say(hub, "super-car", "set intensity 80")
    assert published(out) == [("homie/super-car/lights/intensity/set", b"80", False)]
    assert replies(feed(hub, "homie/super-car/lights/intensity", "80", now=T0 + 2, retain=False)) == [
        "✓ set intensity 80 %: confirmed in 2.0 s"
    ]
    assert published(say(hub, "super-car", "set mode high")) == [("homie/super-car/lights/mode/set", b"high", False)]


def test_homie4_device_goes_when_its_attributes_are_cleared(binding: Binding) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie4_super_car.json"))
    feed(hub, "homie/super-car/$nodes", b"")
    assert f"super-car@{DOMAIN}" in hub.devices  # still named
    assert hub.devices[f"super-car@{DOMAIN}"].profile.properties == {}
    feed(hub, "homie/super-car/$name", b"")
    assert f"super-car@{DOMAIN}" not in hub.devices


def _input(binding: Binding, topic: str, payload: bytes) -> DiscoveryInput:
    return DiscoveryInput(topic, payload, binding, {topic: payload})


@pytest.mark.parametrize(
    ("mapper", "topic", "payload", "reason"),
    [
        ("homie5", "homie/5/lamp/$description", b"{oops", "not JSON"),
        ("homie5", "homie/5/lamp/$description", b"[1, 2]", "expected an object"),
        ("homie5", "homie/5/la.mp/$description", b"{}", "not a Homie id"),
        ("homie5", "other/5/lamp/$description", b"{}", "not under the Homie base topic"),
        ("homie4", "homie/lamp/x/y/z/$name", b"Lamp", "not a Homie 4 attribute topic"),
    ],
)
def test_bad_descriptions_are_refused_with_a_reason(
    binding: Binding, mapper: str, topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(DiscoveryError, match=reason):
        MAPPERS[mapper](_input(binding, topic, payload))


def test_a_bad_description_is_logged_with_its_topic_and_changes_nothing(binding: Binding) -> None:
    hub = make_hub(binding)
    replay(hub, recorded("homie5_kitchen_light.json"))
    before = hub.devices[f"kitchen-light@{DOMAIN}"].profile
    out = feed(hub, "homie/5/kitchen-light/$description", "not json")
    assert [(i.event, i.fields["topic"]) for i in out if isinstance(i, Log)] == [
        ("discovery.rejected", "homie/5/kitchen-light/$description")
    ]
    assert hub.devices[f"kitchen-light@{DOMAIN}"].profile is before


def test_odd_properties_are_read_but_not_offered(binding: Binding) -> None:
    description = {
        "name": "odd",
        "nodes": {
            "n": {
                "properties": {
                    "doc": {"datatype": "json", "settable": True},
                    "pick": {"datatype": "enum", "format": "", "settable": True},
                    "level": {"datatype": "float", "format": "9:1", "settable": True},
                    "Bad/Id": {"datatype": "integer"},
                }
            },
            "bad node!": {"properties": {"x": {"datatype": "integer"}}},
        },
        "parent": "not a valid id!",
    }
    result = MAPPERS["homie5"](_input(binding, "homie/5/odd/$description", json.dumps(description).encode()))
    (device,) = result.devices
    assert result.skipped == (
        "node 'bad node!': not a Homie id with an object",
        "property n/'Bad/Id': not a Homie id with an object",
    )
    assert device.parent is None
    assert set(device.profile.readings) == {"pick", "level"}
    level = device.profile.properties["level"]
    assert set(device.profile.properties) == {"level"} and (level.minimum, level.maximum) == (None, None)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "nodes",
                    "properties",
                    "datatype",
                    "format",
                    "settable",
                    "unit",
                    "root",
                    "parent",
                    "n",
                    "p",
                    "id",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_description_is_a_discovery_or_a_discovery_error(binding: Binding, value: object) -> None:
    with contextlib.suppress(DiscoveryError):
        MAPPERS["homie5"](_input(binding, "homie/5/dev/$description", json.dumps(value).encode()))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["$name", "$nodes", "n/$properties", "n/p/$datatype", "n/p/$format", "n/p/$settable"]),
        st.binary(max_size=40),
    )
)
def test_any_homie4_attributes_are_a_discovery(binding: Binding, attributes: dict[str, bytes]) -> None:
    seen = {f"homie/dev/{k}": v for k, v in attributes.items()}
    seen.setdefault("homie/dev/$nodes", b"n")
    result = MAPPERS["homie4"](DiscoveryInput("homie/dev/$nodes", seen["homie/dev/$nodes"], binding, seen))
    assert all(d.device_id == "dev" for d in result.devices)


def test_homie4_array_nodes_are_left_out_and_said_so(binding: Binding) -> None:
    seen = {"homie/car/$name": b"Car", "homie/car/$nodes": b"engine,lights[]"}
    result = MAPPERS["homie4"](DiscoveryInput("homie/car/$nodes", seen["homie/car/$nodes"], binding, seen))
    assert [d.name for d in result.devices] == ["Car"]
    assert result.skipped == ("homie/car/$nodes: 'lights[]' is not a Homie id (3.x arrays are not read)",)
