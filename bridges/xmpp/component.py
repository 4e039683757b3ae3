"""The XMPP side of the hub: one XEP-0114 component connection, kept alive.

:class:`XmppComponent` implements :class:`hub.core.ports.XmppPort` with
slixmpp's ``ComponentXMPP``. It translates stanzas into core events and
intents into stanzas, and decides nothing: in particular slixmpp's own roster
logic, which answers probes and subscription requests by itself (and says
``unsubscribed`` to every subscriber it has forgotten after a restart), is
switched off so that only the core answers.

A component stream has no acknowledgements (no XEP-0198), so a chat message
written just before the server stops can vanish unseen. After sending chat
to someone the component sends an IQ ping to the same bare JID: the server
handles a stream's stanzas in order, so its answer (a result or an error,
either will do) proves the messages before it were handled. Messages still
unconfirmed when the stream is lost are handed back to the core as
``ChatUndelivered``, which holds them for the reconnect: a message in flight
is delivered late, at worst twice, but not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slixmpp import ComponentXMPP, Iq
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0199.stanza import Ping
from slixmpp.xmlstream import register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bridges.xmpp.iq import request_from_iq
from bridges.xmpp.translate import build_stanza, event_from_message, event_from_presence
from hub.core.adhoc import NS_COMMANDS, NS_DISCO_INFO, NS_DISCO_ITEMS
from hub.core.events import ChatUndelivered, Event, XmppLinkDown, XmppLinkUp
from hub.core.intents import SendChat
from hub.core.jid import bare
from hub.core.ports import EventSink, XmppIntent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ComponentOptions:
    """Where and as whom to connect; the secret never appears in repr or logs."""

    domain: str  # e.g. devices.localhost
    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 5347
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: Stanzas waiting for slixmpp's writer; past this, ``send`` drops (and counts) instead of growing memory.
    max_pending_stanzas: int = 10000
    #: How long one attempt may take from TCP connect to accepted handshake.
    connect_timeout: float = 10.0
    #: Seconds between liveness pings (XEP-0199) on an established stream; 0 turns them off.
    ping_interval: float = 60.0
    #: A ping with no answer (result or error) within this many seconds means the stream is stalled.
    ping_timeout: float = 20.0
    #: Who is pinged: the server. Default: the component domain's parent (``localhost`` for ``devices.localhost``).
    ping_to: str | None = None

    @property
    def ping_target(self) -> str:
        if self.ping_to:
            return self.ping_to
        _, dot, parent = self.domain.partition(".")
        return parent if dot and parent else self.domain
    #: Chat messages kept until the server confirms it handled them; past this the oldest are let go.
    max_unconfirmed_chats: int = 1000
    #: How long to wait for the answer to a delivery check before asking again.
    confirm_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            raise ValueError("need 0 < reconnect_min_delay <= reconnect_max_delay")
        if self.max_pending_stanzas < 1 or self.max_unconfirmed_chats < 1:
            raise ValueError("max_pending_stanzas and max_unconfirmed_chats must be at least 1")


def backoff_delay(attempt: int, options: ComponentOptions, rng: random.Random) -> float:
    """Exponential back-off with jitter in [d/2, d]: never a hot loop, and many hubs do not retry in step."""
    ceiling = min(options.reconnect_max_delay, options.reconnect_min_delay * 2 ** min(attempt, 30))
    return rng.uniform(ceiling / 2, ceiling)


class _Stream(ComponentXMPP):
    """ComponentXMPP without its roster automation: presence goes to our handler only.

    slixmpp's ``BaseXMPP`` routes every incoming presence through an in-memory
    roster that answers probes (``unsubscribed`` for anyone it does not know,
    i.e. everyone after a restart), answers repeated subscription requests and
    unsubscriptions, and keeps a copy of every presence we send. None of that
    may happen behind the core's back, so the stock presence handler, the
    roster's event handlers and its outgoing filter are removed.
    """

    def __init__(self, options: ComponentOptions, on_presence: Any, on_request: Any) -> None:
        super().__init__(options.domain, options.secret, options.host, options.port)  # type: ignore[no-untyped-call]
        self.remove_handler("Presence")
        for name, handler in (
            ("presence_probe", self._handle_probe),
            ("presence_subscribe", self._handle_subscribe),
            ("presence_subscribed", self._handle_subscribed),
            ("presence_unsubscribe", self._handle_unsubscribe),
            ("presence_unsubscribed", self._handle_unsubscribed),
            ("presence_available", self._handle_available),
            ("presence_unavailable", self._handle_unavailable),
            ("roster_subscription_request", self._handle_new_subscription),
        ):
            self.del_event_handler(name, handler)
        for show in ("dnd", "xa", "chat", "away"):
            self.del_event_handler(f"presence_{show}", self._handle_available)
        self.del_filter("out", self.roster._save_last_status)
        self.auto_authorize = None
        self.auto_subscribe = False
        self.register_handler(Callback("Hub presence", MatchXPath(f"{{{self.default_ns}}}presence"), on_presence))
        # Disco and ad-hoc commands are answered by the core; other iqs keep slixmpp's feature-not-implemented.
        for ns, child in ((NS_DISCO_INFO, "query"), (NS_DISCO_ITEMS, "query"), (NS_COMMANDS, "command")):
            path = f"{{{self.default_ns}}}iq/{{{ns}}}{child}"
            self.register_handler(Callback(f"Hub {ns}", MatchXPath(path), on_request))
        register_stanza_plugin(Iq, Ping)


class XmppComponent:
    """One component connection to the XMPP server, reconnected for as long as :meth:`run` runs."""

    def __init__(self, options: ComponentOptions, emit: EventSink) -> None:
        self._options = options
        self._emit = emit
        self._up = False
        self._rng = random.Random()
        #: Stanzas not sent because the stream was down or the queue was full.
        self.dropped = 0
        #: Chat messages written and not yet confirmed by the server, per recipient (bare JID), oldest first;
        #: recipients with a delivery check in flight; the stream they belong to.
        self._unconfirmed: dict[str, list[SendChat]] = {}
        self._checking: set[str] = set()
        self._stream_id = 0
        #: Chat messages handed back to the core after a lost stream, and those let go unconfirmed (bound).
        self.handed_back = 0
        self.unconfirmed_dropped = 0
        self._xmpp = _Stream(options, self._on_presence, self._on_request)
        self._xmpp.add_event_handler("message", self._on_message)

    @property
    def connected(self) -> bool:
        """True between the accepted handshake and the loss of the stream."""
        return self._up

    @property
    def options(self) -> ComponentOptions:
        return self._options

    # -- the connection ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and reconnect with back-off after every loss, until cancelled; then close cleanly.

        slixmpp retries only the first connect of a stream; once an established
        stream drops (server restart, stream error) nothing reconnects it, so
        this loop does.
        """
        failures = 0
        try:
            while True:
                if await self._session():
                    failures = 0  # it worked once: come back quickly after a loss
                delay = backoff_delay(failures, self._options, self._rng)
                failures += 1
                log.info("xmpp component: reconnecting in %.2f s", delay)
                await asyncio.sleep(delay)
        finally:
            await self._close()

    async def _session(self) -> bool:
        """One connection attempt; returns after the stream is gone. True if the handshake was accepted."""
        xmpp = self._xmpp
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        lost: asyncio.Future[str] = loop.create_future()
        errors: list[str] = []

        def on_start(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        def on_lost(reason: Any) -> None:
            if not lost.done():
                lost.set_result(str(reason or "connection closed"))

        def on_stream_error(error: Any) -> None:
            errors.append(f"{error['condition']} {error['text']}".strip())

        handlers = {
            "session_start": on_start,
            "disconnected": on_lost,
            "connection_failed": on_lost,
            "stream_error": on_stream_error,
        }
        for name, handler in handlers.items():
            xmpp.add_event_handler(name, handler)
        try:
            xmpp.connect(self._options.host, self._options.port)
            pending: set[asyncio.Future[Any]] = {started, lost}
            await asyncio.wait(pending, timeout=self._options.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
            if not started.done() or lost.done():
                why = "; ".join(errors) or (lost.result() if lost.done() else "timed out")
                log.warning(
                    "xmpp component: no session with %s:%s as %s: %s",
                    self._options.host, self._options.port, self._options.domain, why,
                )  # fmt: skip
                await self._abort()
                return False
            self._up = True
            log.info("xmpp component: connected as %s", self._options.domain)
            self._emit(XmppLinkUp())
            watch = asyncio.create_task(self._watch(errors), name="xmpp-ping")
            try:
                reason = await lost
            finally:
                watch.cancel()
            self._up = False
            log.warning("xmpp component: stream lost: %s", "; ".join(errors) or reason)
            self._emit(XmppLinkDown())
            self._hand_back()
            return True
        finally:
            for name, handler in handlers.items():
                xmpp.del_event_handler(name, handler)

    async def _watch(self, errors: list[str]) -> None:
        """Ping the server now and then; a ping that gets no answer at all means a stalled TCP stream
        (a server that stopped reading, a dead route): abort it so :meth:`run` reconnects."""
        options = self._options
        if options.ping_interval <= 0:
            return
        while True:
            await asyncio.sleep(options.ping_interval)
            iq = self._xmpp.Iq()
            iq["type"], iq["to"], iq["from"] = "get", options.ping_target, options.domain
            iq.enable("ping")
            try:
                await iq.send(timeout=options.ping_timeout)  # type: ignore[no-untyped-call]
            except IqError:
                pass  # an error answer still proves the stream works both ways
            except IqTimeout:
                errors.append(f"no answer to a ping within {options.ping_timeout:g} s")
                log.warning("xmpp component: %s pinged, no answer: stream stalled, reconnecting", options.ping_target)
                self._xmpp.abort()
                return

    async def _abort(self) -> None:
        """Stop a failed attempt, including slixmpp's own rescheduled retry, and wait for the socket to go."""
        xmpp = self._xmpp
        xmpp.cancel_connection_attempt()
        if xmpp.transport is not None:
            gone = xmpp.disconnected
            xmpp.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gone), 2.0)

    async def _close(self) -> None:
        """Close the stream politely (queued stanzas are written first), bounded in time."""
        xmpp = self._xmpp
        was_up, self._up = self._up, False
        self._forget_unconfirmed()
        xmpp.cancel_connection_attempt()
        if xmpp.transport is not None:
            try:
                await asyncio.wait_for(xmpp.disconnect(wait=2.0, reason="hub stopping"), 3.0)
            except TimeoutError:
                xmpp.abort()
        if was_up:
            self._emit(XmppLinkDown())
        # slixmpp keeps its writer task alive per instance; end it so nothing is left pending.
        writer = getattr(xmpp, "_run_out_filters", None)
        if writer is not None:
            writer.cancel()

    # -- outgoing ---------------------------------------------------------------------------------

    async def send(self, intent: XmppIntent) -> None:
        """Send one stanza; drop and count it while the stream is down (the core re-announces on link up).

        ``ValueError`` for an intent that must not reach the wire (a sender
        outside our domain would make the server close the whole stream).
        """
        stanza = build_stanza(self._xmpp, intent, self._options.domain)
        if not self._up:
            self._drop(intent, "stream down")
            return
        queue = self._xmpp.waiting_queue
        if queue.qsize() >= self._options.max_pending_stanzas:
            await asyncio.sleep(0)  # slixmpp's writer empties the queue into the socket when it gets a turn
            if not self._up or queue.qsize() >= self._options.max_pending_stanzas:
                self._drop(intent, "send queue full")
                return
        stanza.send()
        if isinstance(intent, SendChat):
            self._track(intent)

    # -- delivery checks --------------------------------------------------------------------------

    def _track(self, chat: SendChat) -> None:
        to = bare(chat.to)
        waiting = self._unconfirmed.setdefault(to, [])
        waiting.append(chat)
        if len(waiting) > self._options.max_unconfirmed_chats:
            del waiting[0]
            self.unconfirmed_dropped += 1
        if to not in self._checking:
            self._check(to)

    def _check(self, to: str) -> None:
        """Ask ``to``'s server for an answer; when it comes, what was sent before it was handled."""
        count, stream = len(self._unconfirmed.get(to, ())), self._stream_id
        iq = self._xmpp.Iq()
        iq["type"], iq["to"], iq["from"] = "get", to, self._options.domain
        iq.enable("ping")
        self._checking.add(to)

        def answered(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or stream != self._stream_id:
                return
            timed_out = isinstance(future.exception(), IqTimeout)  # a result or an error: it was handled
            self._checking.discard(to)
            waiting = self._unconfirmed.get(to, [])
            if not timed_out:
                del waiting[:count]
            if not waiting:
                self._unconfirmed.pop(to, None)
            elif self._up:
                self._check(to)

        iq.send(timeout=self._options.confirm_timeout).add_done_callback(answered)  # type: ignore[no-untyped-call]

    @property
    def unconfirmed(self) -> int:
        """Chat messages written that the server has not yet confirmed it handled."""
        return sum(len(waiting) for waiting in self._unconfirmed.values())

    def _hand_back(self) -> None:
        """The stream is gone: what it did not confirm goes back to the core, oldest first, to be held."""
        chats = [chat for waiting in self._unconfirmed.values() for chat in waiting]
        self._forget_unconfirmed()
        for chat in chats:
            self._emit(ChatUndelivered(chat.sender, chat.to, chat.body))
        self.handed_back += len(chats)
        if chats:
            log.info("xmpp component: %d chat messages unconfirmed by the lost stream, held for the reconnect",
                     len(chats))  # fmt: skip

    def _forget_unconfirmed(self) -> None:
        self._unconfirmed.clear()
        self._checking.clear()
        self._stream_id += 1

    async def drain(self, timeout: float) -> None:
        """Wait until queued stanzas are handed to the socket and its buffer is flushed, at most ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        xmpp = self._xmpp
        while self._up:
            transport = xmpp.transport
            buffered = transport.get_write_buffer_size() if transport is not None else 0
            if xmpp.waiting_queue.empty() and buffered == 0:
                return
            if loop.time() >= deadline:
                log.warning(
                    "xmpp component: %d stanzas and %d bytes not flushed after %.1f s",
                    xmpp.waiting_queue.qsize(), buffered, timeout,
                )  # fmt: skip
                return
            # Neither slixmpp's queue nor the transport offers a "flushed" signal: look again shortly.
            await asyncio.sleep(0.01)

    def _drop(self, intent: XmppIntent, why: str) -> None:
        self.dropped += 1
        log.debug("xmpp component: dropped %s to %s (%s)", type(intent).__name__, intent.to, why)

    # -- incoming ---------------------------------------------------------------------------------

    def _on_message(self, msg: Any) -> None:
        self._deliver(event_from_message, msg)

    def _on_presence(self, pres: Any) -> None:
        self._deliver(event_from_presence, pres)

    def _on_request(self, iq: Any) -> None:
        try:
            event = request_from_iq(iq)
        except ValueError as exc:  # the right namespace in the wrong iq type: it must still be answered
            error: Any = self._xmpp.make_iq_error  # untyped in slixmpp
            error(iq["id"], "modify", "bad-request", str(exc), ito=iq["from"], ifrom=iq["to"]).send()
            return
        except Exception:
            log.exception("xmpp component: could not read an iq")
            return
        if event is not None:
            self._emit(event)

    def _deliver(self, translate: Callable[[Any], Event | None], stanza: Any) -> None:
        # Never raise into slixmpp: it would bounce an error stanza to the sender.
        try:
            event = translate(stanza)
            if event is not None:
                self._emit(event)
        except Exception:
            log.exception("xmpp component: could not hand a %s stanza to the core", stanza.name)
