"""amqtt 0.12.1's broker with the defects that break the hub overridden (list in ``bridges.mqtt.embedded``).

Every override is a method of a subclass; amqtt itself is never patched.
The defect numbers are those of DESIGN.md §3.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from amqtt.adapters import (
    ReaderAdapter,
    StreamReaderAdapter,
    WebSocketsReader,
    WebSocketsWriter,
    WriterAdapter,
)
from amqtt.broker import Broker, RetainedApplicationMessage
from amqtt.contexts import Action, BrokerConfig, ListenerType
from amqtt.errors import AMQTTError, MQTTError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_0, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.plugins.base import BaseTopicPlugin
from amqtt.session import INCOMING, ApplicationMessage, Session
from amqtt.utils import gen_client_id
from websockets import Subprotocol

from bridges.mqtt.acl import TopicAcl
from bridges.mqtt.connection import DirectWriter, SessionState
from bridges.mqtt.framing import PUBLISH, PacketTooLarge, ProtocolViolation, check_packet, decode_remaining_length
from bridges.mqtt.packets import puback, publish_qos0
from bridges.mqtt.persistence import (
    BrokerChanges,
    BrokerState,
    QueuedMessage,
    RetainedMessage,
    SessionRecord,
    SessionUpdate,
)

log = logging.getLogger(__name__)

_AUTHENTICATED = "hub.authenticated"  # Session.attributes key: the CONNECT passed authentication
_KEEPALIVE_FACTOR = 1.5  # MQTT-3.1.2-24: silence longer than 1.5 x keep-alive ends the connection
_TAKEOVER_WAIT_S = 2.0
_REFUSED = 0x80  # SUBACK return code: failure
# Fields a returning persistent client brings with its new CONNECT (amqtt forgets clean_session,
# will_retain and is_anonymous, so a session once clean or anonymous stayed so).
_RENEWED_ON_CONNECT = (
    "clean_session", "will_flag", "will_message", "will_topic", "will_qos", "will_retain",
    "keep_alive", "username", "is_anonymous", "remote_address", "remote_port", "ssl_object",
)  # fmt: skip


class FramedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt ships no type hints
    """Reads each packet whole, checks it (``bridges.mqtt.framing``), then serves amqtt's
    field-by-field reads from the checked bytes.

    A packet announcing more than ``max_bytes`` is refused on its header, before its body
    is read (amqtt would read a PUBLISH payload of up to 256 MiB in one go). A packet
    that has started must be complete within ``packet_timeout_s``, whatever the
    keep-alive, so a slow sender cannot hold a connection half-way through a packet.
    A read past the end of the checked packet is a framing error, never a read of the
    next packet. Every :class:`ProtocolViolation` ends amqtt's reader loop, which then
    closes the connection (the Last Will fires, as for a dropped socket). Before a PUBLISH
    is handed on, ``room`` is awaited: while the hub's event queue is full, nothing more is
    read and TCP pushes back on the sender.
    """

    def __init__(
        self,
        inner: Any,
        max_bytes: int,
        packet_timeout_s: float,
        peer: str,
        publish_rate: float | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._inner = inner
        self._room = room
        self._max = max_bytes
        self._packet_timeout = packet_timeout_s
        self._peer = peer
        self._packet = b""
        self._at = 0
        self._first = True
        # Token bucket of PUBLISH packets: past it, this connection is read more slowly (TCP pushes
        # back on the sender alone) rather than letting one client fill the hub's event queue.
        self._rate = publish_rate
        self._tokens = publish_rate or 0.0
        self._refilled_at = 0.0
        #: Seconds this connection was held back for publishing too fast.
        self.throttled_s = 0.0

    async def read(self, n: int = -1) -> bytes:
        if self._at >= len(self._packet):
            try:
                await self._next_packet()
            except ProtocolViolation as exc:
                log.warning("MQTT client at %s broke the protocol: %s; closing its connection", self._peer, exc)
                raise
            if not self._packet:
                return b""  # end of stream: amqtt sees no data and stops
        end = len(self._packet) if n < 0 else self._at + n
        if end > len(self._packet):
            raise ProtocolViolation("a field runs past the end of the packet")
        chunk = self._packet[self._at : end]
        self._at = end
        return chunk

    async def _exactly(self, n: int) -> bytes:
        data: bytes = await self._inner.read(n)
        if len(data) < n:  # the websocket adapter returns short at close; the stream one raises
            raise asyncio.IncompleteReadError(data, n)
        return data

    async def _next_packet(self) -> None:
        self._packet, self._at = b"", 0
        head: bytes = await self._inner.read(1)
        if not head:
            return
        try:
            async with asyncio.timeout(self._packet_timeout):
                encoded = b""
                while (length := decode_remaining_length(encoded)) is None:
                    encoded += await self._exactly(1)
                if length > self._max:
                    raise PacketTooLarge(f"packet of {length} bytes announced; the limit is {self._max}")
                body = await self._exactly(length) if length else b""
        except TimeoutError:
            raise ProtocolViolation(f"packet not complete after {self._packet_timeout:g} s") from None
        check_packet(head[0], body, first=self._first)
        self._first = False
        if head[0] >> 4 == PUBLISH:
            if self._rate is not None:
                await self._throttle(self._rate)
            if self._room is not None:
                # amqtt reads buffered packets without yielding and delivers each in a task of its own:
                # yield once, so the previous packet's delivery reaches the hub's queue before room is judged.
                await asyncio.sleep(0)
                await self._room()
        self._packet = head + encoded + body

    async def _throttle(self, rate: float) -> None:
        now = time.monotonic()
        self._tokens = min(rate, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        self._tokens -= 1.0
        if self._tokens < 0:
            wait = -self._tokens / rate
            self.throttled_s += wait
            await asyncio.sleep(wait)

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _Queued(RetainedApplicationMessage):  # type: ignore[misc]
    """A message waiting for an offline session, numbered so the store can be told what came and went."""

    __slots__ = ("seq",)

    def __init__(self, seq: int, source: Session | None, topic: str, data: bytes | bytearray, qos: int) -> None:
        super().__init__(source, topic, data, qos)
        self.seq = seq


class HubProtocolHandler(BrokerProtocolHandler):  # type: ignore[misc]
    #: Set by the broker once the client is accepted: takes an incoming QoS 0 or 1 message at once.
    deliver_now: Callable[[ApplicationMessage], Awaitable[None]] | None = None

    async def _handle_qos0_message_flow(self, app_message: Any) -> None:
        """An incoming QoS 0 PUBLISH goes to the broker from the reader's task, instead of a queue that
        the client's message loop empties one ``asyncio.wait`` over four futures at a time (QoS 2,
        with its PUBREL to wait for, keeps amqtt's flow)."""
        deliver = self.deliver_now
        packet = app_message.publish_packet
        if deliver is None or app_message.direction != INCOMING or (packet is not None and packet.dup_flag):
            await super()._handle_qos0_message_flow(app_message)
            return
        await deliver(app_message)

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        """An incoming QoS 1 PUBLISH likewise, then its PUBACK, written directly when the socket keeps up.

        amqtt queued the message and acknowledged it at once, before any check; here it is
        checked and routed first, so the acknowledgement follows the hub's acceptance."""
        deliver = self.deliver_now
        if deliver is None or app_message.direction != INCOMING or app_message.packet_id is None:
            await super()._handle_qos1_message_flow(app_message)
            return
        await deliver(app_message)
        ack = PubackPacket.build(app_message.packet_id)
        writer = self.writer
        if not (isinstance(writer, DirectWriter) and writer.write_now(puback(app_message.packet_id))):
            await self._send_packet(ack)
        app_message.puback_packet = ack

    def handle_read_timeout(self) -> None:
        """Defect 1: amqtt's reader times out after the keep-alive and then does nothing.

        End the session as if the socket dropped: the broker then publishes the
        Last Will, stops this handler and reports the disconnect.
        """
        client_id = self.session.client_id if self.session else None
        log.info("MQTT client %r silent past 1.5 x keep-alive: disconnecting", client_id)
        waiter = self._disconnect_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _close_quietly(writer: WriterAdapter) -> None:
    with contextlib.suppress(Exception):
        await writer.close()


