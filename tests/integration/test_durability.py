"""Nothing accepted is lost: alerts while XMPP is down, commands for offline devices, SIGKILL.

Real Prosody, the hub's embedded broker (and mosquitto where the broker
matters), simulated devices over paho, a real operator client; the SIGKILL
test runs ``hub run`` as a separate process and kills it with signal 9.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridges.mqtt.passwords import hash_password
from hub.demo.devices import SimulatedDevice
from tests.integration.test_end_to_end import _until, device, make_hub, mode, status_has, subscribed  # noqa: F401
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.mosquitto_fixture import mosquitto_factory  # noqa: F401
from tests.support.operator import Operator
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

TOO_WARM = [{"name": "too-warm", "field": "temperature", "op": ">", "threshold": 30, "hysteresis": 1}]


async def mosquitto_pub(port: int, topic: str, payload: str, user: str = "tester") -> None:
    """A device that publishes once, as its own process (the broker may live in this event loop)."""
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", DEVICE_PASSWORD,
        "-t", topic, "-m", payload, "-q", "1",
    )  # fmt: skip
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_alert_while_xmpp_is_down_arrives_once_after_reconnect(
    xmpp_server: XmppServer,
    make_hub: Callable[..., HubRunner],  # noqa: F811
) -> None:
    user = await xmpp_server.new_user_async("admin")
    runner = make_hub(xmpp_server, "embedded", operators={user[0]: "viewer"}, alerts=TOO_WARM)
    jid = runner.jid("kitchen-temp")
    async with runner.running() as app:
        async with Operator(xmpp_server, *user) as op:
            await subscribed(op, jid)
        await xmpp_server.stop_async()
        await _until(lambda: not app.core.xmpp_up, "the hub to see the stream drop")
        await mosquitto_pub(runner.broker_port, "devices/kitchen-temp/telemetry", '{"temperature": 31.2}')
        await _until(lambda: len(app.core.held) == 1, "the alert to be held")
        await xmpp_server.start_async()
        await _until(lambda: app.core.xmpp_up and not app.core.held, "the hub to reconnect and deliver", timeout=30)
        # The operator was offline when it was delivered: the server kept it for the next login.
        async with Operator(xmpp_server, *user, resource="after") as op:
            alert = await op.next_message(jid)
            assert alert.body == "⚠ kitchen-temp: temperature 31.2 °C > 30 °C"
            await op.wait_presence(jid, lambda p: p.show == "dnd")
            await asyncio.sleep(1.0)  # room for a duplicate to arrive, if there were one
            assert [m.body for m in op.messages.history] == [alert.body]


async def test_command_for_a_crashed_device_is_delivered_when_it_revives(
    prosody: XmppServer,
    mode: str,  # noqa: F811
    make_hub: Callable[..., HubRunner],  # noqa: F811
) -> None:
    user = await prosody.new_user_async("admin")
    runner = make_hub(prosody, mode, operators={user[0]: "operator"})
    jid = runner.jid("thermostat")
    async with runner.running(), Operator(prosody, *user) as op:
        await subscribed(op, jid)
        thermostat = device(runner, "thermostat", "thermostat", interval=60)
        thermostat.start()
        try:
            await op.wait_presence(jid, status_has("target 21 °C"))
            thermostat.crash()
            await op.wait_presence(jid, lambda p: p.type == "unavailable" and "offline since" in p.status)
            await op.say(jid, "set target 22.5")
            queued = await op.next_message(jid)
            assert queued.body.startswith("→ set target 22.5 °C: queued until thermostat is back (expires ")
            await asyncio.sleep(0.5)
            assert thermostat.commands_seen == []
            thermostat.revive()
            sent = await op.next_message(jid)
            assert sent.body == "→ sent: set target 22.5 °C (thermostat is back)"
            confirmed = await op.next_message(jid)
            assert confirmed.body.startswith("✓ set target 22.5 °C: done in "), confirmed.body
            assert [c.get("set") for c in thermostat.commands_seen] == [{"target": 22.5}]
            await op.wait_presence(jid, status_has("target 22.5 °C"))
        finally:
            thermostat.stop()


async def test_queued_command_that_expires_is_reported(
    prosody: XmppServer,
    make_hub: Callable[..., HubRunner],  # noqa: F811
) -> None:
    user = await prosody.new_user_async("admin")
    limits = {"confirm_timeout": 2, "queued_command_expiry": 2}
    runner = make_hub(prosody, "embedded", operators={user[0]: "operator"}, extra={"limits": limits})
    jid = runner.jid("plug-1")
    async with runner.running(), Operator(prosody, *user) as op:
        await subscribed(op, jid)
        await mosquitto_pub(runner.broker_port, "devices/plug-1/status", "offline")
        await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status != "not seen yet")
        await op.say(jid, "on")
        assert (await op.next_message(jid)).body.startswith("→ on: queued until plug-1 is back (expires ")
        expired = await op.next_message(jid, timeout=10)
        assert expired.body.startswith("✗ on expired: plug-1 did not come back (queued at "), expired.body


# ---------------------------------------------------------------- SIGKILL


class HubProcess:
    """``hub run`` as its own process, as systemd would start it; killed with SIGKILL or stopped with SIGTERM."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config, self.env = config, env
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "run", "-c", str(self.config),
            env=self.env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await self.read_until("hub.ready")

    async def read_until(self, marker: str) -> None:
        assert self.process is not None and self.process.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.process.stderr.readline(), 30)).decode()
            if not line:
                raise AssertionError(f"the hub exited before {marker!r}:\n{''.join(self.output)}")
            self.output.append(line)
            if marker in line:
                return

    async def kill(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 20)
        self.process = None
        return code


