"""Prometheus metrics (hub.metrics): counted from the core's log events and state, served over HTTP.

The first tests feed a :class:`Metrics` directly; the last runs the whole hub against Prosody with
real traffic (a paho device publishing a bad payload, a stranger's chats, an operator's command)
and reads the endpoint over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from hub.config import MetricsConfig
from hub.core.events import MqttLinkUp, MqttMessageReceived
from hub.core.intents import Log, SendPresence, Show
from hub.demo.devices import SimulatedDevice
from hub.metrics import COMMAND_OUTCOMES, Metrics
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.operator import Operator
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counts_come_from_the_core_log_events_and_intents() -> None:
    metrics = Metrics()
    metrics.event(MqttMessageReceived("devices/a/telemetry", b"{}"))
    metrics.event(MqttLinkUp())
    for event in ("payload.rejected", "payload.rejected", "payload.bad_availability", "chat.refused",
                  "command.sent", "command.confirmed", "command.rate_limited", "alert.raised"):  # fmt: skip
        metrics.intent(Log("warning", event, {}))
    metrics.intent(SendPresence("a@d", "op@x", Show.AVAILABLE, ""))
    assert _value(metrics, "hub_mqtt_messages_total") == 1
    assert _value(metrics, "hub_link_ups_total", link="mqtt") == 1
    assert _value(metrics, "hub_link_ups_total", link="xmpp") == 0
    assert _value(metrics, "hub_payloads_rejected_total", reason="payload") == 2
    assert _value(metrics, "hub_payloads_rejected_total", reason="availability") == 1
    assert _value(metrics, "hub_chat_refusals_total") == 1
    assert _value(metrics, "hub_commands_total", outcome="sent") == 1
    assert _value(metrics, "hub_commands_total", outcome="rate_limited") == 1
    assert _value(metrics, "hub_commands_total", outcome="expired") == 0  # every outcome is there from the start
    assert _value(metrics, "hub_presence_sent_total") == 1
    assert {o for o in COMMAND_OUTCOMES} >= {"sent", "confirmed", "refused", "unconfirmed", "queued", "expired"}


def test_no_endpoint_by_default_and_loopback_when_one_is_set() -> None:
    assert MetricsConfig().port is None
    assert MetricsConfig(port=9108).host == "127.0.0.1"


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _scrape_until(url: str, ready: Callable[[Samples], bool], timeout: float = 15.0) -> Samples:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await asyncio.to_thread(_scrape, url)
        if ready(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.2)


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), -1.0)


@pytest.mark.integration
async def test_endpoint_counts_real_traffic(prosody: XmppServer, tmp_path: Path) -> None:
    admin = await prosody.new_user_async("admin")
    stranger = await prosody.new_user_async("stranger")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    runner = HubRunner(prosody, tmp_path / "hub", operators={admin[0]: "admin"}, extra={"metrics": {"port": port}})
    async with runner.running(), Operator(prosody, *admin) as op, Operator(prosody, *stranger) as eve:
        before = await asyncio.to_thread(_scrape, url)
        assert _get(before, "hub_payloads_rejected_total", reason="payload") == 0
        assert _get(before, "hub_chat_refusals_total") == 0
        plug = SimulatedDevice("plug-1", "plug", "127.0.0.1", runner.broker_port, "plug-1", DEVICE_PASSWORD,
                               interval=60)  # fmt: skip
        plug.start()
        sensor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kitchen-temp")
        sensor.username_pw_set("kitchen-temp", DEVICE_PASSWORD)
        sensor.connect("127.0.0.1", runner.broker_port, keepalive=30)
        sensor.loop_start()
        try:
            sensor.publish("devices/kitchen-temp/status", "online", qos=1, retain=True).wait_for_publish(5)
            sensor.publish("devices/kitchen-temp/telemetry", json.dumps({"temperature": 21.5}), qos=1)
            sensor.publish("devices/kitchen-temp/telemetry", b"not json {", qos=1).wait_for_publish(5)
            plug_jid = runner.jid("plug-1")
            await op.subscribe(plug_jid)
            await op.wait_presence(plug_jid, lambda p: p.type == "available" and "power" in p.status)
            await op.say(plug_jid, "toggle")
            await op.next_message(plug_jid, body=lambda b: b.startswith("✓"))
            await eve.say(plug_jid, "on")
            await eve.say(plug_jid, "off")  # within the minute: suppressed
            await eve.next_message(plug_jid)

            def moved(s: Samples) -> bool:
                return (
                    _get(s, "hub_chat_refusals_suppressed_total") >= 1
                    and _get(s, "hub_payloads_rejected_total", reason="payload") >= 1
                    and _get(s, "hub_devices_online") >= 2
                    and _get(s, "hub_commands_total", outcome="confirmed") >= 1
                )

            after = await _scrape_until(url, moved)
        finally:
            plug.stop()
            sensor.loop_stop()
            sensor.disconnect()
    assert _get(after, "hub_payloads_rejected_total", reason="payload") == 1
    assert _get(after, "hub_chat_refusals_total") == 1
    assert _get(after, "hub_chat_refusals_suppressed_total") == 1
    assert _get(after, "hub_commands_total", outcome="sent") == 1
    assert _get(after, "hub_commands_total", outcome="confirmed") == 1
    assert _get(after, "hub_commands_total", outcome="rate_limited") == 0
    assert _get(after, "hub_mqtt_messages_total") >= 5  # two statuses, the plug's telemetry, the sensor's two
    assert _get(after, "hub_devices") == 3 and _get(after, "hub_devices_online") == 2
    assert _get(after, "hub_commands_pending") == 0 and _get(after, "hub_commands_queued") == 0
    assert _get(after, "hub_presence_sent_total") >= 1
    assert _get(after, "hub_events_dropped_total") == 0 and _get(after, "hub_xmpp_buffer_dropped_total") == 0
    assert _get(after, "hub_link_up", link="mqtt") == 1 and _get(after, "hub_link_up", link="xmpp") == 1
    with pytest.raises(OSError):  # the endpoint closes with the hub
        await asyncio.to_thread(_scrape, url)
