"""The texts operators read: help, status, listings. Pure string building."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hub.core.commands import describe_property
from hub.core.device import Device
from hub.core.intents import Show
from hub.core.presence import format_reading
from hub.core.profile import Role

_SHOW_WORDS = {
    Show.AVAILABLE: "online",
    Show.AWAY: "away",
    Show.XA: "sleeping",
    Show.DND: "alert",
    Show.UNAVAILABLE: "offline",
}


def show_word(show: Show) -> str:
    """``online``, ``away``, ``sleeping``, ``alert`` or ``offline``: a presence in one word."""
    return _SHOW_WORDS[show]


def title(device: Device) -> str:
    if device.name and device.name != device.device_id:
        return f"{device.name} ({device.device_id})"
    return device.device_id


def device_help(device: Device, role: Role) -> str:
    profile = device.profile
    lines = [f"{title(device)}: a {profile.name} device. Commands:"]
    fields = list(dict.fromkeys([*profile.readings, *device.readings]))
    known = [f for f in fields if f in device.readings] or list(profile.readings)
    read = ["status", *(f"{f}?" for f in known[:12])]
    lines.append("  read: " + " · ".join(read))
    if role.rank < Role.OPERATOR.rank:
        lines.append(f"  (your role is {role.value}: you may read, not command)")
        return "\n".join(lines)
    switch = profile.switch
    if switch and switch.property in settable_properties(device):
        lines.append("  switch: on · off · toggle" + (" [channel]" if _has_channels(device) else ""))
    for name in settable_properties(device):
        if switch and (name == switch.property or _is_channel(device, name)):
            continue
        spec = profile.properties[name]
        lines.append(f"  set {name} <{describe_property(spec)}>")
    verbs = [v for v in profile.verbs.values() if role.rank >= v.role.rank]
    for verb in verbs:
        lines.append(f"  {verb.name}" + (f": {verb.help}" if verb.help else ""))
    return "\n".join(lines)


def settable_properties(device: Device) -> list[str]:
    """Properties the device has shown it has (it reported their echo), in profile order."""
    profile = device.profile
    return [n for n, spec in profile.properties.items() if spec.echo_key in device.readings]


def _is_channel(device: Device, name: str) -> bool:
    switch = device.profile.switch
    if switch is None or "{channel}" not in switch.channel_property:
        return False
    prefix, _, suffix = switch.channel_property.partition("{channel}")
    middle = name[len(prefix) : len(name) - len(suffix) if suffix else None]
    return name.startswith(prefix) and name.endswith(suffix) and middle.isdigit()


def _has_channels(device: Device) -> bool:
    return any(_is_channel(device, n) for n in settable_properties(device))


def device_status(device: Device, show: Show, presence_text: str, format_time: Callable[[float], str]) -> str:
    profile = device.profile
    lines = [f"{title(device)}: {_SHOW_WORDS[show]}" + (f" ({presence_text})" if show is not Show.AVAILABLE else "")]
    for key in list(dict.fromkeys([*(k for k in profile.readings if k in device.readings), *sorted(device.readings)])):
        lines.append("  " + format_reading(profile, key, device.readings[key], with_label=True))
    if device.last_live is not None:
        lines.append(f"  last message at {format_time(device.last_live)}")
    return "\n".join(lines)


def hub_help(domain: str) -> str:
    return "\n".join(
        [
            "This is the hub. Write to it:",
            "  devices: every device with its state",
            "  find <text>: devices whose id or name contains the text",
            "  status: how many devices are online",
            f"Each device is a contact of its own, e.g. kitchen-temp@{domain}: add it and write 'help' to it.",
        ]
    )


def device_list(entries: Iterable[tuple[Device, Show]], limit: int = 50) -> str:
    rows = sorted(entries, key=lambda e: e[0].device_id)
    if not rows:
        return "No devices match."
    lines = [f"{d.jid}: {title(d)}, {_SHOW_WORDS[s]}" for d, s in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"… and {len(rows) - limit} more; narrow it with 'find <text>'.")
    return "\n".join(lines)