def _hub_config(tmp_path: Path, prosody: XmppServer, operator: str, mqtt_port: int, **limits: Any) -> Path:
    users = {d: hash_password(DEVICE_PASSWORD) for d in ("thermostat", "plug-1", "tester")}
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "xmpp": {"domain": prosody.component_domain, "port": prosody.component_port},
                "mqtt": {
                    "embedded": {
                        "listeners": [{"port": mqtt_port}],
                        "users": users,
                        "acl": {"unrestricted": ["tester"]},  # tester speaks for several devices
                    }
                },
                "operators": {operator: {"role": "operator"}},
                "devices": {"thermostat": {}, "plug-1": {}, "kitchen-temp": {}},
                "alerts": TOO_WARM,
                "state_dir": "state",
                "limits": {"confirm_timeout": 5, **limits},
                "log": {"level": "info"},
            }
        )
    )
    return config


async def test_sigkill_keeps_queued_commands_and_alert_state(prosody: XmppServer, tmp_path: Path) -> None:
    """Killed with signal 9 while commands wait for offline devices and an alert is active:
    after the restart one command is delivered, the other expires with a word, and the alert is not raised twice."""
    user, password = await prosody.new_user_async("admin")
    mqtt_port = free_port()
    config = _hub_config(tmp_path, prosody, user, mqtt_port, queued_command_expiry=20)
    hub = HubProcess(config, {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret})
    domain = prosody.component_domain
    sensor_jid, thermostat_jid, plug_jid = (f"{d}@{domain}" for d in ("kitchen-temp", "thermostat", "plug-1"))
    thermostat = SimulatedDevice("thermostat", "thermostat", "127.0.0.1", mqtt_port, "thermostat", DEVICE_PASSWORD)
    thermostat.interval = 60
    await hub.start()
    try:
        async with Operator(prosody, user, password) as op:
            for jid in (sensor_jid, thermostat_jid, plug_jid):
                await subscribed(op, jid)
            await mosquitto_pub(mqtt_port, "devices/kitchen-temp/telemetry", '{"temperature": 31.2}')
            assert (await op.next_message(sensor_jid)).body == "⚠ kitchen-temp: temperature 31.2 °C > 30 °C"

            thermostat.start()
            await op.wait_presence(thermostat_jid, status_has("target 21 °C"))
            thermostat.crash()
            await op.wait_presence(thermostat_jid, lambda p: p.type == "unavailable" and "offline since" in p.status)
            await op.say(thermostat_jid, "set target 22.5")
            assert (await op.next_message(thermostat_jid)).body.startswith("→ set target 22.5 °C: queued until")
            await mosquitto_pub(mqtt_port, "devices/plug-1/status", "offline")
            await op.wait_presence(plug_jid, lambda p: p.type == "unavailable" and "offline since" in p.status)
            await op.say(plug_jid, "on")
            assert (await op.next_message(plug_jid)).body.startswith("→ on: queued until plug-1 is back")

            assert await hub.kill(signal.SIGKILL) == -signal.SIGKILL
            await hub.start()

            thermostat.revive()
            assert (await op.next_message(thermostat_jid)).body == "→ sent: set target 22.5 °C (thermostat is back)"
            confirmed = await op.next_message(thermostat_jid)
            assert confirmed.body.startswith("✓ set target 22.5 °C: done in "), confirmed.body
            assert [c.get("set") for c in thermostat.commands_seen] == [{"target": 22.5}]

            # Still too warm: the alert survived the kill, so this is no new alert.
            await mosquitto_pub(mqtt_port, "devices/kitchen-temp/telemetry", '{"temperature": 31.5}')
            await op.wait_presence(sensor_jid, lambda p: p.show == "dnd" and "31.5 °C" in p.status)

            expired = await op.next_message(plug_jid, timeout=30)
            assert expired.body.startswith("✗ on expired: plug-1 did not come back (queued at "), expired.body
            alerts = [m.body for m in op.messages.history if m.body.startswith("⚠")]
            assert alerts == ["⚠ kitchen-temp: temperature 31.2 °C > 30 °C"]
    finally:
        thermostat.stop()
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)


