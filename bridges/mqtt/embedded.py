"""The MQTT broker inside the hub: amqtt 0.12.1, run in the hub's own event loop.

Devices connect to it directly; the core hears about sessions and accepted
messages through ``emit`` and publishes with :meth:`EmbeddedBroker.publish`,
which injects in-process (no TCP client, so nothing echoes back as a device
message). Only two plugins are loaded (``bridges.mqtt.plugins``): no event or
packet loggers and no ``$SYS``, which cost about a third of the throughput.

amqtt 0.12.1 defects neutralized (DESIGN.md §3), by overriding methods of a
``Broker``/handler subclass in ``bridges.mqtt.hardened``:

1. Keep-alive never enforced: the reader's timeout is set to 1.5 x the client's
   keep-alive and a timeout now ends the session, so the Last Will fires.
2. Retained messages leaked on CONNECT for every other client's subscriptions:
   only the connecting client's own filters are served, through the receive ACL.
3. Offline delivery: messages queued for an offline client arrive with retain
   cleared; delivery QoS is min(publish, subscription) instead of always the
   subscription's (QoS 0 no longer upgraded or queued). Still open: a QoS 1
   message sent but unacknowledged when the client drops is not re-sent.
4. With anonymous access on, every session was anonymous and got no offline
   queue: our auth plugin flags only sessions without a username as anonymous.
5. A PUBLISH to a ``$`` topic turned the client into a zombie: it is now dropped
   and logged and the client carries on.
6. Unbounded per-session offline queues: at most ``max_queued_per_session``,
   oldest dropped first; routing by lookup instead of a scan of every filter.

Per-message work (``bridges.mqtt.hardened``, ``bridges.mqtt.connection``): a
QoS 0 or 1 message goes from the client's reader to the checks and routing (no
hop through amqtt's per-session queue) and reaches the hub by a direct call,
not a task per plugin hook; the ACL is checked without a coroutine; routing
happens at once instead of through amqtt's broadcast queue; QoS 0 deliveries
and PUBACKs are written straight to the socket while it keeps up
(``DirectWriter``), amqtt's draining task only when not. While the hub's event
queue is full no connection is read further. Sessions keep their state in a
``SessionState`` instead of a ``transitions.Machine`` each.

Also fixed because a device fleet hits them: Last Wills reach the core as
``MqttMessageReceived`` (amqtt published them without the event);
authentication precedes any session change (a wrong password with a victim's
client id deleted the victim's session); a second connection with the same
client id takes the first one over cleanly; a client that never sends CONNECT
is dropped after ``connect_timeout_s``; oversized packets close the connection
instead of being buffered; a failed start releases the ports it had bound.

Hostile clients (``bridges.mqtt.framing``): every packet is read whole and
checked before amqtt parses it. A malformed one (bad remaining length, fields
past the packet's end, invalid UTF-8 or U+0000, a wildcard or empty PUBLISH
topic, QoS 3, reserved types or flags, a second CONNECT) closes the connection;
amqtt raised in the middle of such a packet and read its rest as the next one.
A packet once started must be complete within ``connect_timeout_s``.

Per-device topic ACL (``bridges.mqtt.acl``, :attr:`EmbeddedBrokerOptions.acl`):
a device logged in as ``kitchen`` publishes and subscribes only under its own
patterns (``devices/kitchen/#``); a refused PUBLISH is dropped, a refused
SUBSCRIBE gets return code 0x80, and a CONNECT whose Last Will points outside
is refused. Users in ``acl_unrestricted`` are not checked.

TLS: a :class:`Listener` with ``certfile`` and ``keyfile`` speaks only TLS
(MQTT over TLS for ``tcp``, wss for ``ws``); its handshake must finish within
``connect_timeout_s``. Clients are not asked for a certificate.

Persistence (``bridges.mqtt.persistence``), when given a store: retained
messages and persistent sessions (clean_session=false: subscriptions and the
queued QoS 1/2 messages) are read back at start and written in one
transaction at most every ``persist_every_s``, and once more on the way down;
a SIGKILL loses only what changed since the last write.

Limits per client: a PUBLISH deeper than ``max_topic_levels`` is dropped and
logged with the client id and topic; a SUBSCRIBE filter deeper than that, or
past ``max_subscriptions_per_client``, gets return code 0x80; a CONNECT whose
Last Will is deeper is refused. Both are counted
(``HardenedBroker.too_deep_topics``, ``refused_over_subscription_limit``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from amqtt.contexts import BrokerConfig, ListenerConfig, ListenerType
from amqtt.session import ApplicationMessage

from bridges.mqtt.acl import TopicAcl, check_pattern
from bridges.mqtt.hardened import HardenedBroker
from bridges.mqtt.passwords import PasswordVerifier, check_hash, hash_password
from bridges.mqtt.persistence import BrokerChanges, BrokerStateStore
from bridges.mqtt.plugins import HubAuthPlugin, HubEventsPlugin, HubHooks
from hub.core.events import MqttLinkUp, MqttMessageReceived
from hub.core.intents import PublishMqtt
from hub.core.ports import EventSink, Room

__all__ = ["EmbeddedBroker", "EmbeddedBrokerOptions", "Listener", "hash_password"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str = "default"
    kind: Literal["tcp", "ws"] = "tcp"
    host: str = "127.0.0.1"  # loopback unless the config says otherwise: amqtt's default is every interface
    port: int = 1883
    #: PEM certificate (chain) and private key: with both, the listener speaks only TLS (MQTT over TLS, or wss).
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def scheme(self) -> str:
        tls = self.certfile is not None
        return ("mqtts" if tls else "mqtt") if self.kind == "tcp" else ("wss" if tls else "ws")


@dataclass(frozen=True, slots=True)
class EmbeddedBrokerOptions:
    listeners: tuple[Listener, ...] = (Listener(),)
    users: Mapping[str, str] = field(default_factory=dict)  # username -> argon2 PHC string
    allow_anonymous: bool = False
    #: Largest packet (its remaining length: topic, payload and headers); larger closes the connection.
    max_packet_bytes: int = 256 * 1024
    #: QoS 1/2 messages kept for one offline persistent session; the oldest go first.
    max_queued_per_session: int = 100
    #: Open connections per listener; more wait until one closes.
    max_connections: int = 1024
    #: Seconds a new connection may take to send its CONNECT, and any packet to arrive once begun.
    connect_timeout_s: float = 10.0
    #: A persistent session offline this long is forgotten (None: kept for good).
    session_expiry_s: int | None = 7 * 24 * 3600
    #: Per-device topic ACL: ``{"publish": (...), "subscribe": (...)}``, topic filters in which
    #: ``{username}`` is the client's user name, e.g. ``devices/{username}/#``. Empty: no ACL.
    acl: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Users the ACL does not restrict (an admin or test client).
    acl_unrestricted: frozenset[str] = frozenset()
    #: PUBLISH packets per second one connection may send (bursts up to as many); past it the
    #: broker reads that connection more slowly, so a flooding client slows only itself. None: no limit.
    max_publish_rate: float | None = 1000.0
    #: Levels a topic may have (``a/b/c`` has 3): a deeper PUBLISH is dropped, a deeper filter refused (0x80).
    max_topic_levels: int = 16
    #: Filters one client may hold at once; past it a SUBSCRIBE gets 0x80 for each further filter.
    max_subscriptions_per_client: int = 100
    #: With a store: retained messages and persistent sessions are written at most this often.
    persist_every_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.listeners:
            raise ValueError("listeners: at least one is needed")
        names = [listener.name for listener in self.listeners]
        if len(set(names)) != len(names):
            raise ValueError(f"listeners: names must be unique, got {names}")
        for listener in self.listeners:
            if (listener.certfile is None) != (listener.keyfile is None):
                raise ValueError(f"listeners: {listener.name}: TLS needs both certfile and keyfile")
        for username, phc in self.users.items():
            try:
                check_hash(phc)
            except ValueError as exc:
                raise ValueError(f"users: {username}: {exc}") from None
        counts = (
            self.max_packet_bytes,
            self.max_queued_per_session,
            self.max_connections,
            self.max_topic_levels,
            self.max_subscriptions_per_client,
        )
        if min(counts) < 1:
            raise ValueError(
                "max_packet_bytes, max_queued_per_session, max_connections, max_topic_levels"
                " and max_subscriptions_per_client must be positive"
            )
        if self.max_publish_rate is not None and self.max_publish_rate <= 0:
            raise ValueError("max_publish_rate must be positive (or None for no limit)")
        unknown = set(self.acl) - {"publish", "subscribe"}
        if unknown:
            raise ValueError(f"acl: unknown action(s) {sorted(unknown)}: use 'publish' and 'subscribe'")
        for action, patterns in self.acl.items():
            for pattern in patterns:
                try:
                    check_pattern(pattern)
                except ValueError as exc:
                    raise ValueError(f"acl.{action}: {exc}") from None

    def topic_acl(self) -> TopicAcl | None:
        """The ACL the broker enforces, ``None`` when :attr:`acl` is empty."""
        if not self.acl:
            return None
        return TopicAcl.build(self.acl.get("publish", ()), self.acl.get("subscribe", ()), self.acl_unrestricted)


def _bind(listener: Listener) -> str:
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    return f"{host}:{listener.port}"


def _broker_config(options: EmbeddedBrokerOptions, hooks: HubHooks) -> BrokerConfig:
    plugins = {
        f"{HubAuthPlugin.__module__}.{HubAuthPlugin.__name__}": {"hooks": hooks},
        f"{HubEventsPlugin.__module__}.{HubEventsPlugin.__name__}": {"hooks": hooks},
    }
    config = BrokerConfig(
        listeners={"default": ListenerConfig(bind=None)},
        plugins=plugins,
        session_expiry_interval=options.session_expiry_s,
    )
    # Set after construction: BrokerConfig copies fields of the listener named "default"
    # into the others (a tcp listener next to a ws "default" would become ws).
    config.listeners = {
        listener.name: ListenerConfig(
            type=ListenerType(listener.kind),
            bind=_bind(listener),
            max_connections=options.max_connections,
            ssl=listener.certfile is not None,
            certfile=listener.certfile,
            keyfile=listener.keyfile,
        )
        for listener in options.listeners
    }
    return config


class EmbeddedBroker:
    """The hub's :class:`~hub.core.ports.MqttPort` when it is the devices' broker."""

    def __init__(
        self,
        options: EmbeddedBrokerOptions,
        emit: EventSink,
        store: BrokerStateStore | None = None,
        room: Room | None = None,
    ) -> None:
        self._options = options
        self._emit = emit
        self._store = store
        self._unsaved = BrokerChanges()
        self._room = room
        self._broker: HardenedBroker | None = None
        #: Set while the listeners accept connections.
        self.ready = asyncio.Event()
        #: Publishes refused because the broker was not running.
        self.dropped_publishes = 0
        #: Topics whose retained message went to the hub when it started reading them (as a subscription would).
        self._handed_over: set[str] = set()

    async def run(self) -> None:
        """Serve until cancelled. The broker is built here because amqtt binds to the running loop."""
        hooks = HubHooks(self._emit, PasswordVerifier(self._options.users), self._options.allow_anonymous)
        broker = HardenedBroker(
            _broker_config(self._options, hooks),
            max_packet_bytes=self._options.max_packet_bytes,
            max_queued_per_session=self._options.max_queued_per_session,
            connect_timeout_s=self._options.connect_timeout_s,
            acl=self._options.topic_acl(),
            max_publish_rate=self._options.max_publish_rate,
            max_topic_levels=self._options.max_topic_levels,
            max_subscriptions_per_client=self._options.max_subscriptions_per_client,
            on_message=self._received,
            room=self._room.wait_for_room if self._room is not None else None,
        )
        store = self._store
        if store is not None:
            state, bad = store.broker_state()
            for key in bad:
                log.warning("stored MQTT state %r does not decode: skipped", key)
            broker.persist(state)
        await broker.start()
        self._broker = broker
        try:
            self.ready.set()
            log.info(
                "MQTT broker listening on %s",
                ", ".join(f"{lst.scheme}://{_bind(lst)}" for lst in self._options.listeners),
            )
            self._emit(MqttLinkUp())
            while True:
                await asyncio.sleep(self._options.persist_every_s)
                self._save(broker)
        finally:
            self.ready.clear()
            self._broker = None
            self._save(broker)
            broker.stop_persisting()
            await broker.shutdown()

    def _save(self, broker: HardenedBroker) -> None:
        """Write what changed since the last save, in one transaction; on failure keep it for the next."""
        if self._store is None:
            return
        try:
            self._unsaved.merge(broker.take_changes())
            if not self._unsaved:
                return
            self._store.save_broker_changes(self._unsaved)
        except Exception as exc:  # a full disk must not stop the broker; the next save tries again
            log.error(
                "MQTT broker state not saved (%d retained, %d sessions waiting): %r",
                len(self._unsaved.retained),
                len(self._unsaved.sessions),
                exc,
            )
            return
        self._unsaved = BrokerChanges()

    @property
    def too_deep_topics(self) -> int:
        """PUBLISH packets dropped and filters refused for having more than ``max_topic_levels`` levels."""
        return self._broker.too_deep_topics if self._broker is not None else 0

    @property
    def refused_over_subscription_limit(self) -> int:
        """Filters refused because their client already held ``max_subscriptions_per_client``."""
        return self._broker.refused_over_subscription_limit if self._broker is not None else 0

    def _received(self, client_id: str | None, message: ApplicationMessage) -> None:
        """A device's message, after the publish ACL passed, and Last Wills; never the hub's own publishes."""
        self._emit(MqttMessageReceived(message.topic, bytes(message.data), bool(message.retain), client_id))

    async def publish(self, intent: PublishMqtt) -> None:
        """Deliver to the subscribers in-process; with ``retain`` also store it (an empty payload clears).

        Raises ``ValueError`` for a topic no client could subscribe to (empty, wildcard): that is a bug.
        """
        if not intent.topic or "+" in intent.topic or "#" in intent.topic:
            raise ValueError(f"not a topic name: {intent.topic!r}")
        broker = self._broker
        if broker is None:
            self.dropped_publishes += 1
            log.warning("MQTT broker not running: publish to %r dropped", intent.topic)
            return
        context = broker.plugins_manager.context
        await context.broadcast_message(intent.topic, intent.payload, qos=intent.qos)
        if intent.retain:
            await context.retain_message(intent.topic, intent.payload, qos=intent.qos)

    async def subscribe(self, topics: tuple[str, ...]) -> None:
        """The hub sees every message its own broker carries; topics it starts reading now get their
        retained message once, as a subscription would (a discovered device's state published first)."""
        broker = self._broker
        if broker is None:
            return
        held = broker.retained_messages
        for topic in topics:
            if topic in self._handed_over:  # described again: its messages have been reaching the hub since
                continue
            self._handed_over.add(topic)
            retained = held.get(topic)
            if retained is not None and retained.data:
                self._emit(MqttMessageReceived(topic, bytes(retained.data), True))
