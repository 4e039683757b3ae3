"""Shelly Gen2+ end to end: a real hub (embedded broker), Prosody, a paho client replaying recorded traffic.

The device client answers Switch.Set the way a Shelly does: a JSON-RPC reply on
<src>/rpc and a NotifyStatus on <prefix>/events/rpc, which is what confirms.
"""

from __future__ import annotations

import json
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

TRAFFIC = load_traffic("shelly_gen2")
DEVICE = "shellyplus1pm-a8032ab12345"


async def test_found_reads_and_switches_over_json_rpc(prosody: XmppServer, tmp_path: Path) -> None:
    admin = await prosody.new_user_async("admin")
    runner = HubRunner(
        prosody,
        tmp_path / "hub",
        devices=(),
        operators={admin[0]: {"role": "admin", "notify_new_devices": True}},
        extra={"bindings": [{"profile": "shelly-gen2"}]},
    )
    async with runner.running(), Operator(prosody, *admin) as op:
        shelly = device_client(runner, DEVICE)
        requests: list[dict[str, Any]] = []
        lock = threading.Lock()

        def obey(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            request = json.loads(message.payload)
            with lock:
                requests.append(request)
            if request.get("method") == "Switch.Set":
                reply = {"id": request["id"], "src": DEVICE, "dst": request["src"], "result": {"was_on": False}}
                client.publish(f"{request['src']}/rpc", json.dumps(reply))
                switch = {"id": request["params"]["id"], "output": request["params"]["on"], "source": "MQTT"}
                notify = {
                    "src": DEVICE,
                    "dst": f"{DEVICE}/events",
                    "method": "NotifyStatus",
                    "params": {"switch:0": switch},
                }
                client.publish(f"{DEVICE}/events/rpc", json.dumps(notify))

        shelly.on_message = obey
        shelly.subscribe(f"{DEVICE}/rpc", qos=1)
        try:
            replay(shelly, TRAFFIC, "plus1pm")
            jid = runner.jid(DEVICE)
            offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
            assert offer.nick == DEVICE
            await op.subscribe(jid)
            await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
            await op.wait_presence(
                jid, lambda p: p.type == "available" and p.status.startswith("power off · load 0 W · energy 12.346 kWh")
            )

            await op.say(jid, "help")
            help_text = (await op.next_message(jid)).body
            assert help_text.startswith(f"{DEVICE}: a shelly-gen2 device. Commands:"), help_text
            assert "switch: on · off · toggle" in help_text

            await op.say(jid, "status")
            status = (await op.next_message(jid)).body
            assert status.startswith(f"{DEVICE}: online") and "temperature 41.3 °C" in status, status

            await op.say(jid, "on")
            assert (await op.next_message(jid)).body == "→ sent: on"
            confirmed = (await op.next_message(jid)).body
            assert confirmed.startswith("✓ on: confirmed in "), confirmed
            with lock:
                assert requests[-1]["method"] == "Switch.Set"
                assert requests[-1]["params"] == {"id": 0, "on": True} and requests[-1]["src"] == "mqtt-xmpp-hub"
            await op.wait_presence(jid, lambda p: p.type == "available" and p.status.startswith("power on"))

            replay(shelly, TRAFFIC, "plus1pm_offline")
            await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status.startswith("offline since"))
        finally:
            shelly.loop_stop()
            shelly.disconnect()
