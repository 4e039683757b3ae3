"""The hub's decisions: facts in, intents out, one event at a time.

``Hub.handle(event, now)`` is the only entry point besides ``shutdown``. It
never blocks, sleeps, reads a clock or touches a socket, so the whole hub can
be driven in memory by tests and by the app's single consumer task alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hub.core import adhoc, replies
from hub.core.alerts import AlertRule, AlertState, Notice, due_repeat, evaluate
from hub.core.auth import Authorizer, Grant
from hub.core.codecs import PayloadError, Reading
from hub.core.commands import (
    CommandError,
    Help,
    ListDevices,
    Query,
    RunVerb,
    SetProperty,
    Status,
    Switch,
    describe_property,
    format_number,
    parse_device_command,
    parse_hub_command,
    switch_property,
    validate_value,
)
from hub.core.decoding import Availability, decode_availability, decode_telemetry
from hub.core.device import Device, DeviceConfig, alert_text
from hub.core.discovered import DiscoveryBook
from hub.core.discovery import DiscoveredDevice
from hub.core.events import (
    AdHocRequested,
    ChatReceived,
    ChatUndelivered,
    DiscoRequested,
    Event,
    MqttClientConnected,
    MqttClientDisconnected,
    MqttLinkDown,
    MqttLinkUp,
    MqttMessageReceived,
    PresenceProbed,
    SubscriptionCancelled,
    SubscriptionRequested,
    Tick,
    XmppLinkDown,
    XmppLinkUp,
)
from hub.core.intents import (
    Intent,
    Log,
    PublishMqtt,
    SendChat,
    SendPresence,
    SendSubscription,
    Show,
    StoreSubscription,
    SubscribeMqtt,
)
from hub.core.jid import bare
from hub.core.mapping import Binding, MappingError, Route, Router, TopicRole
from hub.core.payloads import TemplateError, render
from hub.core.presence import derive, format_reading
from hub.core.profile import AvailabilityMode, Profile, PropertySpec, Role
from hub.core.ratelimit import CommandLimiter, RefusalLimiter
from hub.core.snapshot import AlertRecord, Changes, CommandRecord, DeviceRecord, DiscoveryRecord, OutboxRecord
from hub.core.topics import TopicError


def _utc_clock(timestamp: float) -> str:
    seconds = int(timestamp) % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d} UTC"


@dataclass(frozen=True, slots=True)
class HubSettings:
    domain: str
    bindings: tuple[Binding, ...]
    devices: Mapping[str, DeviceConfig] = field(default_factory=dict)
    grants: Mapping[str, Grant] = field(default_factory=dict)
    alert_rules: tuple[AlertRule, ...] = ()
    confirm_timeout: float = 5.0
    max_devices: int = 10_000
    accept_unknown_devices: bool = True
    max_pending_commands: int = 1000
    #: Chat messages (alerts, confirmations) kept while the XMPP stream is down; the rest are counted.
    xmpp_buffer: int = 500
    #: How long a command for an offline device waits for it.
    queued_command_expiry: float = 3600.0
    max_queued_per_device: int = 10
    max_queued_commands: int = 1000
    #: Presence coalescing: a device's presence goes out at most once per this many seconds;
    #: changes in between are held and the latest one is sent when the interval is over (0: off).
    presence_min_interval: float = 0.0
    #: Presence stanzas per second for the whole hub (0: unlimited); past it, changes wait for a tick.
    presence_budget: float = 0.0
    #: Commands (those that publish or queue) per operator per minute; past it they are refused (0: no limit).
    operator_commands_per_minute: int = 0
    #: Makes correlation ids unique across restarts (the app draws it at random).
    session_tag: str = "h"
    format_time: Callable[[float], str] = _utc_clock


@dataclass(slots=True)
class PendingCommand:
    cid: str
    device_jid: str
    operator: str
    summary: str
    sent_at: float
    deadline: float
    expect: dict[str, Reading] | None = None
    toggle_key: str | None = None
    toggle_from: Reading | None = None
    #: What to publish: kept so a queued command can be sent when its device is back.
    topic: str = ""
    payload: bytes = b""
    #: While queued for an offline device: when the command expires, and when it was accepted.
    expires: float | None = None
    queued_at: float | None = None
    #: Queued commands with the same key replace each other (the latest desired state wins).
    replace_key: str | None = None

    def record(self) -> CommandRecord:
        return CommandRecord(
            cid=self.cid,
            device_jid=self.device_jid,
            operator=self.operator,
            summary=self.summary,
            sent_at=self.sent_at,
            deadline=self.deadline,
            topic=self.topic,
            payload=self.payload,
            expires=self.expires,
            queued_at=self.queued_at,
            replace_key=self.replace_key,
            expect=None if self.expect is None else tuple(self.expect.items()),
            toggle_key=self.toggle_key,
            toggle_from=self.toggle_from,
        )

    @classmethod
    def from_record(cls, record: CommandRecord) -> PendingCommand:
        return cls(
            cid=record.cid,
            device_jid=record.device_jid,
            operator=record.operator,
            summary=record.summary,
            sent_at=record.sent_at,
            deadline=record.deadline,
            expect=None if record.expect is None else dict(record.expect),
            toggle_key=record.toggle_key,
            toggle_from=record.toggle_from,
            topic=record.topic,
            payload=record.payload,
            expires=record.expires,
            queued_at=record.queued_at,
            replace_key=record.replace_key,
        )


def _same(actual: Reading | None, wanted: Reading) -> bool:
    if actual is None:
        return False
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return _as_bool(actual) == _as_bool(wanted)
    if isinstance(wanted, int | float) and isinstance(actual, int | float):
        return abs(actual - wanted) <= 1e-6 * max(1.0, abs(wanted))
    return str(actual).strip().lower() == str(wanted).strip().lower()


def _shown(value: Reading) -> str:
    """A value as an operator wrote it: ``21.5``, ``on`` for True, text as it is."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return format_number(value) if isinstance(value, float) else str(value)


def _as_bool(value: Reading) -> bool | None:
    text = str(value).strip().lower()
    if text in ("true", "on", "1", "yes"):
        return True
    if text in ("false", "off", "0", "no"):
        return False
    return None


