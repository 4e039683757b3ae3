"""The benchmark suite in one command: everything side by side, in one run, on loopback.

    python -m bench.run --quick        # ~3 minutes: 3 interleaved rounds, medians
    python -m bench.run --full         # longer windows, 5 rounds, one more latency rate
    python -m bench.run --tiny         # seconds: the smoke run the tests use (numbers meaningless)

Starts its own servers on ports picked at run time (Prosody, mosquitto, stock
amqtt, the hub in both modes) and its own load generator processes
(``bench.loadgen``: raw sockets, one role per process), then prints one table
with the versions and every command it ran. ``--json FILE`` also writes the
results as JSON. Nothing is left running afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from bench.counters import Counters
from bench.hub_proc import CHATS, DROPPED, MESSAGES, PRESENCES
from tests.support.mosquitto import find_tool
from tests.support.ports import free_port
from tests.support.xmpp_servers import ProsodyServer

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECTIONS = ("throughput", "memory", "scaling", "latency", "startup")
SUBSCRIBER, HELD = 8, 6  # counter slots used by the load generator (the hub's are 0-3, the operator's 4)


@dataclass(frozen=True)
class Mode:
    name: str
    rounds: int
    warmup: float
    window: float
    scale: tuple[int, ...]
    memory: tuple[int, ...]
    rates: tuple[float, ...]
    latency_seconds: float
    commands: int
    startups: int
    generators: int = 2
    conns: int = 5
    inflight: int = 2000


MODES = {
    "tiny": Mode("tiny", 1, 0.2, 0.5, (10, 20, 30, 40), (0, 20, 40), (50.0, 200.0), 0.5, 3, 1),
    "quick": Mode("quick", 3, 0.7, 2.5, (10, 100, 1000, 5000), (0, 1000, 5000), (50.0, 200.0), 4.0, 30, 3),
    "full": Mode("full", 5, 1.0, 5.0, (10, 100, 1000, 5000), (0, 1000, 5000), (50.0, 200.0, 500.0), 8.0, 60, 5),
}


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process we started; ``name`` is what the table calls it."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[str]
    stderr: Path

    def last_line(self, timeout: float) -> dict[str, Any]:
        """The JSON object a measuring child prints last, or an error with its stderr."""
        out = self.output(timeout).strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(out[-1])
            return result
        except (IndexError, ValueError):
            tail = self.stderr.read_text(errors="replace")[-3000:] if self.stderr.exists() else ""
            raise RuntimeError(f"{self.name} printed no result (exit {self.popen.returncode}):\n{tail}") from None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def wait_line(self, prefix: str, timeout: float) -> float:
        """Block until the child prints a line starting with ``prefix``; return the time it did."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.popen.stdout.fileno()
        os.set_blocking(fd, False)
        buf = ""
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 65536).decode(errors="replace")
            except BlockingIOError:
                chunk = ""
            if chunk:
                buf += chunk
                for line in buf.splitlines():
                    if line.startswith(prefix):
                        return time.monotonic()
            elif self.popen.poll() is not None:
                tail = self.stderr.read_text(errors="replace")[-2000:] if self.stderr.exists() else ""
                raise RuntimeError(
                    f"{self.name} exited ({self.popen.returncode}) before {prefix!r}: {buf[-2000:]}{tail}"
                )
            time.sleep(0.005)
        raise RuntimeError(f"{self.name}: no {prefix!r} within {timeout} s: {buf[-2000:]}")

    def output(self, timeout: float) -> str:
        """Everything the child prints until it exits (its stdout must still be blocking)."""
        assert self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), True)
        out, _ = self.popen.communicate(timeout=timeout)
        return out or ""

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Bench:
    def __init__(
        self, mode: Mode, workdir: Path, baseline: Path | None = None, sections: frozenset[str] = frozenset(SECTIONS)
    ) -> None:
        self.mode = mode
        self.sections = sections
        self.baseline = baseline
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.servers: list[ProsodyServer] = []
        self.commands: dict[str, str] = {}
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.counters_file = workdir / "loadgen.counters"
        self.counters = Counters(self.counters_file, create=True)

    # -- starting things ---------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], *, stdin: bool = False, record: str | None = None, cwd: Path | None = None
    ) -> Proc:
        stderr = self.workdir / f"{name}.stderr"
        with stderr.open("ab") as err:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=cwd or Path(__file__).resolve().parent.parent,
            )
        proc = Proc(name, argv, popen, stderr)
        self.procs.append(proc)
        if record is not None:
            self.commands.setdefault(record, shlex.join(_short(argv)))
        return proc

    def start_prosody(self, name: str) -> tuple[ProsodyServer, str, str]:
        server = ProsodyServer(self.workdir / name, component_domain=f"{name}.localhost", log_level="warn")
        self.servers.append(server)
        server.start()
        user, password = server.new_user("operator")
        self.commands.setdefault("prosody", f"prosody -F --config {self.workdir}/<name>/prosody.cfg.lua")
        return server, user, password

    def start_mosquitto(self, name: str, port: int | None = None) -> tuple[Proc, int]:
        binary = find_tool("mosquitto")
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        port = port or free_port()
        conf = self.workdir / f"{name}.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "log_dest none",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        proc = self.spawn(name, [binary, "-c", str(conf)], record="mosquitto")
        _wait_port(port, proc)
        return proc, port

    def start_stock_amqtt(self, port: int | None = None) -> tuple[Proc, int]:
        port = port or free_port()
        proc = self.spawn("amqtt", [PY, "-m", "bench.stock_amqtt", "--port", str(port)], record="stock amqtt")
        proc.wait_line("READY", 30)
        return proc, port

    def hub_config(
        self, name: str, server: ProsodyServer, operator: str, *, external_port: int | None, tree: Path | None = None
    ) -> Path:
        """A hub's config; for another checkout (``tree``), without the keys its config does not know yet."""
        data: dict[str, Any] = {
            "xmpp": {
                "domain": server.component_domain,
                "host": "127.0.0.1",
                "port": server.component_port,
                "secret": server.component_secret,
            },
            "operators": {operator: {"role": "admin"}},
            "alerts": [{"name": "hot", "field": "temperature", "op": ">", "threshold": 30, "devices": ["lat-1"]}],
            "state_dir": str(self.workdir / name / "state"),
            "log": {"level": "warning"},
            "limits": {
                "max_devices": 20000,
                "event_queue": 10000,
                "max_connections": 20000,
                "operator_commands_per_minute": None,  # the latency run sends its commands back to back
            },
        }
        if external_port is None:
            data["mqtt"] = {
                "mode": "embedded",
                "embedded": {
                    "listeners": [{"name": "default", "kind": "tcp", "host": "127.0.0.1", "port": free_port()}],
                    "allow_anonymous": True,
                    # anonymous bench devices have no {username}: the ACL is on, with explicit patterns
                    "acl": {"publish": ["devices/#"], "subscribe": ["devices/#"]},
                },
            }
        else:
            data["mqtt"] = {
                "mode": "external",
                "external": {"host": "127.0.0.1", "port": external_port, "client_id": f"hub-{secrets.token_hex(3)}"},
            }
        if tree is not None and "operator_commands_per_minute" not in (tree / "hub" / "config.py").read_text():
            del data["limits"]["operator_commands_per_minute"]
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def start_hub(
        self, name: str, config: Path, profile: Path | None = None, cwd: Path | None = None
    ) -> tuple[Proc, Counters]:
        """The hub from this tree, or with ``cwd`` from another checkout (the baseline)."""
        counters = self.workdir / f"{name}.counters"
        argv = [PY, "-m", "bench.hub_proc", "-c", str(config), "--counters", str(counters)]
        if profile is not None:
            argv += ["--profile", str(profile)]
        proc = self.spawn(name, argv, record=f"hub ({name})", cwd=cwd)
        proc.wait_line("READY", 60)
        return proc, Counters(counters)

    def replace(self, old: Proc, new: Proc) -> None:
        old.stop()
        self.procs.remove(old)
        if new not in self.procs:
            self.procs.append(new)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        for server in self.servers:
            server.stop()


