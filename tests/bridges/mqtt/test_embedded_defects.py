"""Each amqtt 0.12.1 defect the hub depends on, as one scenario run twice.

Against our broker the scenario passes; against stock amqtt (same wire
traffic) it is a strict xfail, which proves the scenario detects the defect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from hub.core.events import MqttClientConnected, MqttClientDisconnected, MqttMessageReceived
from tests.bridges.mqtt.embedded_support import embedded_broker, paho, raw_connect, stock_broker

pytestmark = pytest.mark.integration

WaitOffline = Callable[[str], Awaitable[None]]
KEEPALIVE = 2


async def silent_client_is_dropped(port: int) -> None:
    """A device that keeps its socket open but goes silent loses its session within 1.5 x keep-alive."""
    async with (
        paho(port, "watcher") as watcher,
        paho(port, "healthy", keepalive=KEEPALIVE, will=("devices/healthy/status", b"offline")),
    ):
        await watcher.subscribe("devices/+/status")
        reader, writer = await raw_connect(
            port, "silent", keepalive=KEEPALIVE, will=("devices/silent/status", b"offline")
        )
        loop = asyncio.get_running_loop()
        connected_at = loop.time()
        try:
            will = await watcher.next_message(within=1.5 * KEEPALIVE + 1.0)
            elapsed = loop.time() - connected_at
            assert will is not None, "Last Will never published: the silent client is still 'connected'"
            assert (will.topic, will.payload) == ("devices/silent/status", b"offline")
            assert elapsed <= 1.5 * KEEPALIVE + 0.5, f"dropped after {elapsed:.2f} s"
            assert await asyncio.wait_for(reader.read(), 2) == b"", "broker left the socket open"
            # paho pings every keep-alive: it must survive what dropped the silent client.
            assert await watcher.next_message(within=0.2) is None, "a healthy client was dropped"
        finally:
            writer.close()


async def test_keepalive_enforced() -> None:
    async with embedded_broker() as running:
        await silent_client_is_dropped(running.port)
        await running.events.wait_for(MqttClientDisconnected("silent", "alice"))
        assert [e for e in running.events.events if getattr(e, "client_id", None) == "silent"] == [
            MqttClientConnected("silent", "alice"),
            MqttMessageReceived("devices/silent/status", b"offline", False, "silent"),  # its Last Will
            MqttClientDisconnected("silent", "alice"),
        ]
        # The others disconnect when the scenario closes them, after "silent" was dropped.
        assert running.events.of_type(MqttClientDisconnected)[0] == MqttClientDisconnected("silent", "alice")


@pytest.mark.xfail(strict=True, reason="amqtt 0.12.1 defect 1: keep-alive never enforced, no Last Will")
async def test_keepalive_enforced_stock() -> None:
    async with stock_broker() as port:
        await silent_client_is_dropped(port)


async def retained_only_for_own_subscriptions(port: int) -> None:
    """On CONNECT a device gets no retained message matching another device's subscription."""
    async with paho(port, "dev-a") as a, paho(port, "publisher") as publisher:
        await a.subscribe("devices/a/#")
        await publisher.publish("devices/a/secret", b"for a only", retain=True)
        assert (await a.next_message()) is not None
        async with paho(port, "dev-b", user="bob") as b:
            await b.subscribe("devices/b/#")
            await publisher.publish("devices/b/marker", b"sync")
            seen = []
            while (message := await b.next_message()) is not None:
                seen.append(message.topic)
                if message.topic == "devices/b/marker":
                    break
            assert seen == ["devices/b/marker"], f"dev-b also got {seen[:-1]}"


async def test_retained_not_leaked() -> None:
    async with embedded_broker() as running:
        await retained_only_for_own_subscriptions(running.port)


@pytest.mark.xfail(strict=True, reason="amqtt 0.12.1 defect 2: retained messages leak on CONNECT")
async def test_retained_not_leaked_stock() -> None:
    async with stock_broker() as port:
        await retained_only_for_own_subscriptions(port)


async def offline_messages_queued(port: int, wait_offline: WaitOffline) -> None:
    """QoS 1 messages for an offline persistent session arrive, in order and not flagged retained, on reconnect."""
    async with paho(port, "dev-q", clean=False) as device:
        await device.subscribe("devices/q/cmd", qos=1)
        await device.disconnect()
    await wait_offline("dev-q")
    async with paho(port, "hub-side", user="bob") as sender:
        for payload in (b"1", b"2", b"3"):
            await sender.publish("devices/q/cmd", payload, qos=1)
    async with paho(port, "dev-q", clean=False) as device:
        assert device.session_present
        received = []
        while len(received) < 3 and (message := await device.next_message()) is not None:
            received.append((message.payload, message.qos, message.retain))
        assert received == [(b"1", 1, False), (b"2", 1, False), (b"3", 1, False)]


async def test_offline_queue() -> None:
    async with embedded_broker() as running:

        async def offline(client_id: str) -> None:
            await running.events.wait_for(MqttClientDisconnected(client_id, "alice"))

        await offline_messages_queued(running.port, offline)


@pytest.mark.xfail(strict=True, reason="amqtt 0.12.1 defects 3+4: nothing queued when anonymous is on")
async def test_offline_queue_stock() -> None:
    async with stock_broker() as port:
        await offline_messages_queued(port, lambda _client_id: asyncio.sleep(0.5))


async def qos0_stays_qos0(port: int) -> None:
    """A QoS 0 publish reaches a QoS 1 subscriber at QoS 0 (MQTT delivers min of the two)."""
    async with paho(port, "sub") as subscriber, paho(port, "pub") as publisher:
        await subscriber.subscribe("devices/z/telemetry", qos=1)
        await publisher.publish("devices/z/telemetry", b"t", qos=0)
        message = await subscriber.next_message()
        assert message is not None and message.qos == 0


async def test_qos0_not_upgraded() -> None:
    async with embedded_broker() as running:
        await qos0_stays_qos0(running.port)


@pytest.mark.xfail(strict=True, reason="amqtt 0.12.1 defect 3: QoS 0 upgraded to the subscription's QoS")
async def test_qos0_not_upgraded_stock() -> None:
    async with stock_broker() as port:
        await qos0_stays_qos0(port)


async def dollar_topic_refused_client_survives(port: int) -> None:
    """A publish to ``$…`` is dropped; the same client's next publish still gets through."""
    async with paho(port, "sub") as subscriber, paho(port, "dev-d") as device:
        await subscriber.subscribe("devices/#")
        await device.publish("$SYS/broker/fake", b"x", qos=1)
        await device.publish("devices/d/telemetry", b"after", qos=1)
        message = await subscriber.next_message()
        assert message is not None, "the client went zombie after its $ publish"
        assert (message.topic, message.payload) == ("devices/d/telemetry", b"after")


async def test_dollar_topic() -> None:
    async with embedded_broker() as running:
        await dollar_topic_refused_client_survives(running.port)
        received = running.events.of_type(MqttMessageReceived)
        assert [m.topic for m in received] == ["devices/d/telemetry"]


@pytest.mark.xfail(strict=True, reason="amqtt 0.12.1 defect 5: a $ publish silences the client")
async def test_dollar_topic_stock() -> None:
    async with stock_broker() as port:
        await dollar_topic_refused_client_survives(port)
