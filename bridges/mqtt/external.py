"""The hub as a client of an existing MQTT broker (mosquitto, EMQX, a NAS…).

Used instead of the embedded broker when the devices already talk to one.
This adapter only translates: broker traffic becomes core events, core
``PublishMqtt`` intents become publishes. It keeps the link alive itself
(jittered exponential back-off, re-subscribing on every connect) because the
core can only react to :class:`MqttLinkDown` / :class:`MqttLinkUp`, not fix
a socket.

Behaviour worth knowing:

* **Own messages come back.** MQTT 3.1.1 has no "no local" option, so with a
  filter such as ``#`` every message the hub publishes is delivered back to
  it as an :class:`MqttMessageReceived`. The core ignores what it sees on
  command topics, so this is harmless; narrow ``subscriptions`` to avoid it.
* **Retain flag.** Per MQTT 3.1.1 §3.3.1.3 the broker sets ``retain`` only on
  messages replayed because a subscription was made (device state stored
  before the hub connected or after a reconnect); live messages arrive with
  ``retain=False`` even if their publisher set it.
* **Clean sessions.** Each connect starts a clean session and re-subscribes;
  retained messages give the core the current state again, non-retained
  traffic sent while the link was down is lost (the core saw ``MqttLinkDown``).
* **Publishing while disconnected drops and counts** (``dropped_publishes``),
  it never raises and never queues: a device command replayed minutes later,
  after the core has already told the operator it timed out, would be worse
  than none. The same holds when ``max_pending_publishes`` publishes already
  wait for their acknowledgement.
* **client_id must be unique** on the broker: two hubs with the same id take
  the session from each other and would reconnect in turns (the back-off
  keeps growing while connections stay short-lived).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass, field

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from hub.core.events import MqttLinkDown, MqttLinkUp, MqttMessageReceived
from hub.core.intents import PublishMqtt
from hub.core.ports import EventSink, Room
from hub.core.topics import filter_matches

__all__ = ["ExternalBroker", "ExternalBrokerOptions"]

log = logging.getLogger(__name__)

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

#: A connection that stayed up this long resets the back-off; shorter ones (a
#: broker that accepts and then drops us) keep growing it instead of hammering.
_STABLE_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class ExternalBrokerOptions:
    """How to reach the broker; a frozen value built from validated settings."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged
    client_id: str = "mqtt-xmpp-hub"
    #: Filters the hub needs; the app passes the profiles' filters.
    subscriptions: tuple[str, ...] = ("#",)
    keepalive: int = 30
    #: QoS for subscriptions and for the status messages (publishes use the intent's QoS).
    qos: int = 1
    tls: bool = False
    ca_file: str | None = None
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: Publishes allowed to wait for their broker acknowledgement at once; beyond that they are dropped.
    max_pending_publishes: int = 1000
    #: If set, the hub's availability: retained "online" on connect, Last Will "offline".
    status_topic: str | None = None
    #: Seconds to wait for CONNACK, SUBACK and PUBACK before giving up on that step.
    timeout: float = 10.0
    #: Messages kept in order while the hub's event queue is full; more are dropped and counted.
    max_waiting_messages: int = 10_000

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos: must be 0, 1 or 2, not {self.qos}")
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            raise ValueError("reconnect delays: need 0 < reconnect_min_delay <= reconnect_max_delay")
        if self.max_pending_publishes < 1 or self.max_waiting_messages < 1:
            raise ValueError("max_pending_publishes and max_waiting_messages: must be at least 1")
        if self.keepalive < 1 or self.timeout <= 0:
            raise ValueError("keepalive and timeout: must be positive")
        if self.password is not None and self.username is None:
            raise ValueError("password: given without a username")


