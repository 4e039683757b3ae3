"""The stanza ⇄ event/intent mapping and the back-off, without a server."""

from __future__ import annotations

import random

import pytest
from slixmpp import ComponentXMPP, Message, Presence

from bridges.xmpp.component import ComponentOptions, backoff_delay
from bridges.xmpp.translate import build_stanza, check_sender, event_from_message, event_from_presence
from hub.core.events import ChatReceived, PresenceProbed, SubscriptionCancelled, SubscriptionRequested
from hub.core.intents import SendChat, SendPresence, SendSubscription, Show

DOMAIN = "devices.localhost"
KITCHEN = f"kitchen-temp@{DOMAIN}"
ALICE = "alice@localhost/phone"


def message(mtype: str | None, body: str | None) -> Message:
    msg = Message(sfrom=ALICE, sto=f"{KITCHEN}/ignored")  # type: ignore[no-untyped-call]
    if mtype is not None:
        msg["type"] = mtype
    if body is not None:
        msg["body"] = body
    return msg


def presence(ptype: str | None) -> Presence:
    pres = Presence(sfrom=ALICE, sto=KITCHEN)
    if ptype is not None:
        pres["type"] = ptype
    return pres


@pytest.mark.parametrize("mtype", ["chat", "normal", None])
def test_chat_and_normal_messages_become_chat_received(mtype: str | None) -> None:
    assert event_from_message(message(mtype, "status")) == ChatReceived(ALICE, KITCHEN, "status")


@pytest.mark.parametrize(("mtype", "body"), [("headline", "x"), ("groupchat", "x"), ("error", "x"), ("chat", None)])
def test_other_messages_are_ignored(mtype: str, body: str | None) -> None:
    assert event_from_message(message(mtype, body)) is None


def test_presence_types() -> None:
    assert event_from_presence(presence("subscribe")) == SubscriptionRequested("alice@localhost", KITCHEN)
    assert event_from_presence(presence("unsubscribe")) == SubscriptionCancelled("alice@localhost", KITCHEN)
    assert event_from_presence(presence("probe")) == PresenceProbed(ALICE, KITCHEN)
    for ignored in (None, "unavailable", "subscribed", "unsubscribed", "error", "away"):
        assert event_from_presence(presence(ignored)) is None


@pytest.fixture
def xmpp() -> ComponentXMPP:
    return ComponentXMPP(DOMAIN, "secret")  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("show", "type_attr", "show_element"),
    [
        (Show.AVAILABLE, None, None),
        (Show.AWAY, None, "away"),
        (Show.XA, None, "xa"),
        (Show.DND, None, "dnd"),
        (Show.UNAVAILABLE, "unavailable", None),
    ],
)
async def test_presence_intents(
    xmpp: ComponentXMPP, show: Show, type_attr: str | None, show_element: str | None
) -> None:
    pres = build_stanza(xmpp, SendPresence(KITCHEN, "alice@localhost", show, "21.6 °C"), DOMAIN)
    assert pres.xml.get("type") == type_attr
    assert (pres["show"] or None) == show_element
    assert (pres["from"], pres["to"], pres["status"]) == (KITCHEN, "alice@localhost", "21.6 °C")


async def test_empty_status_is_left_out(xmpp: ComponentXMPP) -> None:
    pres = build_stanza(xmpp, SendPresence(KITCHEN, "alice@localhost", Show.AVAILABLE), DOMAIN)
    assert "status" not in str(pres)


@pytest.mark.parametrize("kind", ["subscribe", "subscribed", "unsubscribe", "unsubscribed"])
async def test_subscription_intents(xmpp: ComponentXMPP, kind: str) -> None:
    pres = build_stanza(xmpp, SendSubscription(KITCHEN, "alice@localhost", kind), DOMAIN)
    assert (pres.xml.get("type"), pres["from"], pres["to"]) == (kind, KITCHEN, "alice@localhost")


async def test_chat_intent(xmpp: ComponentXMPP) -> None:
    msg = build_stanza(xmpp, SendChat(DOMAIN, ALICE, "→ sent"), DOMAIN)
    assert (msg["type"], msg["from"], msg["to"], msg["body"]) == ("chat", DOMAIN, ALICE, "→ sent")


@pytest.mark.parametrize("sender", ["x@localhost", f"x@sub.{DOMAIN}", "localhost", "bad@@jid"])
def test_senders_outside_the_domain_are_refused(sender: str) -> None:
    with pytest.raises(ValueError):
        check_sender(sender, DOMAIN)


def test_escaped_localparts_are_our_own() -> None:
    assert check_sender(rf"living\20room@{DOMAIN}", DOMAIN).local == r"living\20room"


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    options = ComponentOptions(DOMAIN, "secret", reconnect_min_delay=0.5, reconnect_max_delay=30.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (100, 30.0)]:
        delays = {backoff_delay(attempt, options, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_options_hide_the_secret_and_check_delays() -> None:
    assert "hunter2" not in repr(ComponentOptions(DOMAIN, "hunter2"))
    with pytest.raises(ValueError):
        ComponentOptions(DOMAIN, "s", reconnect_min_delay=5, reconnect_max_delay=1)
