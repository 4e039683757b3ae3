"""Profile the hub's hot path: the hub under telemetry load with cProfile, top functions printed.

python -m bench.profile [--external] [--qos 0] [--seconds 5] [--out hub.pstats]
"""

from __future__ import annotations

import argparse
import dataclasses
import pstats
import shutil
import tempfile
from pathlib import Path

import yaml

from bench.run import MODES, Bench, Target, measure_throughput


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
        server, operator, _ = bench.start_prosody("hubp")
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
        result = measure_throughput(bench, target, args.qos)
        print(f"{result['rate']:.0f} msg/s, {result['cpu_us']:.0f} µs CPU per message")
        hub.stop()
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
