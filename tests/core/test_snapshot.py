"""The core's durable state: what take_changes hands out, restore takes back, and JSON keeps."""

from __future__ import annotations

import pytest

from hub.core.events import MqttClientConnected, Tick
from hub.core.hub import Hub
from hub.core.intents import PublishMqtt, SendChat
from hub.core.mapping import Binding
from hub.core.snapshot import (
    AlertRecord,
    CommandRecord,
    DeviceRecord,
    RecordError,
    command_from_json,
    command_to_json,
    device_from_json,
    device_to_json,
)
from tests.core.test_hub import K1, OPERATOR, READINGS, T0, VIEWER, chat, logs, make_hub, of, status, telemetry, up

SUBSCRIBERS = [(K1, OPERATOR), (K1, VIEWER)]


def test_json_round_trip_keeps_every_field() -> None:
    device = DeviceRecord(
        "k1@hub.example", "hub", "k1", available=False, sleeping=False, last_live=1.5, offline_since=2.0,
        readings=(("temperature", 31.5), ("power", "on"), ("ok", True), ("count", 3)),
        alerts=(AlertRecord("hot", 10.0, 20.0, 31.5, 31.5),),
    )  # fmt: skip
    assert device_from_json(device_to_json(device)) == device
    with_session = DeviceRecord("k1@hub.example", "hub", "k1", session=True)
    assert device_from_json(device_to_json(with_session)) == with_session
    older = device_to_json(with_session).replace(',"session":true', "")  # written before sessions were kept
    assert device_from_json(older).session is None
    command = CommandRecord(
        "ab-1", "k1@hub.example", "op@example.org/phone", "set target 22 °C", 1.0, 6.0, "devices/k1/cmd",
        b'{"id":"ab-1"}\xff', expires=3601.0, queued_at=1.0, replace_key="target", expect=(("target", 22.0),),
    )  # fmt: skip
    assert command_from_json(command_to_json(command)) == command
    toggle = CommandRecord("ab-2", "k1@x", "op@x", "toggle", 1.0, 6.0, "t", b"", toggle_key="power", toggle_from=False)
    assert command_from_json(command_to_json(toggle)) == toggle


@pytest.mark.parametrize("text", ["", "[]", '{"jid": 1}', "{" * 5, '{"cid": "x", "payload": "!!"}'])
def test_damaged_rows_raise_record_error(text: str) -> None:
    with pytest.raises(RecordError):
        device_from_json(text)
    with pytest.raises(RecordError):
        command_from_json(text)


def test_take_changes_names_what_changed_and_only_that(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=SUBSCRIBERS)
    up(hub)
    hub.take_changes()
    assert not hub.take_changes()
    hub.handle(telemetry("k1", READINGS), T0)
    changes = hub.take_changes()
    assert [d.jid for d in changes.devices] == [K1] and changes.commands is None
    assert dict(changes.devices[0].readings) == READINGS
    assert not hub.take_changes()
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    changes = hub.take_changes()
    assert changes.devices == () and [c.cid for c in changes.commands or ()] == ["h-1"]
    hub.handle(Tick(), T0 + 10)  # times out: the command is gone
    assert hub.take_changes().commands == ()


def test_devices_can_wait_for_a_later_take_but_commands_never_do(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=SUBSCRIBERS)
    up(hub)
    hub.take_changes()
    hub.handle(telemetry("k1", READINGS), T0)
    assert hub.devices_changed
    assert not hub.take_changes(include_devices=False)  # kept for the batched write
    assert hub.devices_changed
    hub.handle(telemetry("k1", {"temperature": 22.5}), T0 + 1)
    hub.handle(chat(OPERATOR, "set target 22"), T0 + 1)
    changes = hub.take_changes(include_devices=False)
    # A command changed: the devices come with it, so the stored state is one consistent moment.
    assert [c.cid for c in changes.commands or ()] == ["h-1"]
    assert [d.jid for d in changes.devices] == [K1]
    assert dict(changes.devices[0].readings)["temperature"] == 22.5
    assert not hub.devices_changed and not hub.take_changes()


