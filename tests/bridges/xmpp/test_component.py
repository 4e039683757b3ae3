"""The component adapter against real Prosody and ejabberd, with a real operator client.

The test plays the core: it reads what the adapter emits and calls ``send``
with the intents the core would produce.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from slixmpp.exceptions import IqError

from hub.core.adhoc import NS_COMMANDS, NS_DISCO_INFO
from hub.core.events import (
    AdHocRequested,
    ChatReceived,
    ChatUndelivered,
    DiscoRequested,
    PresenceProbed,
    SubscriptionCancelled,
    SubscriptionRequested,
    XmppLinkDown,
    XmppLinkUp,
)
from hub.core.intents import AnswerCommand, AnswerDisco, DiscoIdentity, SendChat, SendPresence, SendSubscription, Show
from tests.bridges.xmpp.conftest import Login, RunningComponent, StartComponent, options_for
from tests.support.operator import Operator, PresenceSeen
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration


def device(server: XmppServer, localpart: str = "kitchen-temp") -> str:
    return f"{localpart}@{server.component_domain}"


async def accept(hub: RunningComponent, operator: Operator, jid: str, status: str = "21.6 °C · 48 %") -> None:
    """What the core does for a subscription it allows: ``subscribed``, then the device's presence."""
    await hub.component.send(SendSubscription(jid, operator.bare, "subscribed"))
    await hub.component.send(SendPresence(jid, operator.bare, Show.AVAILABLE, status))


def has_show(show: str) -> Callable[[PresenceSeen], bool]:
    return lambda p: p.show == show


async def subscribed(hub: RunningComponent, operator: Operator, jid: str) -> None:
    """Operator subscribes, the core accepts, the operator's server records ``subscription=to``."""
    await operator.subscribe(jid)
    await hub.events.expect(SubscriptionRequested, lambda e: e.to == jid)
    await accept(hub, operator, jid)
    await operator.wait_roster(jid, lambda item: item.subscription in ("to", "both"))


async def test_subscription_request_and_device_presence(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)

    await alice.subscribe(kitchen)
    request = await hub.events.expect(SubscriptionRequested)
    assert request == SubscriptionRequested(sender=alice.bare, to=kitchen)

    await accept(hub, alice, kitchen, status="21.6 °C · 48 % · battery 87 %")
    await alice.wait_presence(kitchen, lambda p: p.type == "subscribed")
    seen = await alice.wait_presence(kitchen, lambda p: p.type == "available")
    assert (seen.show, seen.status) == ("", "21.6 °C · 48 % · battery 87 %")
    item = await alice.wait_roster(kitchen, lambda item: item.subscription in ("to", "both"))
    assert not item.pending_out

    for show, status in [(Show.AWAY, "no data for 14 min"), (Show.XA, "asleep"), (Show.DND, "31.2 °C > 30")]:
        await hub.component.send(SendPresence(kitchen, alice.bare, show, status))
        seen = await alice.wait_presence(kitchen, has_show(show.value))
        assert (seen.type, seen.status) == ("available", status)

    await hub.component.send(SendPresence(kitchen, alice.bare, Show.UNAVAILABLE, "offline since 14:02"))
    seen = await alice.wait_presence(kitchen, lambda p: p.type == "unavailable")
    assert seen.status == "offline since 14:02"

    await alice.unsubscribe(kitchen)
    cancelled = await hub.events.expect(SubscriptionCancelled)
    assert cancelled == SubscriptionCancelled(sender=alice.bare, to=kitchen)
    # Only the core answers: the library must not have replied on its own. The marker goes out after the
    # request arrived, on the same stream, so an automatic reply would have reached alice before it.
    await hub.component.send(SendChat(kitchen, alice.jid, "marker"))
    await alice.next_message(kitchen, body="marker")
    unasked = {"subscribe", "unsubscribe", "unsubscribed"}
    assert [p for p in alice.presences.history if p.bare == kitchen and p.type in unasked] == []


