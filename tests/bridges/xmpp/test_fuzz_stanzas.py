"""Hostile stanzas: any 'from', 'to', type and body become a valid event or nothing (bridges.xmpp.translate)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slixmpp import JID, Message, Presence

from bridges.xmpp.translate import event_from_message, event_from_presence
from hub.core.events import ChatReceived

DOMAIN = "devices.localhost"

_jids = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "@",
            "a@",
            "@devices.localhost",
            "a@b@c",
            "alice@localhost/phone",
            "a b@localhost",
            "alice@[::1",
            "x" * 1100 + "@localhost",
            f"kitchen@{DOMAIN}",
            f"kitchen@{DOMAIN}/r",
            "alice@local host",
            "\u0000@x",
        ]
    ),
)
_bodies = st.one_of(st.none(), st.text(max_size=200), st.just("x" * 100_000))


def _valid_jid(text: str) -> bool:
    try:
        JID(text)
    except Exception:
        return False
    return bool(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jids, _jids, st.sampled_from(["chat", "normal", "headline", "error", "groupchat", "bogus", ""]), _bodies)
def test_any_message_becomes_a_chat_with_valid_addresses_or_nothing(
    sender: str, to: str, mtype: str, body: str | None
) -> None:
    msg = Message()  # type: ignore[no-untyped-call]
    msg.xml.set("from", sender)
    msg.xml.set("to", to)
    msg.xml.set("type", mtype)
    if body is not None:
        msg["body"] = body
    event = event_from_message(msg)
    if event is None:
        return
    assert isinstance(event, ChatReceived)
    assert _valid_jid(event.sender) and _valid_jid(event.to)
    assert "/" not in event.to


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jids, _jids, st.sampled_from(["subscribe", "unsubscribe", "probe", "subscribed", "bogus", ""]))
def test_any_presence_becomes_a_valid_event_or_nothing(sender: str, to: str, ptype: str) -> None:
    pres = Presence()
    pres.xml.set("from", sender)
    pres.xml.set("to", to)
    pres.xml.set("type", ptype)
    event = event_from_presence(pres)
    if event is None:
        return
    assert _valid_jid(event.sender) and _valid_jid(event.to)  # type: ignore[union-attr]
