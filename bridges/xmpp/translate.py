"""Stanzas to core events and core intents to stanzas: the XMPP bridge's whole vocabulary.

Pure functions over slixmpp stanza objects, kept apart from the connection
handling so the mapping can be read (and tested) on its own. Nothing here
decides what to answer: that is the core's job.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import JID, InvalidJID

from bridges.xmpp.iq import build_answer
from hub.core.events import (
    ChatReceived,
    Event,
    PresenceProbed,
    SubscriptionCancelled,
    SubscriptionRequested,
)
from hub.core.intents import AnswerCommand, AnswerDisco, SendChat, SendPresence, SendSubscription, Show

#: Message types that carry something a person typed to a device.
CHAT_TYPES = frozenset({"chat", "normal"})

#: Presence types the component may send about a subscription (RFC 6121 §3).
SUBSCRIPTION_KINDS = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})

#: XEP-0172 User Nickname: the name a client shows in a subscription request.
NICK_NS = "http://jabber.org/protocol/nick"

_SHOW_ELEMENT = {Show.AWAY: "away", Show.XA: "xa", Show.DND: "dnd"}


def event_from_message(msg: Any) -> ChatReceived | None:
    """A chat or normal message with a body; errors, groupchat, headlines and chat states are not for us."""
    if msg["type"] not in CHAT_TYPES:
        return None
    body = msg["body"]
    if not body:
        return None
    try:
        sender, to = msg["from"], msg["to"]
    except InvalidJID:
        return None
    if not sender or not to:
        return None
    return ChatReceived(sender=str(sender.full), to=str(to.bare), body=str(body))


def event_from_presence(pres: Any) -> Event | None:
    """Subscription requests, cancellations and probes; everything else about presence is ignored.

    Subscription senders are bare JIDs (the server stamps them so, RFC 6121
    §3.1.2); a probe keeps the full JID of the session that caused it.
    """
    kind = pres.xml.get("type")
    if kind not in ("subscribe", "unsubscribe", "probe"):
        return None
    try:
        sender, to = pres["from"], pres["to"]
    except InvalidJID:
        return None
    if not sender or not to:
        return None
    if kind == "subscribe":
        return SubscriptionRequested(sender=str(sender.bare), to=str(to.bare))
    if kind == "unsubscribe":
        return SubscriptionCancelled(sender=str(sender.bare), to=str(to.bare))
    return PresenceProbed(sender=str(sender.full), to=str(to.bare))


def check_sender(sender: str, domain: str) -> JID:
    """The ``from`` of an outgoing stanza, refused if it is outside the component's domain.

    A foreign ``from`` makes Prosody and ejabberd close the *whole* component
    stream (``invalid-from``), so one bad intent must not reach the wire.
    """
    try:
        jid = JID(sender)
    except InvalidJID as exc:
        raise ValueError(f"invalid sender JID {sender!r}: {exc}") from exc
    if jid.domain != domain:
        raise ValueError(f"sender {sender!r} is outside the component domain {domain!r}")
    return jid


def _recipient(to: str) -> JID:
    try:
        jid = JID(to)
    except InvalidJID as exc:
        raise ValueError(f"invalid recipient JID {to!r}: {exc}") from exc
    if not jid:
        raise ValueError("a stanza from the component needs a recipient")
    return jid


def build_stanza(
    xmpp: Any, intent: SendPresence | SendSubscription | SendChat | AnswerDisco | AnswerCommand, domain: str
) -> Any:
    """The stanza for one intent, ready for ``.send()``; ``ValueError`` if the intent cannot be sent."""
    sender = check_sender(intent.sender, domain)
    to = _recipient(intent.to)
    match intent:
        case SendPresence(show=show, status=status):
            pres = xmpp.make_presence(pfrom=sender, pto=to)
            if show is Show.UNAVAILABLE:
                pres["type"] = "unavailable"
            elif show in _SHOW_ELEMENT:
                pres["show"] = _SHOW_ELEMENT[show]
            if status:
                pres["status"] = status
            return pres
        case SendSubscription(kind=kind, nick=nick):
            if kind not in SUBSCRIPTION_KINDS:
                raise ValueError(f"unknown subscription kind {kind!r}")
            pres = xmpp.make_presence(pfrom=sender, pto=to, ptype=kind)
            if nick:
                element = ET.SubElement(pres.xml, f"{{{NICK_NS}}}nick")
                element.text = nick
            return pres
        case SendChat(body=body):
            return xmpp.make_message(mto=to, mbody=body, mtype="chat", mfrom=sender)
        case AnswerDisco() | AnswerCommand():
            return build_answer(xmpp, intent, sender, to)
    raise TypeError(f"not an XMPP intent: {intent!r}")
