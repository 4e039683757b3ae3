"""``hub demo``: everything on one machine, on loopback, in one command.

Starts a private Prosody, the hub with its embedded broker, and three
simulated devices; prints the operator's login. State (passwords, rosters)
is kept in the demo directory, so a second run keeps the same login.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import threading
from pathlib import Path

import yaml

from bridges.mqtt.passwords import hash_password
from hub import logs
from hub.app import App, install_uvloop, secrets_of
from hub.config import load_config
from hub.demo.devices import SimulatedDevice
from hub.demo.prosody import PrivateProsody, pick_port

DEVICES = {"kitchen-temp": "sensor", "living-room-plug": "plug", "hall-thermostat": "thermostat"}
NAMES = {
    "kitchen-temp": "Kitchen temperature",
    "living-room-plug": "Living room plug",
    "hall-thermostat": "Hall thermostat",
}


def _secrets(directory: Path) -> dict[str, str]:
    path = directory / "demo-secrets.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    values = {"component": secrets.token_urlsafe(18), "operator": secrets.token_urlsafe(9)}
    values.update({f"device:{d}": secrets.token_urlsafe(12) for d in DEVICES})
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def write_config(directory: Path, values: dict[str, str], component_port: int, mqtt_port: int) -> Path:
    (directory / "component.secret").write_text(values["component"])
    (directory / "component.secret").chmod(0o600)
    config = {
        "xmpp": {
            "domain": "devices.localhost",
            "host": "127.0.0.1",
            "port": component_port,
            "secret_file": "component.secret",
        },
        "mqtt": {
            "mode": "embedded",
            "embedded": {
                "listeners": [{"name": "default", "kind": "tcp", "host": "127.0.0.1", "port": mqtt_port}],
                "users": {d: hash_password(values[f"device:{d}"]) for d in DEVICES},
            },
        },
        "devices": {d: {"name": NAMES[d], "expected_interval": 60} for d in DEVICES},
        "operators": {"operator@localhost": {"role": "admin"}},
        "alerts": [
            {
                "name": "too-warm",
                "field": "temperature",
                "op": ">",
                "threshold": 25,
                "hysteresis": 0.5,
                "repeat_every": 600,
            }
        ],
        "state_dir": "hub-state",
        "log": {"level": "info"},
    }
    path = directory / "hub.yaml"
    path.write_text("# Written by 'hub demo'.\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    path.chmod(0o600)
    return path


def banner(prosody: PrivateProsody, operator_password: str, mqtt_port: int) -> str:
    jids = "\n".join(f"    {d}@{prosody.component}   ({NAMES[d]})" for d in DEVICES)
    return f"""
  The hub is running.  Log in with any XMPP client:
    JID       operator@{prosody.domain}
    password  {operator_password}
    server    127.0.0.1, port {prosody.c2s_port} (STARTTLS offered, self-signed certificate)

  Add these contacts, then write 'help' to any of them:
{jids}
    {prosody.component}   (the hub itself: 'devices', 'find <text>')

  Profanity, for example:
    profanity
    /connect operator@{prosody.domain} server 127.0.0.1 port {prosody.c2s_port} tls trust
    /sub request kitchen-temp@{prosody.component}
    /msg kitchen-temp@{prosody.component} status

  Devices use MQTT on 127.0.0.1:{mqtt_port}.  Type here to play with them:
    die <device>     the device goes silent with its socket open (dropped after 1.5 × keep-alive)
    crash <device>   the device drops its connection at once (Last Will)
    revive <device>  it comes back
    quit             stop everything (Ctrl-C works too)
"""


def _control(devices: dict[str, SimulatedDevice], stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            break
        if len(words) == 2 and words[0] in ("die", "crash", "revive") and words[1] in devices:
            getattr(devices[words[1]], "go_silent" if words[0] == "die" else words[0])()
            print(f"{words[1]}: {words[0]}", flush=True)
        else:
            print("commands: die|crash|revive <device>, quit; devices: " + ", ".join(devices), flush=True)
    loop.call_soon_threadsafe(stop.set)


def run_demo(directory: Path, devices: bool = True) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    values = _secrets(directory)
    prosody = PrivateProsody(
        directory / "prosody",
        secret=values["component"],
        c2s_port=pick_port(15222),
        component_port=pick_port(15347),
    )
    mqtt_port = pick_port(18830)
    try:
        prosody.start()
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    try:
        prosody.add_user("operator", values["operator"])
        config = load_config(write_config(directory, values, prosody.component_port, mqtt_port))
        logs.setup(config.log.level, config.log.format, (*secrets_of(config), values["operator"]))
        install_uvloop()
        asyncio.run(_serve(config, prosody, values, mqtt_port, devices))
    except KeyboardInterrupt:
        pass
    finally:
        prosody.stop()
    return 0


async def _serve(config, prosody: PrivateProsody, values: dict[str, str], mqtt_port: int, with_devices: bool) -> None:  # type: ignore[no-untyped-def]
    app = App(config)
    task = asyncio.create_task(app.run(), name="hub")
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        await task
        return
    simulated = {
        d: SimulatedDevice(d, kind, "127.0.0.1", mqtt_port, d, values[f"device:{d}"], interval=10)
        for d, kind in DEVICES.items()
    }
    if with_devices:
        for device in simulated.values():
            device.start()
    print(banner(prosody, values["operator"], mqtt_port), flush=True)
    stop = asyncio.Event()
    if sys.stdin.isatty():
        threading.Thread(target=_control, args=(simulated, stop, asyncio.get_running_loop()), daemon=True).start()
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for device in simulated.values():
            with contextlib.suppress(Exception):
                device.stop()
        app.stop()
        await task
