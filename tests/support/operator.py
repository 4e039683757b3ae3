"""A real operator's XMPP client for tests: slixmpp's ``ClientXMPP`` on a test server.

The operator logs in like Gajim or Conversations would (roster fetch, then
initial presence, which makes the server probe every subscribed device), and
records everything it receives. Tests wait for *conditions* with time-outs,
never for fixed sleeps; a time-out fails with what did arrive, so a failing
test explains itself.
"""

# Helpers here take plain ``timeout=`` arguments on purpose: tests read better that way.

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import slixmpp
from slixmpp import JID

from tests.support.xmpp_servers import XmppServer

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class PresenceSeen:
    from_: str  # full JID as sent
    to: str
    type: str  # "available", "unavailable", "subscribe", "subscribed", "unsubscribed", ...
    show: str  # "" (plain available), "away", "xa", "dnd", "chat"
    status: str
    nick: str = ""  # XEP-0172, as sent with a subscription request

    @property
    def bare(self) -> str:
        return JID(self.from_).bare


@dataclass(frozen=True, slots=True)
class MessageSeen:
    from_: str
    to: str
    type: str
    body: str

    @property
    def bare(self) -> str:
        return JID(self.from_).bare


@dataclass(frozen=True, slots=True)
class RosterEntry:
    jid: str
    subscription: str  # "none", "to", "from", "both"
    pending_out: bool  # our subscription request is not answered yet


class Inbox(Generic[T]):
    """Everything received of one kind: ``history`` keeps all, ``take`` consumes the first match.

    Consuming keeps separate waits from matching the same stanza twice, while
    items nobody asked for stay available for later waits.
    """

    def __init__(self, kind: str, changed: Callable[[], None]) -> None:
        self.kind = kind
        self.history: list[T] = []
        self._unread: list[T] = []
        self._changed = changed

    def put(self, item: T) -> None:
        self.history.append(item)
        self._unread.append(item)
        self._changed()

    def pop_match(self, match: Callable[[T], bool]) -> T | None:
        for i, item in enumerate(self._unread):
            if match(item):
                del self._unread[i]
                return item
        return None


def _jid_matches(wanted: str | None, got: str) -> bool:
    """``wanted`` may be a full JID (exact) or a bare JID (any resource)."""
    if wanted is None:
        return True
    return got == wanted or JID(got).bare == wanted


