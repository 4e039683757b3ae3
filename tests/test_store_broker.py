"""hub.store's tables for the embedded broker: retained messages, persistent sessions, queued messages."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from bridges.mqtt.persistence import BrokerChanges, QueuedMessage, RetainedMessage, SessionRecord, SessionUpdate
from hub.store import Store

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