class HardenedBroker(Broker):  # type: ignore[misc]
    """The stock broker plus the overrides the hub needs; configured like ``amqtt.broker.Broker``."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        max_packet_bytes: int,
        max_queued_per_session: int,
        connect_timeout_s: float,
        acl: TopicAcl | None = None,
        max_publish_rate: float | None = None,
        max_topic_levels: int | None = None,
        max_subscriptions_per_client: int | None = None,
        on_message: Callable[[str | None, ApplicationMessage], None] | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._acl = acl
        self._on_message = on_message
        #: Awaited before each PUBLISH is taken (:class:`FramedReader`): while the hub's queue is full no
        #: connection is read further, so TCP slows the senders instead of the hub dropping events.
        self._room = room
        # amqtt calls topic filtering "enabled" whenever plugins come from the config, even with no
        # topic plugin among them; then it gathers over none, through a task per check.
        self._topic_plugins = any(isinstance(p, BaseTopicPlugin) for p in self.plugins_manager.plugins)
        self._publish_rate = max_publish_rate
        self._max_packet_bytes = max_packet_bytes
        self._max_queued = max_queued_per_session
        self._connect_timeout_s = connect_timeout_s
        self._max_levels = max_topic_levels
        self._max_subscriptions = max_subscriptions_per_client
        self.dropped_offline_messages = 0
        #: PUBLISH packets dropped, and SUBSCRIBE filters refused, for a topic deeper than ``max_topic_levels``.
        self.too_deep_topics = 0
        #: SUBSCRIBE filters refused because the client already held ``max_subscriptions_per_client``.
        self.refused_over_subscription_limit = 0
        #: Each client's filters and their granted QoS, as in amqtt's table (which is indexed by filter).
        self._filters: dict[str, dict[str, int]] = {}
        # Persistence (off unless :meth:`persist` was called): what changed since :meth:`take_changes`.
        self._tracking = False
        self._restoring: BrokerState | None = None
        self._changed_retained: set[str] = set()
        self._changed_sessions: set[str] = set()
        self._next_seq = 0  # of queued messages, continued from the last run's
        self._written_seq: dict[str, int] = {}  # per session: the newest queued message already handed out
        self._disconnects_finished: dict[BrokerProtocolHandler, asyncio.Event] = {}

    # --- start-up -------------------------------------------------------------------------

    async def start(self) -> None:
        """On a failed start, amqtt leaves the listeners it already opened bound: close them."""
        try:
            await super().start()
        except BaseException:
            for server in self._servers.values():
                with contextlib.suppress(Exception):
                    await server.close_instance()
            raise

    async def _start_listeners(self) -> None:
        """amqtt's :meth:`start` empties the session and retained tables first: fill them from the
        last run here, before any client can connect."""
        state, self._restoring = self._restoring, None
        if state is not None:
            await self._restore(state)
            self._tracking = True
        await super()._start_listeners()

    @staticmethod
    def _create_ssl_context(listener: Any) -> ssl.SSLContext:
        """A server context that asks no client for a certificate: devices log in with a password.

        amqtt requests an optional client certificate and checks it against the system's CAs, so
        a device that carries a certificate of its own (many do, for other brokers) failed the handshake.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(listener["certfile"], listener["keyfile"])
        context.verify_mode = ssl.CERT_NONE
        return context

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        """amqtt's servers, but on a TLS listener the handshake must end within ``connect_timeout_s``.

        The CONNECT timer starts only once the handshake is done, so a client that opened a TLS
        port and sent nothing was held for asyncio's 60 s handshake timeout.
        """
        if ssl_context is None:
            return await super()._create_server_instance(listener_name, listener_type, address, port, None)
        timeout = self._connect_timeout_s
        if listener_type is ListenerType.TCP:
            return await asyncio.start_server(
                functools.partial(self.stream_connected, listener_name=listener_name),
                address,
                port,
                reuse_address=True,
                ssl=ssl_context,
                ssl_handshake_timeout=timeout,
            )
        if listener_type is ListenerType.WS:
            return await websockets.serve(
                functools.partial(self.ws_connected, listener_name=listener_name),
                address,
                port,
                subprotocols=[Subprotocol("mqtt")],
                ssl=ssl_context,
                ssl_handshake_timeout=timeout,
            )
        return await super()._create_server_instance(listener_name, listener_type, address, port, ssl_context)

    @classmethod
    def _split_bindaddr_port(cls, port_str: str, default_port: int) -> tuple[str | None, int]:
        """amqtt keeps the brackets of ``[::1]:1883`` in the address, which no socket accepts."""
        address, port = super()._split_bindaddr_port(port_str, default_port)
        if address is not None and address.startswith("["):
            address = address[1:-1]
        return address, port

    # --- connections ------------------------------------------------------------------------

    async def stream_connected(self, reader: Any, writer: Any, listener_name: str) -> None:
        peer = writer.get_extra_info("peername")
        await self._client_connected(
            listener_name,
            FramedReader(
                StreamReaderAdapter(reader),
                self._max_packet_bytes,
                self._connect_timeout_s,
                str(peer),
                self._publish_rate,
                self._room,
            ),
            DirectWriter(writer),
        )

    async def ws_connected(self, websocket: Any, listener_name: str) -> None:
        peer = getattr(websocket, "remote_address", None)
        await self._client_connected(
            listener_name,
            FramedReader(
                WebSocketsReader(websocket),
                self._max_packet_bytes,
                self._connect_timeout_s,
                str(peer),
                self._publish_rate,
                self._room,
            ),
            WebSocketsWriter(websocket),
        )

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[HubProtocolHandler, Session]:
        """Read the CONNECT, authenticate, then find or create the session.

        amqtt touches session state before it authenticates: a CONNECT with a wrong
        password and a victim's client id deletes the victim's persistent session
        (queued messages included), and every refused client leaves a session marked
        connected forever. It also waits forever for the CONNECT, ignores a live
        connection that holds the client id (so its late disconnect later marks the new
        one offline and fires its Last Will), and times keep-alive at 1 x instead of 1.5 x.
        """
        where = f"{remote_address}:{remote_port}"
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                handler, incoming = await HubProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except Exception as exc:
            await _close_quietly(writer)
            raise AMQTTError(f"no valid CONNECT from {where}: {type(exc).__name__} {exc}") from exc

        incoming.is_anonymous = False
        if not await super()._authenticate(incoming, None):
            code = NOT_AUTHORIZED if incoming.username is None else BAD_USERNAME_PASSWORD
            with contextlib.suppress(Exception):
                await ConnackPacket.build(0, code).to_stream(writer)
            await _close_quietly(writer)
            raise MQTTError(f"client {incoming.client_id!r} from {where} not authorized")

        will_outside_acl = (
            incoming.will_flag
            and self._acl is not None
            and not self._acl.may_publish(incoming.username, incoming.will_topic)
        )
        will_too_deep = incoming.will_flag and self._too_deep(incoming.will_topic)
        if will_outside_acl or will_too_deep:
            # The broker publishes the Will for the client: it must not land in another device's namespace,
            # nor where the client could not publish itself.
            if will_too_deep:
                self.too_deep_topics += 1
            log.warning(
                "MQTT client %r from %s: Last Will topic %r %s",
                incoming.client_id,
                where,
                incoming.will_topic,
                "outside its ACL" if will_outside_acl else f"deeper than {self._max_levels} levels",
            )
            with contextlib.suppress(Exception):
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await _close_quietly(writer)
            raise MQTTError(f"client {incoming.client_id!r} from {where}: Last Will topic not allowed")

        client_id: str = incoming.client_id or gen_client_id()
        incoming.client_id = client_id
        await self._take_over(client_id)
        session: Session = incoming
        existing = self._sessions.get(client_id)
        if incoming.clean_session:
            await self._delete_session(client_id)
            session.parent = 0
        elif existing is not None:
            session = existing[0]
            for name in _RENEWED_ON_CONNECT:
                setattr(session, name, getattr(incoming, name))
            session.parent = 1
        else:
            session.parent = 0

        if session.keep_alive > 0:
            session.keep_alive = session.keep_alive * _KEEPALIVE_FACTOR  # the reader's timeout
        if not isinstance(session.transitions, SessionState):
            session.transitions = SessionState(session, session.transitions.state)
        session.attributes[_AUTHENTICATED] = True
        self._session_changed(client_id)  # new, renewed, or a clean one replacing a persistent one
        handler.deliver_now = functools.partial(self._deliver_now, handler)
        return handler, session

    async def _take_over(self, client_id: str) -> None:
        """MQTT-3.1.4-2: close a connection still holding ``client_id`` and let it finish
        (Last Will, disconnect event) before the new one is accepted."""
        entry = self._sessions.get(client_id)
        if entry is None or not entry[0].transitions.is_connected():
            return
        old_handler = entry[1]
        log.info("MQTT client %r connected again: closing its previous connection", client_id)
        finished = self._disconnects_finished.setdefault(old_handler, asyncio.Event())
        await old_handler.handle_connection_closed()
        try:
            async with asyncio.timeout(_TAKEOVER_WAIT_S):
                await finished.wait()
        except TimeoutError:
            log.warning("previous connection of MQTT client %r did not close in time", client_id)
        finally:
            self._disconnects_finished.pop(old_handler, None)

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        """Stock behaviour, plus: the Last Will is reported like any device message (amqtt
        broadcasts it without the broadcast event, so the hub never saw ``LWT Offline``), and
        a :meth:`_take_over` waiting for this connection to end is woken."""
        try:
            if client_session.will_flag and not isinstance(disconnect_waiter.result(), DisconnectPacket):
                will = ApplicationMessage(
                    None,
                    client_session.will_topic,
                    client_session.will_qos,
                    client_session.will_message,
                    bool(client_session.will_retain),
                )
                await self._report(client_session.client_id, will)
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        finally:
            self._session_changed(client_session.client_id)  # its disconnect time starts the expiry clock
            finished = self._disconnects_finished.get(handler)
            if finished is not None:
                finished.set()

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        """The per-device ACL (``bridges.mqtt.acl``) first, then any topic plugin (none is loaded)."""
        if not self._acl_allows(session, topic, action):
            return False
        if not self._topic_plugins:
            return True
        return bool(await super()._topic_filtering(session, topic, action))

    def _acl_allows(self, session: Session | None, topic: str, action: Action) -> bool:
        """The per-device ACL alone: synchronous, so the message path checks it without a coroutine."""
        acl = self._acl
        if acl is None:
            return True
        username = session.username if session is not None else None
        if action is Action.PUBLISH:
            return acl.may_publish(username, topic)
        if action is Action.SUBSCRIBE:
            return acl.may_subscribe(username, topic)
        return acl.may_receive(username, topic)

    async def _report(self, client_id: str | None, message: ApplicationMessage) -> None:
        """A device's message (or Last Will) for the hub: a direct call, not a task per plugin hook."""
        if self._on_message is not None:
            self._on_message(client_id, message)
        else:
            await self.plugins_manager.fire_event(BrokerEvents.MESSAGE_BROADCAST, client_id=client_id, message=message)

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        """Authentication already happened in :meth:`_initialize_client_session`; report its result."""
        return bool(session.attributes.pop(_AUTHENTICATED, False))

    # --- retained messages ----------------------------------------------------------------------

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Defect 2: on CONNECT amqtt calls this for *every* client's filter.

        Only the session's own filters get retained messages, each checked against the
        receive ACL. The publishes are queued with the broker's delivery tasks rather than
        awaited, so the caller never yields while iterating the subscription table.
        """
        topic_filter, qos = subscription
        subscribers = self._subscriptions.get(topic_filter, ())
        if not any(sub.client_id == session.client_id for sub, _ in subscribers):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            out_qos = min(qos, retained.qos if retained.qos is not None else qos)
            publish = handler.mqtt_publish(topic, retained.data, out_qos, retain=True)
            self._tasks_queue.append(asyncio.ensure_future(publish))

    # --- offline queue ------------------------------------------------------------------------

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """Defect 3: messages queued while the client was offline arrived flagged retained."""
        handler = self._get_handler(session)
        queue = session.retained_messages
        sends = []
        while handler is not None and not queue.empty():
            queued = queue.get_nowait()
            sends.append(
                asyncio.ensure_future(handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False))
            )
        if sends:
            self._session_changed(session.client_id)
            await asyncio.gather(*sends, return_exceptions=True)

    def _queue_offline(self, session: Session, source: Session | None, topic: str, data: bytes, qos: int) -> None:
        """Defect 6: per-session queues were unbounded. Keep the newest messages, count the dropped."""
        queue = session.retained_messages
        while queue.qsize() >= self._max_queued:
            queue.get_nowait()
            self.dropped_offline_messages += 1
            log.warning("offline queue of MQTT client %r full: dropped its oldest message", session.client_id)
        queue.put_nowait(_Queued(self._take_seq(), source, topic, data, qos))
        self._session_changed(session.client_id)

    def _take_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq

    # --- message flow -----------------------------------------------------------------------------

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """A PUBLISH from a client, after its QoS flow.

        Defect 5: for a ``$`` topic (and an empty or wildcard one) amqtt returned False,
        which ended the client's message loop while its socket stayed up: a zombie whose
        later publishes all vanished. A ``$`` publish is now dropped and logged; a
        malformed topic closes the connection as MQTT requires. Defect 3: the publish
        QoS travels with the message so delivery uses min(publish, subscription) QoS.
        """
        message: ApplicationMessage | None = wait_deliver.result()
        if message is not None:
            await self._deliver(client_session, handler, message)
        return True

    async def _deliver_now(self, handler: BrokerProtocolHandler, message: ApplicationMessage) -> None:
        """:attr:`HubProtocolHandler.deliver_now`: a QoS 0 message straight from the client's reader."""
        if handler.session is not None:
            await self._deliver(handler.session, handler, message)

    async def _deliver(
        self, client_session: Session, handler: BrokerProtocolHandler, message: ApplicationMessage
    ) -> None:
        """Check, report and route one message from a client (the checks of :meth:`_handle_message_delivery`)."""
        topic = message.topic
        if not topic or "#" in topic or "+" in topic:
            log.warning("MQTT client %r published to invalid topic %r: disconnecting", client_session.client_id, topic)
            await handler.handle_connection_closed()
            return
        if topic.startswith("$"):
            log.warning("MQTT client %r may not publish to %r: message dropped", client_session.client_id, topic)
            return
        if self._too_deep(topic):
            self.too_deep_topics += 1
            log.warning(
                "MQTT client %r published to %r, deeper than %d levels: message dropped",
                client_session.client_id,
                topic,
                self._max_levels,
            )
            return
        if not self._acl_allows(client_session, topic, Action.PUBLISH) or (
            self._topic_plugins
            and not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH)
        ):
            log.info("MQTT client %r not allowed to publish to %r", client_session.client_id, topic)
            return
        await self._report(client_session.client_id, message)
        qos = message.qos if message.qos is not None else QOS_0
        await self._broadcast_message(client_session, topic, message.data, qos)
        if message.publish_packet is not None and message.publish_packet.retain_flag:
            await self.retain_message(client_session, topic, message.data, qos)

    # --- routing ----------------------------------------------------------------------------------

    #: Filters with + or #; None when a filter came or went since they were listed.
    _wildcards: list[str] | None = None

    def _too_deep(self, topic: str) -> bool:
        return self._max_levels is not None and topic.count("/") >= self._max_levels

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """amqtt's checks plus the limits: a filter deeper than ``max_topic_levels``, or a new one past
        ``max_subscriptions_per_client``, gets return code 0x80 (the client's other filters are unaffected)."""
        topic_filter, _qos = subscription
        client_id: str = session.client_id
        own = self._filters.get(client_id, {})
        if topic_filter not in own:
            if self._too_deep(topic_filter):
                self.too_deep_topics += 1
                log.warning(
                    "MQTT client %r subscribed to %r, deeper than %d levels: refused",
                    client_id,
                    topic_filter,
                    self._max_levels,
                )
                return _REFUSED
            if self._max_subscriptions is not None and len(own) >= self._max_subscriptions:
                self.refused_over_subscription_limit += 1
                log.warning(
                    "MQTT client %r already holds %d subscriptions: %r refused",
                    client_id,
                    len(own),
                    topic_filter,
                )
                return _REFUSED
        self._wildcards = None
        code = int(await super().add_subscription(subscription, session))
        if code != _REFUSED:
            self._filters.setdefault(client_id, {}).setdefault(topic_filter, code)  # amqtt keeps the first QoS
            self._session_changed(client_id)
        return code

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        deleted = int(super()._del_subscription(a_filter, session))
        own = self._filters.get(session.client_id)
        if deleted and own is not None:
            own.pop(a_filter, None)
            if not own:
                del self._filters[session.client_id]
            self._session_changed(session.client_id)
        return deleted

    async def _del_all_subscriptions(self, session: Session) -> None:
        await super()._del_all_subscriptions(session)
        self._filters.pop(session.client_id, None)
        self._session_changed(session.client_id)
        self._wildcards = None

    async def _delete_session(self, client_id: str) -> None:
        await super()._delete_session(client_id)
        self._session_changed(client_id)

    def _routes(self, topic: str) -> list[list[tuple[Session, int]]]:
        """The subscriber lists whose filter matches ``topic``.

        Defect 6: amqtt matched every filter against every message, so with 5,000 devices each
        subscribed to its own command topic a telemetry message cost 5,000 matches. A filter
        without wildcards matches only the identical topic: one dict lookup. Only the wildcard
        filters (few: the hub's, a dashboard's) are still matched one by one.
        """
        table = self._subscriptions
        wildcards = self._wildcards
        if wildcards is None:
            wildcards = self._wildcards = [f for f in table if "+" in f or "#" in f]
        routes = []
        exact = table.get(topic)
        if exact:
            routes.append(exact)
        for topic_filter in wildcards:
            found = table.get(topic_filter)
            if found and self._matches(topic, topic_filter):
                routes.append(found)
        return routes

    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: bytes | None, force_qos: int | None = None
    ) -> None:
        """Route at once instead of through amqtt's broadcast queue, which cost a task and a wait
        per message. With a topic plugin loaded (the hub loads none) the receive check may need
        to await it, so amqtt's queue and :meth:`_run_broadcast` are used as before."""
        if self._topic_plugins or topic is None:
            await super()._broadcast_message(session, topic, data, force_qos)
            return
        self._route_now(session, topic, data or b"", QOS_2 if force_qos is None else force_qos)

    def _route_now(self, source: Session | None, topic: str, data: bytes, publish_qos: int) -> None:
        """:meth:`_run_broadcast`'s rules without an await: QoS 0 deliveries written directly
        (:class:`DirectWriter`), the others as amqtt's delivery tasks in the broadcast loop's queue."""
        running = self._tasks_queue
        while running and running[0].done():
            _reap(running.popleft())
        packet: bytes | None = None
        for subscriptions in self._routes(topic):
            for target, sub_qos in subscriptions:
                qos = min(publish_qos, sub_qos)
                if not self._acl_allows(target, topic, Action.RECEIVE):
                    continue
                if not target.transitions.is_connected():
                    if qos > QOS_0 and not target.clean_session and not target.is_anonymous:
                        self._queue_offline(target, source, topic, data, qos)
                    continue
                handler = self._get_handler(target)
                if handler is None:
                    continue
                writer = handler.writer
                direct = isinstance(writer, DirectWriter)
                if qos == QOS_0 and direct:
                    if packet is None:
                        packet = publish_qos0(topic, data)
                    if writer.write_now(packet):
                        continue
                delivery = asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False))
                if qos == QOS_0 and direct:
                    writer.queued(delivery)
                running.append(delivery)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """Route one message to its subscribers.

        Defect 3: amqtt delivered at the subscription's QoS, upgrading QoS 0 publishes
        (and queueing them for offline clients); here the broadcast's ``qos`` is the
        publish QoS and delivery uses the lower of the two (no ``qos``: the subscription's).
        Defect 6: offline queues are bounded (:meth:`_queue_offline`). The subscription
        table is snapshotted so a SUBSCRIBE during an await cannot break the iteration.
        """
        broadcast = await self._broadcast_queue.get()
        topic: str = broadcast["topic"]
        data: bytes = broadcast["data"]
        source: Session | None = broadcast["session"]
        publish_qos: int = broadcast.get("qos", QOS_2)
        for subscriptions in self._routes(topic):
            for target, sub_qos in list(subscriptions):
                qos = min(publish_qos, sub_qos)
                if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                    continue
                if not target.transitions.is_connected():
                    if qos > QOS_0 and not target.clean_session and not target.is_anonymous:
                        self._queue_offline(target, source, topic, data, qos)
                    continue
                handler = self._get_handler(target)
                if handler is not None:
                    running_tasks.append(asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False)))

    # --- persistence ------------------------------------------------------------------------------

    def persist(self, state: BrokerState) -> None:
        """Start from ``state`` (the last run's) and record changes for :meth:`take_changes`. Call before start."""
        self._restoring = state

    def stop_persisting(self) -> None:
        """Changes from here on are not recorded: amqtt's shutdown empties every table, which is no change to keep."""
        self._tracking = False

    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
    ) -> None:
        await super().retain_message(source_session, topic_name, data, qos)
        if self._tracking and topic_name is not None:
            self._changed_retained.add(topic_name)

    def _session_changed(self, client_id: str | None) -> None:
        if self._tracking and client_id:
            self._changed_sessions.add(client_id)

    def take_changes(self) -> BrokerChanges:
        """The current value of every retained topic and persistent session that changed since the last call."""
        retained: dict[str, RetainedMessage | None] = {}
        for topic in self._changed_retained:
            message = self._retained_messages.get(topic)
            retained[topic] = (
                None if message is None else RetainedMessage(topic, bytes(message.data), int(message.qos or 0))
            )
        sessions: dict[str, SessionUpdate | None] = {}
        for client_id in self._changed_sessions:
            entry = self._sessions.get(client_id)
            session = entry[0] if entry is not None else None
            if session is not None and session.clean_session is False and not session.is_anonymous:
                sessions[client_id] = self._session_update(session)
            else:
                sessions[client_id] = None
                self._written_seq.pop(client_id, None)
        self._changed_retained.clear()
        self._changed_sessions.clear()
        return BrokerChanges(retained, sessions)

    def _session_update(self, session: Session) -> SessionUpdate:
        """The session now, with only the queued messages not handed out before (the queue only grows
        at its end and shrinks at its front, so that and its first message describe it)."""
        client_id: str = session.client_id
        queue = session.retained_messages
        waiting: list[_Queued] = [queue.get_nowait() for _ in range(queue.qsize())]
        for message in waiting:  # read by taking and putting back, in order: no await in between
            queue.put_nowait(message)
        written = self._written_seq.get(client_id, 0)
        if waiting:
            self._written_seq[client_id] = max(written, waiting[-1].seq)
        record = SessionRecord(
            client_id=client_id,
            username=session.username,
            subscriptions=tuple(self._filters.get(client_id, {}).items()),
            queued=tuple(
                QueuedMessage(m.seq, m.topic, bytes(m.data), int(m.qos or 0)) for m in waiting if m.seq > written
            ),
            disconnected_at=None if session.transitions.is_connected() else session.last_disconnect_time,
        )
        return SessionUpdate(record, waiting[0].seq if waiting else None)

    async def _restore(self, state: BrokerState) -> None:
        """Retained messages, then each persistent session offline with its filters and queue.

        Filters go through :meth:`add_subscription`, so today's ACL and limits apply to
        yesterday's sessions; one refused is logged and left out. A session whose client was
        connected when the hub stopped counts as disconnected now, for its expiry.
        """
        now = time.time()
        for message in state.retained:
            self._retained_messages[message.topic] = RetainedApplicationMessage(
                None, message.topic, message.payload, message.qos
            )
        for record in state.sessions:
            handler, session = self.create_offline_session(record.client_id)
            session.clean_session = False
            session.is_anonymous = False
            session.username = record.username
            session.last_disconnect_time = int(record.disconnected_at if record.disconnected_at is not None else now)
            self._sessions[record.client_id] = (session, handler)
            for topic_filter, qos in record.subscriptions:
                if await self.add_subscription((topic_filter, qos), session) == _REFUSED:
                    log.warning(
                        "MQTT session %r from the last run: subscription %r refused now", record.client_id, topic_filter
                    )
            for queued in record.queued[-self._max_queued :]:
                session.retained_messages.put_nowait(
                    _Queued(queued.seq, None, queued.topic, queued.payload, queued.qos)
                )
            if record.queued:
                self._written_seq[record.client_id] = record.queued[-1].seq
                self._next_seq = max(self._next_seq, record.queued[-1].seq)
        if state.retained or state.sessions:
            log.info(
                "MQTT broker restored %d retained messages and %d persistent sessions",
                len(state.retained),
                len(state.sessions),
            )

def _reap(delivery: asyncio.Future[Any]) -> None:
    """A finished delivery task: its failure is logged, never raised into the sender's path."""
    if delivery.cancelled():
        return
    exc = delivery.exception()
    if exc is not None:
        log.warning("MQTT delivery failed: %r", exc)