class Operator:
    """An operator logged in to a test server; use as ``async with Operator(server, "alice", "pw") as op``.

    ``user`` is a localpart or a bare JID. ``tls=True`` negotiates STARTTLS and
    verifies the server against the test certificate; ``tls=False`` logs in over
    plain TCP (loopback only), with SASL allowed on the unencrypted stream.
    """

    def __init__(
        self,
        server: XmppServer,
        user: str,
        password: str,
        *,
        resource: str = "test",
        tls: bool = True,
        login_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        bare = user if "@" in user else f"{user}@{server.domain}"
        self.server = server
        #: Log the same account in again (a new session) with ``Operator(server, *op.credentials)``.
        self.credentials = (bare, password)
        self.login_timeout = login_timeout
        self._signal = asyncio.Event()
        self.presences: Inbox[PresenceSeen] = Inbox("presence", self._changed)
        self.messages: Inbox[MessageSeen] = Inbox("message", self._changed)

        xmpp = slixmpp.ClientXMPP(f"{bare}/{resource}", password)
        xmpp.enable_direct_tls = False  # the c2s port speaks STARTTLS; direct TLS would only time out first
        if tls:
            xmpp.ca_certs = server.ca_cert
        else:
            xmpp.enable_starttls = False
            xmpp.plugin["feature_mechanisms"].unencrypted_plain = True
            xmpp.plugin["feature_mechanisms"].unencrypted_scram = True
        # The test decides about subscriptions towards the operator, not the library.
        xmpp.auto_authorize = None
        xmpp.auto_subscribe = False
        xmpp.add_event_handler("presence", self._on_presence)
        xmpp.add_event_handler("message", self._on_message)
        xmpp.add_event_handler("message_error", self._on_message)
        xmpp.add_event_handler("roster_update", lambda _: self._changed())
        xmpp.add_event_handler("disconnected", lambda _: self._changed())
        self.xmpp = xmpp

    # -- lifetime ---------------------------------------------------------------------------------

    @property
    def jid(self) -> str:
        """The full JID of this session."""
        return str(self.xmpp.boundjid.full)

    @property
    def bare(self) -> str:
        return str(self.xmpp.boundjid.bare)

    @property
    def connected(self) -> bool:
        return bool(self.xmpp.is_connected() and self.xmpp.sessionstarted)

    async def __aenter__(self) -> Operator:
        await self.login()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.logout()

    async def login(self) -> None:
        """Connect, authenticate, fetch the roster, send initial presence (which triggers the probes)."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()

        def settle(result: str) -> Callable[[Any], None]:
            def handler(_: Any) -> None:
                if not outcome.done():
                    outcome.set_result(result)

            return handler

        handlers = {
            "session_start": settle("ok"),
            "failed_auth": settle("authentication failed"),
            "disconnected": settle("disconnected before the session started"),
        }
        for name, handler in handlers.items():
            self.xmpp.add_event_handler(name, handler)
        try:
            self.xmpp.connect(self.server.host, self.server.c2s_port)
            try:
                result = await asyncio.wait_for(outcome, self.login_timeout)
            except TimeoutError:
                result = f"no session after {self.login_timeout} s"
        finally:
            for name, handler in handlers.items():
                self.xmpp.del_event_handler(name, handler)
        if result != "ok":
            await self.logout()
            raise AssertionError(f"operator {self.xmpp.boundjid} could not log in: {result}")
        await asyncio.wait_for(self.xmpp.get_roster(), self.login_timeout)
        self.xmpp.send_presence()

    async def logout(self, timeout: float = 5.0) -> None:
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.is_connected():
            try:
                await asyncio.wait_for(self.xmpp.disconnect(wait=timeout), timeout + 1)
            except TimeoutError:
                self.xmpp.abort()

    # -- acting -----------------------------------------------------------------------------------

    async def subscribe(self, jid: str) -> None:
        """Ask for ``jid``'s presence, as "add contact" does in a client."""
        self.xmpp.send_presence(pto=jid, ptype="subscribe")

    async def unsubscribe(self, jid: str) -> None:
        self.xmpp.send_presence(pto=jid, ptype="unsubscribe")

    async def remove_contact(self, jid: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete the roster item (the server then cancels the subscription both ways)."""
        await asyncio.wait_for(self.xmpp.del_roster_item(jid), timeout)  # type: ignore[no-untyped-call]

    async def say(self, jid: str, body: str) -> None:
        self.xmpp.send_message(mto=JID(jid), mbody=body, mtype="chat")

    async def roster_items(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, RosterEntry]:
        """The roster as the server has it now (fetched, not cached)."""
        await asyncio.wait_for(self.xmpp.get_roster(), timeout)
        return self._roster_snapshot()

    # -- waiting ----------------------------------------------------------------------------------

    async def next_message(
        self,
        from_: str | None = None,
        *,
        body: str | Callable[[str], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> MessageSeen:
        """The first unread message from ``from_`` (bare: any resource) whose body matches."""

        def match(m: MessageSeen) -> bool:
            if not _jid_matches(from_, m.from_):
                return False
            if body is None:
                return True
            return body(m.body) if callable(body) else m.body == body

        return await self._take(self.messages, match, timeout, f"a message from {from_} body={body!r}")

    async def wait_presence(
        self,
        jid: str | None,
        predicate: Callable[[PresenceSeen], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PresenceSeen:
        """The first unread presence from ``jid`` (bare: any resource) that satisfies ``predicate``."""

        def match(p: PresenceSeen) -> bool:
            return _jid_matches(jid, p.from_) and (predicate is None or predicate(p))

        return await self._take(self.presences, match, timeout, f"a presence from {jid}")

    async def wait_roster(
        self, jid: str, predicate: Callable[[RosterEntry], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> RosterEntry:
        """Wait until the roster (kept current by the server's pushes) has a matching item for ``jid``."""

        def check() -> RosterEntry | None:
            entry = self._roster_snapshot().get(jid)
            return entry if entry is not None and predicate(entry) else None

        return await self.wait_for(check, timeout, f"roster item {jid}")

    async def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Re-evaluate ``check`` whenever something arrives, until it returns non-None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._signal
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.bare}: timed out after {timeout} s waiting for {what}\n{self.report()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)

    def report(self) -> str:
        """What this operator received, for failure messages."""
        lines = ["presences:", *(f"  {p}" for p in self.presences.history[-15:])]
        lines += ["messages:", *(f"  {m}" for m in self.messages.history[-15:])]
        lines += ["roster:", *(f"  {e}" for e in self._roster_snapshot().values())]
        return "\n".join(lines)

    # -- internals --------------------------------------------------------------------------------

    async def _take(self, inbox: Inbox[T], match: Callable[[T], bool], timeout: float, what: str) -> T:
        return await self.wait_for(lambda: inbox.pop_match(match), timeout, what)

    def _changed(self) -> None:
        # Wake every waiter; each re-checks its own condition.
        self._signal.set()
        self._signal = asyncio.Event()

    def _roster_snapshot(self) -> dict[str, RosterEntry]:
        roster = self.xmpp.client_roster
        return {jid: RosterEntry(jid, roster[jid]["subscription"], bool(roster[jid]["pending_out"])) for jid in roster}

    def _on_presence(self, pres: Any) -> None:
        self.presences.put(
            PresenceSeen(
                from_=str(pres["from"]),
                to=str(pres["to"]),
                type=pres.xml.get("type") or "available",
                show=pres["show"] or "",
                status=pres["status"] or "",
                nick=pres.xml.findtext("{http://jabber.org/protocol/nick}nick") or "",
            )
        )

    def _on_message(self, msg: Any) -> None:
        self.messages.put(MessageSeen(str(msg["from"]), str(msg["to"]), msg["type"], msg["body"]))


def status_has(text: str) -> Callable[[PresenceSeen], bool]:
    """A presence that is available and whose status text contains ``text``: for ``wait_presence``."""
    return lambda p: p.type == "available" and text in p.status
