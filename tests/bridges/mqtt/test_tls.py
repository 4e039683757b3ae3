"""TLS listeners of the embedded broker: MQTT over TLS and secure WebSocket, against a certificate made
at test time; paho verifies it as a device would, and a plaintext client gets nowhere on the TLS port."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from bridges.mqtt.embedded import Listener
from tests.bridges.mqtt.embedded_support import HOST, Paho, embedded_broker, paho
from tests.bridges.mqtt.test_abuse import closed_by_peer
from tests.support.certs import self_signed
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def tls_listener(name: str, kind: str, certificate: tuple[Path, Path]) -> Listener:
    cert, key = certificate
    return Listener(name, kind, HOST, free_port(), certfile=str(cert), keyfile=str(key))  # type: ignore[arg-type]


def tls_client(port: int, client_id: str, cert: Path, transport: str = "tcp") -> Paho:
    client = Paho(port, client_id, transport=transport)
    client.client.tls_set(ca_certs=str(cert))  # verifies the chain and that it names 127.0.0.1
    return client


async def test_mqtt_over_tls_and_wss_carry_messages_both_ways(certificate: tuple[Path, Path]) -> None:
    plain = Listener("plain", "tcp", HOST, free_port())
    mqtts, wss = tls_listener("mqtts", "tcp", certificate), tls_listener("wss", "ws", certificate)
    async with embedded_broker(listeners=(plain, mqtts, wss)) as running, paho(plain.port, "watcher") as watcher:
        await watcher.subscribe("devices/+/telemetry")
        for listener, transport in ((mqtts, "tcp"), (wss, "websockets")):
            device = tls_client(listener.port, f"dev-{listener.name}", certificate[0], transport)
            try:
                assert await device.connect(), device.connack
                await device.subscribe(f"devices/{listener.name}/cmd")
                await device.publish(f"devices/{listener.name}/telemetry", b"over-tls")
                message = await watcher.next_message()
                assert message is not None and message.topic == f"devices/{listener.name}/telemetry"
                await watcher.publish(f"devices/{listener.name}/cmd", b"back")
                echoed = await device.next_message()
                assert echoed is not None and echoed.payload == b"back"
            finally:
                await device.close()
        assert running.adapter.ready.is_set()


async def test_plaintext_client_is_refused_on_the_tls_port(certificate: tuple[Path, Path]) -> None:
    """An MQTT CONNECT in the clear is no TLS ClientHello: no CONNACK, the connection is closed, and
    the broker still serves TLS clients."""
    mqtts = tls_listener("mqtts", "tcp", certificate)
    async with embedded_broker(listeners=(mqtts,)):
        reader, writer = await asyncio.open_connection(HOST, mqtts.port)
        body = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x05plain"
        writer.write(bytes([0x10, len(body)]) + body)
        await writer.drain()
        first = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            first = await asyncio.wait_for(reader.read(4), 3)
        assert not first.startswith(b"\x20\x02"), f"a CONNACK in the clear: {first!r}"
        assert await closed_by_peer(reader)
        writer.close()

        plain_paho = Paho(mqtts.port, "plain-paho")
        try:
            assert not await _accepted(plain_paho)
        finally:
            await plain_paho.close()
        device = tls_client(mqtts.port, "tls-paho", certificate[0])
        try:
            assert await device.connect()
        finally:
            await device.close()


async def test_a_device_that_carries_a_client_certificate_is_not_refused(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """No client is asked for a certificate: one that has its own (self-signed, for another broker) still
    gets in with its password. amqtt asked for an optional one and refused any the system CAs did not sign."""
    client_cert, client_key = self_signed(tmp_path, "device")
    listener = tls_listener("secure", "tcp", certificate)
    async with embedded_broker(listeners=(listener,)):
        device = Paho(listener.port, "with-cert")
        device.client.tls_set(ca_certs=str(certificate[0]), certfile=str(client_cert), keyfile=str(client_key))
        try:
            assert await device.connect()
        finally:
            await device.close()


@pytest.mark.parametrize("kind", ["tcp", "ws"])
async def test_silent_connection_to_a_tls_port_is_dropped_after_the_connect_timeout(
    certificate: tuple[Path, Path], kind: str
) -> None:
    """No ClientHello: closed after connect_timeout_s (1 s here), not asyncio's 60 s TLS handshake timeout."""
    listener = tls_listener("secure", kind, certificate)
    async with embedded_broker(listeners=(listener,), connect_timeout_s=1.0):
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        try:
            assert await closed_by_peer(reader, within=5.0)
        finally:
            writer.close()


async def _accepted(client: Paho) -> bool:
    """Whether a CONNECT is accepted within 3 s (a client that never gets a CONNACK is not)."""
    try:
        return await client.connect(within=3.0)
    except AssertionError:  # no CONNACK at all
        return False
