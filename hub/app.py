"""The composition root: settings and profiles in, a running hub out.

One bounded queue carries every adapter's events to one consumer that feeds
the core, so the core runs without locks in a deterministic order. Every
intent the core returns is carried out here, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridges.mqtt.embedded import EmbeddedBroker, EmbeddedBrokerOptions, Listener
from bridges.mqtt.external import ExternalBroker, ExternalBrokerOptions
from bridges.xmpp.component import ComponentOptions, XmppComponent
from device_profiles.loader import BUILTIN_DIR, load_profiles
from hub import logs
from hub.config import HubConfig, ListenerConfig
from hub.core.alerts import AlertRule
from hub.core.auth import Grant
from hub.core.device import DeviceConfig
from hub.core.events import ChatUndelivered, Event, MqttLinkUp, Tick, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import (
    AnswerCommand,
    AnswerDisco,
    Intent,
    Log,
    PublishMqtt,
    SendChat,
    SendPresence,
    SendSubscription,
    StoreSubscription,
    SubscribeMqtt,
)
from hub.core.mapping import Binding, MappingError, Router
from hub.core.ports import MqttPort
from hub.core.profile import Profile, Role
from hub.core.snapshot import CommandRecord, DeviceRecord, DiscoveryRecord, OutboxRecord
from hub.metrics import Metrics
from hub.store import Store
from hub.validation import ConfigError, Problem

logger = logging.getLogger("hub")
TICK_SECONDS = 1.0
SHUTDOWN_DRAIN_SECONDS = 3.0
#: Device records (readings, availability) are written at most this long after they change, every
#: device changed meanwhile in one transaction. Commands, the outbox, and device records an event tells
#: someone about by chat (alerts, confirmations) are written before that is sent.
SAVE_EVERY_SECONDS = 0.5
#: Once the event queue is this full, device traffic waits for room (its TCP connection is read no
#: further) until the core has brought it down to the second fraction: a flood slows its senders
#: instead of filling the queue and crowding out operators' stanzas, ticks and link events.
ROOM_HIGH, ROOM_LOW = 0.75, 0.5


def _local_clock(timestamp: float) -> str:
    return time.strftime("%H:%M", time.localtime(timestamp))


def build_settings(config: HubConfig, profiles: Mapping[str, Profile], config_file: str = "config") -> HubSettings:
    """The core's settings, or a :class:`ConfigError` for references that do not resolve."""
    problems: list[Problem] = []
    bindings = []
    for index, entry in enumerate(config.bindings):
        profile = profiles.get(entry.profile)
        if profile is None:
            known = ", ".join(sorted(profiles))
            problems.append(
                Problem(config_file, None, f"bindings.{index}.profile", f"no profile {entry.profile!r}; known: {known}")
            )
            continue
        bindings.append(Binding(entry.name or entry.profile, profile, dict(entry.slots), entry.jid_prefix))
    try:
        Router(bindings, config.xmpp.domain)
    except MappingError as exc:
        problems.append(Problem(config_file, None, "bindings", str(exc)))
    names = {b.name for b in bindings}
    for device_id, device in config.devices.items():
        if device.binding is not None and device.binding not in names:
            problems.append(
                Problem(config_file, None, f"devices.{device_id}.binding", f"no binding {device.binding!r}")
            )
    if problems:
        raise ConfigError(problems)
    return HubSettings(
        domain=config.xmpp.domain,
        bindings=tuple(bindings),
        devices={
            device_id: DeviceConfig(device_id, d.binding, d.name, d.group, d.expected_interval)
            for device_id, d in config.devices.items()
        },
        grants={
            jid: Grant(Role(o.role), frozenset(o.groups) if o.groups is not None else None, o.notify_new_devices)
            for jid, o in config.operators.items()
        },
        alert_rules=tuple(
            AlertRule(
                a.name,
                a.field,
                a.op,
                a.threshold,
                frozenset(a.devices) if a.devices else None,
                a.hysteresis,
                a.repeat_every,
            )
            for a in config.alerts
        ),
        confirm_timeout=config.limits.confirm_timeout,
        xmpp_buffer=config.limits.xmpp_buffer,
        queued_command_expiry=config.limits.queued_command_expiry,
        max_queued_per_device=config.limits.max_queued_per_device,
        max_queued_commands=config.limits.max_queued_commands,
        max_devices=config.limits.max_devices,
        presence_min_interval=config.limits.presence_min_interval,
        presence_budget=config.limits.presence_budget,
        operator_commands_per_minute=config.limits.operator_commands_per_minute or 0,
        accept_unknown_devices=config.accept_unknown_devices,
        session_tag=secrets.token_hex(3),
        format_time=_local_clock,
    )


