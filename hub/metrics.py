"""Prometheus metrics, counted from what the hub already says and read from the core's state.

The core stays pure and knows nothing of Prometheus: it returns ``Log`` intents
with stable event names (``payload.rejected``, ``command.confirmed``, …) and
keeps its own totals (refusals suppressed, buffered messages dropped, presence
held). Here the app's events and intents become counters, and the core's state
becomes gauges. The HTTP endpoint serves from a thread, so it never reads the
core itself: :meth:`Metrics.refresh` copies the state on the event loop at
every tick (once a second) and the endpoint reports that copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.core.events import Event, MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.hub import Hub
from hub.core.intents import Intent, Log, SendChat, SendPresence

COMMAND_OUTCOMES = (
    "sent", "confirmed", "refused", "unconfirmed", "queued", "expired",
    "replaced", "queue_full", "forbidden", "rate_limited",
)  # fmt: skip
#: Log event name → the ``reason`` label of ``hub_payloads_rejected_total``.
REJECTIONS = {"payload.rejected": "payload", "payload.bad_availability": "availability", "payload.bad_result": "result"}


@dataclass(frozen=True, slots=True)
class CoreState:
    devices: int = 0
    devices_online: int = 0
    commands_pending: int = 0
    commands_queued: int = 0
    xmpp_buffer_held: int = 0
    xmpp_buffer_dropped: int = 0
    refusals_suppressed: int = 0
    presence_held_now: int = 0
    presence_held: int = 0
    mqtt_up: bool = False
    xmpp_up: bool = False
    event_queue: int = 0


class _CoreCollector(Collector):
    def __init__(self) -> None:
        self.state = CoreState()

    def collect(self) -> Iterator[Any]:
        s = self.state  # one reference, swapped whole by refresh(): a consistent copy
        gauges = (
            ("hub_devices", "Devices the hub knows.", s.devices),
            ("hub_devices_online", "Devices online now.", s.devices_online),
            ("hub_commands_pending", "Commands sent and awaiting confirmation.", s.commands_pending),
            ("hub_commands_queued", "Commands waiting for their offline device.", s.commands_queued),
            ("hub_xmpp_buffer_held", "Chat messages held while the XMPP server is unreachable.", s.xmpp_buffer_held),
            ("hub_presence_held_now", "Devices whose presence change is held by coalescing.", s.presence_held_now),
            ("hub_event_queue_length", "Events waiting for the core.", s.event_queue),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        link = GaugeMetricFamily("hub_link_up", "1 while the link is up.", labels=["link"])
        link.add_metric(["mqtt"], int(s.mqtt_up))
        link.add_metric(["xmpp"], int(s.xmpp_up))
        yield link
        counters = (
            ("hub_xmpp_buffer_dropped", "Chat messages dropped: the XMPP-down buffer was full.", s.xmpp_buffer_dropped),
            ("hub_chat_refusals_suppressed", "Refusals to strangers not sent (rate limit).", s.refusals_suppressed),
            ("hub_presence_held", "Presence changes held back by coalescing (sent later or superseded).",
             s.presence_held),
        )  # fmt: skip
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)


class Metrics:
    """The hub's counters and gauges, in a registry of their own (several hubs may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.mqtt_messages = Counter("hub_mqtt_messages", "MQTT messages the core handled.", registry=r)
        self.events_dropped = Counter("hub_events_dropped", "Events dropped: the event queue was full.", registry=r)
        self.payloads_rejected = Counter(
            "hub_payloads_rejected", "Device payloads rejected (logged with their topic).", ["reason"], registry=r
        )
        self.chat_refusals = Counter("hub_chat_refusals", "Refusals sent to strangers.", registry=r)
        self.commands = Counter("hub_commands", "Operator commands by outcome.", ["outcome"], registry=r)
        self.presence_sent = Counter("hub_presence_sent", "Presence stanzas sent.", registry=r)
        self.chats_sent = Counter("hub_chats_sent", "Chat messages sent (alerts, replies, confirmations).", registry=r)
        self.link_ups = Counter("hub_link_ups", "Times a link came up (the first time included).", ["link"], registry=r)
        for outcome in COMMAND_OUTCOMES:
            self.commands.labels(outcome)
        for reason in REJECTIONS.values():
            self.payloads_rejected.labels(reason)
        for name in ("mqtt", "xmpp"):
            self.link_ups.labels(name)
        self._core = _CoreCollector()
        r.register(self._core)
        self._server: Any = None
        self._by_log = {f"command.{o}": self.commands.labels(o) for o in COMMAND_OUTCOMES}
        self._by_log |= {event: self.payloads_rejected.labels(reason) for event, reason in REJECTIONS.items()}
        self._by_log["chat.refused"] = self.chat_refusals

    def event(self, event: Event) -> None:
        kind = type(event)
        if kind is MqttMessageReceived:
            self.mqtt_messages.inc()
        elif kind is MqttLinkUp:
            self.link_ups.labels("mqtt").inc()
        elif kind is XmppLinkUp:
            self.link_ups.labels("xmpp").inc()

    def intent(self, intent: Intent) -> None:
        kind = type(intent)
        if kind is SendPresence:
            self.presence_sent.inc()
        elif kind is SendChat:
            self.chats_sent.inc()
        elif kind is Log:
            assert isinstance(intent, Log)
            counter = self._by_log.get(intent.event)
            if counter is not None:
                counter.inc()

    def refresh(self, core: Hub, queue_length: int) -> None:
        """Copy the core's state for the endpoint; called on the event loop."""
        self._core.state = CoreState(
            devices=len(core.devices),
            devices_online=sum(1 for d in core.devices.values() if d.online),
            commands_pending=len(core.pending),
            commands_queued=sum(len(q) for q in core.queued.values()),
            xmpp_buffer_held=len(core.held),
            xmpp_buffer_dropped=core.held_dropped_total,
            refusals_suppressed=core.refusals.suppressed_total,
            presence_held_now=len(core.presence_held),
            presence_held=core.presence_held_total,
            mqtt_up=bool(core.mqtt_up),
            xmpp_up=core.xmpp_up,
            event_queue=queue_length,
        )

    def serve(self, host: str, port: int) -> None:
        self._server, _ = start_http_server(port, host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
