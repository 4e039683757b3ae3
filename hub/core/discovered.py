"""What the discovery messages seen so far say, kept per source and merged per device.

:class:`DiscoveryBook` holds the raw discovery payloads a binding's mapper may
look back at (bounded in count and bytes), which devices each source
described last, and each device's contributions. Feeding it a message
returns what changed: devices described anew or differently (merged), and
devices no source describes any more. The hub turns that into contacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.core.codecs import PayloadError
from hub.core.discovery import MAPPERS, DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, merge
from hub.core.intents import Log
from hub.core.mapping import Binding
from hub.core.templates import TemplateSyntaxError

#: Discovery payloads kept for mappers to look back at, per hub: a z2m ``bridge/devices`` can be large.
MAX_SEEN_MESSAGES = 20_000
MAX_SEEN_BYTES = 32 * 1024 * 1024
MAX_DEVICES_PER_SOURCE = 2_000
#: Skipped parts of one message that are logged, one line each.
MAX_SKIPPED_LOGGED = 20


@dataclass(slots=True)
class Changes:
    described: list[tuple[Binding, DiscoveredDevice]] = field(default_factory=list)
    gone: list[tuple[Binding, str]] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)


@dataclass(slots=True)
class DiscoveryBook:
    seen: dict[str, dict[str, bytes]] = field(default_factory=dict)  # binding name → topic → payload
    seen_bytes: int = 0
    seen_count: int = 0
    #: (binding, source) → the device ids it described last.
    by_source: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    #: (binding, device id) → source → that source's description of it.
    parts: dict[tuple[str, str], dict[str, DiscoveredDevice]] = field(default_factory=dict)
    #: Messages that came (payload) or went (b"") since :meth:`take_unsaved`, for the durable store.
    unsaved: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def take_unsaved(self) -> list[tuple[str, str, bytes]]:
        found = [(binding, topic, payload) for (binding, topic), payload in self.unsaved.items()]
        self.unsaved.clear()
        return found

    def _remember(self, binding: Binding, topic: str, payload: bytes) -> Log | None:
        seen = self.seen.setdefault(binding.name, {})
        old = seen.pop(topic, None)
        if old is not None:
            self.seen_bytes -= len(old)
            self.seen_count -= 1
        if not payload:
            if old is not None:
                self.unsaved[(binding.name, topic)] = b""
            return None
        if self.seen_count >= MAX_SEEN_MESSAGES or self.seen_bytes + len(payload) > MAX_SEEN_BYTES:
            return Log("warning", "discovery.limit", {"topic": topic, "kept": self.seen_count})
        seen[topic] = payload
        if payload != old:
            self.unsaved[(binding.name, topic)] = payload
        self.seen_bytes += len(payload)
        self.seen_count += 1
        return None

    def take(self, binding: Binding, mapper: str, topic: str, payload: bytes) -> Changes:
        """Read one discovery message with the binding's mapper; a message it cannot use changes nothing."""
        changes = Changes()
        limit = self._remember(binding, topic, payload)
        if limit is not None:
            changes.logs.append(limit)
            return changes
        seen = self.seen.get(binding.name, {})
        try:
            discovery = MAPPERS[mapper](DiscoveryInput(topic, payload, binding, seen))
        except (DiscoveryError, PayloadError, TemplateSyntaxError) as exc:
            changes.logs.append(Log("warning", "discovery.rejected", {"topic": topic, "reason": str(exc)[:300]}))
            return changes
        for reason in discovery.skipped[:MAX_SKIPPED_LOGGED]:
            changes.logs.append(Log("warning", "discovery.skipped", {"topic": topic, "reason": reason[:300]}))
        return self._apply(binding, discovery, changes)

    def _apply(self, binding: Binding, discovery: Discovery, changes: Changes) -> Changes:
        key = (binding.name, discovery.source)
        described: dict[str, DiscoveredDevice] = {}
        for device in discovery.devices[:MAX_DEVICES_PER_SOURCE]:
            described.setdefault(device.device_id, device)
        if len(discovery.devices) > MAX_DEVICES_PER_SOURCE:
            changes.logs.append(
                Log("warning", "discovery.too_many", {"source": discovery.source, "devices": len(discovery.devices)})
            )
        for device_id in self.by_source.get(key, ()):
            if device_id in described:
                continue
            parts = self.parts.get((binding.name, device_id), {})
            parts.pop(discovery.source, None)
            if parts:
                changes.described.append((binding, merge(parts.values())))
            else:
                self.parts.pop((binding.name, device_id), None)
                changes.gone.append((binding, device_id))
        for device_id, device in described.items():
            parts = self.parts.setdefault((binding.name, device_id), {})
            parts[discovery.source] = device
            changes.described.append((binding, merge(parts.values())))
        if described:
            self.by_source[key] = tuple(described)
        else:
            self.by_source.pop(key, None)
        return changes