def _restarted(old: Hub, binding: Binding) -> Hub:
    """A new process: the records the old hub handed out, restored into a fresh core."""
    stored_devices = {}
    stored_commands: tuple[CommandRecord, ...] = ()
    changes = old.take_changes()
    stored_devices.update({d.jid: device_from_json(device_to_json(d)) for d in changes.devices})
    if changes.commands is not None:
        stored_commands = tuple(command_from_json(command_to_json(c)) for c in changes.commands)
    new = make_hub(binding, subscriptions=SUBSCRIBERS)
    new.restore(stored_devices.values(), stored_commands)
    return new


def test_restart_keeps_readings_availability_alert_and_commands(hub_binding: Binding) -> None:
    old = make_hub(hub_binding, subscriptions=SUBSCRIBERS)
    old.take_changes()
    up(old)
    old.handle(status("k1", "online"), T0)
    old.handle(telemetry("k1", {**READINGS, "temperature": 31.5}), T0)  # raises "hot"
    old.handle(chat(OPERATOR, "set target 22"), T0 + 1)  # sent, waiting for confirmation
    old.handle(status("k1", "offline", retain=False), T0 + 2)
    old.handle(chat(OPERATOR, "on"), T0 + 3)  # queued
    new = _restarted(old, hub_binding)

    device = new.devices[K1]
    assert device.available is False and device.offline_since == T0 + 2
    assert device.readings["temperature"] == 31.5 and set(device.alerts) == {"hot"}
    assert device.alerts["hot"].since == T0
    assert list(new.pending) == ["h-1"] and [c.cid for c in new.queued[K1]] == ["h-2"]

    out = up(new, T0 + 4)
    assert [c.body for c in of(SendChat, out)] == []  # nothing is said again at start-up
    out = new.handle(status("k1", "online", retain=False), T0 + 5)
    assert [p.payload for p in of(PublishMqtt, out)] == [b'{"id":"h-2","set":{"power":"on"}}']
    # The alert is still active: a reading above the threshold does not raise it twice.
    again = new.handle(telemetry("k1", {"temperature": 32.0}), T0 + 6)
    assert [c.body for c in of(SendChat, again)] == []
    # The command sent before the restart times out as it would have.
    timed_out = new.handle(Tick(), T0 + 7)
    assert [c.body for c in of(SendChat, timed_out)] == [
        "✗ set target 22 °C: no confirmation after 5 s (target 20 °C still)"
    ]


def test_restore_skips_what_the_configuration_no_longer_has(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    out = hub.restore(
        [
            DeviceRecord("x@hub.example", "gone-binding", "x"),
            DeviceRecord(K1, "hub", "k1", available=True, alerts=(AlertRecord("no-such-rule", 1, 1, 1, 1),)),
        ],
        [CommandRecord("c-1", "nobody@hub.example", OPERATOR, "on", 0, 5, "t", b"")],
    )
    assert [entry.event for entry in logs(out)] == [
        "restore.device_skipped",
        "restore.command_skipped",
        "state.restored",
    ]
    assert hub.devices[K1].available is True and hub.devices[K1].alerts == {}
    assert hub.pending == {}
    # The skipped command is still in the store: the next change rewrites the table without it.
    assert hub.take_changes().commands == ()


def test_a_device_whose_broker_session_died_with_the_hub_is_offline_until_it_reconnects(
    hub_binding: Binding,
) -> None:
    """Embedded broker: the device's session ended with the old process, whatever it said last."""
    old = make_hub(hub_binding, subscriptions=SUBSCRIBERS)
    up(old)
    old.handle(MqttClientConnected("k1", "k1"), T0)
    old.handle(status("k1", "online"), T0)
    old.handle(telemetry("k1", READINGS), T0 + 30)
    new = _restarted(old, hub_binding)
    device = new.devices[K1]
    assert not device.online and device.offline_since == T0 + 30
    new.handle(chat(OPERATOR, "on"), T0 + 60)
    assert [c.cid for c in new.queued[K1]] == ["h-1"]  # queued, not sent into the void
    up(new, T0 + 61)
    new.handle(MqttClientConnected("k1", "k1"), T0 + 62)
    assert new.devices[K1].online
    out = new.handle(status("k1", "online"), T0 + 62)  # live, but with the retain flag as amqtt passes it
    assert [p.payload for p in of(PublishMqtt, out)] == [b'{"id":"h-1","set":{"power":"on"}}']
