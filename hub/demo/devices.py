"""Simulated devices that follow the hub's own convention, over real MQTT (paho).

They publish readings, obey commands with an echo and a result, and can be
made to die: ``go_silent`` keeps the TCP socket open but sends nothing (a
power cut behind a Wi-Fi bridge), ``crash`` drops the socket without a
DISCONNECT. Used by the demo and by the integration tests.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

KINDS = ("sensor", "plug", "thermostat")
INITIAL_STATE: dict[str, dict[str, Any]] = {
    "sensor": {"temperature": 21.5, "humidity": 48.0, "battery": 96},
    "plug": {"power": "off", "load": 0.0, "energy": 1.25},
    "thermostat": {"temperature": 19.5, "target": 21.0, "mode": "heat"},
}


@dataclass
class SimulatedDevice:
    device_id: str
    kind: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base: str = "devices"
    interval: float = 10.0
    keepalive: int = 10
    state: dict[str, Any] = field(default_factory=dict)
    commands_seen: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self._rng = random.Random(self.device_id)
        if not self.state:
            self.state = dict(INITIAL_STATE[self.kind])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.client = self._new_client()

    # ------------------------------------------------------------------ topics

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{self.device_id}/{leaf}"

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.will_set(self.topic("status"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._report_loop, name=f"sim-{self.device_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """A clean goodbye: retained offline, then DISCONNECT."""
        self._stop.set()
        # No waiting for the PUBACK: the broker may run in the caller's own event loop.
        # paho writes the publish before the DISCONNECT queued after it.
        self.client.publish(self.topic("status"), "offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def go_silent(self) -> None:
        """Stop everything, including keep-alive pings, with the socket left open."""
        self._stop.set()
        self.client.loop_stop()

    def crash(self) -> None:
        """Drop the connection without DISCONNECT, as a reset board would."""
        self._stop.set()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def revive(self) -> None:
        """Come back after dying: a new session, as a rebooted device would."""
        self.client = self._new_client()
        self.start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(self.topic("cmd"), qos=1)
        client.publish(self.topic("status"), "online", qos=1, retain=True)
        self.publish_state()

    # ------------------------------------------------------------------ behaviour

    def publish_state(self, **extra: Any) -> None:
        with self._lock:
            payload = json.dumps({**self.state, **extra})
        self.client.publish(self.topic("telemetry"), payload, qos=0)

    def _drift(self) -> None:
        with self._lock:
            s = self.state
            if self.kind == "sensor":
                s["temperature"] = round(s["temperature"] + self._rng.uniform(-0.3, 0.3), 1)
                s["humidity"] = round(min(90, max(20, s["humidity"] + self._rng.uniform(-1, 1))))
                s["battery"] = max(0, s["battery"] - (1 if self._rng.random() < 0.05 else 0))
            elif self.kind == "plug":
                s["load"] = round(self._rng.uniform(55, 65), 1) if s["power"] == "on" else 0.0
                s["energy"] = round(s["energy"] + s["load"] * self.interval / 3_600_000, 4)
            else:
                goal = s["target"] if s["mode"] in ("heat", "auto") else 16.0
                s["temperature"] = round(s["temperature"] + max(-0.5, min(0.5, (goal - s["temperature"]) / 2)), 1)

    def _report_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._drift()
            self.publish_state()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            command = json.loads(message.payload)
            cid = command.get("id")
        except (ValueError, AttributeError):
            return
        self.commands_seen.append(command)
        ok, note = self._apply(command)
        client.publish(self.topic("cmd/result"), json.dumps({"id": cid, "ok": ok, "message": note}), qos=1)
        if ok:
            self.publish_state()

    def _apply(self, command: dict[str, Any]) -> tuple[bool, str]:
        with self._lock:
            if "set" in command and isinstance(command["set"], dict):
                for name, value in command["set"].items():
                    if name not in self.state:
                        return False, f"no property {name}"
                    if name == "power" and value == "toggle":
                        value = "off" if self.state["power"] == "on" else "on"
                    self.state[name] = value
                    if name == "power":
                        self.state["load"] = 60.0 if value == "on" else 0.0
                return True, ""
            action = command.get("action")
            if action == "identify":
                return True, "blinked"
            if action == "reboot":
                return True, "rebooting"
            return False, f"unknown action {action!r}"
