"""The embedded broker keeps retained messages and persistent sessions in the hub's SQLite store.

A real broker is stopped and started again on the same port with the same
database, as a restarted hub would be; paho clients on both sides.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridges.mqtt.embedded import Listener
from bridges.mqtt.persistence import BrokerChanges, SessionRecord, SessionUpdate
from hub.store import Store
from tests.bridges.mqtt.embedded_support import Paho, embedded_broker, paho, wait_until
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "hub.sqlite3")
    yield opened
    opened.close()


async def test_retained_message_survives_a_restart(store: Store) -> None:
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store), paho(listener.port, "sensor") as sensor:
        await sensor.publish("devices/sensor/status", b"online", retain=True)
        await sensor.publish("devices/gone/status", b"offline", retain=True)
        await sensor.publish("devices/gone/status", b"", retain=True)  # an empty payload clears it
    async with embedded_broker(listeners=(listener,), store=store), paho(listener.port, "late", user="bob") as late:
        await late.subscribe("devices/#")
        message = await late.next_message()
        assert message is not None
        assert (message.topic, message.payload, message.retain) == ("devices/sensor/status", b"online", True)
        assert await late.next_message(0.5) is None


async def test_persistent_session_gets_what_was_published_while_it_was_away_across_restarts(store: Store) -> None:
    """Subscribed at QoS 1 with clean_session=false; one message queued before the restart, one after:
    the returning device finds its session and gets both, in order."""
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store):
        device = Paho(listener.port, "plug-1", clean=False)
        assert await device.connect()
        await device.subscribe("devices/plug-1/cmd", qos=1)
        await device.disconnect()
        async with paho(listener.port, "hub-side", user="bob") as sender:
            await sender.publish("devices/plug-1/cmd", b"before", qos=1)
    async with embedded_broker(listeners=(listener,), store=store):
        async with paho(listener.port, "hub-side", user="bob") as sender:
            await sender.publish("devices/plug-1/cmd", b"after", qos=1)
        device = Paho(listener.port, "plug-1", clean=False)
        try:
            assert await device.connect()
            assert device.session_present is True
            payloads = []
            while (message := await device.next_message()) is not None:
                payloads.append(message.payload)
                if len(payloads) == 2:
                    break
            assert payloads == [b"before", b"after"]
            assert not message.retain
            delivered = await wait_until(lambda: [r.queued for r in store.broker_state()[0].sessions] == [()])
            assert delivered, "the delivered messages are still stored"
        finally:
            await device.close()


async def test_clean_session_forgets_the_stored_one(store: Store) -> None:
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store):
        device = Paho(listener.port, "plug-1", clean=False)
        assert await device.connect()
        await device.subscribe("devices/plug-1/cmd", qos=1)
        await device.disconnect()
    async with embedded_broker(listeners=(listener,), store=store), paho(listener.port, "plug-1") as device:
        assert device.session_present is False
    assert store.broker_state()[0].sessions == ()


async def test_queued_message_is_written_while_the_broker_runs(store: Store, tmp_path: Path) -> None:
    """No shutdown needed: within the save interval the queued message is on disk (what a SIGKILL keeps)."""
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store):
        device = Paho(listener.port, "plug-1", clean=False)
        assert await device.connect()
        await device.subscribe("devices/plug-1/cmd", qos=1)
        await device.disconnect()
        async with paho(listener.port, "hub-side", user="bob") as sender:
            await sender.publish("devices/plug-1/cmd", b"queued", qos=1)
        reader = sqlite3.connect(tmp_path / "hub.sqlite3")
        try:

            def on_disk() -> bool:
                session = reader.execute("SELECT record FROM mqtt_sessions WHERE client_id = 'plug-1'").fetchall()
                queue = reader.execute("SELECT payload FROM mqtt_queued WHERE client_id = 'plug-1'").fetchall()
                return bool(session) and "devices/plug-1/cmd" in session[0][0] and queue == [(b"queued",)]

            assert await wait_until(on_disk)
        finally:
            reader.close()


async def test_todays_acl_applies_to_restored_sessions(store: Store) -> None:
    """A filter the ACL no longer allows is left out of the restored session; the others stand."""
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store):
        device = Paho(listener.port, "alice-dev", clean=False)
        assert await device.connect()
        await device.subscribe("devices/alice/cmd", qos=1)
        await device.subscribe("devices/other/cmd", qos=1)
        await device.disconnect()
    acl = {"publish": ("devices/{username}/#",), "subscribe": ("devices/{username}/#",)}
    async with embedded_broker(listeners=(listener,), store=store, acl=acl, acl_unrestricted=frozenset({"bob"})):
        async with paho(listener.port, "hub-side", user="bob") as sender:
            await sender.publish("devices/other/cmd", b"not-for-alice", qos=1)
            await sender.publish("devices/alice/cmd", b"for-alice", qos=1)
        device = Paho(listener.port, "alice-dev", clean=False)
        try:
            assert await device.connect()
            message = await device.next_message()
            assert message is not None and message.payload == b"for-alice"
            assert await device.next_message(0.5) is None
        finally:
            await device.close()


async def test_restored_session_past_its_expiry_is_forgotten(store: Store) -> None:
    """Away for an hour with a 60 s expiry: the restarted broker drops the session and its row."""
    away = SessionRecord("plug-1", "alice", (("devices/plug-1/cmd", 1),), (), time.time() - 3600)
    store.save_broker_changes(BrokerChanges(sessions={"plug-1": SessionUpdate(away, None)}))
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store, session_expiry_s=60):
        assert await wait_until(lambda: store.broker_state()[0].sessions == ())
        async with paho(listener.port, "plug-1", clean=False) as device:
            assert device.session_present is False


async def test_stored_queue_keeps_the_bound(store: Store) -> None:
    """Three messages for a session that may hold two: the oldest leaves the store as it leaves the queue."""
    listener = Listener(port=free_port())
    async with embedded_broker(listeners=(listener,), store=store, max_queued_per_session=2):
        device = Paho(listener.port, "plug-1", clean=False)
        assert await device.connect()
        await device.subscribe("devices/plug-1/cmd", qos=1)
        await device.disconnect()
        async with paho(listener.port, "hub-side", user="bob") as sender:
            for payload in (b"one", b"two", b"three"):
                await sender.publish("devices/plug-1/cmd", payload, qos=1)

        def stored() -> list[bytes]:
            return [m.payload for r in store.broker_state()[0].sessions for m in r.queued]

        assert await wait_until(lambda: stored() == [b"two", b"three"]), stored()
