"""The load generator: plain processes with raw sockets (``bench.mqttraw``), one role each.

    python -m bench.loadgen publish --port P --qos 0 --conns 5 --prefix g0- --seconds 4
    python -m bench.loadgen count   --port P --filter 'devices/+/telemetry' --counters F --slot 0
    python -m bench.loadgen hold    --port P --prefix idle- --count 1000 --counters F --slot 1

``publish`` writes pre-built PUBLISH packets as fast as the broker takes them
(QoS 1: a window of unacknowledged packets per connection) and prints a JSON
line with what it sent. ``count`` counts the PUBLISH packets one subscriber
receives into a shared counter. ``hold`` keeps idle devices connected, each
subscribed to its command topic, until stdin closes.
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

from bench import mqttraw
from bench.counters import Counters

BATCH = 64
SENT_SLOTS = (10, 16)  # each generator's messages sent so far, for flow control


def telemetry(device_id: str, qos: int, batch: int, start_id: int = 1) -> bytes:
    """``batch`` telemetry packets whose readings change, as a sensor's would."""
    topic = f"devices/{device_id}/telemetry"
    packets = []
    for i in range(batch):
        payload = json.dumps({"temperature": round(20 + (i % 10) / 10, 1), "humidity": 48, "battery": 87}).encode()
        packets.append(mqttraw.publish(topic, payload, qos, packet_id=start_id + i))
    return b"".join(packets)


class Flow:
    """End-to-end flow control: the generators together keep at most ``inflight`` messages
    between their sockets and the consumer (a shared counter of what it received).

    Without it a broker that reads faster than it delivers (amqtt queues without bound)
    builds a backlog of minutes and the run measures how fast it ingests, not what it carries.
    """

    def __init__(self, credit: list[str], sent: str | None, inflight: int) -> None:
        self.inflight = inflight
        self.credit = []
        for spec in credit:
            path, slot, base = spec.rsplit(":", 2)
            self.credit.append((Counters(path), int(slot), int(base)))
        self.sent = None
        if sent:
            path, slot = sent.rsplit(":", 1)
            self.sent = (Counters(path), int(slot))
            self.sent[0].set(self.sent[1], 0)
        self.peers = list(range(SENT_SLOTS[0], SENT_SLOTS[1]))

    def wait(self, sent: int, deadline: float) -> None:
        if self.sent is None:
            return
        counters, slot = self.sent
        counters.set(slot, sent)
        if not self.credit:
            return
        while time.monotonic() < deadline:
            total = sum(counters.get(s) for s in self.peers)
            delivered = min(c.get(sl) - base for c, sl, base in self.credit)
            if total - delivered <= self.inflight:
                return
            time.sleep(0.0002)


def cmd_publish(args: argparse.Namespace) -> int:
    conns = [mqttraw.open_client(args.host, args.port, f"{args.prefix}{i}", keepalive=0) for i in range(args.conns)]
    batches = [telemetry(f"{args.prefix}{i}", args.qos, args.window if args.qos else BATCH) for i in range(args.conns)]
    per_batch = args.window if args.qos else BATCH
    framers = [mqttraw.Framer() for _ in conns]
    sent = acked = 0
    flow = Flow(args.credit, args.sent, args.inflight)
    print("READY", flush=True)
    start = time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline:
        for sock, batch in zip(conns, batches, strict=True):
            flow.wait(sent, deadline)
            sock.sendall(batch)
            sent += per_batch
        if args.qos:
            for sock, framer in zip(conns, framers, strict=True):
                need = per_batch
                while need:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("broker closed the connection")
                    need -= sum(1 for kind, _, _ in framer.feed(data) if kind == mqttraw.PUBACK)
                acked += per_batch
    elapsed = time.monotonic() - start
    for sock in conns:
        with contextlib.suppress(OSError):
            sock.sendall(mqttraw.DISCONNECT)
        sock.close()
    print(json.dumps({"sent": sent, "acked": acked, "seconds": round(elapsed, 3), "rate": round(sent / elapsed)}))
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    counters = Counters(args.counters)
    sock = mqttraw.open_client(args.host, args.port, args.client_id, keepalive=0,
                               subscribe_to=args.filter, sub_qos=args.qos)  # fmt: skip
    framer = mqttraw.Framer()
    count = 0
    counters.set(args.slot, 0)
    print("READY", flush=True)
    while True:
        data = sock.recv(262144)
        if not data:
            return 0
        acks = []
        for kind, flags, body in framer.feed(data):
            if kind == mqttraw.PUBLISH:
                count += 1
                if flags & 0x06:
                    topic_len = int.from_bytes(body[:2], "big")
                    acks.append(mqttraw.puback(int.from_bytes(body[2 + topic_len : 4 + topic_len], "big")))
        if acks:
            sock.sendall(b"".join(acks))
        counters.set(args.slot, count)


