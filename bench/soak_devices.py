"""Simulated devices for the soak run: one process, raw sockets, each device on its own schedule.

    python -m bench.soak_devices --port P --count 200 --interval 5 --prefix soak- --counters F

Each device connects with a keep-alive and a retained Last Will (``offline``), says ``online``
(retained), then publishes telemetry every ``interval`` seconds, phases spread evenly so the
load is flat. Its temperature follows a slow triangle wave that passes 30 °C once every
``period`` seconds, so alerts are raised and cleared all along. A device whose connection
drops reconnects after a second and counts it. Runs until stdin closes, then disconnects
cleanly.

Counter slots (shared file): 0 messages sent (status and telemetry), 1 reconnects, 2 devices connected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field

from bench import mqttraw
from bench.counters import Counters

SENT, RECONNECTS, CONNECTED = 0, 1, 2
PINGREQ = b"\xc0\x00"
RETRY_SECONDS = 1.0


@dataclass
class Device:
    device_id: str
    phase: float
    sock: socket.socket | None = None
    framer: mqttraw.Framer = field(default_factory=mqttraw.Framer)
    next_publish: float = 0.0
    last_write: float = 0.0
    retry_at: float = 0.0
    seq: int = 0


def temperature(now: float, phase: float, period: float) -> float:
    """A triangle wave between 24 and 32 °C: above 30 for a quarter of each period."""
    x = ((now / period) + phase) % 1.0
    return round(24 + 16 * (x if x < 0.5 else 1 - x), 1)


class Fleet:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counters = Counters(args.counters)
        self.sel = selectors.DefaultSelector()
        now = time.monotonic()
        self.devices = [
            Device(f"{args.prefix}{i}", i / args.count, next_publish=now + args.interval * i / args.count)
            for i in range(args.count)
        ]
        self.sent = self.reconnects = self.connected = 0

    def connect(self, device: Device, now: float) -> None:
        status = f"devices/{device.device_id}/status"
        try:
            sock = socket.create_connection((self.args.host, self.args.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(
                mqttraw.connect(device.device_id, self.args.keepalive, will=(status, b"offline"))
                + mqttraw.publish(status, b"online", retain=True)
            )
        except OSError:
            device.retry_at = now + RETRY_SECONDS
            return
        sock.setblocking(False)
        device.sock, device.framer, device.last_write = sock, mqttraw.Framer(), now
        self.sel.register(sock, selectors.EVENT_READ, device)
        self.connected += 1
        self.sent += 1  # the status

    def drop(self, device: Device, now: float) -> None:
        if device.sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(device.sock)
        device.sock.close()
        device.sock = None
        device.retry_at = now + RETRY_SECONDS
        self.connected -= 1
        self.reconnects += 1

    def write(self, device: Device, data: bytes, now: float) -> None:
        assert device.sock is not None
        try:
            device.sock.send(data)  # small packets: the kernel buffer takes them whole or the link is gone
        except (BlockingIOError, OSError):
            self.drop(device, now)
            return
        device.last_write = now

    def step(self, now: float) -> None:
        args = self.args
        for device in self.devices:
            if device.sock is None:
                if now >= device.retry_at:
                    self.connect(device, now)
                continue
            if now >= device.next_publish:
                device.next_publish += args.interval
                device.seq += 1
                reading = {"temperature": temperature(time.time(), device.phase, args.period), "seq": device.seq}
                topic = f"devices/{device.device_id}/telemetry"
                self.write(device, mqttraw.publish(topic, json.dumps(reading).encode()), now)
                if device.sock is not None:
                    self.sent += 1
            elif args.keepalive and now - device.last_write > args.keepalive / 2:
                self.write(device, PINGREQ, now)

    def close(self) -> None:
        """A clean DISCONNECT for each: the end of the run publishes no Last Will."""
        for device in self.devices:
            if device.sock is not None:
                with contextlib.suppress(OSError):
                    device.sock.setblocking(True)
                    device.sock.sendall(mqttraw.DISCONNECT)
                device.sock.close()

    def run(self) -> None:
        now = time.monotonic()
        for device in self.devices:
            self.connect(device, now)
        self.reconnects = 0
        self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        print("READY", flush=True)
        while True:
            now = time.monotonic()
            self.step(now)
            for key, _ in self.sel.select(timeout=0.05):
                if key.data is None:
                    if not os.read(sys.stdin.fileno(), 1024):
                        self.publish_counters()
                        self.close()
                        return
                    continue
                peer: Device = key.data
                try:
                    data = peer.sock.recv(65536) if peer.sock is not None else b""
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.drop(peer, now)
                    continue
                for kind, _, body in peer.framer.feed(data):
                    if kind == mqttraw.CONNACK and body[1] != 0:
                        self.drop(peer, now)
                        break
            self.publish_counters()

    def publish_counters(self) -> None:
        self.counters.set(SENT, self.sent)
        self.counters.set(RECONNECTS, self.reconnects)
        self.counters.set(CONNECTED, self.connected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_devices")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between one device's publishes")
    parser.add_argument("--period", type=float, default=600.0, help="seconds of one temperature cycle")
    parser.add_argument("--keepalive", type=int, default=30)
    parser.add_argument("--prefix", default="soak-")
    parser.add_argument("--counters", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        Fleet(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
