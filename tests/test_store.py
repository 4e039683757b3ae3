"""The SQLite store: devices and commands survive closing (and killing) the process that wrote them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

from hub.core.snapshot import AlertRecord, CommandRecord, DeviceRecord, OutboxRecord
from hub.store import Store

DEVICE = DeviceRecord(
    "k1@hub.example",
    "hub",
    "k1",
    available=False,
    last_live=10.0,
    offline_since=20.0,
    readings=(("temperature", 31.5), ("power", "on")),
    alerts=(AlertRecord("hot", 5.0, 5.0, 31.5, 31.5),),
)


def command(cid: str, expires: float | None = None) -> CommandRecord:
    return CommandRecord(cid, "k1@hub.example", "op@example.org", "on", 1.0, 6.0, "devices/k1/cmd", b"{}", expires)


def test_devices_and_commands_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    store.save([DEVICE], [command("a-1"), command("a-2", expires=3600.0)])
    store.save([DEVICE], None)  # devices only: commands stay as they are
    store.close()
    again = Store(tmp_path / "hub.sqlite3")
    assert again.devices() == ([DEVICE], [])
    assert again.commands() == ([command("a-1"), command("a-2", expires=3600.0)], [])
    again.save((), [command("a-3")])  # the full set of commands replaces the stored one
    assert again.commands() == ([command("a-3")], [])
    again.save((), ())
    assert again.commands() == ([], [])
    assert again.outbox() == (None, [])
    held = OutboxRecord((("k1@hub.example", "op@example.org", "⚠ hot"),), dropped=3)
    again.save(outbox=held)
    assert again.outbox() == (held, [])
    again.save(outbox=OutboxRecord())
    assert again.outbox() == (OutboxRecord(), [])
    again.close()


def test_a_damaged_row_is_skipped_and_named(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    store.save([DEVICE], [command("a-1")])
    store.close()
    with sqlite3.connect(tmp_path / "hub.sqlite3") as db:
        db.execute("INSERT INTO devices VALUES ('bad@hub.example', '{not json')")
        db.execute("INSERT INTO commands VALUES ('bad-1', '{}')")
    db.close()
    again = Store(tmp_path / "hub.sqlite3")
    assert again.devices() == ([DEVICE], ["bad@hub.example"])
    assert again.commands() == ([command("a-1")], ["bad-1"])
    again.close()


def _write_then_die(path: Path) -> None:
    store = Store(path)
    store.save([DEVICE], [command("a-1", expires=3600.0)])
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: the WAL holds the data


def test_a_committed_save_survives_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    writer = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(path,))
    writer.start()
    writer.join(30)
    assert writer.exitcode == -signal.SIGKILL
    store = Store(path)
    assert store.devices() == ([DEVICE], [])
    assert store.commands() == ([command("a-1", expires=3600.0)], [])
    store.close()
