"""The generic JSON family end to end: a real hub on either broker, Prosody, a paho device, a slixmpp operator.

The device logs in under its own id on the embedded broker, so the per-device
ACL the binding derives (``garden/<id>/#``) is the one a real installation gets.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto_factory  # noqa: F401
from tests.support.operator import Operator, status_has
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

DEVICE = "garden-pump"


@pytest.mark.parametrize("mode", ["embedded", "external"])
async def test_a_json_device_reads_and_obeys(
    mode: str,
    prosody: XmppServer,
    tmp_path: Path,
    mosquitto_factory: MosquittoFactory,  # noqa: F811
) -> None:
    admin = await prosody.new_user_async("admin")
    runner = HubRunner.for_family(
        prosody,
        tmp_path / "hub",
        "generic-json",
        mode,
        lambda: mosquitto_factory().port,
        binding={"slots": {"base": "garden"}},
        operators={admin[0]: {"role": "admin", "notify_new_devices": True}},
        devices=(DEVICE,),
    )
    received: queue.Queue[tuple[str, object]] = queue.Queue()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=DEVICE)
    if mode == "embedded":
        device.username_pw_set(DEVICE, DEVICE_PASSWORD)
    device.will_set(f"garden/{DEVICE}/availability", '{"state": "offline"}', qos=1, retain=True)

    def obey(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        command = json.loads(message.payload)
        received.put((message.topic, command))
        client.publish(f"garden/{DEVICE}", json.dumps({**command, "flow": 3.5}))  # the state echoes the change

    device.on_message = obey
    async with runner.running(), Operator(prosody, *admin) as op:
        jid = runner.jid(DEVICE)
        await op.subscribe(jid)
        await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
        device.connect("127.0.0.1", runner.broker_port, keepalive=30)
        device.loop_start()
        try:
            device.subscribe(f"garden/{DEVICE}/set", qos=1)
            device.publish(f"garden/{DEVICE}/availability", '{"state": "online"}', qos=1, retain=True)
            device.publish(f"garden/{DEVICE}", json.dumps({"state": "OFF", "temperature": 11.24, "flow": 0}))
            await op.wait_presence(jid, status_has("11.2 °C · power off"))

            await op.say(jid, "help")
            assert "switch: on · off · toggle" in (await op.next_message(jid)).body
            await op.say(jid, "status")
            status = (await op.next_message(jid)).body
            assert status.startswith(f"{DEVICE}: online") and "flow 0" in status, status

            await op.say(jid, "on")
            assert (await op.next_message(jid)).body == "→ sent: on"
            assert (await op.next_message(jid)).body.startswith("✓ on: confirmed in ")
            assert received.get(timeout=5) == (f"garden/{DEVICE}/set", {"state": "ON"})
            await op.wait_presence(jid, status_has("power on"))

            # A property is offered once the device has reported it; this one never did.
            await op.say(jid, "set brightness 30")
            reply = (await op.next_message(jid)).body
            assert reply == f"{DEVICE} has no settable property 'brightness'. Settable: power.", reply
            assert received.empty()

            device.publish(f"garden/{DEVICE}/availability", '{"state": "offline"}', qos=1, retain=True)
            await op.wait_presence(jid, lambda p: p.type == "unavailable")
        finally:
            device.loop_stop()
            device.disconnect()
