"""While the XMPP stream is down, alerts and confirmations wait in a bounded buffer, delivered once."""

from __future__ import annotations

import dataclasses

from hub.core.events import ChatReceived, ChatUndelivered, Tick, XmppLinkDown, XmppLinkUp
from hub.core.hub import Hub
from hub.core.intents import Log, SendChat, SendPresence
from hub.core.mapping import Binding
from tests.core.test_hub import (
    ADMIN,
    DOMAIN,
    K1,
    OPERATOR,
    READINGS,
    T0,
    VIEWER,
    chat,
    logs,
    make_hub,
    of,
    status,
    telemetry,
    up,
)

RAISED = "⚠ Kitchen: temperature 31.5 °C > 30 °C"


def started(binding: Binding, xmpp_buffer: int = 500) -> Hub:
    base = make_hub(binding)
    subscriptions = [(K1, OPERATOR), (K1, VIEWER)]
    hub = Hub(dataclasses.replace(base.settings, xmpp_buffer=xmpp_buffer), subscriptions=subscriptions)
    up(hub)
    hub.handle(status("k1", "online"), T0)
    hub.handle(telemetry("k1", READINGS), T0)
    return hub


def test_alert_raised_while_xmpp_is_down_is_delivered_once_after_reconnect(hub_binding: Binding) -> None:
    hub = started(hub_binding)
    hub.handle(XmppLinkDown(), T0)
    out = hub.handle(telemetry("k1", {"temperature": 31.5}), T0 + 10)
    assert of(SendChat, out) == [] and of(SendPresence, out) == []
    assert [entry.event for entry in logs(out)] == ["alert.raised"]  # the log line is written at once

    back = hub.handle(XmppLinkUp(), T0 + 60)
    chats = of(SendChat, back)
    assert chats == [SendChat(K1, OPERATOR, RAISED), SendChat(K1, VIEWER, RAISED)]
    # Presence (dnd with the alert) comes first, then the held messages.
    assert back.index(chats[0]) > max(back.index(p) for p in of(SendPresence, back))
    assert hub.held == []

    hub.handle(XmppLinkDown(), T0 + 70)
    assert of(SendChat, hub.handle(XmppLinkUp(), T0 + 80)) == []


def test_confirmation_arriving_while_xmpp_is_down_is_held(hub_binding: Binding) -> None:
    hub = started(hub_binding)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    hub.handle(XmppLinkDown(), T0 + 0.5)
    assert of(SendChat, hub.handle(telemetry("k1", {"target": 22}), T0 + 1)) == []
    assert of(SendChat, hub.handle(XmppLinkUp(), T0 + 30)) == [
        SendChat(K1, OPERATOR, "✓ set target 22 °C: confirmed in 1.0 s")
    ]


def test_time_out_while_xmpp_is_down_is_held(hub_binding: Binding) -> None:
    hub = started(hub_binding)
    hub.handle(chat(OPERATOR, "set target 22"), T0)
    hub.handle(XmppLinkDown(), T0 + 1)
    assert of(SendChat, hub.handle(Tick(), T0 + 6)) == []
    assert [c.body for c in of(SendChat, hub.handle(XmppLinkUp(), T0 + 30))] == [
        "✗ set target 22 °C: no confirmation after 5 s (target 20 °C still)"
    ]


