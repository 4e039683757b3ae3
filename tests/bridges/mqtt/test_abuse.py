"""Hostile MQTT clients against the embedded broker, over raw sockets.

Each abuse (bad lengths, bad UTF-8, wildcards in a PUBLISH topic, oversized
packets, a CONNECT flood, a publish flood) must end with the offender's
connection closed or ignored, nothing it sent reaching the core, the broker
still up, and a well-behaved paho client publishing and receiving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest

from hub.core.events import MqttMessageReceived
from tests.bridges.mqtt.embedded_support import (
    HOST,
    Paho,
    Running,
    embedded_broker,
    paho,
    raw_connect,
    stock_broker,
    wait_until,
)

pytestmark = pytest.mark.integration


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def publish(topic: bytes, payload: bytes, *, qos: int = 0, packet_id: int = 1, flags: int | None = None) -> bytes:
    body = string(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | (flags if flags is not None else qos << 1)]) + varint(len(body)) + body


def subscribe(topic_filter: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = packet_id.to_bytes(2, "big") + string(topic_filter) + bytes([qos])
    return bytes([0x82]) + varint(len(body)) + body


async def closed_by_peer(reader: asyncio.StreamReader, within: float = 3.0) -> bool:
    """True when the broker closes the connection within ``within`` seconds (whatever it sent first)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True


async def round_trip(client: Paho, topic: str, payload: bytes, within: float = 3.0) -> float:
    """Publish to a topic the client subscribed to; seconds until it came back."""
    started = time.monotonic()
    await client.publish(topic, payload, qos=1)
    while True:
        message = await client.next_message(within)
        assert message is not None, f"{payload!r} did not come back"
        if message.payload == payload:
            return time.monotonic() - started


@contextlib.asynccontextmanager
async def with_bystander(running: Running) -> AsyncIterator[Paho]:
    """A well-behaved client (user bob) that subscribes to its own topics and checks they work."""
    async with paho(running.port, "bystander", user="bob") as client:
        await client.subscribe("devices/bystander/#")
        await round_trip(client, "devices/bystander/telemetry", b"before")
        yield client
        await round_trip(client, "devices/bystander/telemetry", b"after")


def reached_core(running: Running, needle: bytes) -> bool:
    return any(
        needle in event.payload or needle.decode("latin-1") in event.topic
        for event in running.events.of_type(MqttMessageReceived)
    )


async def abuse(running: Running, packet: bytes, *, client_id: str = "mallory") -> bool:
    """Connect as alice, send ``packet`` raw; True when the broker then closed the connection."""
    reader, writer = await raw_connect(running.port, client_id, keepalive=60)
    try:
        writer.write(packet)
        await writer.drain()
        return await closed_by_peer(reader)
    finally:
        writer.close()


# ------------------------------------------------------------------ framing and encoding


async def test_remaining_length_of_five_bytes_closes() -> None:
    async with embedded_broker() as running, with_bystander(running):
        assert await abuse(running, b"\x30\xff\xff\xff\xff\x7f" + b"x" * 64)


async def test_oversized_packet_is_refused_before_it_is_read() -> None:
    """A PUBLISH announcing 200 MB is refused on its header: nothing is buffered."""
    async with embedded_broker(max_packet_bytes=64 * 1024) as running, with_bystander(running):
        header = bytes([0x30]) + varint(200 * 1024 * 1024)
        assert await abuse(running, header + string(b"devices/m/telemetry") + b"x" * 4096)
        assert not reached_core(running, b"devices/m/telemetry")


async def test_packet_whose_fields_overrun_its_length_closes() -> None:
    """A topic length that points past the end of the packet is a framing error, not a read of the next packet."""
    async with embedded_broker() as running, with_bystander(running):
        inner = publish(b"devices/evil/telemetry", b"smuggled")
        lying = bytes([0x30, 4]) + (200).to_bytes(2, "big") + b"ab" + inner
        assert await abuse(running, lying)
        assert not reached_core(running, b"smuggled")


