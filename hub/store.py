"""Durable hub state: who is subscribed to which device.

SQLite in WAL mode under the state directory, so a restart (even after
SIGKILL) keeps every operator's roster; without it a restarted hub would
answer probes with ``unsubscribed`` and devices would vanish from rosters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    device_jid TEXT NOT NULL,
    operator TEXT NOT NULL,
    PRIMARY KEY (device_jid, operator)
) WITHOUT ROWID;
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def subscriptions(self) -> Iterator[tuple[str, str]]:
        with closing(self._db.execute("SELECT device_jid, operator FROM subscriptions ORDER BY 1, 2")) as rows:
            yield from rows

    def set_subscription(self, device_jid: str, operator: str, present: bool) -> None:
        if present:
            self._db.execute(
                "INSERT OR IGNORE INTO subscriptions (device_jid, operator) VALUES (?, ?)", (device_jid, operator)
            )
        else:
            self._db.execute("DELETE FROM subscriptions WHERE device_jid = ? AND operator = ?", (device_jid, operator))

    def close(self) -> None:
        self._db.close()
