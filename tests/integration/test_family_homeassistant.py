"""Home Assistant discovery end to end: an ESPHome-like node on the embedded broker, an operator over XMPP.

The node is a real paho-mqtt client that publishes the recorded ESPHome
traffic (tests/fixtures/homeassistant/esphome_livingroom.json): retained
discovery configs, retained states, ``online`` on its status topic (its Last
Will says ``offline``), and answers commands on its relay's command topic
with the new state, as ESPHome does.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub.config import AclConfig, HubConfig
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto_factory  # noqa: F401
from tests.support.operator import Operator, status_has
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures" / "homeassistant" / "esphome_livingroom.json"
COMMAND_TOPIC = "livingroom/switch/relay/command"


class EsphomeNode:
    """The recorded node: publishes its discovery and states, and echoes relay commands as ESPHome does."""

    def __init__(self, port: int, username: str | None) -> None:
        self.commands: list[bytes] = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="livingroom")
        if username is not None:
            client.username_pw_set(username, DEVICE_PASSWORD)
        client.will_set("livingroom/status", b"offline", qos=1, retain=True)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        self.client = client

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.commands.append(message.payload)
        if message.payload in (b"ON", b"OFF"):
            client.publish("livingroom/switch/relay/state", message.payload, qos=1, retain=True)

    async def publish_recording(self) -> None:
        self.client.subscribe(COMMAND_TOPIC, qos=1)
        for entry in json.loads(FIXTURE.read_text())["messages"]:
            payload = entry["payload"]
            raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            info = self.client.publish(entry["topic"], raw, qos=1, retain=entry["retain"])
            await asyncio.to_thread(info.wait_for_publish, 5)

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class AclRunner(HubRunner):
    """The hub as docs/families/homeassistant.md configures it: the node logs in as itself, under the ACL."""

    def config(self) -> HubConfig:
        config = super().config()
        embedded = config.mqtt.embedded
        acl = AclConfig(
            publish=["devices/{username}/#", "homeassistant/+/{username}/#", "{username}/#"],
            subscribe=["devices/{username}/#", "{username}/#", "homeassistant/status"],
        )
        users = {**embedded.users, "livingroom": embedded.users["tester"]}  # the same test password
        embedded = embedded.model_copy(update={"users": users, "acl": acl})
        return config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"embedded": embedded})})


@pytest.mark.parametrize(("mode", "login"), [("embedded", "tester"), ("embedded", "livingroom"), ("external", None)])
async def test_an_esphome_node_is_a_contact_with_readings_help_status_and_a_confirmed_switch(
    xmpp_server: XmppServer,
    tmp_path: Path,
    mosquitto_factory: MosquittoFactory,  # noqa: F811
    mode: str,
    login: str | None,
) -> None:
    """As 'tester' the ACL does not restrict the node; as 'livingroom' it keeps to the documented rules;
    on an external mosquitto the hub subscribes to the topics the configs name."""
    admin = await xmpp_server.new_user_async("admin")
    runner = (AclRunner if login == "livingroom" else HubRunner)(
        xmpp_server,
        tmp_path / "hub",
        mode=mode,
        operators={admin[0]: {"role": "admin", "notify_new_devices": True}},
        devices=(),
        extra={"bindings": [{"profile": "homeassistant"}]},
    )
    if mode == "external":
        runner.external_port = mosquitto_factory().port
    async with runner.running(), Operator(xmpp_server, *admin) as op:
        node = EsphomeNode(runner.broker_port, login)
        try:
            await node.publish_recording()
            jid = runner.jid("a4cf12345678")  # the node's MAC, from its discovery's device identifiers
            offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
            assert offer.nick == "livingroom"  # its name, for the client's contact list
            await op.subscribe(jid)
            await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))
            await op.wait_presence(jid, status_has("Temperature 21.6 °C · Humidity 48 % · Motion off · Relay off"))

            await op.say(jid, "help")
            help_text = (await op.next_message(jid)).body
            assert help_text.splitlines() == [
                "livingroom (a4cf12345678): a homeassistant device. Commands:",
                "  read: status · temperature? · humidity? · motion? · relay?",
                "  switch: on · off · toggle",
                "  restart: press Restart",
            ]
            await op.say(jid, "status")
            status = (await op.next_message(jid)).body.splitlines()
            assert status[:5] == [
                "livingroom (a4cf12345678): online",
                "  Temperature 21.6 °C",
                "  Humidity 48 %",
                "  Motion off",
                "  Relay off",
            ]

            await op.say(jid, "on")
            assert (await op.next_message(jid)).body == "→ sent: on"
            confirmed = (await op.next_message(jid)).body
            assert confirmed.startswith("✓ on: confirmed in "), confirmed
            assert node.commands == [b"ON"]
            await op.wait_presence(jid, status_has("Relay on"))

            await node.publish("livingroom/status", b"offline", retain=True)
            gone = await op.wait_presence(jid, lambda p: p.type == "unavailable")
            assert gone.status.startswith("offline since")
        finally:
            node.stop()
