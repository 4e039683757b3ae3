"""Homie end to end: a real hub and Prosody, a paho client playing a Homie 5 device, a slixmpp operator.

The device publishes the recorded traffic of tests/fixtures/homie as a Homie 5
device does on connect ($state init, $description, its values, $state ready,
all retained), with ``lost`` as its Last Will.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto_factory  # noqa: F401
from tests.support.operator import Operator, status_has
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "homie"
STATE = "homie/5/kitchen-light/$state"
BRIGHTNESS = "homie/5/kitchen-light/light/brightness"


def recorded(name: str) -> list[tuple[str, bytes]]:
    messages = json.loads((FIXTURES / name).read_text())
    return [
        (m["topic"], (m["payload"] if isinstance(m["payload"], str) else json.dumps(m["payload"])).encode())
        for m in messages
    ]


@pytest.fixture(params=["embedded", "external"])
def runner(
    request: pytest.FixtureRequest,
    prosody: XmppServer,
    tmp_path: Path,
    mosquitto_factory: MosquittoFactory,  # noqa: F811
) -> HubRunner:
    return HubRunner.for_family(
        prosody, tmp_path / "hub", "homie", str(request.param), lambda: mosquitto_factory().port
    )


@pytest.fixture
def light(runner: HubRunner) -> Iterator[tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]]:
    """The device's MQTT client: what it is sent on …/set lands in the queue, and it echoes the value."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kitchen-light")
    if runner.mode == "embedded":
        client.username_pw_set("tester", DEVICE_PASSWORD)  # a real device: see docs/families/homie.md for its ACL
    client.will_set(STATE, "lost", qos=1, retain=True)
    commands: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        commands.put((message.topic, message.payload))
        c.publish(message.topic.removesuffix("/set"), message.payload, qos=1, retain=True)

    client.on_message = on_message
    yield client, commands
    client.loop_stop()
    client.disconnect()


async def test_homie5_device_appears_reports_and_obeys(
    runner: HubRunner, prosody: XmppServer, light: tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]
) -> None:
    client, commands = light
    admin = await prosody.new_user_async("admin")
    runner.operators = {admin[0]: {"role": "admin", "notify_new_devices": True}}
    async with runner.running(), Operator(prosody, *admin) as op:
        client.connect("127.0.0.1", runner.broker_port, keepalive=30)
        client.loop_start()
        client.subscribe("homie/5/kitchen-light/+/+/set", qos=1)
        for topic, payload in recorded("homie5_kitchen_light.json"):
            client.publish(topic, payload, qos=1, retain=True)

        jid = runner.jid("kitchen-light")
        offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
        assert offer.nick == "Kitchen light"
        await op.subscribe(jid)
        await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
        await op.wait_presence(jid, status_has("21.5 °C · power off · brightness 40 %"))

        await op.say(jid, "help")
        help_text = (await op.next_message(jid)).body
        assert help_text.startswith("Kitchen light (kitchen-light): a homie device.")
        assert "set brightness <0–100 %, step 5>" in help_text and "set power <on|off>" in help_text
        await op.say(jid, "status")
        status = (await op.next_message(jid)).body
        assert status.startswith("Kitchen light (kitchen-light): online") and "brightness 40 %" in status

        await op.say(jid, "set brightness 60")
        assert (await op.next_message(jid)).body == "→ sent: set brightness 60 %"
        confirmed = (await op.next_message(jid)).body
        assert confirmed.startswith("✓ set brightness 60 %: confirmed in "), confirmed
        assert commands.get_nowait() == (f"{BRIGHTNESS}/set", b"60")  # it echoed: it was sent
        await op.wait_presence(jid, status_has("brightness 60 %"))

        client.publish(STATE, "lost", qos=1, retain=True)
        await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status.startswith("offline since"))