async def test_truncated_packet_then_silence_is_dropped_by_keepalive() -> None:
    """A header announcing a body that never comes cannot hold the connection past the keep-alive."""
    async with embedded_broker() as running:
        reader, writer = await raw_connect(running.port, "slowloris", keepalive=1)
        try:
            writer.write(bytes([0x30, 100]) + string(b"devices/s/telemetry"))
            await writer.drain()
            assert await closed_by_peer(reader, within=4.0)
        finally:
            writer.close()


async def test_bad_utf8_topic_closes_and_reaches_nobody() -> None:
    """MQTT-1.5.3-1: amqtt turned the bytes into the topic "b'devices/\\xff...'" and delivered it."""
    async with embedded_broker() as running, with_bystander(running):
        assert await abuse(running, publish(b"devices/\xff\xfe/telemetry", b"bad-utf8"))
        assert not reached_core(running, b"bad-utf8")


async def test_nul_in_topic_closes() -> None:
    async with embedded_broker() as running, with_bystander(running):
        assert await abuse(running, publish(b"devices/a\x00b/telemetry", b"nul"))
        assert not reached_core(running, b"nul")


@pytest.mark.parametrize("topic", [b"devices/+/telemetry", b"devices/#", b"#", b""])
async def test_wildcard_or_empty_publish_topic_closes_without_desync(topic: bytes) -> None:
    """The payload of the refused PUBLISH is itself a valid PUBLISH: amqtt, which raised in the middle of
    the packet and went on reading, took it for the next packet and delivered it."""
    async with embedded_broker() as running, with_bystander(running):
        smuggled = publish(b"devices/evil/telemetry", b"smuggled")
        assert await abuse(running, publish(topic, smuggled))
        assert not reached_core(running, b"smuggled")


async def test_wildcard_publish_topic_desynchronises_stock_amqtt() -> None:
    """The defect the hardened broker fixes: stock amqtt delivers the smuggled inner packet."""
    async with stock_broker() as port:
        listener = Paho(port, "listener", user=None)
        assert await listener.connect()
        try:
            await listener.subscribe("devices/#")
            reader, writer = await asyncio.open_connection(HOST, port)
            body = string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + string(b"mallory")
            writer.write(bytes([0x10, len(body)]) + body)
            await reader.readexactly(4)
            writer.write(publish(b"devices/+/telemetry", publish(b"devices/evil/telemetry", b"smuggled")))
            await writer.drain()
            message = await listener.next_message(3.0)
            writer.close()
            assert message is not None and message.payload == b"smuggled"
        finally:
            await listener.close()


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(publish(b"devices/m/telemetry", b"qos3", flags=0b0110), id="publish-qos-3"),
        pytest.param(publish(b"devices/m/telemetry", b"pid0", qos=1, packet_id=0), id="publish-packet-id-0"),
        pytest.param(bytes([0x00, 0x00]), id="reserved-type-0"),
        pytest.param(bytes([0xF0, 0x00]), id="reserved-type-15"),
        pytest.param(bytes([0x80]) + subscribe(b"devices/#")[1:], id="subscribe-bad-flags"),
        pytest.param(subscribe(b"devices/\xff/#"), id="subscribe-bad-utf8"),
        pytest.param(subscribe(b"devices/a#"), id="subscribe-bad-filter"),
        pytest.param(subscribe(b"devices/#", qos=3), id="subscribe-qos-3"),
        pytest.param(bytes([0x82, 2, 0, 1]), id="subscribe-no-filter"),
        pytest.param(bytes([0xC0, 3, 0, 0, 0]), id="pingreq-with-body"),
        pytest.param(bytes([0x40, 4, 0, 1, 0, 0]), id="puback-too-long"),
        pytest.param(bytes([0x10, 12]) + string(b"MQTT") + bytes([4, 2, 0, 60]) + string(b"x"), id="second-connect"),
    ],
)
async def test_malformed_packets_close_the_connection(packet: bytes) -> None:
    async with embedded_broker() as running, with_bystander(running):
        assert await abuse(running, packet)
        assert not reached_core(running, b"qos3") and not reached_core(running, b"pid0")


