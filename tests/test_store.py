"""The SQLite store: devices, commands and the broker's state survive closing (and killing) the process
that wrote them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from dataclasses import replace
from pathlib import Path

from bridges.mqtt.persistence import BrokerChanges, QueuedMessage, RetainedMessage, SessionRecord, SessionUpdate
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


SESSION = SessionRecord(
    "plug-1",
    "plug-1",
    (("devices/plug-1/cmd", 1), ("devices/plug-1/cmd/#", 0)),
    (QueuedMessage(7, "devices/plug-1/cmd", b"\x00\xffbinary", 1), QueuedMessage(9, "devices/plug-1/cmd", b"on", 1)),
    1234.0,
)


def queued(*seqs: int) -> tuple[QueuedMessage, ...]:
    return tuple(QueuedMessage(seq, "devices/plug-1/cmd", b"%d" % seq, 1) for seq in seqs)


def test_broker_state_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    retained = RetainedMessage("devices/plug-1/status", b"online", 1)
    store.save_broker_changes(
        BrokerChanges({retained.topic: retained}, {"plug-1": SessionUpdate(SESSION, 7), "gone": None})
    )
    store.close()
    again = Store(tmp_path / "hub.sqlite3")
    state, bad = again.broker_state()
    assert (state.retained, state.sessions, bad) == ((retained,), (SESSION,), [])
    again.save_broker_changes(BrokerChanges({retained.topic: None}, {"plug-1": None}))
    assert again.broker_state()[0].retained == () and again.broker_state()[0].sessions == ()
    again.close()


def test_a_damaged_broker_row_is_skipped_and_named(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    store.save_broker_changes(BrokerChanges(sessions={"plug-1": SessionUpdate(SESSION, 7)}))
    store.close()
    with sqlite3.connect(tmp_path / "hub.sqlite3") as db:
        db.execute("INSERT INTO mqtt_sessions VALUES ('broken', '{\"username\": 3}')")
        db.execute("INSERT INTO mqtt_retained VALUES ('t', 'text, not bytes', 1)")
        db.execute("INSERT INTO mqtt_queued VALUES ('plug-1', 11, 'devices/plug-1/cmd', x'00', 3)")
    again = Store(tmp_path / "hub.sqlite3")
    state, bad = again.broker_state()
    assert state.sessions == (SESSION,) and state.retained == ()
    assert sorted(bad) == ["mqtt_queued:plug-1:11", "mqtt_retained:t", "mqtt_sessions:broken"]
    again.close()


def test_a_session_queue_is_written_as_what_came_and_went(tmp_path: Path) -> None:
    """Each save adds the new messages and drops those before the first kept: the queue is never rewritten."""
    store = Store(tmp_path / "hub.sqlite3")
    session = SessionRecord("plug-1", "plug-1", (("devices/plug-1/cmd", 1),))
    store.save_broker_changes(
        BrokerChanges(sessions={"plug-1": SessionUpdate(replace(session, queued=queued(1, 2)), 1)})
    )
    store.save_broker_changes(BrokerChanges(sessions={"plug-1": SessionUpdate(replace(session, queued=queued(3)), 2)}))
    assert store.broker_state()[0].sessions == (replace(session, queued=queued(2, 3)),)
    store.save_broker_changes(BrokerChanges(sessions={"plug-1": SessionUpdate(session, None)}))  # all delivered
    assert store.broker_state()[0].sessions == (session,)
    store.close()


def test_unwritten_session_changes_merge_into_one(tmp_path: Path) -> None:
    """A save that failed is retried together with the next changes: nothing queued in between is lost."""
    session = SessionRecord("plug-1", "plug-1", ())
    pending = BrokerChanges(sessions={"plug-1": SessionUpdate(replace(session, queued=queued(4, 5)), 4)})
    pending.merge(BrokerChanges(sessions={"plug-1": SessionUpdate(replace(session, queued=queued(6)), 5)}))
    assert pending.sessions["plug-1"] == SessionUpdate(replace(session, queued=queued(5, 6)), 5)
    pending.merge(BrokerChanges(sessions={"plug-1": None}))
    assert pending.sessions["plug-1"] is None
