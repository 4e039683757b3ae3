"""The ``hub`` command as users run it: a real process, real servers, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridges.mqtt.passwords import hash_password
from hub.demo.devices import SimulatedDevice
from tests.support.operator import Operator
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

HUB = [sys.executable, "-m", "hub.cli"]


def run_hub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUB, *args], capture_output=True, text=True, timeout=60)


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "xmpp: {domain: devices.example.org, secret: s3cret-value}\noperators: {alice@example.org: {role: admin}}\n"
    )
    result = run_hub("check-config", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: ok: embedded broker, component devices.example.org, 1 binding(s) (hub)")
    assert "s3cret-value" not in result.stdout + result.stderr


def test_check_config_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "xmpp:\n"
        "  domain: devices.example.org\n"
        "  secret: x\n"
        "  port: 99999\n"
        "mqtt:\n"
        "  embedded:\n"
        "    users:\n"
        "      kitchen: plaintext-password\n"
        "operatrs: {}\n"
        "bindings:\n"
        "  - {profile: nosuchprofile}\n"
    )
    result = run_hub("check-config", "-c", str(config))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{config}:4: xmpp.port: Input should be less than or equal to 65535" in lines
    assert any(line.startswith(f"{config}:8: mqtt.embedded.users: ") and "not an argon2 hash" in line for line in lines)
    assert f"{config}:9: operatrs: unknown field (check the spelling)" in lines
    assert "plaintext-password" not in result.stderr


def test_check_config_refuses_unknown_profiles_and_ambiguous_bindings(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "xmpp: {domain: devices.example.org, secret: s3cret}\n"
        "bindings:\n"
        "  - {name: a, profile: hub}\n"
        "  - {name: b, profile: hub}\n"
        "  - {name: c, profile: nope}\n"
    )
    result = run_hub("check-config", "-c", str(config))
    assert result.returncode == 1
    assert "bindings.2.profile: no profile 'nope'; known: " in result.stderr  # the shipped profiles follow
    assert (
        "bindings: ambiguous rules: " in result.stderr
        and "binding 'a'" in result.stderr
        and "binding 'b'" in result.stderr
    )


def test_passwd_prints_a_hash_the_broker_accepts() -> None:
    from bridges.mqtt.passwords import PasswordVerifier

    result = subprocess.run(
        [*HUB, "passwd", "kitchen"], input="correct horse\n", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    name, hashed = result.stdout.strip().split(": ", 1)
    assert name == "kitchen" and "correct horse" not in result.stdout
    verifier = PasswordVerifier({"kitchen": yaml.safe_load(hashed)})
    assert asyncio.run(verifier.verify("kitchen", "correct horse"))
    assert not asyncio.run(verifier.verify("kitchen", "wrong horse"))


@pytest.mark.integration
async def test_hub_run_serves_and_says_goodbye_on_sigterm_without_leaking_secrets(
    prosody: XmppServer, tmp_path: Path
) -> None:
    user, password = await prosody.new_user_async("admin")
    mqtt_port = free_port()
    device_password = "device-secret-771"
    config = tmp_path / "hub.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "xmpp": {"domain": prosody.component_domain, "port": prosody.component_port},
                "mqtt": {
                    "embedded": {
                        "listeners": [{"port": mqtt_port}],
                        "users": {"kitchen-temp": hash_password(device_password)},
                    }
                },
                "operators": {user: {"role": "admin"}},
                "log": {"level": "debug"},
            }
        )
    )
    env = {**os.environ, "HUB_XMPP__SECRET": prosody.component_secret}
    process = await asyncio.create_subprocess_exec(
        *HUB, "run", "-c", str(config), env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    output: list[str] = []

    async def read_until(marker: str) -> None:
        assert process.stderr is not None
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            if not line:
                raise AssertionError(f"the hub exited before {marker!r}:\n{''.join(output)}")
            output.append(line)
            if marker in line:
                return

    jid = f"kitchen-temp@{prosody.component_domain}"
    sensor = SimulatedDevice("kitchen-temp", "sensor", "127.0.0.1", mqtt_port, "kitchen-temp", device_password)
    try:
        await read_until("hub.ready")
        async with Operator(prosody, user, password) as op:
            await op.subscribe(jid)
            sensor.start()
            await op.wait_presence(jid, lambda p: p.type == "available" and "°C" in p.status)
            process.send_signal(signal.SIGTERM)
            await op.wait_presence(jid, lambda p: p.type == "unavailable" and p.status == "hub stopped")
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        sensor.go_silent()
        if process.returncode is None:
            process.kill()
            await process.wait()
    rest = await process.stderr.read()
    logged = "".join(output) + rest.decode()
    assert "hub.stopped" in logged
    assert prosody.component_secret not in logged
    assert device_password not in logged


def test_the_shipped_profile_schema_is_the_one_the_models_generate() -> None:
    """Editors validate profiles against device_profiles/profile.schema.json: it must not drift."""
    result = run_hub("profile-schema")
    assert result.returncode == 0, result.stderr
    shipped = Path(__file__).parent.parent / "device_profiles" / "profile.schema.json"
    assert json.loads(result.stdout) == json.loads(shipped.read_text())
    assert "availability" in json.loads(result.stdout)["properties"]
