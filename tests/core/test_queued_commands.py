"""Commands for an offline device: queued as desired state, sent when it is back, expired with a word."""

from __future__ import annotations

import dataclasses
from typing import Any

from hub.core.events import Tick
from hub.core.hub import Hub
from hub.core.intents import Log, PublishMqtt, SendChat
from hub.core.mapping import Binding
from tests.core.test_hub import (
    K1,
    OPERATOR,
    READINGS,
    T0,
    chat,
    logs,
    make_hub,
    no_logs,
    of,
    status,
    telemetry,
    up,
)

COOK = "cook@example.org"


def offline_hub(binding: Binding, **settings: Any) -> Hub:
    """k1 known with readings, then offline (Last Will); OPERATOR subscribed."""
    base = make_hub(binding, subscriptions=[(K1, OPERATOR)])
    hub = Hub(dataclasses.replace(base.settings, **settings), subscriptions=[(K1, OPERATOR)])
    up(hub)
    hub.handle(status("k1", "online"), T0)
    hub.handle(telemetry("k1", READINGS), T0)
    hub.handle(status("k1", "offline", retain=False), T0)
    return hub


def test_queued_then_sent_when_the_device_is_back_then_confirmed(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    out = hub.handle(chat(OPERATOR, "set target 22"), T0 + 60)
    assert no_logs(out) == [SendChat(K1, OPERATOR, "→ set target 22 °C: queued until k1 is back (expires 15:03 UTC)")]
    assert [entry.event for entry in logs(out)] == ["command.queued"]
    assert hub.pending == {} and len(hub.queued[K1]) == 1

    back = hub.handle(status("k1", "online", retain=False), T0 + 600)
    assert of(PublishMqtt, back) == [PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"target":22.0}}', qos=1)]
    assert of(SendChat, back) == [SendChat(K1, OPERATOR, "→ sent: set target 22 °C (k1 is back)")]
    assert hub.queued == {} and list(hub.pending) == ["h-1"]

    echo = hub.handle(telemetry("k1", {"target": 22}), T0 + 601)
    assert of(SendChat, echo) == [SendChat(K1, OPERATOR, "✓ set target 22 °C: confirmed in 1.0 s")]
    assert hub.pending == {}


def test_a_retained_message_is_not_the_device_coming_back(hub_binding: Binding) -> None:
    """Retained telemetry is the broker's memory, not the device: nothing is sent on it."""
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "on"), T0)
    retained = telemetry("k1", {"power": "off"})
    out = hub.handle(dataclasses.replace(retained, retain=True), T0 + 1)
    assert of(PublishMqtt, out) == [] and len(hub.queued[K1]) == 1


def test_live_telemetry_brings_the_queue_out_for_devices_without_availability(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "on"), T0)
    hub.handle(status("k1", "online"), T0 + 1)  # retained online: available again...
    assert K1 not in hub.queued  # ...and an availability message counts, retained or not
    assert list(hub.pending) == ["h-1"]


def test_expired_command_is_reported_and_never_sent(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding, queued_command_expiry=600.0)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    assert no_logs(hub.handle(Tick(), T0 + 599)) == []
    out = hub.handle(Tick(), T0 + 600)
    assert of(SendChat, out) == [
        SendChat(K1, OPERATOR, "✗ set target 22 °C expired: k1 did not come back (queued at 14:02 UTC)")
    ]
    assert [entry.event for entry in logs(out)] == ["command.expired"]
    assert hub.queued == {}
    assert of(PublishMqtt, hub.handle(status("k1", "online", retain=False), T0 + 700)) == []


