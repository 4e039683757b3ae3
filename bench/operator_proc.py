"""An operator's XMPP client (slixmpp, as in the tests) in its own process.

    python -m bench.operator_proc watch   --c2s-port P --user U --password W --ca C --jids a@d,b@d --counters F
    python -m bench.operator_proc latency --c2s-port P --user U --password W --ca C --device lat-1 \
        --domain devices.localhost --mqtt-port M --rate 200 --seconds 5 --commands 30

``watch`` subscribes to the given device JIDs and stays online (counting the
presence stanzas it receives in slot 4, alert chats raised or cleared in slot 5) until stdin closes: the bridge then
has a real subscriber during the throughput runs. ``latency`` measures device
publish → alert chat at the operator at a fixed publish rate, then the command
round trip operator → device → confirmation, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt

from bench import mqttraw
from bench.counters import Counters
from tests.support.operator import Operator

PRESENCES_SEEN, ALERTS_SEEN = 4, 5


def _operator(args: argparse.Namespace) -> Operator:
    server: Any = SimpleNamespace(host="127.0.0.1", c2s_port=args.c2s_port, domain=args.user.split("@")[1],
                                  ca_cert=Path(args.ca))  # fmt: skip
    return Operator(server, args.user, args.password, resource="bench", tls=True, login_timeout=30)


async def _subscribe(op: Operator, jids: list[str]) -> None:
    for jid in jids:
        await op.subscribe(jid)
    for jid in jids:
        await op.wait_roster(jid, lambda e: e.subscription in ("to", "both"), timeout=60)


async def watch(args: argparse.Namespace) -> None:
    counters = Counters(args.counters)
    async with _operator(args) as op:
        seen = [0, 0]

        def on_presence(_: Any) -> None:
            seen[0] += 1
            counters.set(PRESENCES_SEEN, seen[0])

        def on_message(msg: Any) -> None:
            body = str(msg["body"])
            if body.startswith("⚠") or "back to normal" in body:
                seen[1] += 1
                counters.set(ALERTS_SEEN, seen[1])

        op.xmpp.add_event_handler("presence", on_presence)
        op.xmpp.add_event_handler("message", on_message)
        await _subscribe(op, [j for j in args.jids.split(",") if j])
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _publish_at_rate(port: int, device: str, rate: float, count: int, sent: list[float]) -> None:
    """Alternate a reading above and below the alert threshold: every publish raises or clears."""
    sock = mqttraw.open_client("127.0.0.1", port, f"{device}-pub")
    hot = mqttraw.publish(f"devices/{device}/telemetry", b'{"temperature": 35}')
    cool = mqttraw.publish(f"devices/{device}/telemetry", b'{"temperature": 25}')
    start = time.monotonic() + 0.05
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.monotonic())
        sock.sendall(hot if k % 2 == 0 else cool)
    time.sleep(0.5)
    sock.sendall(mqttraw.DISCONNECT)
    sock.close()


def _device(port: int, device: str) -> mqtt.Client:
    """The device that obeys commands: echoes the new target in its telemetry and answers cmd/result."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)

    def on_message(c: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        command = json.loads(message.payload)
        c.publish(f"devices/{device}/telemetry", json.dumps({"temperature": 25, **command.get("set", {})}))
        c.publish(f"devices/{device}/cmd/result", json.dumps({"id": command.get("id"), "ok": True}))

    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.subscribe(f"devices/{device}/cmd", qos=1)
    client.loop_start()
    client.publish(f"devices/{device}/telemetry", json.dumps({"temperature": 25, "target": 20}), qos=1)
    return client


async def latency(args: argparse.Namespace) -> None:
    jid = f"{args.device}@{args.domain}"
    device = _device(args.mqtt_port, args.device)
    result: dict[str, Any] = {}
    try:
        async with _operator(args) as op:
            await _subscribe(op, [jid])
            await op.wait_presence(jid, lambda p: p.type == "available", timeout=30)
            arrivals: list[float] = []
            confirmations: list[float] = []

            def on_message(msg: Any) -> None:
                now = time.monotonic()
                body = str(msg["body"])
                if body.startswith("⚠") or "back to normal" in body:
                    arrivals.append(now)
                elif body.startswith("✓ set target"):
                    confirmations.append(now)

            op.xmpp.add_event_handler("message", on_message)
            for rate in args.rate:
                arrivals.clear()
                sent: list[float] = []
                count = max(2, int(rate * args.seconds)) // 2 * 2
                thread = threading.Thread(
                    target=_publish_at_rate, args=(args.mqtt_port, args.device, rate, count, sent)
                )
                thread.start()
                while thread.is_alive():  # noqa: ASYNC110 (a thread, not a task, sets the pace)
                    await asyncio.sleep(0.05)
                deadline = time.monotonic() + 5
                while len(arrivals) < count and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                lat = [(a - s) * 1000 for s, a in zip(sent, arrivals, strict=False)]
                result[f"alert@{rate:g}"] = {
                    "sent": count, "received": len(arrivals),
                    "p50_ms": round(_percentile(lat, 0.5), 2), "p99_ms": round(_percentile(lat, 0.99), 2),
                }  # fmt: skip
            rtts = []
            for k in range(args.commands):
                confirmations.clear()
                target = 20 if k % 2 else 21.5
                start = time.monotonic()
                await op.say(jid, f"set target {target}")
                deadline = start + 10
                while not confirmations and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.0005)
                if confirmations:
                    rtts.append((confirmations[0] - start) * 1000)
            result["command"] = {
                "sent": args.commands, "confirmed": len(rtts),
                "p50_ms": round(_percentile(rtts, 0.5), 2), "p99_ms": round(_percentile(rtts, 0.99), 2),
            }  # fmt: skip
    finally:
        device.loop_stop()
        device.disconnect()
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_proc")
    parser.add_argument("mode", choices=("watch", "latency"))
    parser.add_argument("--c2s-port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--jids", default="")
    parser.add_argument("--counters")
    parser.add_argument("--device", default="lat-1")
    parser.add_argument("--domain", default="devices.localhost")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--rate", type=float, action="append")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--commands", type=int, default=30)
    args = parser.parse_args()
    if args.rate is None:
        args.rate = [200.0]
    asyncio.run(watch(args) if args.mode == "watch" else latency(args))


if __name__ == "__main__":
    main()
