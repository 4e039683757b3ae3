"""The embedded broker as the hub sees it: who may connect, what it reports, what it delivers."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bridges.mqtt.embedded import EmbeddedBroker, EmbeddedBrokerOptions, Listener
from hub.core.events import (
    MqttClientConnected,
    MqttClientDisconnected,
    MqttLinkUp,
    MqttMessageReceived,
)
from hub.core.intents import PublishMqtt
from tests.bridges.mqtt.embedded_support import (
    HOST,
    PASSWORDS,
    EventLog,
    Paho,
    connect_packet,
    embedded_broker,
    paho,
    raw_connect,
    wait_until,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def test_password_checked() -> None:
    async with embedded_broker() as running:
        for client_id, user, password in [("wrong", "alice", "bob-secret"), ("nobody", "mallory", "x")]:
            client = Paho(running.port, client_id, user=user, password=password)
            assert not await client.connect(), f"{client_id} accepted"
            await client.close()
        async with paho(running.port, "right", user="bob"):
            await running.events.wait_for(MqttClientConnected("right", "bob"))
        assert running.events.of_type(MqttClientConnected) == [MqttClientConnected("right", "bob")]


async def test_anonymous_refused_by_default() -> None:
    async with embedded_broker() as running:
        client = Paho(running.port, "anon", user=None)
        assert not await client.connect()
        await client.close()


async def test_anonymous_allowed_when_configured() -> None:
    async with embedded_broker(allow_anonymous=True) as running, paho(running.port, "anon", user=None):
        await running.events.wait_for(MqttClientConnected("anon", None))
        wrong = Paho(running.port, "wrong", user="alice", password="nope")
        assert not await wrong.connect(), "anonymous access must not excuse a wrong password"
        await wrong.close()


async def test_events_for_connect_publish_disconnect() -> None:
    async with embedded_broker() as running:
        async with paho(running.port, "dev-e", user="bob") as device:
            await device.publish("devices/e/telemetry", b'{"t": 21.5}', retain=True)
            await device.publish("devices/e/status", b"online", qos=0)
            await device.disconnect()
        await running.events.wait_for(MqttClientDisconnected("dev-e", "bob"))
        assert running.events.events == [
            MqttLinkUp(),
            MqttClientConnected("dev-e", "bob"),
            MqttMessageReceived("devices/e/telemetry", b'{"t": 21.5}', True, "dev-e"),
            MqttMessageReceived("devices/e/status", b"online", False, "dev-e"),
            MqttClientDisconnected("dev-e", "bob"),
        ]


async def test_qos0_publishes_sent_with_the_connect_are_reported_after_it_and_in_order() -> None:
    """QoS 0 and 1 messages go from the client's reader to the hub without amqtt's queue: even packets
    that arrive in the same segment as the CONNECT are reported after the connection, in the order sent,
    and the QoS 1 one is acknowledged."""
    async with embedded_broker() as running:

        def publish(topic: bytes, payload: bytes, qos: int = 0) -> bytes:
            body = len(topic).to_bytes(2, "big") + topic + ((7).to_bytes(2, "big") if qos else b"") + payload
            return bytes([0x30 | qos << 1, len(body)]) + body

        reader, writer = await asyncio.open_connection(HOST, running.port)
        writer.write(
            connect_packet("dev-q", keepalive=0, user="bob")
            + publish(b"devices/q/telemetry", b'{"n": 1}')
            + publish(b"$SYS/forbidden", b"x")  # dropped, the client carries on (defect 5)
            + publish(b"devices/q/telemetry", b'{"n": 2}', qos=1)
            + publish(b"devices/q/telemetry", b'{"n": 3}')
        )
        await writer.drain()
        assert (await asyncio.wait_for(reader.readexactly(4), 5))[3] == 0  # CONNACK: accepted
        assert (await asyncio.wait_for(reader.readexactly(4), 5))[0] == 0x40  # PUBACK of the QoS 1 one
        await running.events.wait_for(MqttMessageReceived("devices/q/telemetry", b'{"n": 3}', False, "dev-q"))
        await wait_until(lambda: len(running.events.of_type(MqttMessageReceived)) >= 3)
        reported = [e for e in running.events.events if isinstance(e, MqttClientConnected | MqttMessageReceived)]
        assert reported[0] == MqttClientConnected("dev-q", "bob")
        assert [e.payload for e in reported[1:]] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
        writer.close()


async def test_publish_reaches_subscriber_without_echo() -> None:
    async with embedded_broker() as running, paho(running.port, "dev-p") as device:
        await device.subscribe("devices/p/cmd", qos=1)
        await running.adapter.publish(PublishMqtt("devices/p/cmd", b"ON", qos=1))
        message = await device.next_message()
        assert message is not None
        assert (message.topic, message.payload, message.qos, message.retain) == ("devices/p/cmd", b"ON", 1, False)
        assert running.events.of_type(MqttMessageReceived) == [], "the hub's own publish came back as device data"


async def test_retained_publish_seen_by_later_subscriber() -> None:
    async with embedded_broker() as running:
        await running.adapter.publish(PublishMqtt("devices/r/config", b"interval=60", qos=1, retain=True))
        await running.adapter.publish(PublishMqtt("devices/r/once", b"gone", qos=0, retain=True))
        await running.adapter.publish(PublishMqtt("devices/r/once", b"", qos=0, retain=True))  # clears it
        async with paho(running.port, "late") as late:
            await late.subscribe("devices/r/#", qos=1)
            message = await late.next_message()
            assert message is not None
            assert (message.topic, message.payload, message.retain) == ("devices/r/config", b"interval=60", True)
            assert await late.next_message(within=0.2) is None


async def test_websocket_listener() -> None:
    tcp, ws = Listener("tcp", "tcp", HOST, free_port()), Listener("ws", "ws", HOST, free_port())
    async with embedded_broker(listeners=(tcp, ws)) as running, paho(tcp.port, "tcp-sub") as subscriber:
        await subscriber.subscribe("devices/#")
        async with paho(ws.port, "ws-dev", transport="websockets") as device:
            await device.publish("devices/ws/telemetry", b"42")
        message = await subscriber.next_message()
        assert message is not None and (message.topic, message.payload) == ("devices/ws/telemetry", b"42")
        await running.events.wait_for(MqttMessageReceived("devices/ws/telemetry", b"42", False, "ws-dev"))


async def _run(*argv: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode is not None
    return process.returncode, output


async def test_mosquitto_clients() -> None:
    async with embedded_broker() as running:
        common = ("-h", HOST, "-p", str(running.port), "-V", "mqttv311")
        alice = ("-u", "alice", "-P", PASSWORDS["alice"])
        code, _ = await _run(
            "mosquitto_pub", *common, *alice, "-i", "m-pub", "-t", "devices/m/t", "-m", "hi", "-q", "1"
        )
        assert code == 0
        await running.events.wait_for(MqttMessageReceived("devices/m/t", b"hi", False, "m-pub"))

        code, output = await _run(
            "mosquitto_pub", *common, "-u", "alice", "-P", "wrong", "-i", "m-bad", "-t", "devices/m/t", "-m", "x"
        )
        assert code != 0, output
        assert MqttClientConnected("m-bad", "alice") not in running.events.events

        await running.adapter.publish(PublishMqtt("devices/m/cmd", b"reboot", qos=1, retain=True))
        code, output = await _run("mosquitto_sub", *common, *alice, "-t", "devices/m/cmd", "-C", "1", "-W", "5")
        assert (code, output) == (0, b"reboot\n")


async def test_publish_without_broker_is_dropped_and_counted() -> None:
    adapter = EmbeddedBroker(EmbeddedBrokerOptions(listeners=(Listener(port=free_port()),)), EventLog())
    await adapter.publish(PublishMqtt("devices/x/cmd", b"on"))
    assert adapter.dropped_publishes == 1
    with pytest.raises(ValueError, match="not a topic name"):
        await adapter.publish(PublishMqtt("devices/+/cmd", b"on"))


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


async def test_failed_start_releases_ports_and_stop_closes_them() -> None:
    first, busy = free_port(), free_port()
    with socket.socket() as blocker:
        blocker.bind((HOST, busy))
        blocker.listen()
        adapter = EmbeddedBroker(
            EmbeddedBrokerOptions(listeners=(Listener("a", port=first), Listener("b", port=busy))), EventLog()
        )
        with pytest.raises(Exception, match="can't be started"):
            await adapter.run()
    assert _bindable(first), "the listener opened before the failure is still bound"

    async with embedded_broker() as running:
        assert not _bindable(running.port)
    assert _bindable(running.port)


def test_options_validated() -> None:
    with pytest.raises(ValueError, match="users: alice: not an argon2"):
        EmbeddedBrokerOptions(users={"alice": "plain-text"})
    with pytest.raises(ValueError, match="unique"):
        EmbeddedBrokerOptions(listeners=(Listener(port=1), Listener(port=2)))


async def test_offline_queue_is_bounded() -> None:
    async with embedded_broker(max_queued_per_session=2) as running:
        async with paho(running.port, "dev-b", clean=False) as device:
            await device.subscribe("devices/b/cmd")
            await device.disconnect()
        await running.events.wait_for(MqttClientDisconnected("dev-b", "alice"))
        for payload in (b"1", b"2", b"3"):
            await running.adapter.publish(PublishMqtt("devices/b/cmd", payload, qos=1))
        async with paho(running.port, "dev-b", clean=False) as device:
            payloads = [m.payload for m in [await device.next_message(), await device.next_message()] if m]
            assert payloads == [b"2", b"3"]
            assert await device.next_message(within=0.2) is None


async def test_wrong_password_cannot_touch_another_clients_session() -> None:
    """amqtt looked up (and for clean sessions deleted) the session before authenticating."""
    async with embedded_broker() as running:
        async with paho(running.port, "victim", clean=False) as victim:
            await victim.subscribe("devices/v/cmd")
            await victim.disconnect()
        await running.events.wait_for(MqttClientDisconnected("victim", "alice"))
        intruder = Paho(running.port, "victim", user="alice", password="guess", clean=True)
        assert not await intruder.connect()
        await intruder.close()
        await running.adapter.publish(PublishMqtt("devices/v/cmd", b"kept", qos=1))
        async with paho(running.port, "victim", clean=False) as victim:
            message = await victim.next_message()
            assert message is not None and message.payload == b"kept"


async def test_same_client_id_takes_over() -> None:
    """A device back after a Wi-Fi drop replaces its half-open connection; the old one ends first."""
    async with embedded_broker() as running, paho(running.port, "watcher") as watcher:
        await watcher.subscribe("devices/t/status")
        reader, writer = await raw_connect(running.port, "dev-t", keepalive=60, will=("devices/t/status", b"offline"))
        try:
            async with paho(running.port, "dev-t") as device:
                assert await asyncio.wait_for(reader.read(), 2) == b"", "old connection left open"
                will = await watcher.next_message()
                assert will is not None and will.payload == b"offline"
                await device.publish("devices/t/status", b"online")
                await running.events.wait_for(MqttMessageReceived("devices/t/status", b"online", False, "dev-t"))
        finally:
            writer.close()
        sessions = [e for e in running.events.events if getattr(e, "client_id", None) == "dev-t"]
        assert sessions[:5] == [
            MqttClientConnected("dev-t", "alice"),
            MqttMessageReceived("devices/t/status", b"offline", False, "dev-t"),  # the old connection's Last Will
            MqttClientDisconnected("dev-t", "alice"),
            MqttClientConnected("dev-t", "alice"),
            MqttMessageReceived("devices/t/status", b"online", False, "dev-t"),
        ]


async def test_client_that_never_sends_connect_is_dropped() -> None:
    async with embedded_broker(connect_timeout_s=0.3) as running:
        reader, writer = await asyncio.open_connection(HOST, running.port)
        try:
            assert await asyncio.wait_for(reader.read(), 3) == b""
        finally:
            writer.close()


async def test_oversized_packet_closes_connection() -> None:
    async with embedded_broker(max_packet_bytes=1024) as running, paho(running.port, "big") as device:
        await device.publish("devices/big/t", b"x" * 512)
        device.client.publish("devices/big/t", b"x" * 4096, qos=0)
        assert await wait_until(device.disconnected.is_set), "oversized packet accepted"
        received = running.events.of_type(MqttMessageReceived)
        assert [len(m.payload) for m in received] == [512]


async def test_topics_the_hub_starts_reading_get_their_retained_message_once() -> None:
    """A discovered device's retained state may come before its description: it is handed over then."""
    async with embedded_broker() as running, paho(running.port, "bridge", user="bob") as bridge:
        await bridge.publish("zigbee2mqtt/bridge/state", b"online", retain=True)
        await bridge.publish("zigbee2mqtt/lamp", b'{"state": "ON"}', retain=True)
        await bridge.publish("zigbee2mqtt/lamp", b"", retain=True)  # cleared: nothing to hand over
        await running.events.wait_for(MqttMessageReceived("zigbee2mqtt/lamp", b"", True, "bridge"))
        before = len(running.events.events)
        await running.adapter.subscribe(("zigbee2mqtt/bridge/state", "zigbee2mqtt/lamp", "zigbee2mqtt/none"))
        assert running.events.events[before:] == [MqttMessageReceived("zigbee2mqtt/bridge/state", b"online", True)]
        await running.adapter.subscribe(("zigbee2mqtt/bridge/state",))  # the device described again: not twice
        assert running.events.events[before:] == [MqttMessageReceived("zigbee2mqtt/bridge/state", b"online", True)]


