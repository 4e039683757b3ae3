"""Recorded device traffic (tests/fixtures/<family>/traffic.json) and a paho client that replays it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner

FIXTURES = Path(__file__).parents[1] / "fixtures"

Traffic = dict[str, list[dict[str, Any]]]


def load_traffic(family: str) -> Traffic:
    """Scenario name → the messages a family's devices publish, in order, as its documentation shows them."""
    traffic: Traffic = json.loads((FIXTURES / family / "traffic.json").read_text(encoding="utf-8"))
    return traffic


def device_client(runner: HubRunner, client_id: str, username: str = "tester") -> mqtt.Client:
    """A connected device, looping in paho's thread. ``tester`` is under ``acl.unrestricted`` in the
    test config; a family's doc says which topics a real device needs under the embedded broker's ACL."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(username, DEVICE_PASSWORD)
    client.connect("127.0.0.1", runner.broker_port, keepalive=30)
    client.loop_start()
    return client


def replay(client: mqtt.Client, traffic: Traffic, scenario: str) -> None:
    """Publish in order (one connection keeps it); never wait here: the hub runs on this event loop."""
    for message in traffic[scenario]:
        client.publish(message["topic"], message["payload"], qos=1, retain=message["retain"])