def load_all_profiles(config: HubConfig) -> dict[str, Profile]:
    return load_profiles([BUILTIN_DIR, *config.profile_dirs])


class App:
    """One running hub. ``await App(config).run()`` serves until ``stop()`` or SIGTERM."""

    def __init__(self, config: HubConfig, profiles: Mapping[str, Profile] | None = None) -> None:
        self.config = config
        self.settings = build_settings(config, profiles if profiles is not None else load_all_profiles(config))
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=config.limits.event_queue)
        self.dropped_events = 0
        self.metrics = Metrics()
        self._room = asyncio.Event()
        self._room.set()
        self._room_high = max(1, int(config.limits.event_queue * ROOM_HIGH))
        self._room_low = int(config.limits.event_queue * ROOM_LOW)
        self.store = Store(Path(config.state_dir) / "hub.sqlite3")
        self.core = Hub(self.settings, self.store.subscriptions())
        self._unsaved_devices: dict[str, DeviceRecord] = {}
        self._unsaved_commands: tuple[CommandRecord, ...] | None = None
        self._unsaved_outbox: OutboxRecord | None = None
        self._unsaved_discovery: dict[tuple[str, str], DiscoveryRecord] = {}
        self._save_timer: asyncio.TimerHandle | None = None
        self._restore()
        self.mqtt = self._mqtt_adapter()
        self.xmpp = XmppComponent(
            ComponentOptions(
                domain=config.xmpp.domain,
                secret=config.xmpp.secret.get_secret_value() if config.xmpp.secret else "",
                host=config.xmpp.host,
                port=config.xmpp.port,
                ping_interval=config.xmpp.ping_interval,
                ping_timeout=config.xmpp.ping_timeout,
                ping_to=config.xmpp.ping_to,
            ),
            self.emit,
        )
        self.ready = asyncio.Event()
        self._mqtt_ready = False
        self._xmpp_ready = False
        self._stop = asyncio.Event()

    def _mqtt_adapter(self) -> MqttPort:
        mqtt = self.config.mqtt
        if mqtt.mode == "embedded":
            return EmbeddedBroker(
                EmbeddedBrokerOptions(
                    listeners=tuple(_listener(lc) for lc in mqtt.embedded.listeners),
                    users=dict(mqtt.embedded.users),
                    allow_anonymous=mqtt.embedded.allow_anonymous,
                    **self._acl_options(),
                    max_publish_rate=mqtt.embedded.max_publish_rate,
                    max_topic_levels=mqtt.embedded.max_topic_levels,
                    max_subscriptions_per_client=mqtt.embedded.max_subscriptions_per_client,
                    max_connections=self.config.limits.max_connections,
                ),
                self.emit,
                self.store,
                room=self,
            )
        ext = mqtt.external
        return ExternalBroker(
            ExternalBrokerOptions(
                host=ext.host,
                port=ext.port,
                username=ext.username,
                password=ext.password.get_secret_value() if ext.password else None,
                client_id=ext.client_id,
                subscriptions=self.core.router.subscription_filters(),
                keepalive=ext.keepalive,
                tls=ext.tls,
                ca_file=str(ext.ca_file) if ext.ca_file else None,
                status_topic=f"{ext.client_id}/status",
            ),
            self.emit,
            room=self,
        )

    def _acl_options(self) -> dict[str, Any]:
        """The embedded broker's per-device ACL: by default each device's namespaces from the bindings."""
        acl = self.config.mqtt.embedded.acl
        if not acl.enabled:
            return {}
        own = self.core.router.device_namespaces("{username}")
        publish = tuple(acl.publish) if acl.publish is not None else own
        subscribe = tuple(acl.subscribe) if acl.subscribe is not None else publish
        return {
            "acl": {"publish": publish, "subscribe": subscribe},
            "acl_unrestricted": frozenset(acl.unrestricted),
        }

    def _restore(self) -> None:
        """Devices, alerts and unfinished commands from the last run, into the core before any event."""
        devices, bad_devices = self.store.devices()
        commands, bad_commands = self.store.commands()
        outbox, bad_outbox = self.store.outbox()
        for key in (*bad_devices, *bad_commands, *bad_outbox):
            logs.log(logger, "warning", "store.bad_row", {"key": key})
        for intent in self.core.restore(devices, commands, outbox, self.store.discovery()):
            if isinstance(intent, Log):
                logs.log(logger, intent.level, intent.event, intent.fields)

    def _save(self, urgent: bool = True) -> None:
        """Write what the core changed: commands and the outbox at once, device records when ``urgent``.

        Otherwise changed devices stay with the core and a timer writes them all in one
        transaction :data:`SAVE_EVERY_SECONDS` later: one SQLite commit per event was a tenth
        of the hub's time per message, and a device's readings change with every message.
        """
        changes = self.core.take_changes(include_devices=urgent)
        for record in changes.devices:
            self._unsaved_devices[record.jid] = record
        if changes.commands is not None:
            self._unsaved_commands = changes.commands
        if changes.outbox is not None:
            self._unsaved_outbox = changes.outbox
        for entry in changes.discovery:
            self._unsaved_discovery[(entry.binding, entry.topic)] = entry
        if not urgent and self._unsaved_commands is None and self._unsaved_outbox is None:
            if self._unsaved_devices or self._unsaved_discovery or self.core.devices_changed:
                self._save_later()
            return
        if (
            not self._unsaved_devices
            and not self._unsaved_discovery
            and self._unsaved_commands is None
            and self._unsaved_outbox is None
        ):
            return
        try:
            self.store.save(
                self._unsaved_devices.values(),
                self._unsaved_commands,
                self._unsaved_outbox,
                self._unsaved_discovery.values(),
            )
        except sqlite3.Error as exc:  # a full disk must not stop the hub; the timer tries again
            logs.log(logger, "error", "store.failed", {"error": repr(exc), "devices": len(self._unsaved_devices)})
            self._save_later()
            return
        self._unsaved_devices.clear()
        self._unsaved_discovery.clear()
        self._unsaved_commands = self._unsaved_outbox = None

    def _save_later(self) -> None:
        if self._save_timer is None:
            self._save_timer = asyncio.get_running_loop().call_later(SAVE_EVERY_SECONDS, self._save_due)

    def _save_due(self) -> None:
        self._save_timer = None
        self._save()

    def room_available(self) -> bool:
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        """Return once the event queue has room for device traffic (see :data:`ROOM_HIGH`)."""
        if not self._room.is_set():
            await self._room.wait()

    def emit(self, event: Event) -> None:
        """Hand an event to the core without blocking; a full queue drops it and says so."""
        try:
            self.queue.put_nowait(event)
            if self.queue.qsize() >= self._room_high:
                self._room.clear()
        except asyncio.QueueFull:
            self.dropped_events += 1
            self.metrics.events_dropped.inc()
            if self.dropped_events == 1 or self.dropped_events % 1000 == 0:
                logs.log(
                    logger, "warning", "queue.full", {"dropped": self.dropped_events, "event": type(event).__name__}
                )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        self._serve_metrics()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.mqtt.run(), name="mqtt"),
                    group.create_task(self.xmpp.run(), name="xmpp"),
                    group.create_task(self._consume(), name="core"),
                    group.create_task(self._tick(), name="tick"),
                ]
                await self._stop.wait()
                logs.log(logger, "info", "hub.stopping")
                await self._say_goodbye()
                for task in tasks:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if self._save_timer is not None:
                self._save_timer.cancel()
                self._save_timer = None
            self._save()
            self.store.close()
            self.metrics.close()
            logs.log(logger, "info", "hub.stopped")

    def _serve_metrics(self) -> None:
        """The Prometheus endpoint, when ``metrics.port`` is set; a port that cannot be bound stops the start."""
        host, port = self.config.metrics.host, self.config.metrics.port
        if port is None:
            return
        try:
            self.metrics.serve(host, port)
        except OSError as exc:
            logs.log(logger, "error", "metrics.failed", {"host": host, "port": port, "error": exc.strerror})
            raise
        logs.log(logger, "info", "metrics.listening", {"url": f"http://{host}:{port}/metrics"})

    async def _say_goodbye(self) -> None:
        """Every device goes unavailable for every subscriber before the stream closes."""
        for intent in self.core.shutdown():
            await self._do(intent)
        with contextlib.suppress(Exception):
            await self.xmpp.drain(SHUTDOWN_DRAIN_SECONDS)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.emit(Tick())

    async def _consume(self) -> None:
        while True:
            event = await self.queue.get()
            if not self._room.is_set() and self.queue.qsize() <= self._room_low:
                self._room.set()
            try:
                intents = self.core.handle(event, time.time())
            except Exception:  # a core bug must not take every other device down with it
                logger.exception("core.failed", extra={"fields": {"event": type(event).__name__}})
                continue
            self.metrics.event(event)
            if type(event) is Tick:
                self.metrics.refresh(self.core, self.queue.qsize())
            # Before anything is said or sent: commands, and what the operator is told by chat, are on disk.
            self._save(urgent=any(isinstance(intent, SendChat) for intent in intents))
            for intent in intents:
                await self._do(intent)
            if isinstance(event, MqttLinkUp):
                self._mqtt_ready = True
            elif isinstance(event, XmppLinkUp):
                self._xmpp_ready = True
            if self._mqtt_ready and self._xmpp_ready and not self.ready.is_set():
                self.ready.set()
                logs.log(
                    logger, "info", "hub.ready", {"domain": self.config.xmpp.domain, "devices": len(self.core.devices)}
                )

    async def _do(self, intent: Intent) -> None:
        self.metrics.intent(intent)
        try:
            match intent:
                case PublishMqtt():
                    await self.mqtt.publish(intent)
                case SubscribeMqtt(topics=topics):
                    await self.mqtt.subscribe(topics)
                case SendChat(sender=sender, to=to, body=body) if not self.xmpp.connected:
                    self.emit(ChatUndelivered(sender, to, body))  # the core holds it for the reconnect
                case SendPresence() | SendSubscription() | SendChat() | AnswerDisco() | AnswerCommand():
                    await self.xmpp.send(intent)
                case StoreSubscription(device_jid=device_jid, operator=operator, present=present):
                    self.store.set_subscription(device_jid, operator, present)
                case Log(level=level, event=name, fields=fields):
                    logs.log(logger, level, name, fields)
        except Exception as exc:  # one failed delivery must not stop the hub
            logs.log(logger, "error", "intent.failed", {"intent": type(intent).__name__, "error": repr(exc)})


def _listener(config: ListenerConfig) -> Listener:
    tls = config.tls
    return Listener(
        config.name,
        config.kind,
        config.host,
        config.port,
        certfile=str(tls.certfile) if tls else None,
        keyfile=str(tls.keyfile) if tls else None,
    )


def secrets_of(config: HubConfig) -> tuple[str, ...]:
    found = []
    if config.xmpp.secret:
        found.append(config.xmpp.secret.get_secret_value())
    if config.mqtt.external.password:
        found.append(config.mqtt.external.password.get_secret_value())
    return tuple(found)


def install_uvloop() -> bool:
    """Use uvloop when it is installed; it is an optional speed-up, never required."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
