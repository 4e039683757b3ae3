"""The soak cannot rot: a few seconds with a few devices print every column, and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import COLUMNS
from tests.support.xmpp_servers import prosody_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not prosody_available(), reason="needs prosody")
def test_short_soak_reports_every_interval_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = ["--devices", "4", "--interval", "0.5", "--minutes", "0.1", "--report-every", "2", "--period", "4",
            "--json", str(out)]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", *argv], cwd=ROOT, capture_output=True, text=True, timeout=280
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())
    samples, summary = result["samples"], result["summary"]
    assert len(samples) >= 3, "a line at the start and one per interval"
    for title, key, _ in COLUMNS:
        assert title in run.stdout
        assert all(key in s for s in samples)
    assert summary["messages_sent"] > 0
    assert summary["messages_lost"] == 0, summary
    assert summary["events_dropped"] == 0
    assert summary["device_reconnects"] == 0
    assert summary["hub_link_ups"] == 2, "one MQTT and one XMPP link, never lost"
    assert summary["operator_alerts"] == summary["chat_out"] > 0, "every alert raised or cleared reached the operator"
    # The hub's own endpoint agrees with the bench's counters.
    assert result["metrics"]["hub_mqtt_messages_total"] == summary["messages_handled"]
    assert result["metrics"]["hub_events_dropped_total"] == 0
    assert "summary:" in run.stdout and "metrics endpoint: hub_mqtt_messages_total" in run.stdout
    assert f"command: python -m bench.soak {' '.join(argv)}" in run.stdout
