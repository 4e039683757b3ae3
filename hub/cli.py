"""``hub``: run the hub, check a config, list its devices, hash a device password, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from pathlib import Path

from hub.validation import ConfigError


def _load(path: Path):  # type: ignore[no-untyped-def]
    from hub.app import build_settings, load_all_profiles
    from hub.config import load_config

    config = load_config(path)
    profiles = load_all_profiles(config)
    settings = build_settings(config, profiles, str(path))
    return config, profiles, settings


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config, profiles, settings = _load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.config}: ok: {config.mqtt.mode} broker, component {config.xmpp.domain}, "
        f"{len(settings.bindings)} binding(s) ({', '.join(b.name for b in settings.bindings)}), "
        f"{len(config.devices)} configured device(s), {len(config.operators)} operator(s), "
        f"{len(config.alerts)} alert rule(s); profiles: {', '.join(sorted(profiles))}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from hub import logs
    from hub.app import App, install_uvloop, secrets_of

    try:
        config, profiles, _ = _load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    logs.setup(config.log.level, config.log.format, secrets_of(config))
    install_uvloop()

    async def main() -> None:
        await App(config, profiles).run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    import sqlite3
    import time

    from hub.inventory import format_rows, rows
    from hub.store import Store

    try:
        config, _, settings = _load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = Path(config.state_dir) / "hub.sqlite3"
    try:
        store = Store.open_read_only(path)
        try:
            records, bad = store.devices()
            discovery = store.discovery()
        finally:
            store.close()
    except FileNotFoundError:
        print(f"{path}: no state yet (has the hub run with this config?)", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    for key in bad:
        print(f"{path}: devices: row {key!r} does not decode; skipped", file=sys.stderr)
    found = rows(settings, records, discovery, time.time())
    if args.json:
        print(json.dumps([row.as_json() for row in found], ensure_ascii=False, indent=2))
    else:
        print(format_rows(found))
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from bridges.mqtt.passwords import hash_password

    if sys.stdin.isatty():
        first = getpass.getpass(f"MQTT password for {args.username}: ")
        if getpass.getpass("again: ") != first:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 8:
        print("use at least 8 characters", file=sys.stderr)
        return 1
    print(f"{args.username}: {json.dumps(hash_password(first))}")
    return 0


def cmd_profile_schema(args: argparse.Namespace) -> int:
    from device_profiles.schema import ProfileModel

    print(json.dumps(ProfileModel.model_json_schema(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.demo.run import run_demo

    return run_demo(args.dir, devices=not args.no_devices)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub", description="MQTT devices as XMPP contacts.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the hub")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate a config and the profiles it uses")
    check.add_argument("-c", "--config", type=Path, required=True)
    check.set_defaults(func=cmd_check_config)
    devices = sub.add_parser("devices", help="list the devices the hub knows, from its state (also while it runs)")
    devices.add_argument("-c", "--config", type=Path, required=True)
    devices.add_argument("--json", action="store_true", help="a JSON array, one object per device")
    devices.set_defaults(func=cmd_devices)
    passwd = sub.add_parser("passwd", help="print an argon2 hash for a device's MQTT password")
    passwd.add_argument("username")
    passwd.set_defaults(func=cmd_passwd)
    schema = sub.add_parser("profile-schema", help="print the JSON Schema of profile files")
    schema.set_defaults(func=cmd_profile_schema)
    demo = sub.add_parser("demo", help="a private Prosody, the hub and three simulated devices")
    demo.add_argument("--dir", type=Path, default=Path("demo-state"), help="where the demo keeps its state")
    demo.add_argument("--no-devices", action="store_true", help="do not start the simulated devices")
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
