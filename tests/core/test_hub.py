"""The Hub state machine end to end, in memory: events in, intents out, time as an argument."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TypeVar

import pytest

from hub.core.alerts import AlertRule
from hub.core.auth import Grant
from hub.core.device import DeviceConfig
from hub.core.events import (
    ChatReceived,
    Event,
    MqttClientConnected,
    MqttClientDisconnected,
    MqttLinkDown,
    MqttLinkUp,
    MqttMessageReceived,
    PresenceProbed,
    SubscriptionCancelled,
    SubscriptionRequested,
    Tick,
    XmppLinkDown,
    XmppLinkUp,
)
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat, SendPresence, SendSubscription, Show, StoreSubscription
from hub.core.mapping import Binding
from hub.core.profile import Role

DOMAIN = "hub.example"
K1 = "k1@hub.example"
K2 = "k2@hub.example"
ADMIN = "admin@example.org"
OPERATOR = "op@example.org"
VIEWER = "viewer@example.org"
COOK = "cook@example.org"  # operator for the kitchen group only
STRANGER = "eve@elsewhere.example"

GRANTS = {
    ADMIN: Grant(Role.ADMIN),
    OPERATOR: Grant(Role.OPERATOR),
    VIEWER: Grant(Role.VIEWER),
    COOK: Grant(Role.OPERATOR, groups=frozenset({"kitchen"})),
}
HOT = AlertRule("hot", "temperature", ">", 30.0, hysteresis=1.0, repeat_every=300.0)

IntentT = TypeVar("IntentT", bound=Intent)

T0 = 14 * 3600 + 2 * 60.0  # 14:02 UTC on day one
READINGS = {"temperature": 21.6, "humidity": 48, "battery": 87, "target": 20, "power": "off"}
READINGS_TEXT = "21.6 °C · 48 % · target 20 °C · power off · battery 87 %"


def make_hub(binding: Binding, subscriptions: Iterable[tuple[str, str]] = (), *, confirm_timeout: float = 5.0) -> Hub:
    settings = HubSettings(
        domain=DOMAIN,
        bindings=(binding,),
        devices={"k1": DeviceConfig("k1", name="Kitchen", group="kitchen")},
        grants=GRANTS,
        alert_rules=(HOT,),
        confirm_timeout=confirm_timeout,
    )
    return Hub(settings, subscriptions=subscriptions)


def no_logs(intents: Sequence[Intent]) -> list[Intent]:
    return [i for i in intents if not isinstance(i, Log)]


def logs(intents: Sequence[Intent]) -> list[Log]:
    return [i for i in intents if isinstance(i, Log)]


def of(kind: type[IntentT], intents: Sequence[Intent]) -> list[IntentT]:
    return [i for i in intents if isinstance(i, kind)]


def telemetry(device: str, readings: dict[str, object]) -> MqttMessageReceived:
    return MqttMessageReceived(f"devices/{device}/telemetry", json.dumps(readings).encode())


def status(device: str, text: str, retain: bool = True) -> MqttMessageReceived:
    return MqttMessageReceived(f"devices/{device}/status", text.encode(), retain=retain)


def chat(sender: str, body: str, to: str = K1) -> ChatReceived:
    return ChatReceived(sender, to, body)


def up(hub: Hub, now: float = T0) -> list[Intent]:
    return hub.handle(XmppLinkUp(), now) + hub.handle(MqttLinkUp(), now)


@pytest.fixture
def hub(hub_binding: Binding) -> Hub:
    """Both links up, k1 online with readings, OPERATOR and VIEWER subscribed to k1 (persisted)."""
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR), (K1, VIEWER)])
    up(hub)
    hub.handle(status("k1", "online"), T0)
    hub.handle(telemetry("k1", READINGS), T0)
    return hub


def presence_to(who: str, show: Show, status_text: str, device: str = K1) -> SendPresence:
    return SendPresence(device, who, show, status_text)


def both(show: Show, status_text: str, device: str = K1) -> list[Intent]:
    return [presence_to(OPERATOR, show, status_text, device), presence_to(VIEWER, show, status_text, device)]


# ================================================================ subscriptions and presence


def test_subscribe_by_an_operator(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    assert no_logs(up(hub)) == []
    out = hub.handle(SubscriptionRequested(OPERATOR + "/phone", K1), T0)
    assert out == [
        SendSubscription(K1, OPERATOR, "subscribed"),
        StoreSubscription(K1, OPERATOR, True),
        Log("info", "subscription.added", {"jid": OPERATOR, "device": K1}),
        SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "not seen yet"),
    ]
    assert hub.subscribers == {K1: {OPERATOR}}
    # Asking again is answered, but nothing new is stored.
    again = hub.handle(SubscriptionRequested(OPERATOR, K1), T0 + 1)
    assert again == [
        SendSubscription(K1, OPERATOR, "subscribed"),
        SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "not seen yet"),
    ]


def test_subscribe_to_an_online_device_gets_its_readings(hub: Hub) -> None:
    out = no_logs(hub.handle(SubscriptionRequested(ADMIN, K1), T0 + 1))
    assert out == [
        SendSubscription(K1, ADMIN, "subscribed"),
        StoreSubscription(K1, ADMIN, True),
        SendPresence(K1, ADMIN, Show.AVAILABLE, READINGS_TEXT),
    ]


def test_subscribe_before_the_broker_is_up(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    hub.handle(XmppLinkUp(), T0)
    out = hub.handle(SubscriptionRequested(OPERATOR, K1), T0)
    assert out[-1] == SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "hub is starting")


def test_stranger_subscription_is_refused_and_not_stored(hub: Hub) -> None:
    before = {k: set(v) for k, v in hub.subscribers.items()}
    out = hub.handle(SubscriptionRequested(STRANGER + "/laptop", K1), T0)
    assert out == [
        SendSubscription(K1, STRANGER, "unsubscribed"),
        Log("warning", "subscription.refused", {"jid": STRANGER, "device": K1}),
    ]
    assert hub.subscribers == before
    assert of(StoreSubscription, out) == []


def test_group_operator_may_not_subscribe_outside_the_group(hub: Hub) -> None:
    hub.handle(telemetry("k2", {"temperature": 19}), T0)  # k2 has no group
    assert no_logs(hub.handle(SubscriptionRequested(COOK, K2), T0)) == [SendSubscription(K2, COOK, "unsubscribed")]
    assert no_logs(hub.handle(SubscriptionRequested(COOK, K1), T0))[0] == SendSubscription(K1, COOK, "subscribed")


def test_subscription_to_a_foreign_domain_is_refused(hub: Hub) -> None:
    out = no_logs(hub.handle(SubscriptionRequested(OPERATOR, "k1@other.example"), T0))
    assert out == [SendSubscription("k1@other.example", OPERATOR, "unsubscribed")]


def test_unsubscribe(hub: Hub) -> None:
    out = hub.handle(SubscriptionCancelled(VIEWER + "/res", K1), T0)
    assert out == [
        StoreSubscription(K1, VIEWER, False),
        Log("info", "subscription.removed", {"jid": VIEWER, "device": K1}),
    ]
    assert hub.subscribers == {K1: {OPERATOR}}
    assert hub.handle(SubscriptionCancelled(VIEWER, K1), T0) == []
    assert hub.handle(SubscriptionCancelled(STRANGER, K1), T0) == []


def test_probe_from_a_persisted_subscriber_gets_presence(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR)])
    # Right after start, before any link: still answered with presence, never 'unsubscribed'.
    assert hub.handle(PresenceProbed(OPERATOR + "/phone", K1), T0) == [
        SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "hub is starting")
    ]
    up(hub)
    hub.handle(telemetry("k1", READINGS), T0)
    assert hub.handle(PresenceProbed(OPERATOR, K1), T0 + 1) == [
        SendPresence(K1, OPERATOR, Show.AVAILABLE, READINGS_TEXT)
    ]


def test_probe_for_a_device_not_seen_since_start(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K2, OPERATOR)])
    up(hub)
    assert hub.handle(PresenceProbed(OPERATOR, K2), T0) == [
        SendPresence(K2, OPERATOR, Show.UNAVAILABLE, "not seen yet")
    ]


def test_probe_from_a_stranger_is_unsubscribed(hub: Hub) -> None:
    assert hub.handle(PresenceProbed(STRANGER, K1), T0) == [SendSubscription(K1, STRANGER, "unsubscribed")]


def test_probe_from_an_operator_without_subscription_is_unsubscribed(hub: Hub) -> None:
    assert hub.handle(PresenceProbed(ADMIN, K1), T0) == [SendSubscription(K1, ADMIN, "unsubscribed")]


def test_probe_from_a_subscriber_no_longer_on_the_list_forgets_them(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, "former@example.org")])
    up(hub)
    assert hub.handle(PresenceProbed("former@example.org", K1), T0) == [
        SendSubscription(K1, "former@example.org", "unsubscribed"),
        StoreSubscription(K1, "former@example.org", False),
        Log("info", "subscription.removed", {"jid": "former@example.org", "device": K1}),
    ]
    assert hub.subscribers == {}


def test_link_up_announces_to_persisted_subscribers(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR), (K2, VIEWER)])
    out = no_logs(hub.handle(XmppLinkUp(), T0))
    assert out == [
        SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "hub is starting"),
        SendPresence(K2, VIEWER, Show.UNAVAILABLE, "not seen yet"),
    ]
    assert no_logs(hub.handle(MqttLinkUp(), T0)) == [SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "not seen yet")]


# ================================================================ telemetry and availability


def test_telemetry_updates_presence_of_subscribers_only(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR), (K1, VIEWER), (K1, STRANGER)])
    up(hub)
    out = hub.handle(telemetry("k1", {"temperature": 21.6, "humidity": 48, "battery": 87}), T0)
    assert out == both(Show.AVAILABLE, "21.6 °C · 48 % · battery 87 %")  # not to STRANGER, ADMIN or COOK


def test_unchanged_presence_is_not_sent_again(hub: Hub) -> None:
    assert hub.handle(telemetry("k1", READINGS), T0 + 10) == []
    assert hub.handle(Tick(), T0 + 20) == []


def test_new_device_is_logged_and_announced_to_its_subscribers(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K2, OPERATOR)])
    up(hub)
    out = hub.handle(telemetry("k2", {"temperature": 19.5}), T0)
    assert out == [
        Log("info", "device.new", {"device": "k2", "jid": K2, "topic": "devices/k2/telemetry"}),
        SendPresence(K2, OPERATOR, Show.AVAILABLE, "19.5 °C"),
    ]


def test_last_will_offline(hub: Hub) -> None:
    later = T0 + 3600  # 15:02
    # Delivered live to the hub's subscription, so without the retain flag.
    out = hub.handle(status("k1", "offline", retain=False), later)
    assert out == both(Show.UNAVAILABLE, "offline since 15:02 UTC · " + READINGS_TEXT)
    # Coming back: a live 'online' is fresh news.
    out = hub.handle(status("k1", "online", retain=False), later + 60)
    assert out == both(Show.AVAILABLE, READINGS_TEXT)


def test_retained_online_is_not_fresh_data(hub: Hub) -> None:
    hub.handle(status("k1", "offline"), T0 + 3600)
    # A retained 'online' says the device is there, not that its readings are recent.
    assert hub.handle(status("k1", "online"), T0 + 3660) == both(
        Show.AWAY, "no data since 14:02 UTC · " + READINGS_TEXT
    )


def test_retained_offline_at_start_is_not_a_moment(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR)])
    up(hub)
    out = hub.handle(status("k1", "offline", retain=True), T0)
    assert out == [SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "offline")]


def test_session_disconnect_is_offline(hub: Hub) -> None:
    out = hub.handle(MqttClientDisconnected(client_id="k1"), T0 + 60)
    assert out == both(Show.UNAVAILABLE, "offline since 14:03 UTC · " + READINGS_TEXT)
    out = hub.handle(MqttClientConnected(client_id="k1"), T0 + 120)
    assert out == both(Show.AVAILABLE, READINGS_TEXT)


def test_session_of_another_client_changes_nothing(hub: Hub) -> None:
    assert hub.handle(MqttClientDisconnected(client_id="someone-else"), T0) == []


def test_sleeping_device_is_xa(hub: Hub) -> None:
    assert hub.handle(status("k1", "sleeping"), T0 + 5) == both(Show.XA, "sleeping · " + READINGS_TEXT)


def test_silence_beyond_the_expected_interval_is_away(hub: Hub) -> None:
    # The hub profile expects a message every 120 s.
    assert hub.handle(Tick(), T0 + 120) == []
    assert hub.handle(Tick(), T0 + 121) == both(Show.AWAY, "no data since 14:02 UTC · " + READINGS_TEXT)
    assert hub.handle(Tick(), T0 + 600) == []  # the text names a moment: nothing new to say
    assert hub.handle(telemetry("k1", READINGS), T0 + 601) == both(Show.AVAILABLE, READINGS_TEXT)


def test_bad_availability_payload_is_logged(hub: Hub) -> None:
    out = hub.handle(status("k1", "maybe"), T0)
    assert out == [
        Log(
            "warning",
            "payload.bad_availability",
            {"topic": "devices/k1/status", "reason": "availability word 'maybe' is not one of the profile's"},
        )
    ]


def test_mqtt_link_down_and_up(hub: Hub) -> None:
    assert no_logs(hub.handle(MqttLinkDown(), T0 + 60)) == both(Show.UNAVAILABLE, "hub lost its broker at 14:03 UTC")
    assert no_logs(hub.handle(MqttLinkUp(), T0 + 120)) == both(Show.AVAILABLE, READINGS_TEXT)


def test_own_command_topic_is_ignored(hub: Hub) -> None:
    assert hub.handle(MqttMessageReceived("devices/k1/cmd", b'{"id": "x"}'), T0) == []
    assert hub.handle(MqttMessageReceived("elsewhere/k1", b"{}"), T0) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "payload is not JSON: Expecting value"),
        (b"[1, 2]", "payload is JSON list, expected an object"),
        (b"\xff\xfe", "payload is not UTF-8 (byte 0)"),
        (b'{"t": ' + b"9" * 5000 + b"}", "payload is not JSON: a number is too long"),
        (b"{" * 70_000, "payload of 70000 bytes is over the 65536-byte limit"),
    ],
)
def test_malformed_telemetry_is_logged_and_other_devices_keep_working(hub: Hub, payload: bytes, reason: str) -> None:
    out = hub.handle(MqttMessageReceived("devices/k1/telemetry", payload), T0 + 1)
    assert out == [
        Log("warning", "payload.rejected", {"topic": "devices/k1/telemetry", "device": "k1", "reason": reason})
    ]
    assert hub.devices[K1].readings == READINGS
    hub.handle(SubscriptionRequested(OPERATOR, K2), T0 + 2)
    assert no_logs(hub.handle(telemetry("k2", {"temperature": 18}), T0 + 3)) == [
        SendPresence(K2, OPERATOR, Show.AVAILABLE, "18 °C")
    ]


def test_huge_numbers_do_not_crash_the_hub(hub: Hub) -> None:
    huge = b"1" + b"0" * 400
    out = hub.handle(MqttMessageReceived("devices/k1/telemetry", b'{"temperature": ' + huge + b', "humidity": 50}'), T0)
    assert out == both(Show.AVAILABLE, READINGS_TEXT.replace("48 %", "50 %"))
    out = hub.handle(MqttMessageReceived("devices/k1/cmd/result", b'{"id": ' + b"9" * 5000 + b"}"), T0)
    assert out == [Log("warning", "payload.bad_result", {"topic": "devices/k1/cmd/result", "device": "k1"})]
    out = hub.handle(MqttMessageReceived("devices/k1/cmd/result", b"[" * 60_000), T0)
    assert out == [Log("warning", "payload.bad_result", {"topic": "devices/k1/cmd/result", "device": "k1"})]


def test_bad_device_id_is_logged(hub: Hub) -> None:
    out = hub.handle(MqttMessageReceived("devices/ spaced/telemetry", b"{}"), T0)
    assert [(log.event, log.fields["topic"]) for log in logs(out)] == [("device.bad_id", "devices/ spaced/telemetry")]
    assert no_logs(out) == []


def test_ids_that_differ_only_in_case_are_a_collision(hub: Hub) -> None:
    out = hub.handle(telemetry("K1", {"temperature": 99}), T0)
    assert out == [
        Log("warning", "device.jid_collision", {"topic": "devices/K1/telemetry", "jid": K1, "owner": "hub:k1"})
    ]
    assert hub.devices[K1].readings["temperature"] == 21.6


# ================================================================ alerts


def test_alert_raise_repeat_and_clear(hub: Hub) -> None:
    raised = hub.handle(telemetry("k1", {"temperature": 31.2}), T0 + 60)
    hot_text = READINGS_TEXT.replace("21.6 °C", "31.2 °C")
    assert no_logs(raised) == [
        SendChat(K1, OPERATOR, "⚠ Kitchen: temperature 31.2 °C > 30 °C"),
        SendChat(K1, VIEWER, "⚠ Kitchen: temperature 31.2 °C > 30 °C"),
        *both(Show.DND, "temperature 31.2 °C > 30 °C · " + hot_text),
    ]
    assert logs(raised) == [Log("warning", "alert.raised", {"device": "k1", "rule": "hot", "value": 31.2})]
    # Still hot: no new message, and no repeat before the interval (300 s).
    assert hub.handle(telemetry("k1", {"temperature": 31.2}), T0 + 70) == []
    assert hub.handle(Tick(), T0 + 359) == []
    repeat = [
        SendChat(K1, OPERATOR, "⚠ Kitchen: still temperature 31.2 °C > 30 °C (since 14:03 UTC)"),
        SendChat(K1, VIEWER, "⚠ Kitchen: still temperature 31.2 °C > 30 °C (since 14:03 UTC)"),
    ]
    hub.handle(telemetry("k1", {"temperature": 31.2}), T0 + 300)  # keep it fresh
    assert hub.handle(Tick(), T0 + 360) == repeat
    assert hub.handle(Tick(), T0 + 361) == []
    assert hub.handle(Tick(), T0 + 659) == []  # silent by now, but an alert outranks silence
    # Within the hysteresis band (30 - 1 < 29.5 <= 30): still active.
    out = hub.handle(telemetry("k1", {"temperature": 29.5}), T0 + 700)
    assert of(SendChat, out) == []
    assert of(SendPresence, out)[0].show is Show.DND
    cleared = hub.handle(telemetry("k1", {"temperature": 28.5}), T0 + 710)
    assert no_logs(cleared) == [
        SendChat(K1, OPERATOR, "✓ Kitchen: back to normal, temperature 28.5 °C (alert since 14:03 UTC)"),
        SendChat(K1, VIEWER, "✓ Kitchen: back to normal, temperature 28.5 °C (alert since 14:03 UTC)"),
        *both(Show.AVAILABLE, READINGS_TEXT.replace("21.6 °C", "28.5 °C")),
    ]
    assert hub.devices[K1].alerts == {}


def test_alert_ignores_non_numeric_values(hub: Hub) -> None:
    out = hub.handle(telemetry("k1", {"temperature": "hot"}), T0 + 1)
    assert of(SendChat, out) == []
    assert hub.devices[K1].alerts == {}


# ================================================================ commands


def test_set_confirmed_by_the_telemetry_echo(hub: Hub) -> None:
    sent = hub.handle(chat(OPERATOR + "/phone", "set target 21.5"), T0 + 10)
    assert sent == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"target":21.5}}', qos=1),
        SendChat(K1, OPERATOR + "/phone", "→ sent: set target 21.5 °C"),
        Log(
            "info",
            "command.sent",
            {"jid": OPERATOR, "device": "k1", "command": "set target 21.5 °C", "cid": "h-1", "topic": "devices/k1/cmd"},
        ),
    ]
    assert json.loads(sent[0].payload) == {"id": "h-1", "set": {"target": 21.5}}  # type: ignore[union-attr]
    # Another reading does not confirm it.
    assert of(SendChat, hub.handle(telemetry("k1", {"humidity": 49}), T0 + 10.2)) == []
    echo = hub.handle(telemetry("k1", {"target": 21.5}), T0 + 10.4)
    assert of(SendChat, echo) == [SendChat(K1, OPERATOR + "/phone", "✓ set target 21.5 °C: confirmed in 0.4 s")]
    assert hub.pending == {}
    assert hub.handle(Tick(), T0 + 20) == []  # confirmed: no time-out later


@pytest.mark.parametrize("value", ["21.5°C", "21.5 °C", "21,5"])
def test_set_with_unit(hub: Hub, value: str) -> None:
    out = hub.handle(chat(OPERATOR, f"set target {value}"), T0)
    assert out[0] == PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"target":21.5}}')


def test_set_whole_number_is_shown_as_written(hub: Hub) -> None:
    out = hub.handle(chat(OPERATOR, "set target 22"), T0)
    assert out[:2] == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"target":22.0}}'),
        SendChat(K1, OPERATOR, "→ sent: set target 22 °C"),
    ]


def test_set_confirmed_by_a_result(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    result = MqttMessageReceived("devices/k1/cmd/result", b'{"id": "h-1", "ok": true}')
    out = hub.handle(result, T0 + 0.3)
    assert out == [
        SendChat(K1, OPERATOR, "✓ set target 21.5 °C: done in 0.3 s"),
        Log("info", "command.confirmed", {"device": "k1", "operator": OPERATOR, "cid": "h-1"}),
    ]
    # A second answer with the same id matches nothing any more.
    assert no_logs(hub.handle(result, T0 + 0.4)) == []


def test_set_refused_by_the_device(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    result = MqttMessageReceived("devices/k1/cmd/result", b'{"id": "h-1", "ok": false, "message": "valve stuck"}')
    assert no_logs(hub.handle(result, T0 + 1)) == [
        SendChat(K1, OPERATOR, "✗ set target 21.5 °C: the device refused: valve stuck")
    ]
    assert hub.pending == {}


def test_result_with_another_id_is_not_a_confirmation(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    out = hub.handle(MqttMessageReceived("devices/k1/cmd/result", b'{"id": "h-99", "ok": true}'), T0 + 1)
    assert out == [Log("debug", "command.result_unmatched", {"topic": "devices/k1/cmd/result", "cid": "h-99"})]
    assert list(hub.pending) == ["h-1"]


def test_result_for_another_device_is_not_a_confirmation(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    hub.handle(telemetry("k2", {"temperature": 1}), T0)
    out = hub.handle(MqttMessageReceived("devices/k2/cmd/result", b'{"id": "h-1"}'), T0 + 1)
    assert of(SendChat, out) == []
    assert list(hub.pending) == ["h-1"]


def test_set_times_out(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    assert hub.handle(Tick(), T0 + 4.9) == []
    out = hub.handle(Tick(), T0 + 5)
    assert out == [
        SendChat(K1, OPERATOR, "✗ set target 21.5 °C: no confirmation after 5 s (target 20 °C still)"),
        Log("warning", "command.unconfirmed", {"device": K1, "operator": OPERATOR, "cid": "h-1"}),
    ]
    assert hub.pending == {}
    assert hub.handle(Tick(), T0 + 10) == []


def test_confirm_timeout_is_a_setting(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, confirm_timeout=2.5)
    up(hub)
    hub.handle(telemetry("k1", READINGS), T0)
    hub.handle(chat(OPERATOR, "set target 21.5"), T0)
    assert of(SendChat, hub.handle(Tick(), T0 + 2.5)) == [
        SendChat(K1, OPERATOR, "✗ set target 21.5 °C: no confirmation after 2.5 s (target 20 °C still)")
    ]


def test_on_and_off(hub: Hub) -> None:
    out = hub.handle(chat(OPERATOR, "on"), T0)
    assert no_logs(out) == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"power":"on"}}'),
        SendChat(K1, OPERATOR, "→ sent: on"),
    ]
    assert of(SendChat, hub.handle(telemetry("k1", {"power": "ON"}), T0 + 0.5)) == [
        SendChat(K1, OPERATOR, "✓ on: confirmed in 0.5 s")
    ]
    out = hub.handle(chat(OPERATOR, "off 2"), T0 + 1)
    assert no_logs(out) == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-2","set":{"power2":"off"}}'),
        SendChat(K1, OPERATOR, "→ sent: off 2"),
    ]


def test_toggle_confirmed_when_the_state_changes(hub: Hub) -> None:
    out = hub.handle(chat(OPERATOR, "toggle"), T0)
    assert out[0] == PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"power":"toggle"}}')
    assert out[1] == SendChat(K1, OPERATOR, "→ sent: toggle")
    assert of(SendChat, hub.handle(telemetry("k1", {"power": "off"}), T0 + 0.2)) == []
    assert of(SendChat, hub.handle(telemetry("k1", {"power": "on"}), T0 + 0.6)) == [
        SendChat(K1, OPERATOR, "✓ toggle: power on: confirmed in 0.6 s")
    ]


@pytest.mark.parametrize(
    ("before", "after", "shown"), [(False, True, "power on"), (0, 1, "power 1"), (True, False, "power off")]
)
def test_toggle_from_a_falsy_state_waits_for_the_change(
    hub_binding: Binding, before: object, after: object, shown: str
) -> None:
    hub = make_hub(hub_binding)
    up(hub)
    hub.handle(telemetry("k1", {"temperature": 20, "power": before}), T0)
    hub.handle(chat(OPERATOR, "toggle"), T0)
    # A message that does not change the switch must not confirm the toggle.
    assert of(SendChat, hub.handle(telemetry("k1", {"temperature": 20.5}), T0 + 0.5)) == []
    assert of(SendChat, hub.handle(telemetry("k1", {"power": before}), T0 + 0.7)) == []
    assert of(SendChat, hub.handle(telemetry("k1", {"power": after}), T0 + 1)) == [
        SendChat(K1, OPERATOR, f"✓ toggle: {shown}: confirmed in 1.0 s")
    ]


def test_toggle_times_out_without_a_change(hub: Hub) -> None:
    hub.handle(chat(OPERATOR, "toggle"), T0)
    assert of(SendChat, hub.handle(Tick(), T0 + 5)) == [SendChat(K1, OPERATOR, "✗ toggle: no confirmation after 5 s")]


def test_verbs_and_their_roles(hub: Hub) -> None:
    assert no_logs(hub.handle(chat(OPERATOR, "identify"), T0)) == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-1","action":"identify"}'),
        SendChat(K1, OPERATOR, "→ sent: identify"),
    ]
    out = hub.handle(chat(OPERATOR, "reboot"), T0)
    assert out == [
        SendChat(K1, OPERATOR, "Your role (operator) may not do that; it needs admin. Nothing was sent."),
        Log("warning", "command.forbidden", {"jid": OPERATOR, "device": "k1", "role": "operator"}),
    ]
    assert no_logs(hub.handle(chat(ADMIN, "reboot"), T0)) == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-2","action":"reboot"}'),
        SendChat(K1, ADMIN, "→ sent: reboot"),
    ]


def test_viewer_may_read_but_not_command(hub: Hub) -> None:
    for body in ("set target 21.5", "on", "toggle", "identify"):
        out = hub.handle(chat(VIEWER, body), T0)
        assert out == [
            SendChat(K1, VIEWER, "Your role (viewer) may not do that; it needs operator. Nothing was sent."),
            Log("warning", "command.forbidden", {"jid": VIEWER, "device": "k1", "role": "viewer"}),
        ]
    assert hub.pending == {}
    assert hub.handle(chat(VIEWER, "temperature?"), T0) == [SendChat(K1, VIEWER, "temperature 21.6 °C")]


@pytest.mark.parametrize("body", ["set target 21.5", "on", "status", "help", "temperature?"])
def test_stranger_chat_is_refused_and_nothing_is_published(hub: Hub, body: str) -> None:
    out = hub.handle(chat(STRANGER + "/x", body), T0)
    assert out == [
        SendChat(K1, STRANGER + "/x", "Sorry, you are not on this hub's list of operators. Nothing was done."),
        Log("warning", "chat.refused", {"jid": STRANGER, "device": K1}),
    ]
    assert hub.pending == {}


def test_group_operator_outside_the_group_is_a_stranger(hub: Hub) -> None:
    hub.handle(telemetry("k2", {"power": "off"}), T0)
    out = hub.handle(chat(COOK, "on", to=K2), T0)
    assert of(PublishMqtt, out) == []
    assert of(SendChat, out) == [
        SendChat(K2, COOK, "Sorry, you are not on this hub's list of operators. Nothing was done.")
    ]
    assert of(PublishMqtt, hub.handle(chat(COOK, "on"), T0)) == [
        PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"power":"on"}}')
    ]


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        ("set target 40", "40 is out of range: target takes 5–35 °C, step 0.5."),
        ("set target 21.3", "target moves in steps of 0.5: 5–35 °C, step 0.5."),
        ("set target warm", "'warm' is not a number; target takes 5–35 °C, step 0.5."),
        ("set colour red", "k1 has no settable property 'colour'. Settable: power, target."),
        ("set brightness 50", "k1 has no settable property 'brightness'. Settable: power, target."),
        ("dance", "Unknown command 'dance'. Write 'help' for what k1 understands."),
        ("on 1 2", "'on' takes at most one channel, e.g. 'on 2'."),
        ("toggle x", "Channel must be a number, not 'x'."),
        ("", "Empty message. Write 'help' for the commands."),
        ("x" * 1025, "That message is 1025 characters long; commands are at most 1024."),
    ],
)
def test_invalid_commands_are_answered_and_nothing_is_sent(hub: Hub, body: str, reply: str) -> None:
    out = hub.handle(chat(OPERATOR, body), T0)
    assert out == [SendChat(K1, OPERATOR, reply)]
    assert hub.pending == {}


def test_offline_device_gets_the_command_queued_not_sent(hub: Hub) -> None:
    """More in tests/core/test_queued_commands.py."""
    hub.handle(status("k1", "offline"), T0)
    out = hub.handle(chat(OPERATOR, "on"), T0)
    assert no_logs(out) == [SendChat(K1, OPERATOR, "→ on: queued until k1 is back (expires 15:02 UTC)")]
    assert hub.pending == {}


def test_queries(hub: Hub) -> None:
    assert hub.handle(chat(OPERATOR, "temperature?"), T0) == [SendChat(K1, OPERATOR, "temperature 21.6 °C")]
    assert hub.handle(chat(OPERATOR, "Battery?"), T0) == [SendChat(K1, OPERATOR, "battery 87 %")]
    assert hub.handle(chat(OPERATOR, "pressure?"), T0) == [
        SendChat(K1, OPERATOR, "k1 has no reading 'pressure'. Known: battery, humidity, power, target, temperature.")
    ]


def test_device_help_and_status(hub: Hub) -> None:
    assert hub.handle(chat(OPERATOR, "help"), T0) == [
        SendChat(
            K1,
            OPERATOR,
            "Kitchen (k1): a hub device. Commands:\n"
            "  read: status · temperature? · humidity? · target? · power? · battery?\n"
            "  switch: on · off · toggle\n"
            "  set target <5–35 °C, step 0.5>\n"
            "  identify: blink the device's LED",
        )
    ]
    assert hub.handle(chat(ADMIN, "help"), T0)[0].body.endswith(  # type: ignore[union-attr]
        "  identify: blink the device's LED\n  reboot: restart the device"
    )
    assert hub.handle(chat(VIEWER, "help"), T0) == [
        SendChat(
            K1,
            VIEWER,
            "Kitchen (k1): a hub device. Commands:\n"
            "  read: status · temperature? · humidity? · target? · power? · battery?\n"
            "  (your role is viewer: you may read, not command)",
        )
    ]
    assert hub.handle(chat(VIEWER, "status"), T0 + 60) == [
        SendChat(
            K1,
            VIEWER,
            "Kitchen (k1): online\n"
            "  temperature 21.6 °C\n  humidity 48 %\n  target 20 °C\n  power off\n  battery 87 %\n"
            "  last message at 14:02 UTC",
        )
    ]
    hub.handle(status("k1", "offline"), T0 + 120)
    assert hub.handle(chat(VIEWER, "status"), T0 + 180)[0].body.startswith(  # type: ignore[union-attr]
        "Kitchen (k1): offline (offline since 14:04 UTC · 21.6 °C"
    )


def test_unknown_device_chat(hub: Hub) -> None:
    assert hub.handle(chat(OPERATOR, "status", to="x9@hub.example"), T0) == [
        SendChat(
            "x9@hub.example",
            OPERATOR,
            "There is no device x9 on this hub. Write 'devices' to hub.example for the list.",
        )
    ]
    out = hub.handle(chat(STRANGER, "status", to="x9@hub.example"), T0)
    assert of(SendChat, out) == [
        SendChat("x9@hub.example", STRANGER, "Sorry, you are not on this hub's list of operators. Nothing was done.")
    ]


def test_pending_commands_are_bounded(hub_binding: Binding) -> None:
    settings = HubSettings(DOMAIN, (hub_binding,), grants=GRANTS, max_pending_commands=2)
    hub = Hub(settings)
    up(hub)
    hub.handle(telemetry("k1", READINGS), T0)
    assert of(PublishMqtt, hub.handle(chat(OPERATOR, "on"), T0)) != []
    assert of(PublishMqtt, hub.handle(chat(OPERATOR, "off"), T0)) != []
    assert hub.handle(chat(OPERATOR, "on"), T0) == [
        SendChat(K1, OPERATOR, "The hub has too many commands waiting for confirmation; try again shortly.")
    ]


# ================================================================ the hub's own contact


def test_hub_contact_commands(hub: Hub) -> None:
    hub.handle(telemetry("k2", {"temperature": 18}), T0)
    hub.handle(status("k2", "offline"), T0 + 1)
    assert hub.handle(chat(ADMIN, "help", to=DOMAIN), T0) == [
        SendChat(
            DOMAIN,
            ADMIN,
            "This is the hub. Write to it:\n"
            "  devices: every device with its state\n"
            "  find <text>: devices whose id or name contains the text\n"
            "  status: how many devices are online\n"
            "Each device is a contact of its own, e.g. kitchen-temp@hub.example: add it and write 'help' to it.",
        )
    ]
    assert hub.handle(chat(ADMIN, "devices", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, ADMIN, "k1@hub.example: Kitchen (k1), online\nk2@hub.example: k2, offline")
    ]
    assert hub.handle(chat(ADMIN, "find kitch", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, ADMIN, "k1@hub.example: Kitchen (k1), online")
    ]
    assert hub.handle(chat(ADMIN, "find K2", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, ADMIN, "k2@hub.example: k2, offline")
    ]
    assert hub.handle(chat(ADMIN, "find garage", to=DOMAIN), T0 + 2) == [SendChat(DOMAIN, ADMIN, "No devices match.")]
    assert hub.handle(chat(ADMIN, "status", to=DOMAIN), T0 + 2) == [SendChat(DOMAIN, ADMIN, "1 of 2 devices online")]
    assert hub.handle(chat(ADMIN, "reboot", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, ADMIN, "Unknown command 'reboot'. Write 'help' for the commands.")
    ]
    # A group-limited operator only sees the group's devices.
    assert hub.handle(chat(COOK, "devices", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, COOK, "k1@hub.example: Kitchen (k1), online")
    ]
    assert hub.handle(chat(STRANGER, "devices", to=DOMAIN), T0 + 2) == [
        SendChat(DOMAIN, STRANGER, "Sorry, you are not on this hub's list of operators."),
        Log("warning", "chat.refused", {"jid": STRANGER, "device": DOMAIN}),
    ]


def test_hub_contact_presence(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    up(hub)
    out = no_logs(hub.handle(SubscriptionRequested(ADMIN, DOMAIN), T0))
    assert out == [
        SendSubscription(DOMAIN, ADMIN, "subscribed"),
        StoreSubscription(DOMAIN, ADMIN, True),
        SendPresence(DOMAIN, ADMIN, Show.AVAILABLE, "0 of 1 devices online"),
    ]
    hub.handle(telemetry("k1", READINGS), T0)
    assert hub.handle(Tick(), T0 + 1) == [SendPresence(DOMAIN, ADMIN, Show.AVAILABLE, "1 of 1 devices online")]
    assert no_logs(hub.handle(MqttLinkDown(), T0 + 2)) == [
        SendPresence(DOMAIN, ADMIN, Show.AWAY, "no MQTT broker connection")
    ]
    assert no_logs(hub.handle(SubscriptionRequested(STRANGER, DOMAIN), T0)) == [
        SendSubscription(DOMAIN, STRANGER, "unsubscribed")
    ]


# ================================================================ lifecycle


def test_shutdown_sends_unavailable_to_every_subscriber(hub: Hub) -> None:
    hub.handle(SubscriptionRequested(ADMIN, DOMAIN), T0)
    hub.handle(SubscriptionRequested(ADMIN, K2), T0)
    out = hub.shutdown()
    assert sorted(out, key=repr) == sorted(
        [
            SendPresence(K1, OPERATOR, Show.UNAVAILABLE, "hub stopped"),
            SendPresence(K1, VIEWER, Show.UNAVAILABLE, "hub stopped"),
            SendPresence(K2, ADMIN, Show.UNAVAILABLE, "hub stopped"),
            SendPresence(DOMAIN, ADMIN, Show.UNAVAILABLE, "hub stopped"),
        ],
        key=repr,
    )
    # After shutdown nothing more is said.
    assert no_logs(hub.handle(telemetry("k1", {"temperature": 25}), T0 + 1)) == []


def test_xmpp_reconnect_re_announces_to_all_subscribers(hub: Hub) -> None:
    assert hub.handle(XmppLinkDown(), T0 + 1) == [Log("warning", "xmpp.down")]
    # While the stream is down, presence changes are not sent...
    assert no_logs(hub.handle(telemetry("k1", {"temperature": 22.0}), T0 + 2)) == []
    # ...and after it is back, everyone gets the current state, even if it did not change.
    out = hub.handle(XmppLinkUp(), T0 + 3)
    text = READINGS_TEXT.replace("21.6", "22.0")
    assert out == [Log("info", "xmpp.up", {"devices": 1}), *both(Show.AVAILABLE, text)]
    again = hub.handle(XmppLinkUp(), T0 + 4)
    assert no_logs(again) == both(Show.AVAILABLE, text)


# ================================================================ two peers in memory


class FakeThermostat:
    """A device that follows the hub convention: it applies 'set' commands and echoes telemetry."""

    def __init__(self, device_id: str, answer_with_result: bool = False, refuse: bool = False) -> None:
        self.device_id = device_id
        self.state: dict[str, object] = {"temperature": 20.5, "target": 20.0, "power": "off"}
        self.answer_with_result = answer_with_result
        self.refuse = refuse
        self.received: list[dict[str, object]] = []

    def boot(self) -> list[Event]:
        return [
            MqttClientConnected(self.device_id),
            status(self.device_id, "online"),
            telemetry(self.device_id, self.state),
        ]

    def on_publish(self, intent: PublishMqtt) -> list[Event]:
        if intent.topic != f"devices/{self.device_id}/cmd":
            return []
        command = json.loads(intent.payload)
        self.received.append(command)
        if self.refuse:
            answer = {"id": command["id"], "ok": False, "message": "locked"}
            return [MqttMessageReceived(f"devices/{self.device_id}/cmd/result", json.dumps(answer).encode())]
        for key, value in command.get("set", {}).items():
            if value == "toggle":
                value = "on" if self.state.get(key) == "off" else "off"
            self.state[key] = value
        if self.answer_with_result:
            answer = {"id": command["id"], "ok": True}
            return [MqttMessageReceived(f"devices/{self.device_id}/cmd/result", json.dumps(answer).encode())]
        return [telemetry(self.device_id, self.state)]


def run(hub: Hub, device: FakeThermostat, events: list[Event], now: float, latency: float = 0.25) -> list[Intent]:
    """Feed events to the hub; deliver its publishes to the device and its answers back, until quiet."""
    said: list[Intent] = []
    queue = list(events)
    while queue:
        out = hub.handle(queue.pop(0), now)
        said += out
        answers = [e for intent in out if isinstance(intent, PublishMqtt) for e in device.on_publish(intent)]
        if answers:
            now += latency
            queue += answers
    return said


@pytest.mark.parametrize("answer_with_result", [False, True])
def test_two_peers_set_and_toggle(hub_binding: Binding, answer_with_result: bool) -> None:
    hub = make_hub(hub_binding)
    device = FakeThermostat("k1", answer_with_result=answer_with_result)
    up(hub)
    run(hub, device, device.boot(), T0)
    said = run(hub, device, [chat(OPERATOR, "set target 22.5")], T0 + 1)
    confirmation = (
        "✓ set target 22.5 °C: done in 0.2 s" if answer_with_result else "✓ set target 22.5 °C: confirmed in 0.2 s"
    )
    assert of(SendChat, said) == [
        SendChat(K1, OPERATOR, "→ sent: set target 22.5 °C"),
        SendChat(K1, OPERATOR, confirmation),
    ]
    assert device.received == [{"id": "h-1", "set": {"target": 22.5}}]
    said = run(hub, device, [chat(OPERATOR, "toggle")], T0 + 2)
    assert device.state["power"] == "on"
    toggled = "✓ toggle: done in 0.2 s" if answer_with_result else "✓ toggle: power on: confirmed in 0.2 s"
    assert of(SendChat, said) == [SendChat(K1, OPERATOR, "→ sent: toggle"), SendChat(K1, OPERATOR, toggled)]
    assert hub.pending == {}
    assert of(SendChat, run(hub, device, [Tick()], T0 + 60)) == []


def test_two_peers_refusal(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    device = FakeThermostat("k1", refuse=True)
    up(hub)
    run(hub, device, device.boot(), T0)
    said = run(hub, device, [chat(OPERATOR, "set target 22.5")], T0 + 1)
    assert of(SendChat, said) == [
        SendChat(K1, OPERATOR, "→ sent: set target 22.5 °C"),
        SendChat(K1, OPERATOR, "✗ set target 22.5 °C: the device refused: locked"),
    ]


def test_two_peers_silent_device_times_out_then_goes_away(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, subscriptions=[(K1, OPERATOR)])
    device = FakeThermostat("k1")
    up(hub)
    run(hub, device, device.boot(), T0)
    device.on_publish = lambda intent: []  # type: ignore[method-assign]
    said = run(hub, device, [chat(OPERATOR, "set target 22.5"), Tick()], T0 + 1)
    assert of(SendChat, said) == [SendChat(K1, OPERATOR, "→ sent: set target 22.5 °C")]
    said = run(hub, device, [Tick()], T0 + 6)
    assert of(SendChat, said) == [
        SendChat(K1, OPERATOR, "✗ set target 22.5 °C: no confirmation after 5 s (target 20 °C still)")
    ]
    said = run(hub, device, [Tick()], T0 + 121)
    assert of(SendPresence, said) == [
        SendPresence(K1, OPERATOR, Show.AWAY, "no data since 14:02 UTC · 20.5 °C · target 20 °C · power off")
    ]
