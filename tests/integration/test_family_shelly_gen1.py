"""Shelly Gen1 end to end: a real hub (embedded broker), Prosody, mosquitto_pub/paho as the device.

The device client answers relay commands the way a Gen1 Shelly does: it
publishes the new state on shellies/<id>/relay/<n>, which confirms.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.support.hub_runner import HubRunner
from tests.support.operator import Operator
from tests.support.recorded import device_client, load_traffic, replay
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

TRAFFIC = load_traffic("shelly_gen1")
DEVICE = "shelly1pm-84CCA8ABCDEF"


async def test_relay_reads_and_switches(prosody: XmppServer, tmp_path: Path) -> None:
    admin = await prosody.new_user_async("admin")
    runner = HubRunner(
        prosody,
        tmp_path / "hub",
        devices=(),
        operators={admin[0]: "admin"},
        extra={"bindings": [{"profile": "shelly-gen1"}], "devices": {DEVICE: {"name": "Boiler"}}},
    )
    async with runner.running(), Operator(prosody, *admin) as op:
        shelly = device_client(runner, DEVICE)
        commands: list[tuple[str, bytes]] = []
        lock = threading.Lock()

        def obey(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            with lock:
                commands.append((message.topic, message.payload))
            relay = message.topic.removesuffix("/command")
            client.publish(relay, message.payload)  # a Gen1 relay reports its new state

        shelly.on_message = obey
        shelly.subscribe(f"shellies/{DEVICE}/relay/+/command", qos=1)
        try:
            replay(shelly, TRAFFIC, "plug")
            jid = runner.jid(DEVICE.lower())
            await op.subscribe(jid)  # configured (to give it a name), so it is listed from the start, not offered
            await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
            await op.wait_presence(jid, lambda p: p.type == "available" and "energy 0.075 kWh" in p.status)

            await op.say(jid, "help")
            help_text = (await op.next_message(jid)).body
            assert help_text.startswith(f"Boiler ({DEVICE}): a shelly-gen1 device. Commands:"), help_text
            assert "switch: on · off · toggle" in help_text and "announce:" in help_text

            await op.say(jid, "status")
            status = (await op.next_message(jid)).body
            assert status.startswith(f"Boiler ({DEVICE}): online") and "device 38.5 °C" in status, status

            await op.say(jid, "on")
            assert (await op.next_message(jid)).body == "→ sent: on"
            confirmed = (await op.next_message(jid)).body
            assert confirmed.startswith("✓ on: confirmed in "), confirmed
            with lock:
                assert commands == [(f"shellies/{DEVICE}/relay/0/command", b"on")]
            await op.wait_presence(jid, lambda p: p.type == "available" and p.status.startswith("power on"))

            replay(shelly, TRAFFIC, "plug_offline")
            await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status.startswith("offline since"))
        finally:
            shelly.loop_stop()
            shelly.disconnect()
