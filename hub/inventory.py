"""``hub devices``: the devices a hub knows, read from its state directory, even while it runs.

Each stored record is turned back into the core's :class:`~hub.core.device.Device`
and its presence derived by the core's own table, so the CLI shows the same
availability an operator's client does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.core.codecs import Reading
from hub.core.hub import Hub, HubSettings
from hub.core.presence import derive, readings_text
from hub.core.replies import show_word
from hub.core.snapshot import DeviceRecord, DiscoveryRecord


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


def rows(
    settings: HubSettings, records: Iterable[DeviceRecord], discovery: Iterable[DiscoveryRecord], now: float
) -> list[DeviceRow]:
    """One row per stored or configured device, by JID.

    The core restores the records and discovery messages as at start-up, which
    gives each device its profile and name (discovered devices included), and
    lists configured devices not heard from yet. Availability is then taken
    from the records as stored: ``restore`` would count an embedded broker's
    sessions as ended, which is true for a restarted hub, not for a running one.
    """
    stored = {record.jid: record for record in records}
    hub = Hub(settings)
    hub.restore(stored.values(), (), None, discovery)
    out: list[DeviceRow] = []
    for jid in sorted(set(hub.devices) | set(stored)):
        device, record = hub.devices.get(jid), stored.get(jid)
        if device is None:
            assert record is not None
            family, readings = f"({record.binding}?)", dict(record.readings)
            out.append(DeviceRow(family, jid, record.device_id, "unknown", "", record.last_live, readings, ""))
            continue
        if record is not None:
            device.available, device.sleeping, device.session = record.available, record.sleeping, record.session
            device.last_live, device.offline_since = record.last_live, record.offline_since
        show, status = derive(device.facts(now), settings.format_time)
        availability = "not seen yet" if status == "not seen yet" else show_word(show)
        text = readings_text(device.profile, device.readings)
        out.append(
            DeviceRow(
                device.profile.name, jid, device.name, availability, status, device.last_live, device.readings, text
            )
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
