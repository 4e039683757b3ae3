"""XMPP abuse from strangers, through a real Prosody: floods and huge bodies are refused and rate-limited.

A stranger who writes 200 messages (some of 5000 characters) to a device and
to the hub gets one refusal from each (one per stranger and JID per minute),
nothing is published, and an operator is served all along.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.demo.devices import SimulatedDevice
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.operator import Operator
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

REFUSAL = "Sorry, you are not on this hub's list of operators."


@pytest.fixture
def make_hub(tmp_path: Path) -> Callable[..., HubRunner]:
    def make(server: XmppServer, **kwargs: object) -> HubRunner:
        return HubRunner(server, tmp_path / "hub", **kwargs)  # type: ignore[arg-type]

    return make


def _watch_commands(runner: HubRunner) -> tuple[mqtt.Client, list[str]]:
    seen: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    client.username_pw_set("tester", DEVICE_PASSWORD)
    client.on_message = lambda _c, _u, message: seen.append(message.topic)
    client.connect("127.0.0.1", runner.broker_port, keepalive=30)
    client.subscribe("devices/+/cmd", qos=1)
    client.loop_start()
    return client, seen


async def test_stranger_flood_is_rate_limited_and_operators_are_served(
    prosody: XmppServer, make_hub: Callable[..., HubRunner]
) -> None:
    admin = await prosody.new_user_async("admin")
    stranger = await prosody.new_user_async("stranger")
    runner = make_hub(prosody, operators={admin[0]: "admin"})
    async with runner.running(), Operator(prosody, *admin) as op, Operator(prosody, *stranger) as eve:
        plug_jid = runner.jid("plug-1")
        watcher, commands = _watch_commands(runner)
        plug = SimulatedDevice(
            "plug-1", "plug", "127.0.0.1", runner.broker_port, "plug-1", DEVICE_PASSWORD, interval=60
        )
        plug.start()
        try:
            await op.subscribe(plug_jid)
            await op.wait_presence(plug_jid, lambda p: p.type == "available" and "power" in p.status)
            for index in range(200):
                await eve.say(plug_jid if index % 2 else runner.domain, "on" if index % 4 else "x" * 5000)
                if index % 50 == 0:
                    await op.say(plug_jid, "toggle")
                    assert (await op.next_message(plug_jid, body=lambda b: b.startswith("→ sent"))).body
            await op.say(plug_jid, "status")
            assert (await op.next_message(plug_jid, body=lambda b: b.startswith("plug-1: online"))).body
            await asyncio.sleep(1.0)  # let every refusal the hub would send arrive
            # One refusal per minute from each JID the stranger wrote to.
            refusals = sorted((m.bare, m.body.startswith(REFUSAL)) for m in eve.messages.history)
            assert refusals == [(runner.domain, True), (plug_jid, True)], eve.report()
            assert len(plug.commands_seen) == 4  # the operator's toggles, nothing of the stranger's
            assert commands == ["devices/plug-1/cmd"] * 4
            assert runner.app is not None and runner.app.core.refusals.suppressed_total == 198
        finally:
            plug.stop()
            watcher.loop_stop()
            watcher.disconnect()
