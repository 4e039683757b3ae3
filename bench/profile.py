"""Profile the hub's hot path: the hub under telemetry load with cProfile, top functions printed.

As in ``bench.run``, an operator watches the publishing devices, so the hub has presence to derive
and coalesce (without one the profile shows work for devices nobody is subscribed to).

python -m bench.profile [--external] [--qos 0] [--seconds 5] [--out hub.pstats]
"""

from __future__ import annotations

import argparse
import dataclasses
import pstats
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.hub_proc import MESSAGES
from bench.run import MODES, PY, Bench, Proc, Target, _drain, measure_throughput


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--external", action="store_true", help="the hub on mosquitto instead of embedded")
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("hub.pstats"))
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    mode = dataclasses.replace(MODES["quick"], window=args.seconds)
    workdir = Path(tempfile.mkdtemp(prefix="hub-profile-"))
    bench = Bench(mode, workdir)
    out = args.out.resolve()
    try:
        server, operator, password = bench.start_prosody("hubp")
        if args.external:
            mosq, port = bench.start_mosquitto("mosquitto")
            config = bench.hub_config("hubp", server, operator, external_port=port)
            hub, counters = bench.start_hub("hubp", config, out)
            target = Target("hub", "hub external", port, [hub, mosq], counters, workdir / "hubp.counters",
                            subscriber=False)  # fmt: skip
        else:
            config = bench.hub_config("hubp", server, operator, external_port=None)
            port = int(yaml.safe_load(config.read_text())["mqtt"]["embedded"]["listeners"][0]["port"])
            hub, counters = bench.start_hub("hubp", config, out)
            target = Target("hub", "hub embedded", port, [hub], counters, workdir / "hubp.counters")
        watcher = _watch_publishers(bench, mode, server, (operator, password), target)
        _drain(bench, target, None, limit=60.0)  # the burst that made the devices is not part of the profile
        result = measure_throughput(bench, target, args.qos)
        watcher.stop()
        print(f"{result['rate']:.0f} msg/s, {result['cpu_us']:.0f} µs CPU per message")
        hub.stop()
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


def _watch_publishers(bench: Bench, mode: Any, server: Any, login: tuple[str, str], target: Target) -> Proc:
    """The publishers become devices (one short burst, flow-controlled by what the core handled),
    then an operator subscribes to each of them."""
    assert target.hub is not None
    credit = f"{target.hub_file}:{MESSAGES}:{target.hub.get(MESSAGES)}"
    for g in range(mode.generators):
        bench.spawn(
            "publisher",
            [PY, "-m", "bench.loadgen", "publish", "--port", str(target.port), "--conns", str(mode.conns),
             "--prefix", f"pub-{g}-", "--seconds", "0.2", "--inflight", "200", "--credit", credit,
             "--sent", f"{bench.counters_file}:{10 + g}"],
        ).output(60)  # fmt: skip
    jids = ",".join(
        f"pub-{g}-{i}@{server.component_domain}" for g in range(mode.generators) for i in range(mode.conns)
    )
    watcher = bench.spawn(
        "watch",
        [PY, "-m", "bench.operator_proc", "watch", "--c2s-port", str(server.c2s_port), "--user", login[0],
         "--password", login[1], "--ca", str(server.ca_cert), "--jids", jids, "--counters", str(bench.counters_file)],
        stdin=True,
    )  # fmt: skip
    watcher.wait_line("READY", 60)
    return watcher


if __name__ == "__main__":
    main()