def _short(argv: list[str]) -> list[str]:
    """Commands as a reader would type them: no interpreter path, temp dirs shown as <tmp>."""
    out = []
    for arg in argv:
        if arg == PY:
            arg = "python"
        out.append(arg.replace(tempfile.gettempdir(), "<tmp>"))
    return out


def _wait_port(port: int, proc: Proc, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name}: port {port} not open after {timeout} s")


# --- measurements -------------------------------------------------------------------------------


@dataclass
class Target:
    """One system under test: a broker (alone) or a hub, and where devices connect."""

    key: str
    label: str
    port: int
    procs: list[Proc]  # whose CPU counts (broker, hub)
    hub: Counters | None = None  # the hub's own counters: messages the core handled
    hub_file: Path | None = None
    subscriber: bool = True  # route every message to one TCP subscriber too
    results: dict[str, list[float]] = field(default_factory=dict)
    restart: Any = None  # () -> None: a fresh process when a backlog would not drain
    restarts: int = 0


def measure_throughput(bench: Bench, target: Target, qos: int, prefix: str = "pub-") -> dict[str, float]:
    """Publishers flat out for warmup + window; the rate is what reached the consumer in the window."""
    m = bench.mode
    counter = None
    if target.subscriber:
        counter = bench.spawn(
            "counter",
            [
                PY,
                "-m",
                "bench.loadgen",
                "count",
                "--port",
                str(target.port),
                "--qos",
                str(qos),
                "--counters",
                str(bench.counters_file),
                "--slot",
                str(SUBSCRIBER),
                "--client-id",
                f"counter-{qos}",
            ],
            record="load: subscriber",
        )
        counter.wait_line("READY", 30)
    seconds = m.warmup + m.window + 0.5
    credit = []
    if counter is not None:
        credit += ["--credit", f"{bench.counters_file}:{SUBSCRIBER}:0"]
    if target.hub is not None:
        credit += ["--credit", f"{target.hub_file}:{MESSAGES}:{target.hub.get(MESSAGES)}"]
    for g in range(10, 16):
        bench.counters.set(g, 0)
    pubs = [
        bench.spawn(
            "publisher",
            [
                PY,
                "-m",
                "bench.loadgen",
                "publish",
                "--port",
                str(target.port),
                "--qos",
                str(qos),
                "--conns",
                str(m.conns),
                "--prefix",
                f"{prefix}{g}-",
                "--seconds",
                f"{seconds:g}",
                "--inflight",
                str(m.inflight),
                "--sent",
                f"{bench.counters_file}:{10 + g}",
                *credit,
            ],
            record="load: publishers",
        )
        for g in range(m.generators)
    ]
    for pub in pubs:
        pub.wait_line("READY", 60)
    time.sleep(m.warmup)

    def snapshot() -> tuple[float, float, int, int, int]:
        hub_msgs = target.hub.get(MESSAGES) if target.hub else 0
        sub_msgs = bench.counters.get(SUBSCRIBER) if counter else 0
        presences = target.hub.get(PRESENCES) if target.hub else 0
        return time.monotonic(), sum(p.cpu() for p in target.procs), hub_msgs, sub_msgs, presences

    t0, cpu0, hub0, sub0, pres0 = snapshot()
    time.sleep(m.window)
    t1, cpu1, hub1, sub1, pres1 = snapshot()
    sent = 0
    for pub in pubs:
        out = pub.output(timeout=seconds + 60)
        with contextlib.suppress(ValueError, IndexError):
            sent += json.loads(out.strip().splitlines()[-1]).get("sent", 0)
        bench.procs.remove(pub)
    drained = _drain(bench, target, counter)
    if counter is not None:
        counter.stop()
        bench.procs.remove(counter)
    if not drained and target.restart is not None:
        target.restart()
        target.restarts += 1
    dt = t1 - t0
    rates = []
    if counter is not None:
        rates.append((sub1 - sub0) / dt)
    if target.hub is not None:
        rates.append((hub1 - hub0) / dt)
    rate = min(rates) if rates else 0.0
    messages = max(1.0, rate * dt)
    return {
        "rate": rate,
        "sub_rate": (sub1 - sub0) / dt if counter else float("nan"),
        "core_rate": (hub1 - hub0) / dt if target.hub else float("nan"),
        "cpu_us": (cpu1 - cpu0) / messages * 1e6,
        "presence_rate": (pres1 - pres0) / dt,
        "sent": float(sent),
    }


