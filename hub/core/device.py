"""One device's state as the hub knows it, and the facts presence is derived from."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.core.alerts import AlertState
from hub.core.codecs import Reading
from hub.core.commands import format_number
from hub.core.intents import Show
from hub.core.mapping import Binding
from hub.core.presence import PresenceFacts, format_reading, readings_text
from hub.core.profile import Profile

MAX_READINGS_PER_DEVICE = 64


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """What the configuration says about one device (all optional)."""

    device_id: str
    binding: str | None = None
    name: str | None = None
    group: str | None = None
    expected_interval: float | None = None


@dataclass(slots=True)
class Device:
    binding: Binding
    device_id: str
    jid: str
    name: str
    group: str | None = None
    expected_interval: float = 300.0
    #: From the availability topic: True online, False offline, None not said.
    available: bool | None = None
    sleeping: bool = False
    #: From the embedded broker: whether a session named after the device is open.
    session: bool | None = None
    last_live: float | None = None
    offline_since: float | None = None
    readings: dict[str, Reading] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)
    announced: tuple[Show, str] | None = None
    #: A discovered device's own profile (its literal topics, its capabilities); else the binding's.
    own_profile: Profile | None = None
    #: Discovered devices: the device whose absence makes this one unreachable (a zigbee2mqtt bridge).
    parent: Device | None = None
    model: str = ""
    #: Per availability topic, what it last said (several topics combine by the profile's mode).
    availability_by: dict[int, bool] = field(default_factory=dict)

    @property
    def profile(self) -> Profile:
        return self.own_profile or self.binding.profile

    @property
    def profile_name(self) -> str:
        return self.profile.name

    def unreachable_parent(self) -> Device | None:
        """The nearest ancestor (a bridge, a Homie root) that is offline, if any; a few levels at most."""
        node, depth = self.parent, 0
        while node is not None and node is not self and depth < 4:
            if not node.online_itself:
                return node
            node, depth = node.parent, depth + 1
        return None

    @property
    def online(self) -> bool:
        return self.online_itself and self.unreachable_parent() is None

    @property
    def online_itself(self) -> bool:
        if self.available is False or self.session is False:
            return False
        if self.available or self.session:
            return True
        return self.last_live is not None

    def facts(self, now: float) -> PresenceFacts:
        silent_since = None
        if self.last_live is not None and now - self.last_live > self.expected_interval:
            silent_since = self.last_live
        alert = None
        if self.alerts:
            newest = max(self.alerts.values(), key=lambda s: s.since)
            alert = alert_text(self, newest)
        parent = self.unreachable_parent()
        offline_since = self.offline_since
        if parent is not None and offline_since is None:
            offline_since = parent.offline_since
        return PresenceFacts(
            online=self.online,
            seen=self.last_live is not None or self.available is not None or self.offline_since is not None,
            sleeping=self.sleeping,
            silent_since=silent_since,
            offline_since=offline_since,
            alert=alert,
            readings_text=readings_text(self.profile, self.readings),
        )

    def update_readings(self, readings: dict[str, Reading]) -> None:
        for key, value in readings.items():
            if key in self.readings or len(self.readings) < MAX_READINGS_PER_DEVICE:
                self.readings[key] = value


def alert_text(device: Device, state: AlertState) -> str:
    """``temperature 31.2 °C > 30``: the breached rule in a few words."""
    rule = state.rule
    reading = format_reading(device.profile, rule.field, state.reading, with_label=True)
    unit = device.profile.reading(rule.field).unit
    threshold = format_number(rule.threshold) + (f" {unit}" if unit else "")
    return f"{reading} {rule.op} {threshold}"
