"""The hub end to end: real broker, real XMPP server, real MQTT devices, a real operator client.

Each scenario runs against Prosody and ejabberd, and with the embedded broker
and an external mosquitto where the broker matters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from hub.demo.devices import SimulatedDevice
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto_factory  # noqa: F401
from tests.support.operator import Operator, PresenceSeen, status_has
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration


def available(p: PresenceSeen) -> bool:
    return p.type == "available"


def unavailable(p: PresenceSeen) -> bool:
    return p.type == "unavailable"


@pytest.fixture(params=["embedded", "external"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_hub(tmp_path: Path, mosquitto_factory: MosquittoFactory) -> Callable[..., HubRunner]:  # noqa: F811
    def make(server: XmppServer, mode: str = "embedded", **kwargs: Any) -> HubRunner:
        runner = HubRunner(server, tmp_path / "hub", mode=mode, **kwargs)
        if mode == "external":
            runner.external_port = mosquitto_factory().port
        return runner

    return make


@pytest.fixture
async def admin(xmpp_server: XmppServer) -> AsyncIterator[tuple[str, str]]:
    yield await xmpp_server.new_user_async("admin")


def device(runner: HubRunner, device_id: str, kind: str, **kwargs: Any) -> SimulatedDevice:
    credentials = (device_id, DEVICE_PASSWORD) if runner.mode == "embedded" else (None, None)
    return SimulatedDevice(device_id, kind, "127.0.0.1", runner.broker_port, *credentials, **kwargs)


def paho_client(runner: HubRunner, client_id: str = "tester") -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if runner.mode == "embedded":
        client.username_pw_set("tester", DEVICE_PASSWORD)
    client.connect("127.0.0.1", runner.broker_port, keepalive=30)
    client.loop_start()
    return client


async def subscribed(op: Operator, jid: str) -> None:
    """Add the device as a contact and wait until the server says we are subscribed."""
    await op.subscribe(jid)
    await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"))


async def test_telemetry_becomes_presence_status(
    xmpp_server: XmppServer, mode: str, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    runner = make_hub(xmpp_server, mode, operators={admin[0]: "admin"})
    async with runner.running(), Operator(xmpp_server, *admin) as op:
        jid = runner.jid("kitchen-temp")
        await subscribed(op, jid)
        await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status == "not seen yet")
        sensor = device(runner, "kitchen-temp", "sensor", interval=60)
        sensor.state.update(temperature=21.6, humidity=48.0, battery=87)
        sensor.start()
        try:
            seen = await op.wait_presence(jid, status_has("21.6 °C · 48 % · battery 87 %"))
            assert seen.show == ""
            await op.say(jid, "temperature?")
            assert (await op.next_message(jid)).body == "temperature 21.6 °C"
        finally:
            sensor.stop()
        await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status.startswith("offline since"))


async def test_command_is_published_and_confirmed(
    xmpp_server: XmppServer, mode: str, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    runner = make_hub(xmpp_server, mode, operators={admin[0]: "admin"})
    async with runner.running(), Operator(xmpp_server, *admin) as op:
        jid = runner.jid("thermostat")
        await subscribed(op, jid)
        thermostat = device(runner, "thermostat", "thermostat", interval=60)
        thermostat.start()
        try:
            await op.wait_presence(jid, status_has("target 21 °C"))
            await op.say(jid, "set target 22.5")
            assert (await op.next_message(jid)).body == "→ sent: set target 22.5 °C"
            confirmed = await op.next_message(jid)
            assert confirmed.body.startswith("✓ set target 22.5 °C: done in "), confirmed.body
            assert thermostat.commands_seen[-1]["set"] == {"target": 22.5}
            await op.wait_presence(jid, status_has("target 22.5 °C"))
        finally:
            thermostat.stop()


async def test_switch_toggle_confirmed_from_state_echo(prosody: XmppServer, make_hub: Callable[..., HubRunner]) -> None:
    """A device without cmd/result: the confirmation comes from the telemetry echo alone."""
    user = await prosody.new_user_async("admin")
    runner = make_hub(prosody, "embedded", operators={user[0]: "admin"})
    async with runner.running(), Operator(prosody, *user) as op:
        jid = runner.jid("plug-1")
        await subscribed(op, jid)
        plug = paho_client(runner, "plug-1")

        def echo(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            command = json.loads(message.payload)
            client.publish("devices/plug-1/telemetry", json.dumps({"power": "on"}))
            assert command["set"] == {"power": "toggle"}

        plug.on_message = echo
        plug.subscribe("devices/plug-1/cmd", qos=1)
        plug.publish("devices/plug-1/telemetry", json.dumps({"power": "off"}))
        await op.wait_presence(jid, status_has("power off"))
        await op.say(jid, "toggle")
        assert (await op.next_message(jid)).body == "→ sent: toggle"
        confirmed = await op.next_message(jid)
        assert confirmed.body.startswith("✓ toggle: power on: confirmed in "), confirmed.body
        plug.loop_stop()
        plug.disconnect()


async def test_command_without_answer_times_out(
    prosody: XmppServer, mode: str, make_hub: Callable[..., HubRunner]
) -> None:
    user = await prosody.new_user_async("admin")
    runner = make_hub(prosody, mode, operators={user[0]: "operator"})
    async with runner.running(), Operator(prosody, *user) as op:
        jid = runner.jid("thermostat")
        await subscribed(op, jid)
        mute = paho_client(runner, "mute")  # reports a target, never obeys
        received: list[bytes] = []
        mute.on_message = lambda c, u, m: received.append(m.payload)
        mute.subscribe("devices/thermostat/cmd", qos=1)
        mute.publish("devices/thermostat/telemetry", json.dumps({"target": 20}))
        await op.wait_presence(jid, status_has("target 20 °C"))
        await op.say(jid, "set target 21")
        assert (await op.next_message(jid)).body == "→ sent: set target 21 °C"
        timed_out = await op.next_message(jid, timeout=10)
        assert timed_out.body == "✗ set target 21 °C: no confirmation after 2 s (target 20 °C still)"
        assert len(received) == 1 and json.loads(received[0])["set"] == {"target": 21}
        mute.loop_stop()
        mute.disconnect()


async def test_last_will_and_silent_device_go_unavailable(
    prosody: XmppServer, mode: str, make_hub: Callable[..., HubRunner]
) -> None:
    """A crash fires the Last Will at once; a device that goes silent with its socket
    open is dropped by the broker after 1.5 × keep-alive, and its Last Will follows."""
    user = await prosody.new_user_async("admin")
    runner = make_hub(prosody, mode, operators={user[0]: "admin"})
    async with runner.running(), Operator(prosody, *user) as op:
        crashing, silent = runner.jid("kitchen-temp"), runner.jid("plug-1")
        await subscribed(op, crashing)
        await subscribed(op, silent)
        sensor = device(runner, "kitchen-temp", "sensor", interval=60)
        plug = device(runner, "plug-1", "plug", interval=60, keepalive=2)
        sensor.start()
        plug.start()
        await op.wait_presence(crashing, available)
        await op.wait_presence(silent, available)
        sensor.crash()
        await op.wait_presence(crashing, lambda p: unavailable(p) and "offline since" in p.status, timeout=5)
        plug.go_silent()
        # Within 1.5 × 2 s keep-alive, plus the broker's and the hub's reaction time on a busy machine;
        # tests/bridges/mqtt checks the embedded broker's own deadline more closely.
        await op.wait_presence(silent, lambda p: unavailable(p) and "offline since" in p.status, timeout=10)


async def test_alert_raised_repeated_state_and_cleared(prosody: XmppServer, make_hub: Callable[..., HubRunner]) -> None:
    user = await prosody.new_user_async("admin")
    alerts = [{"name": "too-warm", "field": "temperature", "op": ">", "threshold": 30, "hysteresis": 1}]
    runner = make_hub(prosody, "embedded", operators={user[0]: "viewer"}, alerts=alerts)
    async with runner.running(), Operator(prosody, *user) as op:
        jid = runner.jid("kitchen-temp")
        await subscribed(op, jid)

        async def publish(payload: str) -> None:
            # mosquitto_pub as the device; run without blocking the loop the broker lives in.
            process = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-h", "127.0.0.1", "-p", str(runner.broker_port), "-u", "tester",
                "-P", DEVICE_PASSWORD, "-t", "devices/kitchen-temp/telemetry", "-m", payload, "-q", "1",
            )  # fmt: skip
            assert await asyncio.wait_for(process.wait(), 10) == 0

        await publish('{"temperature": 29.5}')
        await op.wait_presence(jid, status_has("29.5 °C"))
        await publish('{"temperature": 31.2}')
        raised = await op.next_message(jid)
        assert raised.body == "⚠ kitchen-temp: temperature 31.2 °C > 30 °C"
        dnd = await op.wait_presence(jid, lambda p: p.show == "dnd")
        assert dnd.status.startswith("temperature 31.2 °C > 30 °C")
        await publish('{"temperature": 29.5}')  # within the hysteresis: still active
        await publish('{"temperature": 28.9}')
        cleared = await op.next_message(jid)
        assert cleared.body.startswith("✓ kitchen-temp: back to normal, temperature 28.9 °C (alert since ")
        await op.wait_presence(jid, lambda p: available(p) and p.show == "" and p.status.startswith("28.9 °C"))
        assert [m.body[0] for m in op.messages.history] == ["⚠", "✓"]


async def test_new_device_is_offered_to_operators_who_asked(
    xmpp_server: XmppServer, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    runner = make_hub(xmpp_server, "embedded", operators={admin[0]: {"role": "admin", "notify_new_devices": True}})
    async with runner.running(), Operator(xmpp_server, *admin) as op:
        garage = paho_client(runner, "garage-door")
        garage.publish("devices/garage-door/telemetry", json.dumps({"temperature": 7.5}))
        jid = runner.jid("garage-door")
        offer = await op.wait_presence(jid, lambda p: p.type == "subscribe")
        assert offer.nick == "garage-door"
        await subscribed(op, jid)  # what "add contact" in the client's prompt does
        await op.wait_presence(jid, status_has("7.5 °C"))
        garage.loop_stop()
        garage.disconnect()


async def test_stranger_is_refused_and_nothing_is_published(
    xmpp_server: XmppServer, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    stranger = await xmpp_server.new_user_async("stranger")
    runner = make_hub(xmpp_server, "embedded", operators={admin[0]: "admin"})
    async with runner.running(), Operator(xmpp_server, *stranger) as op:
        jid = runner.jid("plug-1")
        watcher = paho_client(runner)
        commands: list[str] = []
        watcher.on_message = lambda c, u, m: commands.append(m.topic)
        watcher.subscribe("devices/+/cmd", qos=1)
        plug = device(runner, "plug-1", "plug", interval=60)
        plug.start()
        try:
            await op.subscribe(jid)
            refused = await op.wait_presence(jid, lambda p: p.type == "unsubscribed")
            assert refused.bare == jid
            await op.say(jid, "on")
            reply = await op.next_message(jid)
            assert reply.body == "Sorry, you are not on this hub's list of operators. Nothing was done."
            await op.say(runner.domain, "devices")
            assert (await op.next_message(runner.domain)).body.startswith("Sorry, you are not on")
            assert not [p for p in op.presences.history if p.bare == jid and p.type == "available"]
            # The reply is sent after the decision; give a wrongly published command time to arrive anyway.
            await asyncio.sleep(0.5)
            assert commands == [] and plug.commands_seen == []
        finally:
            plug.stop()
            watcher.loop_stop()
            watcher.disconnect()


async def test_viewer_reads_but_cannot_command(prosody: XmppServer, make_hub: Callable[..., HubRunner]) -> None:
    user = await prosody.new_user_async("viewer")
    runner = make_hub(prosody, "embedded", operators={user[0]: "viewer"})
    async with runner.running(), Operator(prosody, *user) as op:
        jid = runner.jid("plug-1")
        await subscribed(op, jid)
        plug = device(runner, "plug-1", "plug", interval=60)
        plug.start()
        try:
            await op.wait_presence(jid, status_has("power off"))
            await op.say(jid, "status")
            assert (await op.next_message(jid)).body.startswith("plug-1: online\n  power off")
            await op.say(jid, "on")
            reply = await op.next_message(jid)
            assert reply.body == "Your role (viewer) may not do that; it needs operator. Nothing was sent."
            assert plug.commands_seen == []
        finally:
            plug.stop()


async def test_bad_input_gets_clear_answers_and_the_hub_keeps_serving(
    prosody: XmppServer, make_hub: Callable[..., HubRunner], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    user = await prosody.new_user_async("admin")
    runner = make_hub(prosody, "embedded", operators={user[0]: "admin"})
    async with runner.running(), Operator(prosody, *user) as op:
        jid = runner.jid("thermostat")
        await subscribed(op, jid)
        thermostat = device(runner, "thermostat", "thermostat", interval=60)
        thermostat.start()
        noisy = paho_client(runner, "noisy")
        try:
            await op.wait_presence(jid, status_has("target 21 °C"))
            noisy.publish("devices/broken/telemetry", b"not json at all", qos=1)
            noisy.publish("devices/broken/telemetry", b'{"t": "' + b"x" * 200_000 + b'"}', qos=1)
            noisy.publish("devices/broken/telemetry", b"\xff\xfe", qos=1)
            for text, answer in [
                ("set target 50", "50 is out of range: target takes 5–35 °C, step 0.5."),
                ("set target warm", "'warm' is not a number; target takes 5–35 °C, step 0.5."),
                ("set target 21.3", "target moves in steps of 0.5: 5–35 °C, step 0.5."),
                ("dance", "Unknown command 'dance'. Write 'help' for what thermostat understands."),
                ("x" * 2000, "That message is 2000 characters long; commands are at most 1024."),
                ("set colour red", "thermostat has no settable property 'colour'. Settable: target, mode."),
            ]:
                await op.say(jid, text)
                assert (await op.next_message(jid)).body == answer
            await op.say(runner.jid("nosuchdevice"), "status")
            assert (await op.next_message(runner.jid("nosuchdevice"))).body.startswith(
                "There is no device nosuchdevice"
            )
            assert thermostat.commands_seen == []
            await _until(lambda: len(_rejected(caplog)) >= 3, "three rejected payloads in the log")
            # ...and the good device still works.
            await op.say(jid, "set mode eco")
            assert (await op.next_message(jid)).body == "→ sent: set mode eco"
            assert (await op.next_message(jid)).body.startswith("✓ set mode eco: done in")
        finally:
            thermostat.stop()
            noisy.loop_stop()
            noisy.disconnect()
    rejected = _rejected(caplog)
    reasons = [getattr(r, "fields", {}).get("reason", "") for r in rejected]
    assert len(rejected) == 3, reasons
    assert all(getattr(r, "fields", {}).get("topic") == "devices/broken/telemetry" for r in rejected)
    assert reasons[0].startswith("payload is not JSON")
    assert "over the 65536-byte limit" in reasons[1]
    assert reasons[2].startswith("payload is not UTF-8")


async def test_hub_restart_keeps_rosters(
    xmpp_server: XmppServer, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    runner = make_hub(xmpp_server, "embedded", operators={admin[0]: "admin"})
    jid = runner.jid("kitchen-temp")
    async with runner.running(), Operator(xmpp_server, *admin) as op:
        await subscribed(op, jid)
        await op.wait_presence(jid, unavailable)
        await runner.stop()
        goodbye = await op.wait_presence(jid, lambda p: unavailable(p) and p.status == "hub stopped")
        assert goodbye.bare == jid
        await runner.start()
        sensor = device(runner, "kitchen-temp", "sensor", interval=60)
        sensor.start()
        try:
            await op.wait_presence(jid, status_has("°C"))
            # A fresh login makes the server probe the restarted hub: it must answer, not cancel.
            async with Operator(xmpp_server, *admin, resource="second") as again:
                await again.wait_presence(jid, status_has("°C"))
                roster = await again.roster_items()
                assert roster[jid].subscription in ("to", "both")
                assert not [p for p in again.presences.history if p.type == "unsubscribed"]
        finally:
            sensor.stop()


async def test_xmpp_server_restart_hub_reconnects_and_reannounces(
    xmpp_server: XmppServer, make_hub: Callable[..., HubRunner], admin: tuple[str, str]
) -> None:
    runner = make_hub(xmpp_server, "embedded", operators={admin[0]: "admin"})
    jid = runner.jid("kitchen-temp")
    async with runner.running() as app:
        async with Operator(xmpp_server, *admin) as op:
            await subscribed(op, jid)
        sensor = device(runner, "kitchen-temp", "sensor", interval=60)
        sensor.start()
        try:
            await xmpp_server.stop_async()
            await _until(lambda: not app.core.xmpp_up, "the hub to see the stream drop")
            await xmpp_server.start_async()
            await _until(lambda: app.core.xmpp_up, "the hub to reconnect", timeout=30)
            async with Operator(xmpp_server, *admin, resource="after") as op:
                await op.wait_presence(jid, status_has("°C"))
                await op.say(jid, "temperature?")
                assert (await op.next_message(jid)).body.startswith("temperature ")
        finally:
            sensor.stop()


def _rejected(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "payload.rejected"]


async def _until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
