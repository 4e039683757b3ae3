"""Rate-limited refusals to strangers (hub.core.ratelimit) and the Hub under a stranger's flood."""

from __future__ import annotations

import json

from hub.core.auth import Grant
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat
from hub.core.mapping import Binding
from hub.core.profile import Role
from hub.core.ratelimit import RefusalLimiter

DOMAIN = "hub.example"
OPERATOR = "op@example.org"
STRANGER = "eve@elsewhere.example"


def test_one_refusal_per_sender_per_interval() -> None:
    limiter = RefusalLimiter(interval=60.0, burst=100)
    assert limiter.allow("eve", 0.0) == 0
    assert [limiter.allow("eve", t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert limiter.allow("mallory", 1.0) == 0  # others are not affected
    assert limiter.allow("eve", 60.0) == 3  # the next refusal tells how many were dropped
    assert limiter.allow("eve", 61.0) is None
    assert limiter.suppressed_total == 4


def test_global_burst_bounds_refusals_from_many_senders() -> None:
    limiter = RefusalLimiter(interval=60.0, burst=5)
    allowed = [limiter.allow(f"s{i}", 0.0) for i in range(50)]
    assert sum(1 for a in allowed if a is not None) == 5
    assert limiter.allow("late", 12.0) == 0  # 60 s / 5 = one token every 12 s


def test_memory_is_bounded() -> None:
    limiter = RefusalLimiter(interval=60.0, burst=10**9, max_senders=100)
    for i in range(10_000):
        limiter.allow(f"stranger{i}@x", float(i))
    assert len(limiter) == 100


def test_gate_adds_the_count_to_the_log_line() -> None:
    limiter = RefusalLimiter(interval=10.0)
    refusal: list[Intent] = [
        SendChat("k1@hub.example", STRANGER, "no"),
        Log("warning", "chat.refused", {"jid": STRANGER}),
    ]
    assert limiter.gate(STRANGER, 0.0, refusal) == refusal
    assert limiter.gate(STRANGER, 1.0, refusal) == []
    assert limiter.gate(STRANGER, 2.0, refusal) == []
    again = limiter.gate(STRANGER, 10.0, refusal)
    assert again[0] == refusal[0]
    assert again[1] == Log("warning", "chat.refused", {"jid": STRANGER, "suppressed": 2})


def _online_hub(hub_binding: Binding) -> Hub:
    hub = Hub(HubSettings(DOMAIN, (hub_binding,), grants={OPERATOR: Grant(Role.OPERATOR)}))
    hub.handle(MqttLinkUp(), 0.0)
    hub.handle(XmppLinkUp(), 0.0)
    hub.handle(MqttMessageReceived("devices/plug/status", b"online"), 0.0)
    hub.handle(MqttMessageReceived("devices/plug/telemetry", json.dumps({"power": "off"}).encode()), 0.0)
    return hub


def test_stranger_flood_gets_few_replies_and_publishes_nothing(hub_binding: Binding) -> None:
    hub = _online_hub(hub_binding)
    replies: list[SendChat] = []
    for index in range(200):
        now = 1.0 + index * 0.05  # 200 messages in 10 s
        intents = hub.handle(ChatReceived(f"{STRANGER}/bot", f"plug@{DOMAIN}", "on"), now)
        assert not any(isinstance(i, PublishMqtt) for i in intents)
        replies += [i for i in intents if isinstance(i, SendChat)]
        if index % 20 == 0:  # the operator is served throughout
            served = hub.handle(ChatReceived(f"{OPERATOR}/phone", f"plug@{DOMAIN}", "toggle"), now)
            assert any(isinstance(i, PublishMqtt) for i in served)
    assert len(replies) == 1
    assert replies[0].to == f"{STRANGER}/bot" and "not on this hub's list" in replies[0].body
    # A minute later the stranger is answered again, and told nothing else.
    later = hub.handle(ChatReceived(STRANGER, f"plug@{DOMAIN}", "on"), 70.0)
    assert [type(i) for i in later] == [SendChat, Log]
    assert later[1] == Log("warning", "chat.refused", {"jid": STRANGER, "device": f"plug@{DOMAIN}", "suppressed": 199})
    # Writing to another JID (the hub's own) is answered once too.
    assert [type(i) for i in hub.handle(ChatReceived(STRANGER, DOMAIN, "help"), 71.0)] == [SendChat, Log]
    assert hub.handle(ChatReceived(STRANGER, DOMAIN, "help"), 72.0) == []


def test_huge_body_from_a_stranger_is_refused_unread(hub_binding: Binding) -> None:
    hub = _online_hub(hub_binding)
    intents = hub.handle(ChatReceived(STRANGER, f"plug@{DOMAIN}", "on " * 500_000), 1.0)
    chats = [i for i in intents if isinstance(i, SendChat)]
    assert len(chats) == 1 and "not on this hub's list" in chats[0].body
    assert not any(isinstance(i, PublishMqtt) for i in intents)
