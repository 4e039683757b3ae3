"""A paho client that replays recorded device traffic (:mod:`tests.support.traffic`) into a running hub."""

from __future__ import annotations

import paho.mqtt.client as mqtt

from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.traffic import Traffic, load_traffic

__all__ = ["Traffic", "device_client", "load_traffic", "replay"]


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