async def test_alert_held_while_xmpp_is_down_survives_sigkill(prosody: XmppServer, tmp_path: Path) -> None:
    """Prosody down, an alert is held, the hub is killed with signal 9: after both are back the operator
    gets the alert, once."""
    user, password = await prosody.new_user_async("admin")
    mqtt_port = free_port()
    hub = HubProcess(
        _hub_config(tmp_path, prosody, user, mqtt_port), {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret}
    )
    jid = f"kitchen-temp@{prosody.component_domain}"
    await hub.start()
    try:
        async with Operator(prosody, user, password) as op:
            await subscribed(op, jid)
        await prosody.stop_async()
        await hub.read_until("xmpp.down")
        await mosquitto_pub(mqtt_port, "devices/kitchen-temp/telemetry", '{"temperature": 31.2}')
        await hub.read_until("alert.raised")  # logged after the held message is written
        assert await hub.kill(signal.SIGKILL) == -signal.SIGKILL

        await prosody.start_async()
        await hub.start()
        async with Operator(prosody, user, password, resource="after") as op:
            alert = await op.next_message(jid)
            assert alert.body == "⚠ kitchen-temp: temperature 31.2 °C > 30 °C"
            await op.wait_presence(jid, lambda p: p.show == "dnd")
            await asyncio.sleep(1.0)  # room for a duplicate to arrive, if there were one
            assert [m.body for m in op.messages.history] == [alert.body]
    finally:
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)


async def test_sigkill_while_a_command_awaits_confirmation_still_reports_its_outcome(
    prosody: XmppServer, tmp_path: Path
) -> None:
    """Killed right after '→ sent': the restarted hub still owes the operator an answer, and gives it."""
    user, password = await prosody.new_user_async("admin")
    mqtt_port = free_port()
    hub = HubProcess(
        _hub_config(tmp_path, prosody, user, mqtt_port), {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret}
    )
    jid = f"thermostat@{prosody.component_domain}"
    await hub.start()
    try:
        async with Operator(prosody, user, password) as op:
            await subscribed(op, jid)
            await mosquitto_pub(
                mqtt_port, "devices/thermostat/telemetry", '{"target": 20}'
            )  # a device that never obeys
            await op.wait_presence(jid, status_has("target 20 °C"))
            await op.say(jid, "set target 21")
            assert (await op.next_message(jid)).body == "→ sent: set target 21 °C"
            assert await hub.kill(signal.SIGKILL) == -signal.SIGKILL
            await hub.start()
            outcome = await op.next_message(jid, timeout=20)
            assert outcome.body == "✗ set target 21 °C: no confirmation after 5 s (target 20 °C still)"
            await asyncio.sleep(1.0)
            assert [m.body for m in op.messages.history] == ["→ sent: set target 21 °C", outcome.body]
    finally:
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)


