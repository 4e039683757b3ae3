"""The benchmark cannot rot: its tiny mode runs every measurement for real and prints every row.

No timing thresholds here: benchmarks report (docs/benchmarks.md), tests check behaviour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mosquitto import find_tool
from tests.support.xmpp_servers import prosody_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ROWS = [
    *(f"throughput.q{qos}.{target}" for qos in (0, 1)
      for target in ("amqtt", "hub-embedded", "mosquitto", "hub-external")),
    *(f"scaling.{target}.{i}" for target in ("hub-embedded", "amqtt") for i in range(4)),
    *(f"memory.{target}.{i}" for target in ("hub-embedded", "amqtt") for i in range(3)),
    "memory.hub-embedded.per_device",
    "memory.amqtt.per_device",
    "latency.alert.embedded.200",
    "latency.alert.external.200",
    "latency.command.embedded",
    "latency.command.external",
    "startup.hub",
]  # fmt: skip


@pytest.mark.skipif(not prosody_available() or find_tool("mosquitto") is None, reason="needs prosody and mosquitto")
def test_tiny_run_prints_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--tiny", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())
    keys = [row["key"] for row in result["rows"]]
    missing = set(EXPECTED_ROWS) - set(keys)
    assert not missing, f"rows missing from the table: {sorted(missing)}"
    for row in result["rows"]:
        assert row["value"] == row["value"], f"{row['key']} measured nothing (NaN)"
    assert {t["target"] for t in result["targets"]} >= {"hub embedded / stock amqtt, QoS 0"}
    # One table on stdout: versions, every row, the targets and the exact commands.
    table = run.stdout
    for name in ("amqtt", "slixmpp", "prosody", "mosquitto"):
        assert name in result["versions"] and name in table
    for row in result["rows"]:
        assert row["what"] in table
    assert "targets (ratios from this run):" in table
    for label in ("hub (hube)", "stock amqtt", "mosquitto", "load: publishers", "start-up"):
        assert f"  {label}: " in table
    # The latency rows really measured: every alert and every command came back.
    for row in result["rows"]:
        if row["key"].startswith("latency."):
            got, sent = row["detail"].split(", ")[1].split()[0].split("/")
            assert got == sent, row
