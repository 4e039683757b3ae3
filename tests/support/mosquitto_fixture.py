"""pytest fixtures for a real mosquitto broker (see :mod:`tests.support.mosquitto`).

Import them into a test module (or conftest) by name::

    from tests.support.mosquitto_fixture import mosquitto, mosquitto_factory  # noqa: F401

Tests are skipped, with the reason, only when the mosquitto binaries are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mosquitto import MosquittoBroker, find_tool

MosquittoFactory = Callable[..., MosquittoBroker]


def _require(tool: str) -> None:
    if find_tool(tool) is None:
        pytest.skip(f"{tool} not installed (apt-get install mosquitto mosquitto-clients)")


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start brokers with custom options (``MosquittoBroker`` kwargs); all stopped at teardown."""
    _require("mosquitto")
    brokers: list[MosquittoBroker] = []

    def make(**options: Any) -> MosquittoBroker:
        if options.get("users"):
            _require("mosquitto_passwd")
        broker = MosquittoBroker(tmp_path / f"mosquitto-{len(brokers)}", **options)
        brokers.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    """A running anonymous mosquitto on 127.0.0.1 and a free port, persistence off."""
    return mosquitto_factory()