def _drain(bench: Bench, target: Target, counter: Proc | None, limit: float = 3.0) -> bool:
    """Wait until the consumer stops counting: a backlog must not leak into the next run.

    Brokers that read faster than they deliver (amqtt queues without bound) may
    hold a backlog of minutes; False tells the caller to restart the process instead.
    """

    def value() -> int:
        return (target.hub.get(MESSAGES) if target.hub else 0) + (bench.counters.get(SUBSCRIBER) if counter else 0)

    deadline = time.monotonic() + limit
    last, stable_since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = value()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 0.4:
            return True
    return False


@contextlib.contextmanager
def held_devices(bench: Bench, port: int, count: int, prefix: str) -> Iterator[None]:
    """``count`` idle devices connected and subscribed to their command topics, in 2 processes."""
    holders = []
    share = [count // 2 + count % 2, count // 2] if count > 1 else [count]
    for i, n in enumerate(s for s in share if s):
        holder = bench.spawn(
            "holder",
            [
                PY,
                "-m",
                "bench.loadgen",
                "hold",
                "--port",
                str(port),
                "--prefix",
                f"{prefix}{i}-",
                "--count",
                str(n),
                "--counters",
                str(bench.counters_file),
                "--slot",
                str(HELD + i),
            ],
            stdin=True,
            record="load: idle devices",
        )
        holders.append(holder)
    try:
        for holder in holders:
            holder.wait_line("HELD", 300)
        time.sleep(0.5)
        yield
    finally:
        for holder in holders:
            assert holder.popen.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                holder.popen.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                holder.popen.wait(30)
            holder.stop()
            bench.procs.remove(holder)
        time.sleep(1.0)  # let the broker notice the disconnects


def measure_startup(bench: Bench, config: Path, timeout: float = 60.0) -> float:
    """Seconds from starting ``hub run`` to its ``hub.ready`` log line (imports included)."""
    argv = [PY, "-m", "hub.cli", "run", "-c", str(config)]
    bench.commands.setdefault("start-up", shlex.join(_short(argv)))
    log = bench.workdir / "startup.log"
    with log.open("wb") as err:
        start = time.monotonic()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=Path(__file__).resolve().parent.parent,
        )
    ready = None
    try:
        while ready is None and time.monotonic() - start < timeout and popen.poll() is None:
            if b"hub.ready" in log.read_bytes():
                ready = time.monotonic() - start
            else:
                time.sleep(0.002)
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
    if ready is None:
        raise RuntimeError(f"hub run never logged hub.ready:\n{log.read_text(errors='replace')[-3000:]}")
    return ready


