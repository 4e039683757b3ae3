"""Tasmota end to end: a real hub (embedded broker), Prosody, a paho client replaying the recorded traffic.

The device client answers POWER commands the way Tasmota does (stat/<t>/RESULT
and stat/<t>/POWER); the operator sees the discovered plug offered under its
friendly name, reads it, and switches it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.support.hub_runner import HubRunner
from tests.support.operator import Operator, PresenceSeen
from tests.support.recorded import device_client, load_traffic, replay
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

TRAFFIC = load_traffic("tasmota")


async def test_discovered_plug_reads_and_switches(prosody: XmppServer, tmp_path: Path) -> None:
    admin = await prosody.new_user_async("admin")
    runner = HubRunner(
        prosody,
        tmp_path / "hub",
        devices=(),
        operators={admin[0]: {"role": "admin", "notify_new_devices": True}},
        extra={"bindings": [{"profile": "tasmota"}]},
    )
    async with runner.running(), Operator(prosody, *admin) as op:
        plug = device_client(runner, "DVES_D3E4F5")
        commands: list[tuple[str, bytes]] = []
        lock = threading.Lock()

        def obey(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            with lock:
                commands.append((message.topic, message.payload))
            if message.topic == "cmnd/kitchen_plug/POWER":
                state = message.payload.decode().upper()
                client.publish("stat/kitchen_plug/RESULT", json.dumps({"POWER": state}))
                client.publish("stat/kitchen_plug/POWER", state)

        plug.on_message = obey
        plug.subscribe("cmnd/kitchen_plug/#", qos=1)
        try:
            replay(plug, TRAFFIC, "plug")
            jid = runner.jid("a0b1c2d3e4f5")
            offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
            assert offer.nick == "Kitchen plug"
            await op.subscribe(jid)
            await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))

            def readings(p: PresenceSeen) -> bool:
                return p.type == "available" and p.status.startswith("power on · load 1850 W · energy 12.345 kWh")

            await op.wait_presence(jid, readings)

            await op.say(jid, "help")
            help_text = (await op.next_message(jid)).body
            assert help_text.startswith("Kitchen plug (a0b1c2d3e4f5): a tasmota device. Commands:"), help_text
            assert "switch: on · off · toggle" in help_text and "restart: restart the device" in help_text

            await op.say(jid, "status")
            status = (await op.next_message(jid)).body
            assert status.startswith("Kitchen plug (a0b1c2d3e4f5): online"), status
            assert "voltage 231 V" in status and "load 1850 W" in status

            await op.say(jid, "off")
            assert (await op.next_message(jid)).body == "→ sent: off"
            confirmed = (await op.next_message(jid)).body
            assert confirmed.startswith("✓ off: confirmed in "), confirmed
            with lock:
                assert ("cmnd/kitchen_plug/POWER", b"OFF") in commands
            await op.wait_presence(jid, lambda p: p.type == "available" and p.status.startswith("power off"))

            replay(plug, TRAFFIC, "plug_removed")  # an empty retained config takes the device out
            gone = await op.wait_presence(jid, lambda p: p.type == "unavailable")
            assert gone.status == "removed from tasmota"
        finally:
            plug.loop_stop()
            plug.disconnect()