async def test_connect_with_bad_utf8_client_id_is_refused() -> None:
    async with embedded_broker(allow_anonymous=True) as running, with_bystander(running):
        reader, writer = await asyncio.open_connection(HOST, running.port)
        body = string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + string(b"\xc3\x28bad")
        writer.write(bytes([0x10, len(body)]) + body)
        await writer.drain()
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(3):
                while chunk := await reader.read(100):
                    data += chunk
        writer.close()
        assert not data.startswith(b"\x20\x02\x00\x00"), "accepted"


async def test_connect_with_trailing_garbage_is_refused() -> None:
    async with embedded_broker(allow_anonymous=True) as running:
        reader, writer = await asyncio.open_connection(HOST, running.port)
        body = string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + string(b"ok") + b"\x30\x00"
        writer.write(bytes([0x10, len(body)]) + body)
        await writer.drain()
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(3):
                while chunk := await reader.read(100):
                    data += chunk
        writer.close()
        assert not data.startswith(b"\x20\x02\x00\x00"), "accepted"


# ------------------------------------------------------------------ floods


async def test_connect_flood_does_not_disturb_others() -> None:
    """200 half-open connections (nothing, or half a CONNECT) while a device works; all are dropped."""
    async with embedded_broker(connect_timeout_s=1.0) as running, with_bystander(running) as bystander:
        flood = [await asyncio.open_connection(HOST, running.port) for _ in range(200)]
        for index, (_reader, writer) in enumerate(flood):
            if index % 2:
                writer.write(b"\x10\x30\x00\x04MQ")  # a CONNECT cut short
        for index in range(5):
            assert await round_trip(bystander, "devices/bystander/telemetry", b"during-%d" % index) < 2.0
        closed = await asyncio.gather(*(closed_by_peer(reader, within=5.0) for reader, _w in flood))
        for _reader, writer in flood:
            writer.close()
        assert all(closed), f"{closed.count(False)} half-open connections still open"


async def test_publish_flood_affects_only_the_flooder() -> None:
    """A client writing QoS 0 publishes as fast as its socket takes them; another device's round trips stay fast."""
    async with embedded_broker() as running, with_bystander(running) as bystander:
        _reader, writer = await raw_connect(running.port, "flooder", keepalive=60)
        packet = publish(b"devices/flooder/telemetry", b'{"n": 1}') * 100
        flooding = asyncio.create_task(_write_for(writer, packet, 4.0))
        try:
            await asyncio.sleep(0.5)
            worst = 0.0
            for index in range(10):
                worst = max(worst, await round_trip(bystander, "devices/bystander/telemetry", b"flood-%d" % index))
            assert worst < 2.0, f"a round trip took {worst:.2f} s during the flood"
        finally:
            sent = await flooding
        assert sent > 1000


async def test_publish_rate_per_connection_is_capped() -> None:
    """Past max_publish_rate the broker reads the flooder more slowly: the core hears at most that rate from it,
    while the bystander's publishes are not held back."""
    async with embedded_broker(max_publish_rate=200.0) as running, with_bystander(running) as bystander:
        _reader, writer = await raw_connect(running.port, "flooder", keepalive=60)
        packet = publish(b"devices/flooder/telemetry", b"{}") * 100
        started = time.monotonic()
        flooding = asyncio.create_task(_write_for(writer, packet, 2.0))
        for index in range(5):
            assert await round_trip(bystander, "devices/bystander/telemetry", b"capped-%d" % index) < 1.0
        sent = await flooding
        elapsed = time.monotonic() - started
        heard = sum(1 for e in running.events.of_type(MqttMessageReceived) if e.topic == "devices/flooder/telemetry")
        assert sent > heard >= 200, (sent, heard)
        assert heard <= 200 * (elapsed + 1.0) + 50, f"{heard} messages in {elapsed:.1f} s"