async def test_a_subscriber_that_reads_slowly_gets_every_qos0_message_in_order() -> None:
    """QoS 0 deliveries are written at once while the subscriber's socket keeps up and wait behind it when
    it does not (``DirectWriter``): a reader slower than the publisher misses nothing and sees no reordering."""
    count, size = 400, 50_000
    async with embedded_broker() as running:
        reader, writer = await raw_connect(running.port, "slow", keepalive=0)
        topic = b"devices/slow/cmd"
        body = (1).to_bytes(2, "big") + len(topic).to_bytes(2, "big") + topic + b"\x00"
        writer.write(bytes([0x82, len(body)]) + body)
        assert (await asyncio.wait_for(reader.readexactly(5), 5))[0] == 0x90  # SUBACK

        async def read_slowly() -> list[int]:
            seen: list[int] = []
            while len(seen) < count:
                if len(seen) % 20 == 0:
                    await asyncio.sleep(0.01)  # behind the publisher: the broker's socket buffer fills up
                first = await asyncio.wait_for(reader.readexactly(1), 10)
                assert first[0] == 0x30, f"not a QoS 0 PUBLISH: {first!r}"
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length += (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                packet = await reader.readexactly(length)
                name_length = int.from_bytes(packet[:2], "big")
                assert packet[2 : 2 + name_length] == topic
                payload = packet[2 + name_length :]
                assert len(payload) == 4 + size
                seen.append(int.from_bytes(payload[:4], "big"))
            return seen

        reading = asyncio.create_task(read_slowly())
        for n in range(count):
            await running.adapter.publish(PublishMqtt(topic.decode(), n.to_bytes(4, "big") + b"x" * size, qos=0))
            await asyncio.sleep(0)  # let deliveries queued behind the socket run in between
        assert await reading == list(range(count))
        writer.close()