# --- the suite ----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    def deb(name: str) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True)
        return out.stdout.strip() or "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
        "python": platform.python_version(),
        "amqtt": dist("amqtt"),
        "uvloop": dist("uvloop"),
        "slixmpp": dist("slixmpp"),
        "paho-mqtt": dist("paho-mqtt"),
        "prosody": deb("prosody"),
        "mosquitto": deb("mosquitto"),
    }


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def run(
    mode: Mode,
    workdir: Path,
    profile: Path | None = None,
    baseline: Path | None = None,
    sections: frozenset[str] = frozenset(SECTIONS),
) -> dict[str, Any]:
    bench = Bench(mode, workdir, baseline, sections)
    started = time.monotonic()
    try:
        return _run(bench, profile) | {"seconds": round(time.monotonic() - started, 1)}
    finally:
        bench.close()


def _run(bench: Bench, profile: Path | None) -> dict[str, Any]:
    mode = bench.mode
    info = versions()
    prosody_e, op_e, pw_e = bench.start_prosody("hube")
    prosody_x, op_x, pw_x = bench.start_prosody("hubx")
    prosody_s, op_s, _ = bench.start_prosody("hubs")
    amqtt_proc, amqtt_port = bench.start_stock_amqtt()
    mosq_proc, mosq_port = bench.start_mosquitto("mosquitto")
    mosq_hub_proc, mosq_hub_port = bench.start_mosquitto("mosquitto-hub")
    conf_e = bench.hub_config("hube", prosody_e, op_e, external_port=None)
    conf_x = bench.hub_config("hubx", prosody_x, op_x, external_port=mosq_hub_port)
    hub_e, count_e = bench.start_hub("hube", conf_e, profile)
    hub_x, count_x = bench.start_hub("hubx", conf_x)
    progress("servers up")
    port_e = int(yaml.safe_load(conf_e.read_text())["mqtt"]["embedded"]["listeners"][0]["port"])

    targets = [
        Target("amqtt", "(a) stock amqtt alone", amqtt_port, [amqtt_proc]),
        Target(
            "hub-embedded",
            "(b) hub, embedded broker, bridging to Prosody",
            port_e,
            [hub_e],
            count_e,
            hub_file=bench.workdir / "hube.counters",
        ),
        Target("mosquitto", "(c) mosquitto alone", mosq_port, [mosq_proc]),
        Target(
            "hub-external",
            "(d) hub on mosquitto, bridging to Prosody",
            mosq_hub_port,
            [hub_x, mosq_hub_proc],
            count_x,
            bench.workdir / "hubx.counters",
            subscriber=False,
        ),
    ]

    if bench.baseline is not None:
        prosody_b, op_b, pw_b = bench.start_prosody("hubb")
        conf_b = bench.hub_config("hubb", prosody_b, op_b, external_port=None, tree=bench.baseline)
        hub_b, count_b = bench.start_hub("hubb", conf_b, cwd=bench.baseline)
        port_b = int(yaml.safe_load(conf_b.read_text())["mqtt"]["embedded"]["listeners"][0]["port"])
        rev = bench.baseline.name
        base = Target(
            "hub-before",
            f"(b0) hub embedded, before ({rev})",
            port_b,
            [hub_b],
            count_b,
            bench.workdir / "hubb.counters",
        )

        def restart_hub_b() -> None:
            old = base.procs[0]
            old.stop()
            base.procs[0] = bench.start_hub("hubb", conf_b, cwd=bench.baseline)[0]
            bench.replace(old, base.procs[0])

        base.restart = restart_hub_b
    a, b, _c, d = targets

    def restart_amqtt() -> None:
        old = a.procs[0]
        old.stop()
        a.procs[0] = bench.start_stock_amqtt(a.port)[0]
        bench.replace(old, a.procs[0])

    def restart_hub_e() -> None:
        old = b.procs[0]
        old.stop()
        b.procs[0] = bench.start_hub("hube", conf_e, profile)[0]
        bench.replace(old, b.procs[0])

    def restart_hub_x() -> None:
        old_hub, old_mosq = d.procs
        old_hub.stop()
        old_mosq.stop()
        d.procs[1] = bench.start_mosquitto("mosquitto-hub", d.port)[0]
        d.procs[0] = bench.start_hub("hubx", conf_x)[0]
        bench.replace(old_hub, d.procs[0])
        bench.replace(old_mosq, d.procs[1])

    a.restart, b.restart, d.restart = restart_amqtt, restart_hub_e, restart_hub_x

    # Devices exist and an operator watches the publishers: the bridge has presence to send.
    publisher_ids = [f"pub-{g}-{i}" for g in range(mode.generators) for i in range(mode.conns)]
    if bench.baseline is not None:
        targets.insert(1, base)
    for target in [t for t in targets if t.hub is not None]:
        for g in range(mode.generators):
            bench.spawn(
                "publisher",
                [
                    PY,
                    "-m",
                    "bench.loadgen",
                    "publish",
                    "--port",
                    str(target.port),
                    "--conns",
                    str(mode.conns),
                    "--prefix",
                    f"pub-{g}-",
                    "--seconds",
                    "0.05",
                ],
            ).output(60)
    watchers = []
    watched = [(prosody_e, op_e, pw_e), (prosody_x, op_x, pw_x)]
    if bench.baseline is not None:
        watched.append((prosody_b, op_b, pw_b))
    for server, user, password in watched:
        jids = ",".join(f"{d}@{server.component_domain}" for d in publisher_ids)
        watcher = bench.spawn(
            f"watch-{server.component_domain}",
            [
                PY,
                "-m",
                "bench.operator_proc",
                "watch",
                "--c2s-port",
                str(server.c2s_port),
                "--user",
                user,
                "--password",
                password,
                "--ca",
                str(server.ca_cert),
                "--jids",
                jids,
                "--counters",
                str(bench.counters_file),
            ],
            stdin=True,
            record="operator (watching the publishers)",
        )
        watcher.wait_line("READY", 60)
        watchers.append(watcher)
    progress("operators watching")

    want = bench.sections.__contains__
    # 1. telemetry throughput, interleaved rounds, order rotated each round
    for rnd in range(mode.rounds if want("throughput") else 0):
        order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
        for qos in (0, 1):
            for target in order:
                result = measure_throughput(bench, target, qos)
                progress(f"round {rnd + 1} QoS {qos} {target.label}: {result['rate']:.0f} msg/s")
                for key, value in result.items():
                    target.results.setdefault(f"q{qos}.{key}", []).append(value)
    by_key = {t.key: t for t in targets}
    for qos in (0, 1) if want("throughput") else ():
        for target in targets:
            r = target.results
            detail = f"broker+hub CPU {median(r[f'q{qos}.cpu_us']):.0f} µs/msg"
            if target.hub is not None:
                detail += f", presence out {median(r[f'q{qos}.presence_rate']):.0f}/s"
            if target.subscriber and target.hub is not None:
                detail += (
                    f", subscriber {median(r[f'q{qos}.sub_rate']):.0f}/s, core {median(r[f'q{qos}.core_rate']):.0f}/s"
                )
            detail += f", generators sent {median(r[f'q{qos}.sent']) / (mode.warmup + mode.window + 0.3):.0f}/s"
            bench.rows.append(
                {
                    "key": f"throughput.q{qos}.{target.key}",
                    "section": "throughput",
                    "what": f"QoS {qos} telemetry msg/s: {target.label}",
                    "value": median(r[f"q{qos}.rate"]),
                    "unit": "msg/s",
                    "detail": detail,
                    "samples": [round(v) for v in r[f"q{qos}.rate"]],
                }
            )

    # 2. scaling and memory: idle devices, each subscribed to its command topic
    scale_targets = [by_key["hub-embedded"], by_key["amqtt"]]
    if "hub-before" in by_key:
        scale_targets.insert(1, by_key["hub-before"])
    # Memory first, on fresh processes and without load in between: after a throughput run
    # the RSS stays at its high-water mark (the first version of this bench measured that).
    memory: dict[tuple[str, int], float] = {}
    for target in scale_targets if want("memory") else []:
        if target.restart is not None:
            target.restart()
        time.sleep(1.0)
        for n in mode.memory:
            with held_devices(bench, target.port, n, "mem-") if n else contextlib.nullcontext():
                memory[(target.key, n)] = float(target.procs[0].rss())
                progress(f"memory {n} devices {target.label}: {memory[(target.key, n)] / 2**20:.1f} MiB")
    scaling: dict[tuple[str, int], dict[str, list[float]]] = {}
    for rnd in range(mode.rounds if want("scaling") else 0):
        for target in scale_targets if rnd % 2 == 0 else scale_targets[::-1]:
            for n in mode.scale:
                with held_devices(bench, target.port, n, f"idle{rnd}-"):
                    slot = scaling.setdefault((target.key, n), {})
                    if n in mode.scale:
                        result = measure_throughput(bench, target, 0)
                        progress(f"round {rnd + 1} {n} devices {target.label}: {result['cpu_us']:.0f} µs/msg")
                        slot.setdefault("rate", []).append(result["rate"])
                        slot.setdefault("cpu_us", []).append(result["cpu_us"])
    for target in scale_targets if want("scaling") else []:
        for n in mode.scale:
            s = scaling[(target.key, n)]
            bench.rows.append(
                {
                    "key": f"scaling.{target.key}.{mode.scale.index(n)}",
                    "section": "scaling",
                    "what": f"cost per message, {n} idle devices connected: {target.label}",
                    "value": median(s["cpu_us"]),
                    "unit": "µs/msg",
                    "detail": f"QoS 0 {median(s['rate']):.0f} msg/s",
                    "devices": n,
                }
            )
    for target in scale_targets if want("memory") else []:
        for n in mode.memory:
            rss = memory[(target.key, n)]
            bench.rows.append(
                {
                    "key": f"memory.{target.key}.{mode.memory.index(n)}",
                    "section": "memory",
                    "what": f"RSS with {n} devices connected: {target.label}",
                    "value": rss / 2**20,
                    "unit": "MiB",
                    "detail": "",
                    "devices": n,
                }
            )
        lo, hi = mode.memory[0], mode.memory[-1]
        per = (memory[(target.key, hi)] - memory[(target.key, lo)]) / (hi - lo)
        bench.rows.append(
            {
                "key": f"memory.{target.key}.per_device",
                "section": "memory",
                "what": f"RSS per connected device ({lo} → {hi}): {target.label}",
                "value": per / 1024,
                "unit": "KiB",
                "detail": "",
            }
        )

    # 3. latency device → operator (alert chat) and command round trip, both hub modes
    for server, user, password, port, label in (
        (
            (prosody_e, op_e, pw_e, port_e, "embedded"),
            (prosody_x, op_x, pw_x, mosq_hub_port, "external"),
        )
        if want("latency")
        else ()
    ):
        argv = [
            PY,
            "-m",
            "bench.operator_proc",
            "latency",
            "--c2s-port",
            str(server.c2s_port),
            "--user",
            user,
            "--password",
            password,
            "--ca",
            str(server.ca_cert),
            "--domain",
            server.component_domain,
            "--mqtt-port",
            str(port),
            "--seconds",
            f"{mode.latency_seconds:g}",
            "--commands",
            str(mode.commands),
        ]
        for rate in mode.rates:
            argv += ["--rate", f"{rate:g}"]
        progress(f"latency, hub {label}")
        proc = bench.spawn(f"latency-{label}", argv, record="latency (operator + device)")
        out = proc.last_line(timeout=300)
        bench.procs.remove(proc)
        for rate in mode.rates:
            r = out[f"alert@{rate:g}"]
            bench.rows.append(
                {
                    "key": f"latency.alert.{label}.{rate:g}",
                    "section": "latency",
                    "what": f"device → operator alert p99 at {rate:g} msg/s, hub {label}",
                    "value": r["p99_ms"],
                    "unit": "ms",
                    "detail": f"p50 {r['p50_ms']} ms, {r['received']}/{r['sent']} received",
                }
            )
        r = out["command"]
        bench.rows.append(
            {
                "key": f"latency.command.{label}",
                "section": "latency",
                "what": f"command round trip operator → device → ✓ p99, hub {label}",
                "value": r["p99_ms"],
                "unit": "ms",
                "detail": f"p50 {r['p50_ms']} ms, {r['confirmed']}/{r['sent']} confirmed",
            }
        )

    # 4. start-up: the real CLI, until its hub.ready log line
    for watcher in watchers:
        watcher.stop()
    conf_s = bench.hub_config("hubs", prosody_s, op_s, external_port=None)
    startup_config = yaml.safe_load(conf_s.read_text())
    startup_config["log"]["level"] = "info"  # hub.ready is an info line
    conf_s.write_text(yaml.safe_dump(startup_config))
    startups = [measure_startup(bench, conf_s) for _ in range(mode.startups if want("startup") else 0)]
    for _ in startups[:1]:
        bench.rows.append(
            {
                "key": "startup.hub",
                "section": "startup",
                "what": "start-up until ready: hub run (embedded, Prosody up)",
                "value": median(startups),
                "unit": "s",
                "detail": "samples " + ", ".join(f"{s:.2f}" for s in startups),
            }
        )

    dropped = {"hube": count_e.get(DROPPED), "hubx": count_x.get(DROPPED)}
    chats = {"hube": count_e.get(CHATS), "hubx": count_x.get(CHATS)}
    if any(dropped.values()):
        bench.notes.append(f"events dropped on a full hub queue: {dropped}")
    return {
        "mode": mode.name,
        "versions": info,
        "commands": bench.commands,
        "rows": bench.rows,
        "targets": _targets(bench.rows),
        "notes": bench.notes,
        "chats": chats,
    }