async def test_chat_both_ways_and_noise_ignored(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)

    # Things that are not a person talking to the device: none may become a ChatReceived.
    headline = alice.xmpp.make_message(mto=kitchen, mbody="news", mtype="headline")
    headline.send()
    typing = alice.xmpp.make_message(mto=kitchen, mtype="chat")
    typing.append(_chat_state("composing"))
    typing.send()
    await alice.say(kitchen, "status")

    chat = await hub.events.expect(ChatReceived)
    assert chat == ChatReceived(sender=alice.jid, to=kitchen, body="status")
    assert "/" in chat.sender  # the full JID, so a reply reaches the very client that asked

    normal = alice.xmpp.make_message(mto=kitchen, mbody="temp?", mtype="normal")
    normal.send()
    assert (await hub.events.expect(ChatReceived)).body == "temp?"
    assert hub.events.unread(ChatReceived) == []

    await hub.component.send(SendChat(kitchen, chat.sender, "21.6 °C · 48 %"))
    reply = await alice.next_message(kitchen)
    assert (reply.from_, reply.type, reply.body) == (kitchen, "chat", "21.6 °C · 48 %")


def _chat_state(state: str) -> ET.Element:
    return ET.Element(f"{{http://jabber.org/protocol/chatstates}}{state}")


async def test_the_hub_contact_itself_receives_chat(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    domain = xmpp_server.component_domain

    await alice.say(domain, "help")
    assert await hub.events.expect(ChatReceived) == ChatReceived(sender=alice.jid, to=domain, body="help")

    await hub.component.send(SendChat(domain, alice.jid, "commands: devices, find, help"))
    reply = await alice.next_message(domain)
    assert reply.body == "commands: devices, find, help"


async def test_escaped_localparts_arrive_intact(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    living = device(xmpp_server, r"living\20room\2fsensor")

    await alice.subscribe(living)
    assert (await hub.events.expect(SubscriptionRequested)).to == living
    await alice.say(living, "status")
    assert (await hub.events.expect(ChatReceived)).to == living

    await accept(hub, alice, living, status="ok")
    assert (await alice.wait_presence(living, lambda p: p.type == "available")).status == "ok"
    await hub.component.send(SendChat(living, alice.jid, "fine"))
    assert (await alice.next_message(living)).from_ == living


async def test_operator_login_probes_each_subscribed_device(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)
    await subscribed(hub, alice, kitchen)
    await alice.logout()

    phone = await login(alice.credentials, resource="phone")
    probe = await hub.events.expect(PresenceProbed)
    assert probe.to == kitchen
    assert probe.sender in (phone.jid, phone.bare)

    await hub.component.send(SendPresence(kitchen, probe.sender, Show.AVAILABLE, "21.7 °C"))
    assert (await phone.wait_presence(kitchen, lambda p: p.type == "available")).status == "21.7 °C"


async def test_probe_after_hub_restart_does_not_cancel_the_subscription(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    """slixmpp's stock component answers a probe from an unknown subscriber with ``unsubscribed``."""
    first = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)
    await subscribed(first, alice, kitchen)
    await alice.logout()
    await first.stop()

    second = await start_component()  # a fresh adapter: nothing in memory about alice
    phone = await login(alice.credentials, resource="phone")
    probe = await second.events.expect(PresenceProbed, lambda e: e.to == kitchen)

    # A marker sent after the probe arrived: stanzas on one stream are delivered in order, so anything
    # the library had answered to the probe would have reached the operator before it.
    await second.component.send(SendPresence(kitchen, probe.sender, Show.AVAILABLE, "marker"))
    await phone.wait_presence(kitchen, lambda p: p.status == "marker")

    from_kitchen = [p for p in phone.presences.history if p.bare == kitchen]
    assert [(p.type, p.status) for p in from_kitchen] == [("available", "marker")]
    item = (await phone.roster_items())[kitchen]
    assert item.subscription in ("to", "both")


async def test_server_restart_link_down_then_up(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)
    await subscribed(hub, alice, kitchen)

    await xmpp_server.stop_async()
    await hub.events.expect(XmppLinkDown)
    assert not hub.component.connected
    await hub.component.send(SendPresence(kitchen, alice.bare, Show.AVAILABLE, "lost"))
    assert hub.component.dropped == 1

    await xmpp_server.start_async()
    await hub.events.expect(XmppLinkUp, timeout=20)
    assert hub.component.connected

    # Accounts and rosters survived the restart: the next login probes the device again.
    phone = await login(alice.credentials, resource="phone")
    probe = await hub.events.expect(PresenceProbed, lambda e: e.to == kitchen)
    await hub.component.send(SendPresence(kitchen, probe.sender, Show.AVAILABLE, "back"))
    assert (await phone.wait_presence(kitchen, lambda p: p.status == "back")).type == "available"
    assert [type(e).__name__ for e in hub.events.seen if isinstance(e, XmppLinkUp | XmppLinkDown)] == [
        "XmppLinkUp",
        "XmppLinkDown",
        "XmppLinkUp",
    ]


async def test_a_stalled_server_is_noticed_by_its_silence_and_the_stream_reopened(
    xmpp_server: XmppServer, start_component: StartComponent
) -> None:
    """A server that stops reading (SIGSTOP: the TCP connection stays open, nothing comes back) is
    found out by an unanswered ping; the adapter drops the stream and connects again once it answers."""
    hub = await start_component(ping_interval=0.5, ping_timeout=1.5)
    await asyncio.sleep(1.5)  # pings are answered while the server runs: the link stays up
    assert hub.component.connected and not hub.events.unread(XmppLinkDown)
    xmpp_server.pause()
    try:
        await hub.events.expect(XmppLinkDown, timeout=10)
        assert not hub.component.connected
    finally:
        xmpp_server.resume()
    await hub.events.expect(XmppLinkUp, timeout=30)
    assert hub.component.connected


def test_the_ping_goes_to_the_server_by_default(xmpp_server: XmppServer) -> None:
    assert options_for(xmpp_server).ping_target == xmpp_server.domain  # devices.localhost → localhost
    assert options_for(xmpp_server, ping_to="example.org").ping_target == "example.org"


async def test_chat_the_server_never_confirmed_is_handed_back_when_the_stream_is_lost(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    """Messages written to a server that then dies without handling them come back as ChatUndelivered,
    in order, so the core holds them for the reconnect; messages it confirmed do not."""
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)
    await subscribed(hub, alice, kitchen)
    await hub.component.send(SendChat(kitchen, alice.bare, "handled"))
    await alice.next_message(kitchen, body="handled")
    await wait_until(lambda: hub.component.unconfirmed == 0, "the server to confirm")
    pid = xmpp_server.serving_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the server stops reading: what is written now is never handled
    try:
        for i in range(3):
            await hub.component.send(SendChat(kitchen, alice.bare, f"in flight {i}"))
        await asyncio.sleep(0.5)
        assert hub.component.unconfirmed == 3
    finally:
        os.kill(pid, signal.SIGKILL)
    await hub.events.expect(XmppLinkDown, timeout=20)
    handed_back = [await hub.events.expect(ChatUndelivered) for _ in range(3)]
    assert [(e.sender, e.to, e.body) for e in handed_back] == [
        (kitchen, alice.bare, f"in flight {i}") for i in range(3)
    ]
    assert not hub.events.unread(ChatUndelivered) and hub.component.unconfirmed == 0
    await xmpp_server.stop_async()  # reaps what was killed; the next test gets a fresh start
    await xmpp_server.start_async()


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_drain_then_stop_closes_the_stream(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)

    for i in range(300):
        await hub.component.send(SendChat(kitchen, alice.jid, f"line {i}"))
    await hub.component.drain(timeout=5)
    await hub.stop()

    assert isinstance(hub.events.seen[-1], XmppLinkDown)
    assert not hub.component.connected
    received = [await alice.next_message(kitchen) for _ in range(300)]
    assert [m.body for m in received] == [f"line {i}" for i in range(300)]

    # The component is really gone: the server bounces a message to the device.
    await alice.say(kitchen, "anyone there?")
    bounce = await alice.next_message(kitchen)
    assert bounce.type == "error"


async def test_foreign_sender_is_refused_before_the_wire(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    """A 'from' outside the component domain would make the server close the whole stream."""
    hub = await start_component()
    alice = await login()
    with pytest.raises(ValueError, match="outside the component domain"):
        await hub.component.send(SendChat(f"kitchen@{xmpp_server.domain}", alice.jid, "hi"))
    with pytest.raises(ValueError, match="subscription kind"):
        await hub.component.send(SendSubscription(device(xmpp_server), alice.bare, "maybe"))

    await hub.component.send(SendChat(device(xmpp_server), alice.jid, "still here"))
    assert (await alice.next_message(device(xmpp_server))).body == "still here"
    assert hub.component.connected


async def test_wrong_secret_keeps_retrying_without_link_up(
    xmpp_server: XmppServer, start_component: StartComponent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridges.xmpp.component")
    hub = await start_component(wait_up=False, secret="not-the-secret")

    attempts = await wait_for_log(caplog, "no session with", count=2)
    assert attempts >= 2
    assert not hub.component.connected
    assert hub.events.seen == []
    assert "not-the-secret" not in caplog.text
    assert "not-the-secret" not in repr(hub.component.options)


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, count: int, timeout: float = 10) -> int:
    """Wait until ``text`` was logged ``count`` times (log records have no event to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        n = sum(text in r.getMessage() for r in caplog.records)
        if n >= count:
            return n
        if loop.time() > deadline:
            raise AssertionError(f"{text!r} logged {n} times, wanted {count}:\n{caplog.text}")
        await asyncio.sleep(0.05)


async def test_disco_and_command_iqs_reach_the_core_and_its_answers_reach_the_client(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)

    query = alice.xmpp.make_iq_get(queryxmlns=NS_DISCO_INFO, ito=kitchen)
    pending = asyncio.ensure_future(query.send(timeout=10))
    asked = await hub.events.expect(DiscoRequested)
    assert (asked.sender, asked.to, asked.kind, asked.node) == (alice.jid, kitchen, "info", "")
    identity = DiscoIdentity("client", "bot", "Kitchen")
    await hub.component.send(AnswerDisco(kitchen, asked.sender, asked.iq_id, "info", "", (identity,), (NS_COMMANDS,)))
    result = await pending
    answered = result.xml.find(f"{{{NS_DISCO_INFO}}}query")
    assert answered is not None
    assert [f.get("var") for f in answered.iterfind(f"{{{NS_DISCO_INFO}}}feature")] == [NS_COMMANDS]

    step = alice.xmpp.make_iq_set(ito=kitchen)
    step.append(ET.Element(f"{{{NS_COMMANDS}}}command", node="on", action="execute"))
    pending = asyncio.ensure_future(step.send(timeout=10))
    command = await hub.events.expect(AdHocRequested)
    assert (command.sender, command.to, command.node, command.values) == (alice.jid, kitchen, "on", None)
    await hub.component.send(AnswerCommand(kitchen, command.sender, command.iq_id, "on", error="forbidden"))
    with pytest.raises(IqError) as refused:
        await pending
    assert refused.value.iq["error"]["condition"] == "forbidden"


async def test_misshapen_and_other_iqs_are_answered_without_the_core(
    xmpp_server: XmppServer, start_component: StartComponent, login: Login
) -> None:
    hub = await start_component()
    alice = await login()
    kitchen = device(xmpp_server)

    wrong_type = alice.xmpp.make_iq_set(ito=kitchen)
    wrong_type.append(ET.Element(f"{{{NS_DISCO_INFO}}}query"))
    with pytest.raises(IqError) as bad:
        await wrong_type.send(timeout=10)
    assert bad.value.iq["error"]["condition"] == "bad-request"
    ping = alice.xmpp.make_iq_get(queryxmlns="urn:xmpp:ping", ito=kitchen)
    with pytest.raises(IqError) as unknown:
        await ping.send(timeout=10)
    assert unknown.value.iq["error"]["condition"] == "feature-not-implemented"
    assert hub.events.unread(DiscoRequested) == [] and hub.events.unread(AdHocRequested) == []
