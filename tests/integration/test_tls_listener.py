"""``hub run`` with a TLS listener next to the plain one, as a user would configure it (relative paths)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from tests.bridges.mqtt.embedded_support import Paho
from tests.integration.test_durability import HubProcess, _hub_config
from tests.support.certs import self_signed
from tests.support.hub_runner import DEVICE_PASSWORD
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration


async def test_hub_serves_mqtt_over_tls_beside_plain_mqtt(prosody: XmppServer, tmp_path: Path) -> None:
    user, _password = await prosody.new_user_async("admin")
    plain_port, tls_port = free_port(), free_port()
    config = _hub_config(tmp_path, prosody, user, plain_port)
    cert, _key = self_signed(tmp_path / "tls", "mqtt")
    data = yaml.safe_load(config.read_text())
    data["mqtt"]["embedded"]["listeners"].append(
        {"name": "secure", "port": tls_port, "tls": {"certfile": "tls/mqtt.crt", "keyfile": "tls/mqtt.key"}}
    )
    config.write_text(yaml.safe_dump(data))
    hub = HubProcess(config, {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret})
    await hub.start()
    try:
        assert any(f"mqtts://127.0.0.1:{tls_port}" in line for line in hub.output), hub.output
        secure = Paho(tls_port, "secure-watcher", user="tester", password=DEVICE_PASSWORD)
        secure.client.tls_set(ca_certs=str(cert))
        plain = Paho(plain_port, "plain-sender", user="tester", password=DEVICE_PASSWORD)
        try:
            assert await secure.connect()
            await secure.subscribe("devices/+/telemetry")
            assert await plain.connect()
            await plain.publish("devices/plug-1/telemetry", b'{"power": "on"}')
            message = await secure.next_message(5.0)
            assert message is not None and message.payload == b'{"power": "on"}'
        finally:
            await secure.close()
            await plain.close()
    finally:
        await hub.kill(signal.SIGTERM)
