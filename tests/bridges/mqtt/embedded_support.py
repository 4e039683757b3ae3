"""Real brokers and real clients for the embedded-broker tests.

paho runs its network loop in a thread, so everything here waits by polling
(never by blocking the event loop the broker runs in, never by parking a
thread of the default executor that the broker needs for password checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from amqtt.broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

from bridges.mqtt.embedded import EmbeddedBroker, EmbeddedBrokerOptions, Listener, hash_password
from hub.core.events import Event
from tests.support.ports import free_port

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}
USERS = {name: hash_password(plain) for name, plain in PASSWORDS.items()}
HOST = "127.0.0.1"


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``within`` seconds passed; return its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@dataclass
class EventLog:
    """The ``emit`` the adapter is given, recording what it reports."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    async def wait_for(self, wanted: Event, within: float = 5.0) -> None:
        assert await wait_until(lambda: wanted in self.events, within), f"{wanted} not in {self.events}"

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@dataclass
class Running:
    adapter: EmbeddedBroker
    events: EventLog
    port: int


@contextlib.asynccontextmanager
async def embedded_broker(**overrides: Any) -> AsyncIterator[Running]:
    """Our adapter on a fresh loopback port (first listener), stopped on exit; ``store=`` keeps its state."""
    listeners = overrides.pop("listeners", None) or (Listener(port=free_port()),)
    store = overrides.pop("store", None)
    options = EmbeddedBrokerOptions(listeners=listeners, users=overrides.pop("users", USERS), **overrides)
    events = EventLog()
    adapter = EmbeddedBroker(options, events, store)
    task = asyncio.create_task(adapter.run())
    ready = asyncio.create_task(adapter.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield Running(adapter, events, listeners[0].port)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def stock_broker() -> AsyncIterator[int]:
    """amqtt 0.12.1 as shipped, with its default anonymous-access plugin, on a loopback port."""
    port = free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()


class Paho:
    """A paho-mqtt 2 client (MQTT 3.1.1) with awaitable steps."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        user: str | None = "alice",
        password: str | None = None,
        clean: bool = True,
        transport: str = "tcp",
        keepalive: int = 60,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.port = port
        self.keepalive = keepalive
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=mqtt.MQTTv311,
            transport=transport,  # type: ignore[arg-type]
        )
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else PASSWORDS.get(user))
        if will is not None:
            self.client.will_set(will[0], will[1], qos=0, retain=False)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: Any = None
        self.session_present: bool | None = None
        self.disconnected = threading.Event()
        self._subacks: set[int] = set()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda _c, _u, mid, _codes, _p: self._subacks.add(mid)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason_code: Any, _p: Any) -> None:
        self.session_present = flags.session_present
        self.connack = reason_code

    async def connect(self, within: float = 5.0) -> bool:
        """True when the broker accepted the CONNECT."""
        self.disconnected.clear()
        self.connack = None
        self.client.connect_async(HOST, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        assert await wait_until(lambda: self.connack is not None, within), "no CONNACK"
        return not self.connack.is_failure

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        _rc, mid = self.client.subscribe(topic, qos)
        assert await wait_until(lambda: mid in self._subacks), f"no SUBACK for {topic}"

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        assert await wait_until(info.is_published), f"publish to {topic} not acknowledged"

    async def next_message(self, within: float = 2.0) -> mqtt.MQTTMessage | None:
        found: list[mqtt.MQTTMessage] = []

        def take() -> bool:
            with contextlib.suppress(queue.Empty):
                found.append(self.messages.get_nowait())
            return bool(found)

        await wait_until(take, within)
        return found[0] if found else None

    async def disconnect(self) -> None:
        """A clean DISCONNECT (no Last Will)."""
        self.client.disconnect()
        assert await wait_until(self.disconnected.is_set), "not disconnected"
        await asyncio.to_thread(self.client.loop_stop)

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@contextlib.asynccontextmanager
async def paho(port: int, client_id: str, **kwargs: Any) -> AsyncIterator[Paho]:
    """A connected client (the CONNECT must be accepted), closed on exit."""
    client = Paho(port, client_id, **kwargs)
    try:
        assert await client.connect(), f"{client_id} refused: {client.connack}"
        yield client
    finally:
        await client.close()


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def connect_packet(
    client_id: str,
    *,
    keepalive: int,
    user: str | None = "alice",
    will: tuple[str, bytes] | None = None,
    clean: bool = True,
) -> bytes:
    """A raw MQTT 3.1.1 CONNECT, for clients that must misbehave in ways paho will not."""
    flags = 0x02 if clean else 0x00
    payload = _field(client_id.encode())
    if will is not None:
        flags |= 0x04
        payload += _field(will[0].encode()) + _field(will[1])
    if user is not None:
        flags |= 0x80 | 0x40
        payload += _field(user.encode()) + _field(PASSWORDS[user].encode())
    body = _field(b"MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big") + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


async def raw_connect(port: int, client_id: str, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a socket, send CONNECT, check the CONNACK accepted it; then the socket is the test's."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(connect_packet(client_id, **kwargs))
    await writer.drain()
    connack = await asyncio.wait_for(reader.readexactly(4), 5)
    assert connack[0] == 0x20 and connack[3] == 0, f"CONNECT refused: {connack!r}"
    return reader, writer
