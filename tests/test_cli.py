"""The ``hub`` command as users run it: a real process, real servers, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bridges.mqtt.passwords import hash_password
from device_profiles.loader import builtin_profiles
from hub.demo.devices import SimulatedDevice
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
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


def test_check_config_names_an_unreadable_tls_key(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "xmpp: {domain: devices.example.org, secret: s3cret}\n"
        "mqtt:\n"
        "  embedded:\n"
        "    listeners:\n"
        "      - {name: secure, port: 8883, tls: {certfile: hub.crt, keyfile: hub.key}}\n"
    )
    (tmp_path / "hub.crt").write_text("not a certificate")
    result = run_hub("check-config", "-c", str(config))
    assert result.returncode == 1
    assert (
        f"{config}:5: mqtt.embedded.listeners.0.tls.keyfile: cannot read "
        f"'{tmp_path / 'hub.key'}': No such file or directory"
    ) in result.stderr.splitlines()


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
    known = builtin_profiles()
    assert f"bindings.2.profile: no profile 'nope'; known: {', '.join(sorted(known))}" in result.stderr
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


async def hub_devices(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *HUB, "devices", "-c", str(config), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def devices_until(config: Path, check: Callable[[dict[str, list[str]]], bool]) -> dict[str, list[str]]:
    """``hub devices`` run again until its lines (split into columns, by device id) satisfy ``check``."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        code, out, err = await hub_devices(config)
        assert code == 0, err
        lines = {line.split()[1].split("@")[0]: line.split() for line in out.splitlines()}
        if check(lines) or asyncio.get_running_loop().time() > deadline:
            return lines


@pytest.mark.integration
async def test_devices_lists_what_a_running_hub_keeps(prosody: XmppServer, tmp_path: Path) -> None:
    runner = HubRunner(prosody, tmp_path / "hub", devices=("kitchen-temp", "thermostat", "plug-1"))
    config = tmp_path / "hub" / "hub.yaml"
    async with runner.running():
        sensor = SimulatedDevice(
            "kitchen-temp", "sensor", "127.0.0.1", runner.broker_port, "kitchen-temp", DEVICE_PASSWORD, interval=60
        )
        sensor.state.update(temperature=21.6, humidity=48.0, battery=87)
        thermostat = SimulatedDevice(
            "thermostat", "thermostat", "127.0.0.1", runner.broker_port, "thermostat", DEVICE_PASSWORD, interval=60
        )
        sensor.start()
        thermostat.start()
        try:
            lines = await devices_until(config, lambda ls: ls.get("thermostat", [""] * 3)[2] == "online")
            assert lines["thermostat"][:3] == ["hub", f"thermostat@{runner.domain}", "online"]
            assert " ".join(lines["thermostat"][5:]) == "19.5 °C · target 21 °C · mode heat"
            assert lines["plug-1"][2:] == ["not", "seen", "yet", "-", "-"]
            sensor.stop()
            lines = await devices_until(config, lambda ls: ls["kitchen-temp"][2] == "offline")
            assert lines["kitchen-temp"][2] == "offline"
            assert " ".join(lines["kitchen-temp"][5:]) == "21.6 °C · 48 % · battery 87 %"

            code, out, err = await hub_devices(config, "--json")
            assert code == 0, err
            by_jid = {entry["jid"]: entry for entry in json.loads(out)}
            entry = by_jid[f"thermostat@{runner.domain}"]
            assert entry["family"] == "hub" and entry["availability"] == "online"
            assert entry["readings"] == {"temperature": 19.5, "target": 21.0, "mode": "heat"}
            assert entry["last_seen"] is not None and entry["last_seen"].endswith("+00:00")
            assert by_jid[f"plug-1@{runner.domain}"]["last_seen"] is None
        finally:
            thermostat.stop()


def test_devices_without_state_says_so(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("xmpp: {domain: devices.example.org, secret: s3cret}\nstate_dir: nothing-here\n")
    result = run_hub("devices", "-c", str(config))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"{tmp_path / 'nothing-here' / 'hub.sqlite3'}: no state yet (has the hub run with this config?)"
    )
    assert not (tmp_path / "nothing-here").exists()  # nothing was created
