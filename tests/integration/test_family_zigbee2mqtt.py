"""zigbee2mqtt end to end: a real hub and Prosody, a paho client playing the bridge, a slixmpp operator.

The bridge's traffic is the recorded one in tests/fixtures/zigbee2mqtt, published
the way zigbee2mqtt does on start-up: bridge/state first, then bridge/devices,
both retained, so the hub must pick up a state it saw before it knew the device.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto_factory  # noqa: F401
from tests.support.operator import Operator, status_has
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "zigbee2mqtt"
PLUG = "0x00158d00018255df"


@pytest.fixture(params=["embedded", "external"])
def runner(
    request: pytest.FixtureRequest,
    prosody: XmppServer,
    tmp_path: Path,
    mosquitto_factory: MosquittoFactory,  # noqa: F811
) -> HubRunner:
    admin = prosody.new_user("admin")
    hub = HubRunner.for_family(
        prosody,
        tmp_path / "hub",
        "zigbee2mqtt",
        str(request.param),
        lambda: mosquitto_factory().port,
        operators={admin[0]: {"role": "admin", "notify_new_devices": True}},
    )
    hub.extra["admin"] = admin
    return hub


@pytest.fixture
def bridge(runner: HubRunner) -> Iterator[tuple[mqtt.Client, queue.Queue[tuple[str, Any]]]]:
    """zigbee2mqtt's MQTT client: what it is sent on <base>/<name>/set lands in the queue."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="z2m")
    if runner.mode == "embedded":
        client.username_pw_set("tester", DEVICE_PASSWORD)  # a real bridge: a user under acl.unrestricted
    commands: queue.Queue[tuple[str, Any]] = queue.Queue()
    client.on_message = lambda c, u, m: commands.put((m.topic, json.loads(m.payload)))
    yield client, commands
    client.loop_stop()
    client.disconnect()


async def test_zigbee2mqtt_devices_appear_report_and_obey(
    runner: HubRunner, bridge: tuple[mqtt.Client, queue.Queue[tuple[str, Any]]]
) -> None:
    client, commands = bridge
    admin = runner.extra.pop("admin")
    async with runner.running(), Operator(runner.server, *admin) as op:
        client.connect("127.0.0.1", runner.broker_port, keepalive=30)
        client.loop_start()
        client.subscribe("zigbee2mqtt/my_plug/set", qos=1)
        client.publish("zigbee2mqtt/bridge/state", '{"state": "online"}', qos=1, retain=True)
        client.publish("zigbee2mqtt/bridge/devices", (FIXTURES / "bridge_devices.json").read_bytes(), 1, retain=True)

        jid = runner.jid(PLUG)
        offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
        assert offer.nick == "my_plug"  # named by its friendly name, addressed by its IEEE address
        bridge_offer = await op.wait_presence(runner.jid("zigbee2mqtt"), lambda p: p.type == "subscribe")
        assert bridge_offer.nick == "Zigbee2MQTT (zigbee2mqtt)"
        await op.subscribe(jid)
        await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
        client.publish("zigbee2mqtt/my_plug", (FIXTURES / "state_my_plug.json").read_bytes(), qos=1)
        await op.wait_presence(jid, status_has("power 12.5 W · energy 1.24 kWh"))

        await op.say(jid, "help")
        help_text = (await op.next_message(jid)).body
        assert help_text.startswith("my_plug (0x00158d00018255df): a zigbee2mqtt device.")
        assert "switch: on · off · toggle" in help_text and "set power_outage_memory <on|off|restore>" in help_text
        await op.say(jid, "status")
        status = (await op.next_message(jid)).body
        assert status.startswith("my_plug (0x00158d00018255df): online") and "power 12.5 W" in status

        client.on_message = lambda c, u, m: (
            commands.put((m.topic, json.loads(m.payload))),
            c.publish("zigbee2mqtt/my_plug", json.dumps({"state": "OFF", "power": 0}), qos=1),
        )
        await op.say(jid, "off")
        assert (await op.next_message(jid)).body == "→ sent: off"
        confirmed = (await op.next_message(jid)).body
        assert confirmed.startswith("✓ off: confirmed in "), confirmed
        assert commands.get_nowait() == ("zigbee2mqtt/my_plug/set", {"state": "OFF"})  # it echoed: it was sent
        await op.wait_presence(jid, status_has("state OFF"))

        client.publish("zigbee2mqtt/bridge/state", "offline", qos=1, retain=True)  # legacy text form
        await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status.startswith("offline since"))