async def test_readings_written_later_in_a_batch_survive_sigkill(prosody: XmppServer, tmp_path: Path) -> None:
    """Readings are not committed per message but by the save timer, with no further event needed;
    once it has run, signal 9 loses nothing: the restarted hub shows the last reading."""
    user, password = await prosody.new_user_async("admin")
    mqtt_port = free_port()
    hub = HubProcess(
        _hub_config(tmp_path, prosody, user, mqtt_port), {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret}
    )
    jid = f"kitchen-temp@{prosody.component_domain}"
    database = tmp_path / "state" / "hub.sqlite3"
    await hub.start()
    try:
        async with Operator(prosody, user, password) as op:
            await subscribed(op, jid)
            for value in (21.0, 22.0, 23.4):  # below the alert: nothing is said by chat, so nothing is urgent
                await mosquitto_pub(mqtt_port, "devices/kitchen-temp/telemetry", f'{{"temperature": {value}}}')
            await op.wait_presence(jid, lambda p: "23.4 °C" in p.status)
            await _until_stored(database, jid, '"temperature":23.4')
            assert await hub.kill(signal.SIGKILL) == -signal.SIGKILL
            await hub.start()
            await op.wait_presence(jid, lambda p: "23.4 °C" in p.status and "not seen yet" not in p.status)
    finally:
        if hub.process is not None:
            await hub.kill(signal.SIGTERM)


async def _until_stored(database: Path, jid: str, text: str, timeout: float = 10.0) -> None:
    """Poll the hub's database (read-only, beside the running hub: WAL allows it) until ``jid``'s row has ``text``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT record FROM devices WHERE jid = ?", (jid,)).fetchone()
        finally:
            db.close()
        if row is not None and text in row[0]:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{jid}'s stored record never had {text!r}: {row}")
        await asyncio.sleep(0.1)


async def test_a_flood_waits_for_room_in_the_event_queue_instead_of_losing_events(
    prosody: XmppServer,
    make_hub: Callable[..., HubRunner],  # noqa: F811
) -> None:
    """10 devices send 300 messages each in one burst into an event queue of 20: the broker hands the
    hub one packet per connection at a time and stops reading while the queue is full (TCP slows the
    senders), so no event is dropped, every device's last reading arrives and the operator's
    subscription, which goes through the same queue meanwhile, is answered."""
    user = await prosody.new_user_async("admin")
    limits = {"confirm_timeout": 2, "event_queue": 20}
    runner = make_hub(prosody, "embedded", operators={user[0]: "operator"}, extra={"limits": limits})
    devices, count = [f"flood-{i}" for i in range(10)], 300

    def packet(first: int, body: bytes) -> bytes:
        return bytes([first, len(body)]) + body

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    async with runner.running() as app, Operator(prosody, *user) as op:
        writers = []
        for device_id in devices:
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.broker_port)
            login = field(b"MQTT") + bytes([4, 0xC2]) + (0).to_bytes(2, "big")
            login += field(device_id.encode()) + field(b"tester") + field(DEVICE_PASSWORD.encode())
            writer.write(packet(0x10, login))
            assert (await asyncio.wait_for(reader.readexactly(4), 10))[3] == 0
            topic = field(f"devices/{device_id}/telemetry".encode())
            writer.write(b"".join(packet(0x30, topic + b'{"n": %d}' % n) for n in range(1, count + 1)))
            writers.append(writer)
        await subscribed(op, runner.jid("kitchen-temp"))
        for device_id in devices:
            jid = runner.jid(device_id)
            await _until(
                lambda jid=jid: jid in app.core.devices and app.core.devices[jid].readings.get("n") == count,  # type: ignore[misc]
                f"{device_id}'s last reading",
                timeout=30,
            )
        assert app.dropped_events == 0
        for writer in writers:
            writer.close()