def _value(rows: list[dict[str, Any]], key: str) -> float:
    for row in rows:
        if row["key"] == key:
            return float(row["value"])
    return float("nan")


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets as ratios of numbers from this same run."""

    def v(key: str) -> float:
        return _value(rows, key)

    def ratio(top: float, bottom: float) -> float:
        """NaN, not a crash, when the reference measured nothing (a starved machine): the table says so."""
        return top / bottom if bottom else float("nan")

    scale = [r for r in rows if r["key"].startswith("scaling.hub-embedded.")]
    cost_ratio = ratio(max(r["value"] for r in scale), min(r["value"] for r in scale)) if scale else float("nan")
    alert = [r for r in rows if r["key"].startswith("latency.alert.embedded.200")]
    out = [
        *(
            (
                f"hub embedded / stock amqtt, QoS {q}",
                ratio(v(f"throughput.q{q}.hub-embedded"), v(f"throughput.q{q}.amqtt")),
                "≥ 1.5×",
            )
            for q in (0, 1)
        ),
        ("cost per message, max/min over device counts (embedded)", cost_ratio, "≤ 2×"),
        ("hub external on mosquitto, QoS 0 msg/s", v("throughput.q0.hub-external"), "≥ 20000"),
        ("p99 device → operator at 200 msg/s (embedded), ms", alert[0]["value"] if alert else float("nan"), "≤ 20"),
        ("p99 device → operator at 200 msg/s (external), ms", v("latency.alert.external.200"), "≤ 20"),
        ("RSS per connected device (embedded), KiB", v("memory.hub-embedded.per_device"), "≤ 40"),
    ]
    result = []
    for name, value, goal in out:
        op, bound = goal.split()[0], float(goal.split()[1].rstrip("×"))
        met = value >= bound if op == "≥" else value <= bound
        result.append({"target": name, "value": value, "goal": goal, "met": bool(met)})
    return result


def render(result: dict[str, Any]) -> str:
    lines = [f"mqtt-xmpp-hub benchmark ({result['mode']} mode, {result.get('seconds', '?')} s)", ""]
    lines += [f"  {k:<10} {v}" for k, v in result["versions"].items()]
    lines.append("")
    width = max(len(r["what"]) for r in result["rows"])
    lines.append(f"{'measurement':<{width}}  {'value':>10}  unit   detail")
    lines.append(f"{'-' * width}  {'-' * 10}  -----  ------")
    section = None
    for row in result["rows"]:
        if row["section"] != section:
            section = row["section"]
            lines.append(f"[{section}]")
        value = row["value"]
        shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
        lines.append(f"{row['what']:<{width}}  {shown:>10}  {row['unit']:<5}  {row['detail']}")
    lines += ["", "targets (ratios from this run):"]
    for t in result["targets"]:
        mark = "met" if t["met"] else "not measured" if math.isnan(t["value"]) else "MISSED"
        lines.append(f"  {t['target']:<58} {t['value']:>10.2f}  goal {t['goal']:<8} {mark}")
    lines += ["", "commands:"]
    lines += [f"  {name}: {cmd}" for name, cmd in result["commands"].items()]
    if result["notes"]:
        lines += ["", "notes:", *(f"  {n}" for n in result["notes"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    for name in MODES:
        group.add_argument(f"--{name}", dest="mode", action="store_const", const=name)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=Path, help="cProfile the embedded hub into this .pstats file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this part (repeatable)")
    parser.add_argument("--baseline", type=Path, help="a checkout of an older revision: its hub runs side by side")
    args = parser.parse_args(argv)
    mode = MODES[args.mode or "quick"]
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    try:
        result = run(
            mode,
            workdir,
            args.profile.resolve() if args.profile else None,
            args.baseline.resolve() if args.baseline else None,
            frozenset(args.only or SECTIONS),
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
