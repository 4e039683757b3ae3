"""Per-operator command rate limit (hub.core.ratelimit.CommandLimiter) and the Hub enforcing it."""

from __future__ import annotations

import json

import pytest

from hub.core.auth import Grant
from hub.core.events import ChatReceived, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, Log, PublishMqtt, SendChat
from hub.core.mapping import Binding
from hub.core.profile import Role
from hub.core.ratelimit import CommandLimiter

DOMAIN = "hub.example"
PLUG = f"plug@{DOMAIN}"
ALICE = "alice@example.org"
BOB = "bob@example.org"


def test_a_burst_of_per_minute_then_one_every_60_over_per_minute_seconds() -> None:
    limiter = CommandLimiter(per_minute=3)
    assert [limiter.allow("alice", 0.0) for _ in range(3)] == [None, None, None]
    assert limiter.allow("alice", 0.0) == pytest.approx(20.0)  # 60 s / 3: the next token in 20 s
    assert limiter.allow("alice", 15.0) == pytest.approx(5.0)
    assert limiter.allow("alice", 20.0) is None
    assert limiter.allow("bob", 20.0) is None  # others have their own bucket
    assert limiter.limited_total == 2


def test_an_idle_bucket_refills_to_a_minute_worth_not_more() -> None:
    limiter = CommandLimiter(per_minute=2)
    assert limiter.allow("alice", 0.0) is None
    allowed = [limiter.allow("alice", 3600.0) for _ in range(3)]
    assert allowed[:2] == [None, None] and allowed[2] is not None


def test_memory_is_bounded() -> None:
    limiter = CommandLimiter(per_minute=1, max_operators=10)
    for i in range(1000):
        limiter.allow(f"op{i}", float(i))
    assert len(limiter) == 10


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CommandLimiter(per_minute=0)


def _hub(binding: Binding, per_minute: int) -> Hub:
    grants = {ALICE: Grant(Role.OPERATOR), BOB: Grant(Role.OPERATOR)}
    hub = Hub(HubSettings(DOMAIN, (binding,), grants=grants, operator_commands_per_minute=per_minute))
    hub.handle(MqttLinkUp(), 0.0)
    hub.handle(XmppLinkUp(), 0.0)
    hub.handle(MqttMessageReceived("devices/plug/status", b"online"), 0.0)
    hub.handle(MqttMessageReceived("devices/plug/telemetry", json.dumps({"power": "off"}).encode()), 0.0)
    return hub


def _say(hub: Hub, sender: str, body: str, now: float) -> list[Intent]:
    return hub.handle(ChatReceived(f"{sender}/phone", PLUG, body), now)


def test_past_the_limit_the_operator_is_told_and_nothing_is_published(hub_binding: Binding) -> None:
    hub = _hub(hub_binding, per_minute=3)
    for k in range(3):
        assert any(isinstance(i, PublishMqtt) for i in _say(hub, ALICE, "toggle", 1.0 + k))
    refused = _say(hub, ALICE, "on", 4.0)
    assert not any(isinstance(i, PublishMqtt) for i in refused)
    replies = [i for i in refused if isinstance(i, SendChat)]
    assert len(replies) == 1 and replies[0].to == f"{ALICE}/phone"
    assert replies[0].body == (
        "Too many commands: at most 3 a minute per operator. Nothing was sent; the next one may go in 17 s."
    )
    assert Log("warning", "command.rate_limited", {"jid": ALICE, "device": "plug"}) in refused
    assert hub.command_limiter is not None and hub.command_limiter.limited_total == 1
    assert not hub.queued and len(hub.pending) == 3
    # Another operator is not affected, and reading is never limited.
    assert any(isinstance(i, PublishMqtt) for i in _say(hub, BOB, "on", 4.0))
    assert any(isinstance(i, SendChat) and "power" in i.body for i in _say(hub, ALICE, "status", 4.0))
    # A token later Alice may command again.
    assert any(isinstance(i, PublishMqtt) for i in _say(hub, ALICE, "on", 22.0))


def test_invalid_commands_cost_nothing(hub_binding: Binding) -> None:
    hub = _hub(hub_binding, per_minute=1)
    for body in ("frobnicate", "set nothing 3", "help") * 5:
        intents = _say(hub, ALICE, body, 1.0)
        assert not any(isinstance(i, PublishMqtt) for i in intents)
        assert "Too many commands" not in str(intents)
    assert any(isinstance(i, PublishMqtt) for i in _say(hub, ALICE, "on", 1.0))


def test_commands_for_an_offline_device_count_too(hub_binding: Binding) -> None:
    hub = _hub(hub_binding, per_minute=1)
    hub.handle(MqttMessageReceived("devices/plug/status", b"offline"), 1.0)
    assert "queued until" in str(_say(hub, ALICE, "on", 2.0))
    refused = _say(hub, ALICE, "off", 3.0)
    assert "Too many commands" in str(refused) and len(hub.queued[PLUG]) == 1


def test_no_limit_when_zero(hub_binding: Binding) -> None:
    hub = _hub(hub_binding, per_minute=0)
    assert hub.command_limiter is None
    for k in range(200):
        assert any(isinstance(i, PublishMqtt) for i in _say(hub, ALICE, "toggle", 1.0 + k * 0.01))