def test_what_does_not_fit_is_counted_logged_and_reported_to_admins(hub_binding: Binding) -> None:
    hub = started(hub_binding, xmpp_buffer=3)
    hub.handle(XmppLinkDown(), T0)
    events: list[str] = []
    for i, temperature in enumerate([31.5, 25.0, 31.5, 25.0]):  # raise, clear, raise, clear: 8 messages
        events += [entry.event for entry in logs(hub.handle(telemetry("k1", {"temperature": temperature}), T0 + i))]
    assert events.count("xmpp.buffer_full") == 1  # logged once per outage, not per message
    assert len(hub.held) == 3 and hub.held_dropped == 5

    back = hub.handle(XmppLinkUp(), T0 + 60)
    chats = of(SendChat, back)
    assert chats[:3] == [SendChat(K1, OPERATOR, RAISED), SendChat(K1, VIEWER, RAISED), chats[2]]
    assert chats[2].body.startswith("✓ Kitchen: back to normal")  # the oldest are kept
    assert chats[3:] == [
        SendChat(
            DOMAIN,
            ADMIN,
            "5 messages were dropped while the XMPP server was unreachable (the hub keeps at most 3).",
        )
    ]
    dropped = [entry for entry in logs(back) if entry.event == "xmpp.buffer_dropped"]
    assert dropped == [Log("warning", "xmpp.buffer_dropped", {"dropped": 5})]
    hub.handle(XmppLinkDown(), T0 + 70)
    assert of(SendChat, hub.handle(XmppLinkUp(), T0 + 80)) == []  # counted and reported once
    assert hub.held_dropped_total == 5  # the metric keeps counting across outages


def test_alert_reminders_are_not_buffered(hub_binding: Binding) -> None:
    hub = started(hub_binding)
    hub.handle(telemetry("k1", {"temperature": 31.5}), T0)
    hub.handle(XmppLinkDown(), T0 + 1)
    hub.handle(Tick(), T0 + 301)  # the rule repeats every 300 s
    assert hub.held == []
    assert of(SendChat, hub.handle(XmppLinkUp(), T0 + 310)) == []
    assert of(SendChat, hub.handle(Tick(), T0 + 311)) == []  # and no burst of reminders right after


def test_replies_while_up_are_not_held(hub_binding: Binding) -> None:
    hub = started(hub_binding)
    out = hub.handle(ChatReceived(OPERATOR, K1, "temperature?"), T0)
    assert of(SendChat, out) == [SendChat(K1, OPERATOR, "temperature 21.6 °C")]
    assert hub.held == []


def test_held_messages_and_the_drop_count_survive_a_restart(hub_binding: Binding) -> None:
    hub = started(hub_binding, xmpp_buffer=1)
    hub.take_changes()
    hub.handle(XmppLinkDown(), T0)
    hub.handle(telemetry("k1", {"temperature": 31.5}), T0 + 1)  # two messages: one kept, one counted
    outbox = hub.take_changes().outbox
    assert outbox is not None and outbox.chats == ((K1, OPERATOR, RAISED),) and outbox.dropped == 1
    assert hub.take_changes().outbox is None  # unchanged since

    restarted = started(hub_binding, xmpp_buffer=1)
    restarted.handle(XmppLinkDown(), T0 + 2)
    restarted.restore([], [], outbox)
    back = restarted.handle(XmppLinkUp(), T0 + 60)
    assert [(c.to, c.body[:2]) for c in of(SendChat, back)] == [(OPERATOR, "⚠ "), (ADMIN, "1 ")]
    cleared = restarted.take_changes().outbox
    assert cleared is not None and cleared.chats == () and cleared.dropped == 0


def test_a_chat_the_stream_lost_before_the_core_knew_is_held_or_sent_again(hub_binding: Binding) -> None:
    """The app hands back a chat it could not send (the stream went before XmppLinkDown was handled)."""
    hub = started(hub_binding)
    lost = ChatUndelivered(K1, OPERATOR, RAISED)
    hub.handle(XmppLinkDown(), T0)
    assert of(SendChat, hub.handle(lost, T0)) == [] and hub.held == [SendChat(K1, OPERATOR, RAISED)]
    assert of(SendChat, hub.handle(XmppLinkUp(), T0 + 5)) == [SendChat(K1, OPERATOR, RAISED)]
    # Came back after the reconnect was already handled: sent again at once.
    assert hub.handle(lost, T0 + 6) == [SendChat(K1, OPERATOR, RAISED)]