def test_a_newer_value_for_the_same_property_replaces_the_queued_one(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    out = hub.handle(chat(OPERATOR, "set target 23"), T0 + 1)
    assert no_logs(out) == [
        SendChat(K1, OPERATOR, "→ set target 23 °C: queued until k1 is back (expires 15:02 UTC)"),
        SendChat(K1, OPERATOR, "✗ set target 22 °C: replaced by set target 23 °C before k1 came back"),
    ]
    hub.handle(chat(OPERATOR, "off"), T0 + 2)
    hub.handle(chat(OPERATOR, "on"), T0 + 3)  # replaces "off": same switch
    hub.handle(chat(OPERATOR, "toggle"), T0 + 4)  # a toggle is an action, not a state: kept
    back = hub.handle(status("k1", "online", retain=False), T0 + 5)
    assert [p.payload for p in of(PublishMqtt, back)] == [
        b'{"id":"h-2","set":{"target":23.0}}',
        b'{"id":"h-4","set":{"power":"on"}}',
        b'{"id":"h-5","set":{"power":"toggle"}}',
    ]


def test_queue_is_bounded_per_device_and_in_total(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding, max_queued_per_device=2, max_queued_commands=3)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    hub.handle(chat(OPERATOR, "on"), T0)
    full = hub.handle(chat(OPERATOR, "toggle"), T0)
    assert no_logs(full) == [
        SendChat(K1, OPERATOR, "k1 is offline and already has 2 commands waiting; nothing was queued.")
    ]
    assert [entry.event for entry in logs(full)] == ["command.queue_full"]
    # Replacing a queued value does not need a free place.
    assert "queued until" in of(SendChat, hub.handle(chat(OPERATOR, "set target 23"), T0))[0].body

    hub.handle(telemetry("k2", {"power": "off"}), T0)  # k2 appears online...
    hub.handle(status("k2", "offline", retain=False), T0)  # ...and goes
    k2 = "k2@hub.example"
    assert "queued until" in of(SendChat, hub.handle(chat(OPERATOR, "on", to=k2), T0))[0].body
    refused = hub.handle(chat(OPERATOR, "off", to=k2), T0)  # replaces: fine
    assert "queued until" in of(SendChat, refused)[0].body
    refused = hub.handle(chat(OPERATOR, "toggle", to=k2), T0)
    assert of(SendChat, refused) == [
        SendChat(k2, OPERATOR, "k2 is offline and the hub's command queue is full; nothing was queued.")
    ]
    assert sum(len(q) for q in hub.queued.values()) == 3


def test_queued_command_unconfirmed_after_delivery_times_out_as_usual(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    hub.handle(status("k1", "online", retain=False), T0 + 100)
    out = hub.handle(Tick(), T0 + 105)
    assert of(SendChat, out) == [
        SendChat(K1, OPERATOR, "✗ set target 22 °C: no confirmation after 5 s (target 20 °C still)")
    ]


def test_toggle_compares_with_the_state_at_delivery(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "toggle"), T0)  # power was off when queued
    # Switched on by hand meanwhile: the broker's retained state says so before the device is back.
    hub.handle(dataclasses.replace(telemetry("k1", {"power": "on"}), retain=True), T0 + 5)
    hub.handle(status("k1", "online", retain=False), T0 + 10)
    assert hub.pending["h-1"].toggle_from == "on"
    assert of(SendChat, hub.handle(telemetry("k1", {"power": "on"}), T0 + 11)) == []
    confirmed = hub.handle(telemetry("k1", {"power": "off"}), T0 + 12)
    assert of(SendChat, confirmed) == [SendChat(K1, OPERATOR, "✓ toggle: power off: confirmed in 2.0 s")]


def test_refusals_are_not_queued(hub_binding: Binding) -> None:
    """Validation happens when the command is typed, not when the device is back."""
    hub = offline_hub(hub_binding)
    out = hub.handle(chat(OPERATOR, "set target 50"), T0)
    assert of(SendChat, out)[0].body.startswith("50 is out of range")
    assert hub.queued == {}
    assert not [i for i in out if isinstance(i, Log) and i.event == "command.queued"]


def test_status_lists_what_waits_for_the_device(hub_binding: Binding) -> None:
    hub = offline_hub(hub_binding)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    hub.handle(chat(OPERATOR, "on"), T0 + 60)
    body = of(SendChat, hub.handle(chat(OPERATOR, "status"), T0 + 61))[0].body
    assert body.endswith("\n  queued: set target 22 °C (expires 15:02 UTC)\n  queued: on (expires 15:03 UTC)"), body