async def _write_for(writer: asyncio.StreamWriter, packet: bytes, seconds: float) -> int:
    """Write ``packet`` as fast as the broker reads it for ``seconds``, then drop the socket with a reset
    (``abort``) so that nothing left in the socket buffers is read after the test."""
    sent = 0
    deadline = time.monotonic() + seconds
    transport = writer.transport
    # A small send buffer keeps the backlog in flight small: what counts is how fast the broker reads.
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    try:
        while time.monotonic() < deadline:
            if transport.get_write_buffer_size() > 16 * 1024:
                await asyncio.sleep(0.005)
                continue
            writer.write(packet)
            sent += packet.count(b"/flooder/telemetry")
            await asyncio.sleep(0)
    finally:
        transport.abort()
    return sent


# ------------------------------------------------------------------ limits


def subscribe_many(filters: list[bytes], qos: int = 1, packet_id: int = 7) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(string(f) + bytes([qos]) for f in filters)
    return bytes([0x82]) + varint(len(body)) + body


async def suback_codes(reader: asyncio.StreamReader) -> list[int]:
    """The return codes of the next packet, which must be a SUBACK."""
    async with asyncio.timeout(3):
        header = await reader.readexactly(2)
        assert header[0] == 0x90 and header[1] < 128, header
        body = await reader.readexactly(header[1])
    return list(body[2:])


async def test_publish_deeper_than_the_limit_is_dropped_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """The deep PUBLISH reaches nobody, the log names the client and the topic, and the client carries on."""
    async with embedded_broker(max_topic_levels=4) as running, with_bystander(running):
        async with paho(running.port, "deep-one") as client:
            with caplog.at_level("WARNING", logger="bridges.mqtt.hardened"):
                await client.publish("devices/alice/a/b/c", b"too-deep")
            await client.publish("devices/alice/a/b", b"four-levels")
            assert await wait_until(lambda: reached_core(running, b"four-levels"))
        assert not reached_core(running, b"too-deep")
        assert running.adapter.too_deep_topics == 1
        assert any("'deep-one'" in r.message and "'devices/alice/a/b/c'" in r.message for r in caplog.records), [
            r.message for r in caplog.records
        ]


async def test_last_will_deeper_than_the_limit_refuses_the_connect() -> None:
    """The broker would publish the Will for the client, past the depth check of its own PUBLISH."""
    async with embedded_broker(max_topic_levels=3) as running:
        deep = Paho(running.port, "deep-will", will=("devices/alice/a/status", b"offline"))
        try:
            assert not await deep.connect()
        finally:
            await deep.close()
        async with paho(running.port, "shallow-will", will=("devices/alice/status", b"offline")):
            pass
        assert running.adapter.too_deep_topics == 1


async def test_subscriptions_past_the_limit_get_0x80_and_are_counted() -> None:
    """A filter deeper than the level limit is refused; three filters allowed: of five in one SUBSCRIBE
    the last two are refused; a filter held already is granted again; once one is unsubscribed a new one fits."""
    async with embedded_broker(max_subscriptions_per_client=3, max_topic_levels=4) as running:
        reader, writer = await raw_connect(running.port, "greedy", keepalive=60)
        try:
            writer.write(subscribe_many([b"devices/greedy/a/b/+"], packet_id=6))
            assert await suback_codes(reader) == [0x80]
            filters = [b"devices/greedy/%d" % n for n in range(5)]
            writer.write(subscribe_many(filters))
            assert await suback_codes(reader) == [1, 1, 1, 0x80, 0x80]
            writer.write(subscribe_many([filters[0]], packet_id=8))
            assert await suback_codes(reader) == [1]
            body = (9).to_bytes(2, "big") + string(filters[0])
            writer.write(bytes([0xA2]) + varint(len(body)) + body)  # UNSUBSCRIBE
            async with asyncio.timeout(3):
                assert await reader.readexactly(4) == b"\xb0\x02\x00\x09"
            writer.write(subscribe_many([filters[3], filters[4]], packet_id=10))
            assert await suback_codes(reader) == [1, 0x80]
        finally:
            writer.close()
        assert running.adapter.refused_over_subscription_limit == 3
        assert running.adapter.too_deep_topics == 1