class Hub:
    def __init__(self, settings: HubSettings, subscriptions: Iterable[tuple[str, str]] = ()) -> None:
        self.settings = settings
        self.domain = settings.domain.lower()
        self.router = Router(settings.bindings, self.domain)
        self.auth = Authorizer(settings.grants)
        self.devices: dict[str, Device] = {}  # by JID
        self._by_id: dict[str, list[Device]] = {}
        self._open_sessions: set[str] = set()
        self.subscribers: dict[str, set[str]] = {}
        for device_jid, operator in subscriptions:
            self.subscribers.setdefault(device_jid.lower(), set()).add(bare(operator))
        self.pending: dict[str, PendingCommand] = {}
        #: Refusals to people not on the operator list, rate-limited per sender (bounded memory).
        self.refusals = RefusalLimiter()
        per_minute = settings.operator_commands_per_minute
        self.command_limiter = CommandLimiter(per_minute) if per_minute > 0 else None
        #: Commands waiting for their offline device, by device JID, oldest first.
        self.queued: dict[str, list[PendingCommand]] = {}
        self._next_cid = 0
        #: Chat messages held while the XMPP stream is down, and how many did not fit.
        self.held: list[SendChat] = []
        self.held_dropped = 0
        #: Chat messages that did not fit in the buffer, since start: a metric.
        self.held_dropped_total = 0
        self._held_version = self._saved_held_version = 0
        #: Devices changed since the last :meth:`take_changes`, and the commands it last saw.
        self._dirty: set[str] = set()
        #: Presence coalescing: when each device's presence last went out, and the stanza budget.
        self._presence_sent_at: dict[str, float] = {}
        self._presence_tokens = settings.presence_budget
        self._presence_filled_at: float | None = None
        #: Presence held back by coalescing, per device JID (the latest wins), and how many since start.
        #: Devices whose presence change coalescing holds back now, and how many changes it held in all.
        self.presence_held: set[str] = set()
        self.presence_held_total = 0
        self._saved_cids: frozenset[str] = frozenset()
        self.xmpp_up = False
        self.mqtt_up: bool | None = None  # None: not connected yet since start
        self.mqtt_down_since: float | None = None
        self.hub_announced: tuple[Show, str] | None = None
        #: Discovery: descriptions per source, each discovered device's wanted parent, ids and aliases → JID.
        self.discovery = DiscoveryBook()
        self._wanted_parent: dict[str, str | None] = {}
        self._identity: dict[str, str] = {}
        for config in settings.devices.values():
            binding = self._binding_for_config(config)
            if binding is not None:
                self._create(binding, config.device_id, now=None)

    # ------------------------------------------------------------------ entry points

    def handle(self, event: Event, now: float) -> list[Intent]:
        out = self._dispatch(event, now)
        if not self.xmpp_up:
            out = self._hold(out)
        return out

    def _dispatch(self, event: Event, now: float) -> list[Intent]:
        match event:
            case MqttMessageReceived():
                return self._on_mqtt_message(event, now)
            case MqttClientConnected(client_id=client_id, username=username):
                return self._on_session(client_id, username, True, now)
            case MqttClientDisconnected(client_id=client_id, username=username):
                return self._on_session(client_id, username, False, now)
            case MqttLinkUp():
                self.mqtt_up, self.mqtt_down_since = True, None
                return [Log("info", "mqtt.up"), *self._refresh_all(now)]
            case MqttLinkDown():
                self.mqtt_up, self.mqtt_down_since = False, now
                return [Log("warning", "mqtt.down"), *self._refresh_all(now)]
            case XmppLinkUp():
                self.xmpp_up = True
                return [
                    Log("info", "xmpp.up", {"devices": len(self.devices)}),
                    *self._announce_all(now),
                    *self._release_held(),
                ]
            case XmppLinkDown():
                self.xmpp_up = False
                return [Log("warning", "xmpp.down")]
            case ChatUndelivered(sender=sender, to=to, body=body):
                # The stream went before the core knew. This event comes after that XmppLinkDown, so the
                # message is held (handle() below) or, if the stream is already back, sent again.
                return [SendChat(sender, to, body)]
            case ChatReceived():
                return self._on_chat(event, now)
            case SubscriptionRequested(sender=sender, to=to):
                return self._on_subscribe(bare(sender), bare(to), now)
            case SubscriptionCancelled(sender=sender, to=to):
                return self._on_unsubscribe(bare(sender), bare(to))
            case PresenceProbed(sender=sender, to=to):
                return self._on_probe(bare(sender), bare(to), now)
            case DiscoRequested() | AdHocRequested():
                return adhoc.handle(self, event, now)
            case Tick():
                return self._on_tick(now)

    def shutdown(self) -> list[Intent]:
        """Unavailable presence for every device and the hub, to every subscriber."""
        out: list[Intent] = []
        for device_jid, operators in self.subscribers.items():
            for operator in sorted(operators):
                out.append(SendPresence(device_jid, operator, Show.UNAVAILABLE, "hub stopped"))
        self.xmpp_up = False
        return out

    # ------------------------------------------------------------------ while XMPP is down

    def _hold(self, intents: list[Intent]) -> list[Intent]:
        """Keep chat messages for after the reconnect, up to ``xmpp_buffer``; count the rest."""
        out: list[Intent] = []
        for intent in intents:
            if not isinstance(intent, SendChat):
                out.append(intent)
            elif len(self.held) < self.settings.xmpp_buffer:
                self.held.append(intent)
                self._held_version += 1
            else:
                self.held_dropped += 1
                self.held_dropped_total += 1
                self._held_version += 1
                if self.held_dropped == 1:
                    out.append(Log("warning", "xmpp.buffer_full", {"kept": len(self.held)}))
        return out

    def _release_held(self) -> list[Intent]:
        """The held messages, once, and a word to the admins about those that did not fit."""
        out: list[Intent] = list(self.held)
        self.held = []
        dropped, self.held_dropped = self.held_dropped, 0
        if out or dropped:
            self._held_version += 1
            out.append(Log("info", "xmpp.buffer_delivered", {"delivered": len(out), "dropped": dropped}))
        if dropped:
            body = (
                f"{dropped} message{'s were' if dropped != 1 else ' was'} dropped while the XMPP server was "
                f"unreachable (the hub keeps at most {self.settings.xmpp_buffer})."
            )
            admins = sorted(bare(jid) for jid, grant in self.settings.grants.items() if grant.role is Role.ADMIN)
            out += [SendChat(self.domain, admin, body) for admin in admins]
            out.append(Log("warning", "xmpp.buffer_dropped", {"dropped": dropped}))
        return out

    # ------------------------------------------------------------------ durable state

    def take_changes(self, include_devices: bool = True) -> Changes:
        """Records of what changed since the last call, for the app to store; empty if nothing did.

        Commands and the outbox always come out: they must be stored before anyone is told about
        them. With ``include_devices=False`` changed devices are kept for a later call (the app
        batches them), unless commands or the outbox changed too: then everything comes out, so
        what is stored stays one consistent state.
        """
        outbox = None
        if self._held_version != self._saved_held_version:
            self._saved_held_version = self._held_version
            outbox = OutboxRecord(tuple((c.sender, c.to, c.body) for c in self.held), self.held_dropped)
        command_records = None
        if self.pending or self.queued or self._saved_cids:  # after every event: skip the common "none at all"
            commands = [*self.pending.values(), *(c for queue in self.queued.values() for c in queue)]
            cids = frozenset(c.cid for c in commands)
            if cids != self._saved_cids:
                self._saved_cids = cids
                command_records = tuple(c.record() for c in commands)
        devices: tuple[DeviceRecord, ...] = ()
        if include_devices or command_records is not None or outbox is not None:
            found = (self.devices.get(jid) for jid in sorted(self._dirty))
            devices = tuple(self._device_record(device) for device in found if device is not None)
            self._dirty.clear()
        discovery = tuple(DiscoveryRecord(*entry) for entry in self.discovery.take_unsaved())
        return Changes(devices, command_records, outbox, discovery)

    @property
    def devices_changed(self) -> bool:
        """Whether devices changed since the last :meth:`take_changes` that included them."""
        return bool(self._dirty)

    @staticmethod
    def _device_record(device: Device) -> DeviceRecord:
        return DeviceRecord(
            jid=device.jid,
            binding=device.binding.name,
            device_id=device.device_id,
            available=device.available,
            sleeping=device.sleeping,
            last_live=device.last_live,
            offline_since=device.offline_since,
            readings=tuple(device.readings.items()),
            alerts=tuple(
                AlertRecord(name, s.since, s.last_sent, s.value, s.reading) for name, s in device.alerts.items()
            ),
            session=device.session,
        )

    def restore(
        self,
        devices: Iterable[DeviceRecord],
        commands: Iterable[CommandRecord],
        outbox: OutboxRecord | None = None,
        discovery: Iterable[DiscoveryRecord] = (),
    ) -> list[Intent]:
        """Take back what :meth:`take_changes` gave out, before the first event; logs what it cannot use.

        Discovery messages are read again, so discovered devices keep their names, topics and
        commands before their convention repeats itself (or if it never does).
        """
        out: list[Intent] = []
        if outbox is not None:
            chats = [SendChat(sender, to, body) for sender, to, body in outbox.chats]
            self.held = chats[: self.settings.xmpp_buffer]
            self.held_dropped = outbox.dropped + len(chats) - len(self.held)
        rules = {rule.name: rule for rule in self.settings.alert_rules}
        for record in devices:
            binding = self.router.bindings.get(record.binding)
            if binding is None:
                out.append(Log("warning", "restore.device_skipped", {"jid": record.jid, "reason": "binding gone"}))
                continue
            try:
                jid = self.router.jid_for(binding, record.device_id)
            except MappingError as exc:
                out.append(Log("warning", "restore.device_skipped", {"jid": record.jid, "reason": str(exc)}))
                continue
            device = self.devices.get(jid)
            if device is None:
                if len(self.devices) >= self.settings.max_devices:
                    out.append(Log("warning", "restore.device_skipped", {"jid": jid, "reason": "device limit"}))
                    continue
                device = self._create(binding, record.device_id, now=None)
            elif device.binding is not binding or device.device_id != record.device_id:
                out.append(Log("warning", "restore.device_skipped", {"jid": jid, "reason": "jid taken"}))
                continue
            device.available, device.sleeping = record.available, record.sleeping
            device.last_live, device.offline_since = record.last_live, record.offline_since
            if record.session is not None:
                # Its session was with the broker of the last run, which is gone: offline until it reconnects.
                if device.online and device.offline_since is None:
                    device.offline_since = record.last_live
                device.session = False
            device.update_readings(dict(record.readings))
            for alert in record.alerts:
                rule = rules.get(alert.rule)
                if rule is not None and rule.applies_to(device.device_id, device.group):
                    device.alerts[rule.name] = AlertState(
                        rule, alert.since, alert.last_sent, alert.value, alert.reading
                    )
        read: set[str] = set()
        for command in commands:
            read.add(command.cid)
            pending = PendingCommand.from_record(command)
            if pending.device_jid not in self.devices:
                out.append(Log("warning", "restore.command_skipped", {"cid": pending.cid, "reason": "device gone"}))
            elif pending.expires is not None:
                self.queued.setdefault(pending.device_jid, []).append(pending)
            else:
                self.pending[pending.cid] = pending
        for queue in self.queued.values():
            queue.sort(key=lambda c: c.queued_at or c.sent_at)
        for entry in discovery:
            found = self.router.bindings.get(entry.binding)
            route = self.router.discovery_rule(entry.topic)
            if found is None or route is None or route.binding is not found:
                out.append(
                    Log("warning", "restore.discovery_skipped", {"topic": entry.topic, "binding": entry.binding})
                )
                continue
            described = self._on_discovery(route, MqttMessageReceived(entry.topic, entry.payload, retain=True), 0.0)
            out += [i for i in described if not isinstance(i, Log) or i.level != "info"]
        self.discovery.take_unsaved()
        self._dirty.clear()
        self._saved_cids = frozenset(read)  # what is stored; a skipped command makes the next change rewrite it
        out.append(
            Log(
                "info",
                "state.restored",
                {
                    "devices": len(self.devices),
                    "pending": len(self.pending),
                    "queued": self._queued_count(),
                    "held": len(self.held),
                },
            )
        )
        return out

    def _queued_count(self) -> int:
        return sum(len(queue) for queue in self.queued.values())

    # ------------------------------------------------------------------ devices

    def _binding_for_config(self, config: DeviceConfig) -> Binding | None:
        if config.binding is not None:
            return self.router.bindings.get(config.binding)
        return next(iter(self.router.bindings.values()), None)

    def _create(self, binding: Binding, device_id: str, now: float | None) -> Device:
        jid = self.router.jid_for(binding, device_id)
        config = self.settings.devices.get(device_id)
        device = Device(
            binding=binding,
            device_id=device_id,
            jid=jid,
            name=(config.name if config and config.name else device_id),
            group=config.group if config else None,
            expected_interval=(
                config.expected_interval if config and config.expected_interval else binding.profile.expected_interval
            ),
        )
        if device_id in self._open_sessions:
            device.session = True
        self.devices[jid] = device
        self._by_id.setdefault(device_id, []).append(device)
        self._dirty.add(jid)
        return device

    def _device_for_route(self, route: Route, topic: str, now: float) -> tuple[Device | None, list[Intent]]:
        try:
            jid = self.router.jid_for(route.binding, route.device_id)
        except MappingError as exc:
            return None, [Log("warning", "device.bad_id", {"topic": topic, "reason": str(exc)})]
        device = self.devices.get(jid)
        if device is not None:
            if device.binding is not route.binding or device.device_id != route.device_id:
                return None, [
                    Log(
                        "warning",
                        "device.jid_collision",
                        {"topic": topic, "jid": jid, "owner": f"{device.binding.name}:{device.device_id}"},
                    )
                ]
            return device, []
        if not self.settings.accept_unknown_devices and route.device_id not in self.settings.devices:
            return None, [Log("debug", "device.unknown_ignored", {"topic": topic})]
        if len(self.devices) >= self.settings.max_devices:
            return None, [Log("warning", "device.limit", {"topic": topic, "max": self.settings.max_devices})]
        device = self._create(route.binding, route.device_id, now)
        out: list[Intent] = [Log("info", "device.new", {"device": device.device_id, "jid": jid, "topic": topic})]
        return device, out + self._offer_new_device(device)

    def _offer_new_device(self, device: Device) -> list[Intent]:
        """Ask operators who want new devices to add this one (their client shows a request with its name)."""
        if not self.xmpp_up:
            return []
        return [
            SendSubscription(device.jid, op, "subscribe", nick=device.name)
            for op in self.auth.notified_operators()
            if op not in self.subscribers.get(device.jid, set()) and self.auth.role_for(op, device.group) is not None
        ]

    def _on_session(self, client_id: str, username: str | None, is_open: bool, now: float) -> list[Intent]:
        names = {client_id} | ({username} if username else set())
        out: list[Intent] = []
        for name in names:
            if is_open:
                self._open_sessions.add(name)
            else:
                self._open_sessions.discard(name)
            for device in self._by_id.get(name, []):
                was_online = device.online
                device.session = is_open
                if is_open:
                    device.last_live = now
                elif was_online:
                    device.offline_since = now
                self._dirty.add(device.jid)
                out += self._refresh(device, now)
        return out

    # ------------------------------------------------------------------ MQTT traffic

    def _on_mqtt_message(self, event: MqttMessageReceived, now: float) -> list[Intent]:
        out: list[Intent] = []
        rule = self.router.discovery_rule(event.topic)
        if rule is not None:
            out += self._on_discovery(rule, event, now)
            # A convention may describe a device on a topic that also carries its state (Shelly Gen2's
            # ``<prefix>/online``): the devices that named the topic as theirs read it too.
            if not self.router.has_device_topic(event.topic):
                return out
        for route in self.router.routes(event.topic):
            if route.role is not TopicRole.COMMAND:
                out += self._on_device_message(route, event, now)
        return out

    def _on_device_message(self, route: Route, event: MqttMessageReceived, now: float) -> list[Intent]:
        device, out = self._device_for_route(route, event.topic, now)
        if device is None:
            return out
        was_online = device.online
        if route.role is TopicRole.AVAILABILITY:
            out += self._on_availability(device, route.index, event, now)
        elif route.role is TopicRole.TELEMETRY:
            out += self._on_telemetry(device, route, event, now)
        elif route.role is TopicRole.RESULT:
            out += self._on_result(device, event, now)
        if not event.retain and route.role is not TopicRole.AVAILABILITY:
            device.last_live = now
        if was_online and not device.online and device.offline_since is None:
            device.offline_since = now
        if device.online:
            device.offline_since = None
        self._dirty.add(device.jid)
        if device.jid in self.queued and device.online and (not event.retain or route.role is TopicRole.AVAILABILITY):
            out += self._deliver_queued(device, now)
        out += self._refresh(device, now)
        if was_online != device.online:
            out += self._refresh_children(device, now)
        return out

    # ------------------------------------------------------------------ discovery

    def _on_discovery(self, rule: Route, event: MqttMessageReceived, now: float) -> list[Intent]:
        binding = rule.binding
        spec = binding.profile.discovery[rule.index]
        changes = self.discovery.take(binding, spec.mapper, event.topic, event.payload)
        out: list[Intent] = list(changes.logs)
        for gone_binding, device_id in changes.gone:
            out += self._remove_discovered(gone_binding, device_id, now)
        for described_binding, described in changes.described:
            out += self._describe(described_binding, described, event.topic, now)
        out += self._link_parents(now)
        return out

    def _describe(self, binding: Binding, described: DiscoveredDevice, topic: str, now: float) -> list[Intent]:
        """Create or update the contact of a device a discovery message described."""
        device_id = described.device_id
        config = self.settings.devices.get(device_id)
        if config is not None and config.binding is not None and config.binding != binding.name:
            return [Log("info", "discovery.overridden", {"device": device_id, "binding": config.binding})]
        owner = self._identity_owner(binding, described)
        if owner is not None and owner.binding.profile.rank >= binding.profile.rank:
            return [
                Log(
                    "info",
                    "discovery.duplicate",
                    {"device": device_id, "via": binding.name, "listed_as": owner.jid, "by": owner.binding.name},
                )
            ]
        out: list[Intent] = []
        if owner is not None:  # a convention of lower rank listed it first: the better description takes over
            out += self._remove_discovered(owner.binding, owner.device_id, now, why=f"listed through {binding.name}")
        try:
            jid = self.router.jid_for(binding, device_id)
        except MappingError as exc:
            return [Log("warning", "device.bad_id", {"topic": topic, "reason": str(exc)})]
        device = self.devices.get(jid)
        if device is not None and (device.binding.name != binding.name or device.device_id != device_id):
            return [Log("warning", "device.jid_collision", {"topic": topic, "jid": jid, "owner": device.device_id})]
        if device is None:
            if not self.settings.accept_unknown_devices and config is None:
                return [Log("debug", "device.unknown_ignored", {"topic": topic})]
            if len(self.devices) >= self.settings.max_devices:
                return [Log("warning", "device.limit", {"topic": topic, "max": self.settings.max_devices})]
            device = self._create(binding, device_id, now)
            created = True
        else:
            created = False
        device.own_profile = described.profile
        device.model = described.model
        device.name = config.name if config is not None and config.name else described.name or device_id
        if not (config and config.expected_interval):
            device.expected_interval = described.profile.expected_interval
        self._wanted_parent[device.jid] = described.parent
        for alias in {device_id.lower(), *described.aliases}:
            self._identity[alias] = device.jid
        new_topics = self.router.set_device_topics(binding, device_id, described.profile)
        if new_topics:
            out.append(SubscribeMqtt(tuple(new_topics)))
        self._dirty.add(device.jid)
        if created:
            out.append(Log("info", "device.new", {"device": device_id, "jid": device.jid, "topic": topic}))
            out += self._adopt_heard(binding, device, described, now)
            out += self._offer_new_device(device)
        else:
            out.append(Log("debug", "device.described", {"device": device_id, "topic": topic}))
        return out + self._refresh(device, now)

    def _adopt_heard(self, binding: Binding, device: Device, described: DiscoveredDevice, now: float) -> list[Intent]:
        """A device heard on the binding's topics under another of its ids (a Tasmota topic) before its
        description came: the described device takes over what the hub knew, the other contact goes."""
        out: list[Intent] = []
        for alias in described.aliases:
            try:
                jid = self.router.jid_for(binding, alias)
            except MappingError:
                continue
            heard = self.devices.get(jid)
            if heard is None or heard is device or heard.binding.name != binding.name or heard.own_profile:
                continue
            device.available, device.sleeping, device.session = heard.available, heard.sleeping, heard.session
            device.last_live, device.offline_since = heard.last_live, heard.offline_since
            device.update_readings(heard.readings)
            if self.xmpp_up:  # withdraw the offer of the provisional contact from those who did not take it
                offered = self.auth.notified_operators()
                subscribed = self.subscribers.get(heard.jid, set())
                out += [SendSubscription(heard.jid, op, "unsubscribe") for op in offered if op not in subscribed]
            out += self._remove_discovered(binding, heard.device_id, now, why=f"it is {device.jid}")
        return out

    def _identity_owner(self, binding: Binding, described: DiscoveredDevice) -> Device | None:
        """Another contact for the same physical device (same id or alias), through another binding."""
        for key in (described.device_id.lower(), *described.aliases):
            jid = self._identity.get(key)
            device = self.devices.get(jid) if jid else None
            if device is not None and device.binding.name != binding.name:
                return device
        return None

    def _remove_discovered(self, binding: Binding, device_id: str, now: float, why: str = "") -> list[Intent]:
        """A device no description names any more: it leaves the hub, its subscribers see it go offline."""
        self.router.clear_device_topics(binding, device_id)
        try:
            jid = self.router.jid_for(binding, device_id)
        except MappingError:
            return []
        device = self.devices.get(jid)
        if device is None or device.binding.name != binding.name:
            return []
        del self.devices[jid]
        self._wanted_parent.pop(jid, None)
        for key in [k for k, v in self._identity.items() if v == jid]:
            del self._identity[key]
        siblings = self._by_id.get(device_id, [])
        if device in siblings:
            siblings.remove(device)
        if not siblings:
            self._by_id.pop(device_id, None)
        for other in self.devices.values():
            if other.parent is device:
                other.parent = None
        status = f"removed from {binding.name}" + (f" ({why})" if why else "")
        out: list[Intent] = [Log("info", "device.removed", {"device": device_id, "jid": jid, "binding": binding.name})]
        if self.xmpp_up:
            out += [
                SendPresence(jid, op, Show.UNAVAILABLE, status)
                for op in self._authorized_subscribers(jid, device.group)
            ]
        return out

    def _link_parents(self, now: float) -> list[Intent]:
        """Point each discovered device at its parent once both are known; presence follows."""
        out: list[Intent] = []
        for jid, parent_id in self._wanted_parent.items():
            device = self.devices.get(jid)
            if device is None:
                continue
            parent = None
            if parent_id is not None:
                try:
                    parent = self.devices.get(self.router.jid_for(device.binding, parent_id))
                except MappingError:
                    parent = None
            if parent is not device.parent and parent is not device:
                device.parent = parent
                out += self._refresh(device, now)
        return out

    def _refresh_children(self, parent: Device, now: float) -> list[Intent]:
        out: list[Intent] = []
        for device in self.devices.values():
            if device.parent is parent:
                out += self._refresh(device, now)
        return out

    def _on_availability(self, device: Device, index: int, event: MqttMessageReceived, now: float) -> list[Intent]:
        specs = device.profile.availability
        if index >= len(specs):
            return []
        try:
            said = decode_availability(specs[index], event.payload)
        except PayloadError as exc:
            return [Log("warning", "payload.bad_availability", {"topic": event.topic, "reason": str(exc)})]
        if said is Availability.UNCHANGED:
            return []
        device.availability_by[index] = said is not Availability.OFFLINE
        available = self._combined_availability(device, index)
        if available and said is Availability.SLEEPING:
            device.available, device.sleeping = True, True
        elif available:
            device.available, device.sleeping = True, False
            if not event.retain:
                device.last_live = now
        else:
            if device.available is not False:
                device.offline_since = None if event.retain and device.available is None else now
            device.available, device.sleeping = False, False
        return []

    @staticmethod
    def _combined_availability(device: Device, index: int) -> bool:
        """What several availability topics say together, by the profile's mode (HA ``availability_mode``)."""
        said = device.availability_by
        match device.profile.availability_mode:
            case AvailabilityMode.ALL:
                return len(said) == len(device.profile.availability) and all(said.values())
            case AvailabilityMode.ANY:
                return any(said.values())
            case _:
                return said[index]

    def _on_telemetry(self, device: Device, route: Route, event: MqttMessageReceived, now: float) -> list[Intent]:
        specs = device.profile.telemetry
        if route.index >= len(specs):
            return []
        try:
            readings = decode_telemetry(specs[route.index], event.payload)
        except PayloadError as exc:
            return [
                Log(
                    "warning",
                    "payload.rejected",
                    {"topic": event.topic, "device": device.device_id, "reason": str(exc)},
                )
            ]
        device.update_readings(readings)
        out = self._check_alerts(device, readings, now)
        out += self._check_confirmations(device, now)
        return out

    def _on_result(self, device: Device, event: MqttMessageReceived, now: float) -> list[Intent]:
        spec = device.profile.result
        if spec is None:
            return []
        try:
            answer = json.loads(event.payload[:65536].decode("utf-8"))
        except (ValueError, RecursionError):  # bad UTF-8/JSON, a too long number, too deep nesting
            return [Log("warning", "payload.bad_result", {"topic": event.topic, "device": device.device_id})]
        if not isinstance(answer, dict):
            return [Log("warning", "payload.bad_result", {"topic": event.topic, "device": device.device_id})]
        cid = str(answer.get(spec.id_field, ""))
        pending = self.pending.get(cid)
        if pending is None or pending.device_jid != device.jid:
            return [Log("debug", "command.result_unmatched", {"topic": event.topic, "cid": cid[:64]})]
        del self.pending[cid]
        ok = answer.get(spec.ok_field, True) is not False
        message = str(answer.get(spec.message_field, "") or "")[:300]
        elapsed = now - pending.sent_at
        if ok:
            body = f"✓ {pending.summary}: done in {elapsed:.1f} s" + (f" ({message})" if message else "")
            outcome = "confirmed"
        else:
            body = f"✗ {pending.summary}: the device refused" + (f": {message}" if message else "")
            outcome = "refused"
        return [
            SendChat(device.jid, pending.operator, body),
            Log("info", f"command.{outcome}", {"device": device.device_id, "operator": pending.operator, "cid": cid}),
        ]

    def _check_confirmations(self, device: Device, now: float) -> list[Intent]:
        out: list[Intent] = []
        for cid, pending in list(self.pending.items()):
            if pending.device_jid != device.jid:
                continue
            confirmed = False
            if pending.expect is not None:
                confirmed = all(_same(device.readings.get(k), v) for k, v in pending.expect.items())
            elif pending.toggle_key is not None:
                current = device.readings.get(pending.toggle_key)
                before = pending.toggle_from  # False/0 are states too: only None means "unknown"
                confirmed = current is not None and (before is None or not _same(current, before))
            if confirmed:
                del self.pending[cid]
                state = ""
                if pending.toggle_key is not None:
                    state = ": " + format_reading(
                        device.profile, pending.toggle_key, device.readings[pending.toggle_key], True
                    )
                out.append(
                    SendChat(
                        device.jid,
                        pending.operator,
                        f"✓ {pending.summary}{state}: confirmed in {now - pending.sent_at:.1f} s",
                    )
                )
                out.append(
                    Log(
                        "info",
                        "command.confirmed",
                        {"device": device.device_id, "operator": pending.operator, "cid": cid},
                    )
                )
        return out

    def _check_alerts(self, device: Device, readings: Mapping[str, Reading], now: float) -> list[Intent]:
        out: list[Intent] = []
        for rule in self.settings.alert_rules:
            if rule.field not in readings or not rule.applies_to(device.device_id, device.group):
                continue
            state, notice = evaluate(rule, device.alerts.get(rule.name), readings[rule.field], now)
            if notice is Notice.RAISED and state is not None:
                device.alerts[rule.name] = state
                out += self._tell_subscribers(device, f"⚠ {device.name}: {alert_text(device, state)}")
                out.append(
                    Log(
                        "warning", "alert.raised", {"device": device.device_id, "rule": rule.name, "value": state.value}
                    )
                )
            elif notice is Notice.CLEARED:
                old = device.alerts.pop(rule.name)
                value = format_reading(device.profile, rule.field, readings[rule.field], True)
                since = self.settings.format_time(old.since)
                out += self._tell_subscribers(device, f"✓ {device.name}: back to normal, {value} (alert since {since})")
                out.append(Log("info", "alert.cleared", {"device": device.device_id, "rule": rule.name}))
        return out

    # ------------------------------------------------------------------ presence

    def _presence(self, device: Device, now: float) -> tuple[Show, str]:
        if not self.mqtt_up:
            if self.mqtt_down_since is None:
                return Show.UNAVAILABLE, "hub is starting"
            return Show.UNAVAILABLE, f"hub lost its broker at {self.settings.format_time(self.mqtt_down_since)}"
        return derive(device.facts(now), self.settings.format_time)

    def _authorized_subscribers(self, device_jid: str, group: str | None) -> list[str]:
        return sorted(op for op in self.subscribers.get(device_jid, ()) if self.auth.role_for(op, group) is not None)

    def _refresh(self, device: Device, now: float, changed: bool = True) -> list[Intent]:
        """Send the device's presence to its subscribers if it changed since last said.

        ``changed`` is False for the tick's look at every device: a refresh held then is not a
        new change to count as held.
        """
        if not self.xmpp_up:
            return []
        last = self._presence_sent_at.get(device.jid)
        if last is not None and 0 <= now - last < self.settings.presence_min_interval:
            # Coalescing: nothing may go out yet, so the presence is not even derived (most messages of
            # a chatty device end here); a later refresh, at the latest the next tick, sends the latest.
            if changed:
                self.presence_held.add(device.jid)
                self.presence_held_total += 1
            return []
        current = self._presence(device, now)
        if current == device.announced:
            self.presence_held.discard(device.jid)  # changed back before the held one went out
            return []
        subscribers = self._authorized_subscribers(device.jid, device.group)
        if subscribers and not self._may_send_presence(device.jid, len(subscribers), now):
            if changed or device.jid not in self.presence_held:
                self.presence_held.add(device.jid)
                self.presence_held_total += 1
            return []  # held: a later refresh (at the latest the next tick) sends the then-current presence
        self.presence_held.discard(device.jid)
        device.announced = current
        show, status = current
        return [SendPresence(device.jid, op, show, status) for op in subscribers]

    def _may_send_presence(self, jid: str, stanzas: int, now: float) -> bool:
        """Coalescing: at most one presence per device per ``presence_min_interval``, and at most
        ``presence_budget`` stanzas per second in all (a token bucket holding one second's worth)."""
        settings = self.settings
        last = self._presence_sent_at.get(jid)
        if last is not None and 0 <= now - last < settings.presence_min_interval:
            return False
        budget = settings.presence_budget
        if budget > 0:
            if self._presence_filled_at is not None:
                elapsed = max(0.0, now - self._presence_filled_at)
                self._presence_tokens = min(budget, self._presence_tokens + elapsed * budget)
            self._presence_filled_at = now
            if self._presence_tokens < min(stanzas, budget):
                return False
            self._presence_tokens -= stanzas
        if settings.presence_min_interval > 0:
            self._presence_sent_at[jid] = now
        return True

    def _refresh_all(self, now: float) -> list[Intent]:
        out: list[Intent] = []
        for device in self.devices.values():
            out += self._refresh(device, now)
        return out + self._refresh_hub()

    def _announce_all(self, now: float) -> list[Intent]:
        for device in self.devices.values():
            device.announced = None
        self.hub_announced = None
        out = self._refresh_all(now)
        for device_jid, operators in self.subscribers.items():
            if device_jid not in self.devices and device_jid != self.domain:
                out += [SendPresence(device_jid, op, Show.UNAVAILABLE, "not seen yet") for op in sorted(operators)]
        return out

    def _hub_presence(self) -> tuple[Show, str]:
        online = sum(1 for d in self.devices.values() if d.online)
        if not self.mqtt_up:
            return Show.AWAY, "no MQTT broker connection"
        return Show.AVAILABLE, f"{online} of {len(self.devices)} devices online"

    def _refresh_hub(self) -> list[Intent]:
        if not self.xmpp_up:
            return []
        current = self._hub_presence()
        if current == self.hub_announced:
            return []
        self.hub_announced = current
        operators = [op for op in sorted(self.subscribers.get(self.domain, ())) if self.auth.hub_role(op)]
        return [SendPresence(self.domain, op, current[0], current[1]) for op in operators]

    def _presence_for(self, device_jid: str, now: float) -> tuple[Show, str]:
        device = self.devices.get(device_jid)
        if device_jid == self.domain:
            return self._hub_presence()
        if device is None:
            return Show.UNAVAILABLE, "not seen yet"
        return self._presence(device, now)

    def _group_of(self, jid: str) -> str | None:
        device = self.devices.get(jid)
        if device is not None:
            return device.group
        localpart = jid.split("@", 1)[0]
        config = self.settings.devices.get(localpart)
        return config.group if config else None

    def _may_see(self, operator: str, jid: str) -> bool:
        if jid == self.domain:
            return self.auth.hub_role(operator) is not None
        return self.auth.role_for(operator, self._group_of(jid)) is not None

    def _is_device_jid(self, jid: str) -> bool:
        node, _, domain = jid.rpartition("@")
        return bool(node) and domain == self.domain

    def _on_subscribe(self, operator: str, jid: str, now: float) -> list[Intent]:
        if not (jid == self.domain or self._is_device_jid(jid)) or not self._may_see(operator, jid):
            return [
                SendSubscription(jid, operator, "unsubscribed"),
                Log("warning", "subscription.refused", {"jid": operator, "device": jid}),
            ]
        out: list[Intent] = [SendSubscription(jid, operator, "subscribed")]
        if operator not in self.subscribers.get(jid, set()):
            self.subscribers.setdefault(jid, set()).add(operator)
            out.append(StoreSubscription(jid, operator, True))
            out.append(Log("info", "subscription.added", {"jid": operator, "device": jid}))
        show, status = self._presence_for(jid, now)
        out.append(SendPresence(jid, operator, show, status))
        return out

    def _on_unsubscribe(self, operator: str, jid: str) -> list[Intent]:
        operators = self.subscribers.get(jid)
        if not operators or operator not in operators:
            return []
        operators.discard(operator)
        if not operators:
            del self.subscribers[jid]
        return [
            StoreSubscription(jid, operator, False),
            Log("info", "subscription.removed", {"jid": operator, "device": jid}),
        ]

    def _on_probe(self, operator: str, jid: str, now: float) -> list[Intent]:
        subscribed = operator in self.subscribers.get(jid, set())
        if subscribed and self._may_see(operator, jid):
            show, status = self._presence_for(jid, now)
            return [SendPresence(jid, operator, show, status)]
        out: list[Intent] = [SendSubscription(jid, operator, "unsubscribed")]
        if subscribed:  # was allowed once, is no longer on the list
            out += self._on_unsubscribe(operator, jid)
        return out

    # ------------------------------------------------------------------ chat

    def _reply(self, event: ChatReceived, body: str) -> SendChat:
        return SendChat(bare(event.to), event.sender, body)

    def _on_chat(self, event: ChatReceived, now: float) -> list[Intent]:
        to = bare(event.to)
        if to == self.domain:
            return self._on_hub_chat(event, now)
        device = self.devices.get(to)
        role = self.auth.role_for(event.sender, device.group if device else self._group_of(to))
        if role is None:  # rate-limited: a stranger's flood gets a few answers, not one per message
            return self.refusals.gate(
                f"{bare(event.sender)} {to}",
                now,
                [
                    self._reply(event, "Sorry, you are not on this hub's list of operators. Nothing was done."),
                    Log("warning", "chat.refused", {"jid": bare(event.sender), "device": to}),
                ],
            )
        if device is None:
            return [
                self._reply(
                    event,
                    f"There is no device {to.split('@')[0]} on this hub. "
                    f"Write 'devices' to {self.domain} for the list.",
                )
            ]
        try:
            command = parse_device_command(event.body)
        except CommandError as exc:
            return [self._reply(event, str(exc))]
        show, status = self._presence(device, now)
        match command:
            case Help():
                return [self._reply(event, replies.device_help(device, role))]
            case Status():
                text = replies.device_status(device, show, status, self.settings.format_time)
                for waiting in self.queued.get(device.jid, ()):
                    until = self.settings.format_time(waiting.expires or now)
                    text += f"\n  queued: {waiting.summary} (expires {until})"
                return [self._reply(event, text)]
            case Query(field=name):
                return [self._reply(event, self._query(device, name))]
            case Switch() | SetProperty() | RunVerb():
                return self._command(event, device, role, command, now)

    def _query(self, device: Device, name: str) -> str:
        matches = [k for k in device.readings if k.lower() == name.lower()]
        if not matches:
            known = ", ".join(sorted(device.readings)) or "none yet"
            return f"{device.device_id} has no reading '{name}'. Known: {known}."
        key = matches[0]
        return format_reading(device.profile, key, device.readings[key], with_label=True)

    def _command(
        self, event: ChatReceived, device: Device, role: Role, command: Switch | SetProperty | RunVerb, now: float
    ) -> list[Intent]:
        profile = device.profile
        operator = bare(event.sender)
        if isinstance(command, RunVerb) and command.name not in profile.verbs:
            return [
                self._reply(
                    event, f"Unknown command '{command.name}'. Write 'help' for what {device.device_id} understands."
                )
            ]
        needed = profile.verbs[command.name].role if isinstance(command, RunVerb) else Role.OPERATOR
        if role.rank < needed.rank:
            return [
                self._reply(
                    event, f"Your role ({role.value}) may not do that; it needs {needed.value}. Nothing was sent."
                ),
                Log("warning", "command.forbidden", {"jid": operator, "device": device.device_id, "role": role.value}),
            ]
        if not self._takes_commands(profile):
            return [self._reply(event, f"{device.device_id} takes no commands.")]
        if device.online and len(self.pending) >= self.settings.max_pending_commands:
            return [self._reply(event, "The hub has too many commands waiting for confirmation; try again shortly.")]
        self._next_cid += 1
        cid = f"{self.settings.session_tag}-{self._next_cid}"
        values: dict[str, Reading] = {**profile.defaults, **device.binding.slots, "cid": cid, "id": device.device_id}
        pending = PendingCommand(cid, device.jid, event.sender, "", now, now + self.settings.confirm_timeout)
        topic_values: dict[str, str] = {}
        try:
            if isinstance(command, RunVerb):
                verb = profile.verbs[command.name]
                where = verb.command or profile.commands
                values["verb"] = topic_values["verb"] = topic_values["property"] = command.name
                pending.summary = command.name
                if verb.param is not None and command.arg is None:
                    raise CommandError(f"Usage: {command.name} <{describe_property(verb.param)}>.")
                if verb.param is None and command.arg is not None:
                    raise CommandError(f"'{command.name}' takes no argument.")
                if verb.param is not None and command.arg is not None:
                    arg = validate_value(verb.param, command.arg)
                    values["arg"] = self._to_device(verb.param, arg)
                    pending.summary = f"{command.name} {_shown(arg)}"
                template = where.verb_payload if where else None
            else:
                if isinstance(command, Switch):
                    spec = switch_property(profile, command.channel)
                    assert profile.switch is not None
                    value: Reading = getattr(profile.switch, command.action)
                    if command.action == "toggle":
                        pending.toggle_key = spec.echo_key
                        pending.toggle_from = device.readings.get(spec.echo_key)
                    else:
                        pending.replace_key = spec.echo_key
                    pending.summary = f"{command.action}" + (f" {command.channel}" if command.channel else "")
                else:
                    found = profile.properties.get(command.name)
                    if found is None or found.echo_key not in device.readings:
                        settable = ", ".join(replies.settable_properties(device)) or "none"
                        return [
                            self._reply(
                                event,
                                f"{device.device_id} has no settable property '{command.name}'. Settable: {settable}.",
                            )
                        ]
                    spec = found
                    value = validate_value(spec, command.raw_value)
                    pending.replace_key = spec.echo_key
                    unit = f" {spec.unit}" if spec.unit and not isinstance(value, str) else ""
                    shown = _shown(value)
                    pending.summary = f"set {spec.name} {shown}{unit}"
                if pending.toggle_key is None:
                    pending.expect = {spec.echo_key: value}
                where = spec.command or profile.commands
                values["property"] = topic_values["property"] = spec.device_key
                values["value"] = self._to_device(spec, value)
                template = where.set_payload if where else None
                if isinstance(command, Switch) and command.action == "toggle" and where and where.toggle_payload:
                    template = where.toggle_payload
            if where is None or template is None:
                raise CommandError(f"{device.device_id} cannot be sent that command.")
            payload = render(template, values)
            topic = self.router.topic_for(device.binding, where.topic, device.device_id, topic_values)
        except CommandError as exc:
            return [self._reply(event, str(exc))]
        except (TemplateError, TopicError, KeyError) as exc:
            return [
                self._reply(event, "This device's profile cannot build that command; nothing was sent."),
                Log("error", "profile.bad_template", {"profile": profile.name, "reason": str(exc)}),
            ]
        pending.topic, pending.payload = topic, payload
        wait = self.command_limiter.allow(operator, now) if self.command_limiter is not None else None
        if wait is not None:
            limit = self.settings.operator_commands_per_minute
            return [
                self._reply(
                    event,
                    f"Too many commands: at most {limit} a minute per operator. "
                    f"Nothing was sent; the next one may go in {max(1, math.ceil(wait - 1e-6))} s.",
                ),
                Log("warning", "command.rate_limited", {"jid": operator, "device": device.device_id}),
            ]
        if not device.online:
            return self._queue(event, device, pending, now)
        self.pending[cid] = pending
        return [
            PublishMqtt(topic, payload, qos=where.qos, retain=where.retain),
            self._reply(event, f"→ sent: {pending.summary}"),
            Log(
                "info",
                "command.sent",
                {"jid": operator, "device": device.device_id, "command": pending.summary, "cid": cid, "topic": topic},
            ),
        ]

    @staticmethod
    def _takes_commands(profile: Profile) -> bool:
        return (
            profile.commands is not None
            or any(p.command for p in profile.properties.values())
            or any(v.command for v in profile.verbs.values())
        )

    @staticmethod
    def _to_device(spec: PropertySpec, value: Reading) -> Reading:
        """The device's word for a value (``on`` → ``ON``), by the property's ``to_device`` map."""
        if spec.to_device:
            text = str(value).lower() if not isinstance(value, bool) else ("true" if value else "false")
            for chosen, sent in spec.to_device.items():
                if chosen.lower() == text:
                    return sent
        return value

    def _queue(self, event: ChatReceived, device: Device, command: PendingCommand, now: float) -> list[Intent]:
        """Keep a command for an offline device until it is back or the command expires.

        A queued command with the same ``replace_key`` (the same property or
        switch) is desired state that the new one supersedes: its operator is told.
        """
        queue = self.queued.get(device.jid, [])
        replaced = [c for c in queue if command.replace_key is not None and c.replace_key == command.replace_key]
        waiting = len(queue) - len(replaced)
        if waiting >= self.settings.max_queued_per_device:
            return [
                self._reply(
                    event,
                    f"{device.device_id} is offline and already has {waiting} commands waiting; nothing was queued.",
                ),
                Log("warning", "command.queue_full", {"device": device.device_id, "queued": waiting}),
            ]
        if self._queued_count() - len(replaced) >= self.settings.max_queued_commands:
            return [
                self._reply(
                    event, f"{device.device_id} is offline and the hub's command queue is full; nothing was queued."
                ),
                Log("warning", "command.queue_full", {"device": device.device_id, "queued": self._queued_count()}),
            ]
        out: list[Intent] = []
        for old in replaced:
            queue.remove(old)
            out += [
                SendChat(
                    device.jid,
                    old.operator,
                    f"✗ {old.summary}: replaced by {command.summary} before {device.device_id} came back",
                ),
                Log("info", "command.replaced", {"device": device.device_id, "cid": old.cid, "by": command.cid}),
            ]
        command.queued_at = now
        command.expires = now + self.settings.queued_command_expiry
        queue.append(command)
        self.queued[device.jid] = queue
        until = self.settings.format_time(command.expires)
        return [
            self._reply(event, f"→ {command.summary}: queued until {device.device_id} is back (expires {until})"),
            *out,
            Log(
                "info",
                "command.queued",
                {"jid": bare(event.sender), "device": device.device_id, "command": command.summary, "cid": command.cid},
            ),
        ]

    def _deliver_queued(self, device: Device, now: float) -> list[Intent]:
        """The device is back: send what waited for it, oldest first, and await confirmation as usual."""
        out: list[Intent] = []
        for command in self.queued.pop(device.jid, []):
            command.expires = None
            command.sent_at, command.deadline = now, now + self.settings.confirm_timeout
            if command.toggle_key is not None:
                command.toggle_from = device.readings.get(command.toggle_key)
            self.pending[command.cid] = command
            out += [
                PublishMqtt(command.topic, command.payload, qos=1),
                SendChat(device.jid, command.operator, f"→ sent: {command.summary} ({device.device_id} is back)"),
                Log(
                    "info",
                    "command.sent",
                    {"device": device.device_id, "command": command.summary, "cid": command.cid, "queued": True},
                ),
            ]
        return out

    def _expire_queued(self, now: float) -> list[Intent]:
        out: list[Intent] = []
        for jid, queue in list(self.queued.items()):
            expired = [c for c in queue if c.expires is not None and now >= c.expires]
            if not expired:
                continue
            device = self.devices.get(jid)
            name = device.device_id if device is not None else jid.split("@", 1)[0]
            for command in expired:
                queue.remove(command)
                since = self.settings.format_time(command.queued_at if command.queued_at is not None else now)
                body = f"✗ {command.summary} expired: {name} did not come back (queued at {since})"
                fields = {"device": name, "operator": command.operator, "cid": command.cid}
                out += [SendChat(jid, command.operator, body), Log("warning", "command.expired", fields)]
            if not queue:
                del self.queued[jid]
        return out

    def _on_hub_chat(self, event: ChatReceived, now: float) -> list[Intent]:
        if self.auth.hub_role(event.sender) is None:
            return self.refusals.gate(
                f"{bare(event.sender)} {self.domain}",
                now,
                [
                    self._reply(event, "Sorry, you are not on this hub's list of operators."),
                    Log("warning", "chat.refused", {"jid": bare(event.sender), "device": self.domain}),
                ],
            )
        try:
            command = parse_hub_command(event.body)
        except CommandError as exc:
            return [self._reply(event, str(exc))]
        match command:
            case Help():
                return [self._reply(event, replies.hub_help(self.domain))]
            case Status():
                return [self._reply(event, self._hub_presence()[1])]
            case ListDevices(query=query):
                visible = [
                    (d, self._presence(d, now)[0])
                    for d in self.devices.values()
                    if self.auth.role_for(event.sender, d.group) is not None
                    and (not query or query in d.device_id.lower() or query in d.name.lower())
                ]
                return [self._reply(event, replies.device_list(visible))]
        return []

    def _tell_subscribers(self, device: Device, body: str) -> list[Intent]:
        return [SendChat(device.jid, op, body) for op in self._authorized_subscribers(device.jid, device.group)]

    # ------------------------------------------------------------------ time

    def _on_tick(self, now: float) -> list[Intent]:
        out: list[Intent] = self._expire_queued(now)
        for cid, pending in list(self.pending.items()):
            if now >= pending.deadline:
                del self.pending[cid]
                device = self.devices.get(pending.device_jid)
                note = ""
                if device is not None and pending.expect:
                    key = next(iter(pending.expect))
                    if key in device.readings:
                        note = f" ({format_reading(device.profile, key, device.readings[key], True)} still)"
                out.append(
                    SendChat(
                        pending.device_jid,
                        pending.operator,
                        f"✗ {pending.summary}: no confirmation after {self.settings.confirm_timeout:g} s{note}",
                    )
                )
                out.append(
                    Log(
                        "warning",
                        "command.unconfirmed",
                        {"device": pending.device_jid, "operator": pending.operator, "cid": cid},
                    )
                )
        for device in self.devices.values():
            for state in device.alerts.values():
                if due_repeat(state, now):
                    self._dirty.add(device.jid)
                    if not self.xmpp_up:  # a reminder is not worth a place in the buffer
                        continue
                    since = self.settings.format_time(state.since)
                    out += self._tell_subscribers(
                        device, f"⚠ {device.name}: still {alert_text(device, state)} (since {since})"
                    )
            out += self._refresh(device, now, changed=False)
        return out + self._refresh_hub()