class ExternalBroker:
    """:class:`hub.core.ports.MqttPort` over aiomqtt, connected to someone else's broker."""

    def __init__(self, options: ExternalBrokerOptions, emit: EventSink, room: Room | None = None) -> None:
        self._options = options
        self._emit = emit
        self._room = room
        #: Messages that arrived while the hub's queue was full and this adapter's own was too.
        self.dropped_messages = 0
        self._client: aiomqtt.Client | None = None  # set only while the link is up
        self._pending = 0
        self._dropped = 0
        self._connect_attempts = 0
        self._last_error: str | None = None
        self._up_since: float | None = None  # loop time of the current session's MqttLinkUp
        #: Topics discovered devices named, beyond the configured filters; subscribed again on every connect.
        self._extra: dict[str, None] = {}

    # -- observable state (health checks, tests) --------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between ``MqttLinkUp`` and ``MqttLinkDown``."""
        return self._client is not None

    @property
    def dropped_publishes(self) -> int:
        """Publishes given up on: link down, too many pending, or refused/unacknowledged."""
        return self._dropped

    @property
    def connect_attempts(self) -> int:
        return self._connect_attempts

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt or session ended, for logs and health output."""
        return self._last_error

    # -- MqttPort ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled; on cancel publish "offline" (if any) and disconnect cleanly.

        Cancellation is the only way out: broker refusals (bad credentials,
        ACLs) and network errors are logged and retried, because the broker
        or its config may come back without the hub being restarted.
        """
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            self._connect_attempts += 1
            self._up_since = None
            try:
                async with self._new_client() as client:
                    try:
                        await self._serve(client)
                    except asyncio.CancelledError:
                        self._client = None
                        await self._say_offline(client)
                        raise
            except aiomqtt.MqttError as exc:
                if _cancelling():
                    # aiomqtt's clean disconnect failed while we were being cancelled: still stop.
                    raise asyncio.CancelledError from exc
                self._last_error = _describe(exc)
            finally:
                self._client = None
                if self._up_since is not None and not _cancelling():
                    log.warning("mqtt external broker link down: %s", self._last_error)
                    self._emit(MqttLinkDown())
            up_since = self._up_since

            if up_since is not None and loop.time() - up_since >= _STABLE_AFTER:
                failures = 0
            delay = self._backoff(failures)
            failures += 1
            log.warning(
                "mqtt external broker %s:%d unavailable (%s); retrying in %.1fs",
                self._options.host,
                self._options.port,
                self._last_error,
                delay,
            )
            await asyncio.sleep(delay)

    async def publish(self, intent: PublishMqtt) -> None:
        """Publish and wait for the broker's acknowledgement (QoS ≥ 1), at most ``timeout`` seconds.

        Never raises for broker trouble and never queues: while the link is
        down, or with ``max_pending_publishes`` already waiting, the message
        is dropped, logged and counted in :attr:`dropped_publishes`.
        """
        client = self._client
        if client is None:
            self._drop(intent, "link down")
            return
        if self._pending >= self._options.max_pending_publishes:
            self._drop(intent, "too many pending publishes")
            return
        self._pending += 1
        try:
            await client.publish(
                intent.topic,
                intent.payload,
                qos=intent.qos,
                retain=intent.retain,
                timeout=self._options.timeout,
            )
        except aiomqtt.MqttError as exc:
            self._drop(intent, _describe(exc))
        except ValueError as exc:  # paho rejects wildcards in topics, bad QoS, oversize payloads
            self._drop(intent, f"invalid: {exc}")
        finally:
            self._pending -= 1

    # -- helpers -----------------------------------------------------------------------------------

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One session: subscribe, announce, then turn messages into events until the link breaks."""
        await self._subscribe(client)
        if self._options.status_topic is not None:
            await client.publish(
                self._options.status_topic, STATUS_ONLINE, qos=self._options.qos, retain=True
            )
        self._up_since = asyncio.get_running_loop().time()
        self._client = client
        self._last_error = None
        log.info("mqtt external broker link up: %s:%d", self._options.host, self._options.port)
        self._emit(MqttLinkUp())
        room = self._room
        async for message in client.messages:  # only what _take could not hand over at once
            if room is not None:
                await room.wait_for_room()
            self._emit(_event(message))

    def _take(self, message: aiomqtt.Message) -> bool:
        """:class:`_HandOff`: the message as an event now, if the hub's queue has room for it."""
        if self._room is not None and not self._room.room_available():
            return False
        self._emit(_event(message))
        return True

    def _dropped_one(self, message: aiomqtt.Message) -> None:
        self.dropped_messages += 1
        if self.dropped_messages == 1 or self.dropped_messages % 1000 == 0:
            log.warning(
                "mqtt external broker: hub busy and %d messages waiting: dropped %s (dropped_total=%d)",
                self._options.max_waiting_messages,
                message.topic.value,
                self.dropped_messages,
            )

    def _new_client(self) -> aiomqtt.Client:
        """A fresh client per attempt, so no state of a broken session leaks into the next."""
        opts = self._options
        will = None
        if opts.status_topic is not None:
            will = aiomqtt.Will(opts.status_topic, STATUS_OFFLINE, qos=opts.qos, retain=True)
        tls_context = ssl.create_default_context(cafile=opts.ca_file) if opts.tls else None
        adapter = self

        class HandOff(_HandOff):
            def take(self, message: aiomqtt.Message) -> bool:
                return adapter._take(message)

            def dropped_one(self, message: aiomqtt.Message) -> None:
                adapter._dropped_one(message)

        return aiomqtt.Client(
            opts.host,
            opts.port,
            username=opts.username,
            password=opts.password,
            identifier=opts.client_id,
            keepalive=opts.keepalive,
            will=will,
            clean_session=True,
            timeout=opts.timeout,
            tls_context=tls_context,
            logger=log.getChild("aiomqtt"),
            queue_type=HandOff,
            max_queued_incoming_messages=opts.max_waiting_messages,
        )

    async def subscribe(self, topics: tuple[str, ...]) -> None:
        """Also receive these topics (a discovered device's), now if connected and after every reconnect."""
        new = [t for t in topics if t not in self._extra and not self._covered(t)]
        for topic in new:
            self._extra[topic] = None
        client = self._client
        if new and client is not None:
            try:
                await client.subscribe([(t, self._options.qos) for t in new], timeout=self._options.timeout)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt external broker: subscribing to %d discovered topics failed: %s", len(new), exc)

    def _covered(self, topic: str) -> bool:
        return any(filter_matches(f, topic) for f in self._options.subscriptions)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        filters = self._options.subscriptions + tuple(self._extra)
        if not filters:
            return
        granted = await client.subscribe([(f, self._options.qos) for f in filters])
        for topic_filter, code in zip(filters, granted, strict=False):
            # v3.1.1 SUBACK 0x80: the broker (usually its ACL) refused this filter; the rest still work.
            value = code if isinstance(code, int) else int(getattr(code, "value", 0))
            if value >= 0x80:
                log.error("mqtt external broker refused subscription %r (%s)", topic_filter, code)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """A clean DISCONNECT discards the Last Will, so announce "offline" ourselves."""
        if self._options.status_topic is None:
            return
        try:
            await client.publish(
                self._options.status_topic,
                STATUS_OFFLINE,
                qos=self._options.qos,
                retain=True,
                timeout=min(self._options.timeout, 2.0),
            )
        except aiomqtt.MqttError as exc:
            log.warning("mqtt external broker: could not publish offline status: %s", _describe(exc))

    def _backoff(self, failures: int) -> float:
        """Exponential with "equal jitter": half fixed, half random, so restarts do not stampede."""
        ceiling = min(
            self._options.reconnect_max_delay,
            self._options.reconnect_min_delay * 2.0 ** min(failures, 32),
        )
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _drop(self, intent: PublishMqtt, reason: str) -> None:
        self._dropped += 1
        log.warning(
            "mqtt publish dropped (%s): topic=%s bytes=%d dropped_total=%d",
            reason,
            intent.topic,
            len(intent.payload),
            self._dropped,
        )


