"""Per-device topic ACL: a device publishes and subscribes only in its own namespace (bridges.mqtt.acl)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridges.mqtt.acl import TopicAcl, filter_covers
from bridges.mqtt.embedded import EmbeddedBrokerOptions
from hub.core.events import MqttMessageReceived
from hub.core.intents import PublishMqtt
from hub.core.topics import TopicError, filter_matches, validate_topic_filter, validate_topic_name
from tests.bridges.mqtt.embedded_support import Paho, embedded_broker, paho, raw_connect, wait_until

OWN = ("devices/{username}/#",)
ACL = {"publish": OWN, "subscribe": OWN}


# ------------------------------------------------------------------ the rules, pure


@pytest.mark.parametrize(
    ("allowed", "requested", "covered"),
    [
        ("devices/alice/#", "devices/alice/cmd", True),
        ("devices/alice/#", "devices/alice/#", True),
        ("devices/alice/#", "devices/alice", True),  # '#' also matches its parent level
        ("devices/alice/#", "devices/alice/+/x", True),
        ("devices/alice/#", "devices/+/cmd", False),
        ("devices/alice/#", "devices/#", False),
        ("devices/alice/#", "#", False),
        ("devices/alice/#", "+/alice/cmd", False),
        ("devices/alice/cmd", "devices/alice/cmd", True),
        ("devices/alice/cmd", "devices/alice/cmd/x", False),
        ("devices/+/cmd", "devices/alice/cmd", True),
        ("devices/+/cmd", "devices/+/cmd", True),
        ("devices/+/cmd", "devices/#", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("#", "anything/at/all", True),
    ],
)
def test_filter_covers(allowed: str, requested: str, covered: bool) -> None:
    assert filter_covers(allowed, requested) is covered


_level = st.sampled_from(["a", "b", "+", "#", "$s", "devices", "alice"])
_filters = st.lists(_level, min_size=1, max_size=4).map("/".join)
_topic_levels = st.lists(st.sampled_from(["a", "b", "$s", "devices", "alice", "x"]), min_size=1, max_size=5)


@settings(max_examples=2000, deadline=None)
@given(_filters, _filters, _topic_levels.map("/".join))
def test_a_covered_filter_never_matches_more(allowed: str, requested: str, topic: str) -> None:
    try:
        validate_topic_filter(allowed)
        validate_topic_filter(requested)
        validate_topic_name(topic)
    except TopicError:
        return
    if filter_covers(allowed, requested) and filter_matches(requested, topic):
        assert filter_matches(allowed, topic)


def test_own_namespace_only() -> None:
    acl = TopicAcl.build(OWN, ("devices/{username}/cmd",), unrestricted=("admin",))
    assert acl.may_publish("alice", "devices/alice/telemetry")
    assert not acl.may_publish("alice", "devices/bob/telemetry")
    assert acl.may_subscribe("alice", "devices/alice/cmd")
    assert not acl.may_subscribe("alice", "devices/bob/cmd")
    assert not acl.may_subscribe("alice", "devices/+/cmd")
    assert not acl.may_subscribe("alice", "#")
    assert acl.may_receive("alice", "devices/alice/cmd")
    assert not acl.may_receive("alice", "devices/bob/cmd")
    assert acl.may_subscribe("admin", "#") and acl.may_publish("admin", "devices/bob/telemetry")


@pytest.mark.parametrize("username", ["+", "#", "a/b", "", "x\x00", None])
def test_user_names_that_would_widen_a_pattern_get_nothing(username: str | None) -> None:
    acl = TopicAcl.build(OWN, OWN)
    for topic in ("devices/+/x", "devices/a/b/x", "devices/x/x", "devices//x"):
        assert not acl.may_publish(username, topic)
    assert not acl.may_subscribe(username, "devices/#")


def test_patterns_are_checked() -> None:
    with pytest.raises(ValueError, match=r"acl\.publish"):
        EmbeddedBrokerOptions(acl={"publish": ("devices/{username}#",)})
    with pytest.raises(ValueError, match=r"acl\.subscribe"):
        EmbeddedBrokerOptions(acl={"subscribe": ("devices/{user}/#",)})
    with pytest.raises(ValueError, match="unknown action"):
        EmbeddedBrokerOptions(acl={"receive": OWN})
    assert EmbeddedBrokerOptions().topic_acl() is None


# ------------------------------------------------------------------ against the broker


def _subscribe(topic_filter: bytes, packet_id: int) -> bytes:
    body = packet_id.to_bytes(2, "big") + len(topic_filter).to_bytes(2, "big") + topic_filter + b"\x01"
    return bytes([0x82, len(body)]) + body


async def _suback_code(port: int, client_id: str, topic_filter: str) -> int:
    reader, writer = await raw_connect(port, client_id, keepalive=60)
    try:
        writer.write(_subscribe(topic_filter.encode(), 7))
        await writer.drain()
        suback = await asyncio.wait_for(reader.readexactly(5), 5)
        assert suback[:4] == b"\x90\x03\x00\x07", suback
        return suback[4]
    finally:
        writer.close()


def _topics(events: list[MqttMessageReceived]) -> list[str]:
    return [event.topic for event in events]


@pytest.mark.integration
async def test_device_cannot_publish_into_another_devices_telemetry() -> None:
    async with embedded_broker(acl=ACL) as running, paho(running.port, "alice") as alice:
        await alice.publish("devices/bob/telemetry", b'{"temperature": 99}')
        await alice.publish("devices/alice/telemetry", b'{"temperature": 21}')
        received = running.events.of_type(MqttMessageReceived)
        assert await wait_until(lambda: "devices/alice/telemetry" in _topics(received))
        assert "devices/bob/telemetry" not in _topics(running.events.of_type(MqttMessageReceived))
        await alice.publish("devices/alice/status", b"online")  # still connected and heard
        assert await wait_until(lambda: "devices/alice/status" in _topics(running.events.of_type(MqttMessageReceived)))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("topic_filter", "code"),
    [("devices/bob/cmd", 0x80), ("devices/+/cmd", 0x80), ("#", 0x80), ("devices/alice/cmd", 0x01)],
)
async def test_subscriptions_outside_the_namespace_are_refused(topic_filter: str, code: int) -> None:
    async with embedded_broker(acl=ACL) as running:
        assert await _suback_code(running.port, "alice", topic_filter) == code


@pytest.mark.integration
async def test_device_cannot_read_another_devices_commands() -> None:
    async with embedded_broker(acl=ACL) as running, paho(running.port, "alice") as alice:
        await alice.subscribe("devices/bob/cmd")
        await alice.subscribe("devices/+/cmd")
        await alice.subscribe("devices/alice/cmd")
        await running.adapter.publish(PublishMqtt("devices/bob/cmd", b"for-bob"))
        await running.adapter.publish(PublishMqtt("devices/alice/cmd", b"for-alice"))
        message = await alice.next_message()
        assert message is not None and message.payload == b"for-alice"
        assert await alice.next_message(0.5) is None


@pytest.mark.integration
async def test_last_will_into_another_namespace_is_refused() -> None:
    async with embedded_broker(acl=ACL) as running:
        spoofer = Paho(running.port, "alice", will=("devices/bob/status", b"offline"))
        try:
            assert not await spoofer.connect()
        finally:
            await spoofer.close()
        own = Paho(running.port, "alice", will=("devices/alice/status", b"offline"))
        try:
            assert await own.connect()
        finally:
            await own.close()


@pytest.mark.integration
async def test_unrestricted_user_sees_everything() -> None:
    async with (
        embedded_broker(acl=ACL, acl_unrestricted=frozenset({"bob"})) as running,
        paho(running.port, "tester", user="bob") as tester,
        paho(running.port, "alice") as alice,
    ):
        await tester.subscribe("#")
        await alice.publish("devices/alice/telemetry", b"1")
        message = await tester.next_message()
        assert message is not None and message.topic == "devices/alice/telemetry"
        await tester.publish("devices/alice/cmd", b"from-tester")
        assert await wait_until(lambda: "devices/alice/cmd" in _topics(running.events.of_type(MqttMessageReceived)))
