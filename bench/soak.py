"""Soak: N simulated devices for T minutes against the hub, a line of figures every interval.

    python -m bench.soak --devices 200 --interval 5 --minutes 60 --report-every 60

Starts a private Prosody and the hub (embedded broker) on ports picked at run time, an
operator (slixmpp) subscribed to every device, and the devices (``bench.soak_devices``, raw
sockets in their own process). Every ``--report-every`` seconds it prints the hub's RSS and
CPU, messages sent by the devices and handled by the core, presence and chat out, what the
operator received, events dropped, device reconnects and hub link-ups. At the end: a summary
table and the exact command. Results and method: docs/soak.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench import soak_devices
from bench.hub_proc import CHATS, DROPPED, LINK_UPS, MESSAGES, PRESENCES
from bench.operator_proc import ALERTS_SEEN, PRESENCES_SEEN
from bench.run import MODES, PY, Bench, versions
from tests.support.ports import free_port

ALERT_THRESHOLD = 30
DRAIN_SECONDS = 15.0
COLUMNS = (
    ("min", "elapsed_min", "{:.2f}"),
    ("hub RSS MiB", "rss_mib", "{:.1f}"),
    ("hub CPU %", "cpu_pct", "{:.1f}"),
    ("sent", "sent", "{}"),
    ("handled", "handled", "{}"),
    ("presence out", "presences", "{}"),
    ("chat out", "chats", "{}"),
    ("op presence", "op_presences", "{}"),
    ("op alerts", "op_alerts", "{}"),
    ("dropped", "dropped", "{}"),
    ("reconnects", "reconnects", "{}"),
    ("link-ups", "link_ups", "{}"),
    ("connected", "connected", "{}"),
    ("hub warnings", "warnings", "{}"),
)


def _row(values: dict[str, Any]) -> str:
    return "  ".join(fmt.format(values[key]).rjust(len(title)) for title, key, fmt in COLUMNS)


def _header() -> str:
    return "  ".join(title for title, _, _ in COLUMNS)


def _log_lines(path: Path) -> int:
    """Warnings and errors the hub logged, other than the alerts the soak makes on purpose."""
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for line in f if b" alert." not in line)


def soak(args: argparse.Namespace, workdir: Path, command: str) -> dict[str, Any]:
    bench = Bench(MODES["tiny"], workdir)
    try:
        return _soak(bench, args, command)
    finally:
        bench.close()


def _soak(bench: Bench, args: argparse.Namespace, command: str) -> dict[str, Any]:
    info = versions()
    server, operator, password = bench.start_prosody("soak")
    config_path = bench.hub_config("hub", server, operator, external_port=None)
    config = yaml.safe_load(config_path.read_text())
    config["alerts"] = [{"name": "hot", "field": "temperature", "op": ">", "threshold": ALERT_THRESHOLD}]
    metrics_port = free_port()
    config["metrics"] = {"port": metrics_port}
    config_path.write_text(yaml.safe_dump(config))
    mqtt_port = config["mqtt"]["embedded"]["listeners"][0]["port"]
    hub, hub_counters = bench.start_hub("hub", config_path)
    shared = str(bench.counters_file)
    ids = [f"{args.prefix}{i}" for i in range(args.devices)]
    watcher = bench.spawn(
        "operator",
        [PY, "-m", "bench.operator_proc", "watch", "--c2s-port", str(server.c2s_port), "--user", operator,
         "--password", password, "--ca", str(server.ca_cert),
         "--jids", ",".join(f"{d}@{server.component_domain}" for d in ids), "--counters", shared],
        stdin=True,
    )  # fmt: skip
    watcher.wait_line("READY", 120 + args.devices * 0.5)
    devices = bench.spawn(
        "devices",
        [PY, "-m", "bench.soak_devices", "--port", str(mqtt_port), "--count", str(args.devices),
         "--interval", str(args.interval), "--period", str(args.period), "--keepalive", str(args.keepalive),
         "--prefix", args.prefix, "--counters", shared],
        stdin=True,
    )  # fmt: skip
    devices.wait_line("READY", 120)
    load = bench.counters

    def sample(started: float, cpu_before: float, at_before: float) -> dict[str, Any]:
        now = time.monotonic()
        cpu = hub.cpu()
        return {
            "elapsed_min": (now - started) / 60,
            "rss_mib": hub.rss() / 2**20,
            "cpu_pct": 100 * (cpu - cpu_before) / max(now - at_before, 1e-9),
            "cpu_s": cpu,
            "sent": load.get(soak_devices.SENT),
            "handled": hub_counters.get(MESSAGES),
            "presences": hub_counters.get(PRESENCES),
            "chats": hub_counters.get(CHATS),
            "op_presences": load.get(PRESENCES_SEEN),
            "op_alerts": load.get(ALERTS_SEEN),
            "dropped": hub_counters.get(DROPPED),
            "reconnects": load.get(soak_devices.RECONNECTS),
            "link_ups": hub_counters.get(LINK_UPS),
            "connected": load.get(soak_devices.CONNECTED),
            "warnings": _log_lines(hub.stderr),
        }

    print(f"soak: {args.devices} devices, one message every {args.interval:g} s each, "
          f"{args.minutes:g} min; work directory {bench.workdir}", flush=True)  # fmt: skip
    print(_header(), flush=True)
    started = time.monotonic()
    samples = [sample(started, hub.cpu(), started)]
    print(_row(samples[-1]), flush=True)
    end = started + args.minutes * 60
    while time.monotonic() < end:
        time.sleep(max(0.0, min(args.report_every, end - time.monotonic())))
        if hub.popen.poll() is not None:
            raise RuntimeError(f"the hub exited ({hub.popen.returncode}); see {hub.stderr}")
        previous = samples[-1]
        samples.append(sample(started, previous["cpu_s"], started + previous["elapsed_min"] * 60))
        print(_row(samples[-1]), flush=True)
    assert devices.popen.stdin is not None
    devices.popen.stdin.close()  # the devices stop publishing; let the hub catch up
    devices.popen.wait(30)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and (
        hub_counters.get(MESSAGES) < load.get(soak_devices.SENT) or load.get(ALERTS_SEEN) < hub_counters.get(CHATS)
    ):
        time.sleep(0.1)
    final = sample(started, samples[-1]["cpu_s"], started + samples[-1]["elapsed_min"] * 60)
    final["elapsed_min"] = samples[-1]["elapsed_min"]
    metrics = scrape(metrics_port)
    rss = [s["rss_mib"] for s in samples]
    seconds = samples[-1]["elapsed_min"] * 60
    summary = {
        "devices": args.devices,
        "interval_s": args.interval,
        "minutes": round(seconds / 60, 2),
        "rss_start_mib": round(rss[0], 1),
        "rss_max_mib": round(max(rss), 1),
        "rss_end_mib": round(rss[-1], 1),
        "messages_sent": final["sent"],
        "messages_handled": final["handled"],
        "messages_lost": final["sent"] - final["handled"],
        "rate_per_s": round(final["sent"] / max(seconds, 1e-9), 1),
        "hub_cpu_pct": round(100 * (final["cpu_s"] - samples[0]["cpu_s"]) / max(seconds, 1e-9), 1),
        "presence_out": final["presences"],
        "chat_out": final["chats"],
        "operator_presences": final["op_presences"],
        "operator_alerts": final["op_alerts"],
        "events_dropped": final["dropped"],
        "device_reconnects": final["reconnects"],
        "hub_link_ups": final["link_ups"],
        "hub_warnings": final["warnings"],
    }
    return {"summary": summary, "samples": samples, "metrics": metrics, "versions": info, "command": command}


#: What the summary quotes from the hub's own Prometheus endpoint.
QUOTED_METRICS = (
    "hub_mqtt_messages_total", "hub_events_dropped_total", "hub_payloads_rejected_total",
    "hub_xmpp_buffer_dropped_total", "hub_presence_sent_total", "hub_presence_held_total", "hub_chats_sent_total",
    "hub_devices", "hub_devices_online",
)  # fmt: skip


def scrape(port: int) -> dict[str, float]:
    """The hub's metrics, summed over labels: the soak also exercises the endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.split("{", 1)[0].split(" ", 1)[0], line.rsplit(" ", 1)[1]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def render_summary(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        "",
        "summary:",
        f"  duration: {s['minutes']} min, {s['devices']} devices, one message every {s['interval_s']:g} s each",
        f"  hub RSS: {s['rss_start_mib']} MiB at start, {s['rss_max_mib']} MiB max, {s['rss_end_mib']} MiB at end",
        f"  hub CPU: {s['hub_cpu_pct']} % of one core on average",
        f"  messages: {s['messages_sent']} sent, {s['messages_handled']} handled by the core, "
        f"{s['messages_lost']} lost ({s['rate_per_s']}/s)",
        f"  presence stanzas out: {s['presence_out']}, received by the operator: {s['operator_presences']}",
        f"  chat messages out: {s['chat_out']}, alerts raised or cleared at the operator: {s['operator_alerts']}",
        f"  events dropped (queue full): {s['events_dropped']}",
        f"  device reconnects: {s['device_reconnects']}; hub links up: {s['hub_link_ups']} (2 = no reconnect)",
        f"  hub warnings and errors logged: {s['hub_warnings']}",
        "  metrics endpoint: "
        + ", ".join(f"{name} {result['metrics'].get(name, float('nan')):g}" for name in QUOTED_METRICS),
        "  versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        f"  command: {result['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between one device's messages")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between two lines")
    parser.add_argument("--period", type=float, default=600.0, help="seconds of a device's temperature cycle")
    parser.add_argument("--keepalive", type=int, default=30)
    parser.add_argument("--prefix", default="soak-")
    parser.add_argument("--json", type=Path, help="also write the samples and the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "bench.soak", *(argv if argv is not None else sys.argv[1:])])
    workdir = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    try:
        result = soak(args, workdir, command)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render_summary(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
