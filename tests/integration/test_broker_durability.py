"""The embedded broker's retained messages and persistent sessions survive ``hub run`` being restarted.

``hub run`` is its own process (``HubProcess``), stopped with SIGTERM or
killed with SIGKILL; paho clients are the devices. Before a SIGKILL the test
waits until the state it relies on is in the hub's SQLite file: the broker
writes it at most 0.5 s after it changed, and what a SIGKILL can lose is
exactly what was not written yet.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.bridges.mqtt.embedded_support import Paho, wait_until
from tests.integration.test_durability import HubProcess, _hub_config
from tests.support.hub_runner import DEVICE_PASSWORD
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

BEFORE = b'{"id": "before", "set": {"power": "on"}}'
AFTER = b'{"id": "after", "set": {"power": "off"}}'
STOPS = [pytest.param(signal.SIGTERM, id="sigterm"), pytest.param(signal.SIGKILL, id="sigkill")]


def _hub(tmp_path: Path, prosody: XmppServer, operator: str) -> tuple[HubProcess, int]:
    mqtt_port = free_port()
    config = _hub_config(tmp_path, prosody, operator, mqtt_port)
    return HubProcess(config, {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret}), mqtt_port


async def _on_disk(tmp_path: Path, query: str, needle: str) -> None:
    """Wait until a row of ``query`` holds ``needle`` in the hub's database (read by another connection)."""
    db = sqlite3.connect(tmp_path / "state" / "hub.sqlite3")
    try:
        written = await wait_until(lambda: any(needle in str(row) for row in db.execute(query)), within=10)
        assert written, f"{needle!r} never written"
    finally:
        db.close()


def _client(port: int, client_id: str, user: str, clean: bool = True) -> Paho:
    return Paho(port, client_id, user=user, password=DEVICE_PASSWORD, clean=clean)


@pytest.mark.parametrize("stop", STOPS)
async def test_retained_message_survives_a_hub_restart(
    prosody: XmppServer, tmp_path: Path, stop: signal.Signals
) -> None:
    user, _password = await prosody.new_user_async("admin")
    hub, port = _hub(tmp_path, prosody, user)
    await hub.start()
    try:
        publisher = _client(port, "publisher", "tester")
        assert await publisher.connect()
        await publisher.publish("devices/thermostat/status", b"online", retain=True)
        await publisher.close()
        if stop is signal.SIGKILL:
            await _on_disk(tmp_path, "SELECT topic FROM mqtt_retained", "devices/thermostat/status")
        assert await hub.kill(stop) == (0 if stop is signal.SIGTERM else -signal.SIGKILL)
        await hub.start()

        subscriber = _client(port, "newcomer", "tester")
        try:
            assert await subscriber.connect()
            await subscriber.subscribe("devices/+/status")
            message = await subscriber.next_message(5.0)
            assert message is not None
            assert (message.topic, message.payload, message.retain) == ("devices/thermostat/status", b"online", True)
        finally:
            await subscriber.close()
    finally:
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)


@pytest.mark.parametrize("stop", STOPS)
async def test_persistent_session_gets_its_messages_after_a_hub_restart(
    prosody: XmppServer, tmp_path: Path, stop: signal.Signals
) -> None:
    """plug-1 subscribes at QoS 1 with clean_session=false and goes away; one command is queued before the
    hub stops, one is published after it is back: plug-1 returns, finds its session and gets both."""
    user, _password = await prosody.new_user_async("admin")
    hub, port = _hub(tmp_path, prosody, user)
    await hub.start()
    try:
        plug = _client(port, "plug-1", "plug-1", clean=False)
        assert await plug.connect()
        await plug.subscribe("devices/plug-1/cmd", qos=1)
        await plug.disconnect()
        sender = _client(port, "sender", "tester")
        assert await sender.connect()
        await sender.publish("devices/plug-1/cmd", BEFORE, qos=1)
        await sender.close()
        if stop is signal.SIGKILL:
            await _on_disk(tmp_path, "SELECT payload FROM mqtt_queued WHERE client_id = 'plug-1'", "before")
        assert await hub.kill(stop) == (0 if stop is signal.SIGTERM else -signal.SIGKILL)
        await hub.start()

        sender = _client(port, "sender", "tester")
        assert await sender.connect()
        await sender.publish("devices/plug-1/cmd", AFTER, qos=1)
        await sender.close()
        plug = _client(port, "plug-1", "plug-1", clean=False)
        try:
            assert await plug.connect()
            assert plug.session_present is True
            got = []
            while len(got) < 2 and (message := await plug.next_message(5.0)) is not None:
                got.append((message.topic, message.payload, message.qos))
            assert got == [("devices/plug-1/cmd", BEFORE, 1), ("devices/plug-1/cmd", AFTER, 1)]
        finally:
            await plug.close()
    finally:
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)
