"""Recorded device traffic: tests/fixtures/<family>/traffic.json, scenario name → messages in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parents[1] / "fixtures"

Traffic = dict[str, list[dict[str, Any]]]


def load_traffic(family: str) -> Traffic:
    """The messages a family's devices publish, as its documentation shows them (each cites its page)."""
    traffic: Traffic = json.loads((FIXTURES / family / "traffic.json").read_text(encoding="utf-8"))
    return traffic
