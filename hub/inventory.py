"""``hub devices``: the devices a hub knows, read from its state directory, even while it runs.

Each stored record is turned back into the core's :class:`~hub.core.device.Device`
and its presence derived by the core's own table, so the CLI shows the same
availability an operator's client does (alerts aside: they need the rules'
live state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.core.codecs import Reading
from hub.core.device import Device
from hub.core.hub import HubSettings
from hub.core.mapping import MappingError, Router
from hub.core.presence import derive, readings_text
from hub.core.replies import show_word
from hub.core.snapshot import DeviceRecord


@dataclass(frozen=True, slots=True)
class DeviceRow:
    family: str  # the profile's name
    jid: str
    name: str
    availability: str  # online, away, sleeping, offline, not seen yet
    status: str  # what the device's presence says
    last_seen: float | None
    readings: Mapping[str, Reading]
    readings_text: str

    def as_json(self) -> dict[str, Any]:
        seen = None if self.last_seen is None else datetime.fromtimestamp(self.last_seen, UTC).isoformat()
        return {
            "family": self.family,
            "jid": self.jid,
            "name": self.name,
            "availability": self.availability,
            "status": self.status,
            "last_seen": seen,
            "readings": dict(self.readings),
        }


def rows(settings: HubSettings, records: Iterable[DeviceRecord], now: float) -> list[DeviceRow]:
    """One row per stored or configured device, by JID.

    A configured device the hub has not heard from yet has no record: it is
    listed as not seen. A record whose binding the config no longer has is
    listed with that binding's name.
    """
    bindings = {b.name: b for b in settings.bindings}
    stored = list(records)
    known = {r.jid for r in stored}
    router = Router(settings.bindings, settings.domain)
    for configured in settings.devices.values():
        binding = bindings.get(configured.binding) if configured.binding else next(iter(bindings.values()), None)
        if binding is None:
            continue
        try:
            jid = router.jid_for(binding, configured.device_id)
        except MappingError:
            continue  # the hub refuses it the same way
        if jid not in known:
            stored.append(DeviceRecord(jid, binding.name, configured.device_id))
    out: list[DeviceRow] = []
    for record in sorted(stored, key=lambda r: r.jid):
        binding = bindings.get(record.binding)
        readings = dict(record.readings)
        config = settings.devices.get(record.device_id)
        name = config.name if config is not None and config.name else record.device_id
        if binding is None:
            gone = f"({record.binding}?)"
            out.append(DeviceRow(gone, record.jid, name, "unknown", "binding gone", record.last_live, readings, ""))
            continue
        device = Device(binding, record.device_id, record.jid, name)
        if config is not None and config.expected_interval:
            device.expected_interval = config.expected_interval
        else:
            device.expected_interval = binding.profile.expected_interval
        device.available, device.sleeping, device.session = record.available, record.sleeping, record.session
        device.last_live, device.offline_since = record.last_live, record.offline_since
        device.readings = readings
        show, status = derive(device.facts(now), settings.format_time)
        availability = "not seen yet" if status == "not seen yet" else show_word(show)
        text = readings_text(binding.profile, readings)
        out.append(
            DeviceRow(binding.profile.name, record.jid, name, availability, status, record.last_live, readings, text)
        )
    return out


def format_rows(found: list[DeviceRow], format_seen: Callable[[float], str] | None = None) -> str:
    """One aligned line per device: family, JID, availability, last seen, latest readings."""
    if not found:
        return "No devices known yet."
    seen = format_seen or _local_time
    table = [
        (r.family, r.jid, r.availability, "-" if r.last_seen is None else seen(r.last_seen), r.readings_text or "-")
        for r in found
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), row[4]]) for row in table)


def _local_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