def cmd_hold(args: argparse.Namespace) -> int:
    """Connect ``count`` devices, pipelined in chunks, each subscribed to ``devices/<id>/cmd``."""
    counters = Counters(args.counters)
    held: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    for chunk_start in range(0, args.count, args.chunk):
        chunk = []
        for i in range(chunk_start, min(args.count, chunk_start + args.chunk)):
            device_id = f"{args.prefix}{i}"
            sock = socket.create_connection((args.host, args.port), timeout=60)
            sock.sendall(mqttraw.connect(device_id, keepalive=0) + mqttraw.subscribe(1, f"devices/{device_id}/cmd", 1))
            chunk.append((sock, mqttraw.Framer()))
        for sock, framer in chunk:
            wanted = {mqttraw.CONNACK, mqttraw.SUBACK}
            while wanted:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("broker closed an idle device's connection")
                for kind, _, _ in framer.feed(data):
                    wanted.discard(kind)
            held.append(sock)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        counters.set(args.slot, len(held))
    print(f"HELD {len(held)}", flush=True)
    sel.register(sys.stdin, selectors.EVENT_READ)
    while True:  # drain anything the broker sends (commands); stop when stdin closes
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                if not os.read(sys.stdin.fileno(), 1024):
                    for sock in held:
                        sock.close()
                    return 0
            else:
                assert isinstance(key.fileobj, socket.socket)
                with contextlib.suppress(OSError):
                    key.fileobj.recv(65536)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("publish", "count", "hold"):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    pub = sub.choices["publish"]
    pub.add_argument("--qos", type=int, default=0, choices=(0, 1))
    pub.add_argument("--conns", type=int, default=5)
    pub.add_argument("--prefix", default="pub-")
    pub.add_argument("--seconds", type=float, default=5.0)
    pub.add_argument("--window", type=int, default=100, help="QoS 1: unacknowledged packets per connection")
    pub.add_argument(
        "--credit",
        action="append",
        default=[],
        metavar="FILE:SLOT:BASE",
        help="the consumer's counter (several: the slowest counts)",
    )
    pub.add_argument("--sent", metavar="FILE:SLOT", help="where this generator counts what it sent")
    pub.add_argument("--inflight", type=int, default=2000, help="messages all generators may have in flight")
    cnt = sub.choices["count"]
    cnt.add_argument("--filter", default="devices/+/telemetry")
    cnt.add_argument("--qos", type=int, default=0, choices=(0, 1))
    cnt.add_argument("--client-id", default="bench-counter")
    cnt.add_argument("--counters", required=True)
    cnt.add_argument("--slot", type=int, default=0)
    hold = sub.choices["hold"]
    hold.add_argument("--prefix", default="idle-")
    hold.add_argument("--count", type=int, required=True)
    hold.add_argument("--chunk", type=int, default=250)
    hold.add_argument("--counters", required=True)
    hold.add_argument("--slot", type=int, default=1)
    args = parser.parse_args(argv)
    handler = {"publish": cmd_publish, "count": cmd_count, "hold": cmd_hold}[args.cmd]
    try:
        return handler(args)
    except (BrokenPipeError, ConnectionError, KeyboardInterrupt) as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