class _HandOff(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue (its ``queue_type``), turned into a hand-off.

    aiomqtt queues every message, and its iterator takes each out through a new task and an
    ``asyncio.wait`` (about 15 % of the hub's time per message in ``bench.profile``). While the
    hub's event queue has room and nothing waits here, a message becomes an event at once
    (:meth:`take`); otherwise it waits here, in order, for :meth:`ExternalBroker._serve`, and
    past ``maxsize`` it is dropped and counted (aiomqtt would log every one).
    """

    def take(self, message: aiomqtt.Message) -> bool:
        raise NotImplementedError

    def dropped_one(self, message: aiomqtt.Message) -> None:
        raise NotImplementedError

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.empty() and self.take(item):
            return
        if self.full():
            self.dropped_one(item)
            return
        super().put_nowait(item)


def _event(message: aiomqtt.Message) -> MqttMessageReceived:
    return MqttMessageReceived(topic=message.topic.value, payload=bytes(message.payload), retain=bool(message.retain))


def _describe(exc: aiomqtt.MqttError) -> str:
    """Name refusals plainly: "not authorised" is a config problem, not a network one."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MqttConnectError):
        code = exc.rc if isinstance(exc.rc, int) or exc.rc is None else int(exc.rc.value)
        # 4/5: MQTT 3.1.1 bad credentials / not authorised; 0x86/0x87: the MQTT 5 equivalents.
        hint = " (check username/password)" if code in (4, 5, 0x86, 0x87) else ""
        return f"broker refused the connection: {text}{hint}"
    return text


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
