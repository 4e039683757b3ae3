"""The whole hub (``hub.app.App``) in the test's event loop, against real servers.

Builds a configuration the way a user would write it (YAML through
``load_config``), for either broker mode, and runs the app until the test
is done. Restarting keeps the state directory, as a real restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridges.mqtt.passwords import hash_password
from hub.app import App
from hub.config import HubConfig, load_config
from tests.support.ports import free_port
from tests.support.xmpp_servers import XmppServer

DEVICE_PASSWORD = "device-password-1"


@dataclass
class HubRunner:
    """One hub's configuration and its running instance (``app``) while started."""

    server: XmppServer
    workdir: Path
    mode: str = "embedded"
    operators: dict[str, str | dict[str, Any]] = field(default_factory=dict)  # bare JID -> role or entry
    devices: tuple[str, ...] = ("kitchen-temp", "plug-1", "thermostat")
    alerts: list[dict[str, Any]] = field(default_factory=list)
    external_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    mqtt_port: int = field(default_factory=free_port)
    app: App | None = None
    _task: asyncio.Task[None] | None = None

    @classmethod
    def for_family(
        cls, server: XmppServer, workdir: Path, profile: str, mode: str, broker: Callable[[], int], **fields: Any
    ) -> HubRunner:
        """A hub with one family's binding and no configured devices, on its own broker or on
        ``broker()`` (the port of a fresh mosquitto) in external mode."""
        extra = {"bindings": [{"profile": profile, **fields.pop("binding", {})}], **fields.pop("extra", {})}
        hub = cls(server, workdir, mode=mode, devices=fields.pop("devices", ()), extra=extra, **fields)
        if mode == "external":
            hub.external_port = broker()
        return hub

    @property
    def domain(self) -> str:
        return self.server.component_domain

    def jid(self, device_id: str) -> str:
        return f"{device_id}@{self.domain}"

    @property
    def broker_port(self) -> int:
        """Where devices connect: the hub's own broker, or the external one."""
        if self.mode == "external":
            assert self.external_port is not None
            return self.external_port
        return self.mqtt_port

    def config(self) -> HubConfig:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "xmpp": {
                "domain": self.domain,
                "host": "127.0.0.1",
                "port": self.server.component_port,
                "secret": self.server.component_secret,
            },
            "mqtt": {"mode": self.mode},
            "operators": {jid: e if isinstance(e, dict) else {"role": e} for jid, e in self.operators.items()},
            "devices": {d: {"expected_interval": 60} for d in self.devices},
            "alerts": self.alerts,
            "state_dir": "state",
            "limits": {"confirm_timeout": 2},
            **self.extra,
        }
        if self.mode == "embedded":
            data["mqtt"]["embedded"] = {
                "listeners": [{"name": "default", "kind": "tcp", "host": "127.0.0.1", "port": self.mqtt_port}],
                "users": {d: _hashed(DEVICE_PASSWORD) for d in (*self.devices, "tester")},
                "acl": {"unrestricted": ["tester"]},  # each device keeps to devices/<id>/#; tests watch all
            }
        else:
            data["mqtt"]["external"] = {
                "host": "127.0.0.1",
                "port": self.external_port,
                "client_id": f"hub-{secrets.token_hex(3)}",
            }
        path = self.workdir / "hub.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return load_config(path)

    async def start(self) -> App:
        self.app = App(self.config())
        self._task = asyncio.create_task(self.app.run(), name="hub-under-test")
        ready = asyncio.create_task(self.app.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()  # raises what made the hub stop
            raise AssertionError("the hub stopped before it was ready")
        if ready not in done:
            ready.cancel()
            raise AssertionError("the hub was not ready within 20 s")
        return self.app

    async def stop(self) -> None:
        if self.app is None or self._task is None:
            return
        self.app.stop()
        try:
            await asyncio.wait_for(self._task, 15)
        finally:
            self.app, self._task = None, None

    async def kill(self) -> None:
        """Stop without the goodbye: as if the process died (no unavailable presence)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self.app, self._task = None, None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[App]:
        app = await self.start()
        try:
            yield app
        finally:
            await self.stop()


_HASHES: dict[str, str] = {}


def _hashed(password: str) -> str:
    """Hashing is deliberately slow; the tests reuse one hash per password."""
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]
