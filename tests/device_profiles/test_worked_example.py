"""docs/profiles.md's worked example: the YAML block in the guide, loaded and driven through the core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from device_profiles.loader import load_profile
from hub.core.auth import Grant
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import PublishMqtt, SendChat, SendPresence
from hub.core.mapping import Binding
from hub.core.presence import readings_text
from hub.core.profile import Role
from hub.validation import ConfigError

GUIDE = Path(__file__).parents[2] / "docs" / "profiles.md"
OP, ADMIN = "op@example.org", "admin@example.org"
JID = "backyard@hub.example"


def _example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.startswith("# pool.yaml"))


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(_example(), encoding="utf-8")
    return path


@pytest.fixture
def hub(pool_file: Path) -> Hub:
    binding = Binding("pool", load_profile(pool_file))
    grants = {OP: Grant(Role.OPERATOR), ADMIN: Grant(Role.ADMIN)}
    hub = Hub(HubSettings(domain="hub.example", bindings=(binding,), grants=grants), subscriptions=[(JID, OP)])
    hub.handle(XmppLinkUp(), 0.0)
    hub.handle(MqttLinkUp(), 0.0)
    hub.handle(MqttMessageReceived("pool/backyard/lwt", b"up", retain=True), 1.0)
    state = (
        b'{"pump": "RUNNING", "water": {"temp_c": 26.4}, "ph": 7.2, "power_w": 450, "uptime": 81234, "setpoint": 27}'
    )
    hub.handle(MqttMessageReceived("pool/backyard/state", state), 1.0)
    return hub


def test_the_status_line_the_guide_shows(hub: Hub) -> None:
    device = hub.devices[JID]
    assert device.online
    assert hub.handle(MqttMessageReceived("pool/backyard/state", b'{"ph": 7.2}'), 5.0) == []  # nothing changed
    out = hub.handle(MqttMessageReceived("pool/backyard/lwt", b"down"), 6.0)
    assert [p.show.value for p in out if isinstance(p, SendPresence)] == ["unavailable"]
    assert "26.4 °C · pH 7.2 · pump on · load 450 W · setpoint 27 °C" in _text(GUIDE)
    assert readings_text(device.profile, device.readings) == "26.4 °C · pH 7.2 · pump on · load 450 W · setpoint 27 °C"


def _text(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


def test_the_commands_the_guide_names(hub: Hub) -> None:
    out = hub.handle(ChatReceived(OP, JID, "off"), 2.0)
    assert PublishMqtt("pool/backyard/command/pump", b"STOPPED", qos=1) in out
    out = hub.handle(MqttMessageReceived("pool/backyard/state", b'{"pump": "STOPPED"}'), 2.5)
    assert SendChat(JID, OP, "✓ off: confirmed in 0.5 s") in out
    out = hub.handle(ChatReceived(OP, JID, "set setpoint 27.5"), 3.0)
    assert PublishMqtt("pool/backyard/command/setpoint", b"27.5", qos=1) in out
    out = hub.handle(ChatReceived(OP, JID, "backwash 5"), 3.0)
    assert PublishMqtt("pool/backyard/command/backwash", b"5", qos=1) in out
    assert hub.handle(ChatReceived(OP, JID, "set setpoint 40"), 4.0) == [
        SendChat(JID, OP, "40 is out of range: setpoint takes 20–32 °C, step 0.5.")
    ]
    assert "40 is out of range: setpoint takes 20–32 °C, step 0.5." in _text(GUIDE)
    out = hub.handle(ChatReceived(OP, JID, "reboot"), 5.0)
    assert not [i for i in out if isinstance(i, PublishMqtt)]
    out = hub.handle(ChatReceived(ADMIN, JID, "reboot"), 5.0)
    assert PublishMqtt("pool/backyard/command/reboot", b"1", qos=1) in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("setpoint: {kind: number, min: 20, max: 32", "setpoint: {kind: number, min: 32, max: 20"),
            "properties.setpoint: min 32.0 is above max 20.0",
        ),
        (
            ('topic: "{base}/{id}/state"', 'topic: "{base}/{id}/{zone}/state"'),
            "telemetry.0.topic: '{base}/{id}/{zone}/state' uses ['zone'] without a default",
        ),
    ],
)
def test_the_check_config_errors_the_guide_quotes(pool_file: Path, change: tuple[str, str], expected: str) -> None:
    pool_file.write_text(_example().replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(pool_file)
    (problem,) = caught.value.problems
    line = f"pool.yaml:{problem.line}: {problem.field}: {problem.reason}"
    assert line.endswith(expected)
    assert line in _text(GUIDE)
