"""Homie 5 and Homie 4 (3.x alike): devices that describe themselves under ``<base>`` (``homie``).

Homie 5 puts a whole device in one retained JSON document,
``<base>/5/<device>/$description``: its name, nodes and their properties
(datatype, format, settable, unit, retained), and where it sits in a tree of
devices (``root``, ``parent``, ``children``). Homie 4 spreads the same over
many retained topics: ``$name`` and ``$nodes`` on the device, ``$name`` and
``$properties`` on each node, ``$datatype``, ``$format``, ``$settable``,
``$unit``… on each property. Its mapper rebuilds the device from every
attribute the hub holds (``seen``) each time one of them arrives, so the
order they come in does not matter.

Either way a device's ``$state`` is its availability (``ready`` online,
``init`` changes nothing, ``sleeping``, ``disconnected`` and ``lost`` offline),
each property's topic carries one plain value, and a settable property takes
``set <name> <value>`` on ``…/<property>/set``, confirmed by the echo on the
property's own topic. A reading is named by its property id, or
``<node>.<property>`` when two nodes have a property of the same id. A child
device names its parent (Homie 5), so a root that is ``lost`` takes its whole
tree with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.mapping import Binding
from hub.core.profile import (
    AvailabilitySpec,
    CommandSpec,
    Profile,
    PropertyKind,
    PropertySpec,
    ReadingSpec,
    TelemetrySpec,
)
from hub.core.topics import TopicTemplate

MAX_DESCRIPTION_BYTES = 1024 * 1024
MAX_NODES = 32
#: Properties per device: the hub keeps at most 64 readings a device anyway.
MAX_PROPERTIES = 64
MAX_TEXT = 200
#: Homie ids are lower-case letters, digits and hyphens; 3.x arrays used ``_``; nothing else fits a topic level.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KINDS = {
    "integer": PropertyKind.INTEGER,
    "float": PropertyKind.NUMBER,
    "boolean": PropertyKind.BOOLEAN,
    "enum": PropertyKind.ENUM,
    "string": PropertyKind.STRING,
    "color": PropertyKind.STRING,
    "datetime": PropertyKind.STRING,
    "duration": PropertyKind.STRING,
}

_BOOLEAN: Mapping[str, bool] = {"on": True, "off": False}


@dataclass(frozen=True, slots=True)
class _Property:
    node: str
    id: str
    datatype: str = "string"
    format: str = ""
    settable: bool = False
    retained: bool = True
    unit: str = ""


def _text(value: object, limit: int = MAX_TEXT) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _flag(value: object, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return default


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if abs(number) < 1e300 else None


def _range(text: str) -> tuple[float | None, float | None, float | None]:
    """``min:max[:step]``, either end open (``0:``, ``:10``)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        return None, None, None
    low, high = _number(parts[0]) if parts[0] else None, _number(parts[1]) if parts[1] else None
    step = _number(parts[2]) if len(parts) == 3 and parts[2] else None
    if low is not None and high is not None and low > high:
        low, high = None, None
    return low, high, step if step is not None and step > 0 else None


def _spec(name: str, prop: _Property, command: CommandSpec) -> PropertySpec | None:
    """What ``set <name>`` accepts, or ``None`` when the datatype cannot be set from a chat line."""
    kind = _KINDS.get(prop.datatype)
    if kind is None:
        return None
    low = high = step = None
    choices: tuple[str, ...] = ()
    if kind in (PropertyKind.INTEGER, PropertyKind.NUMBER) and prop.format:
        low, high, step = _range(prop.format)
    if kind is PropertyKind.INTEGER and step is not None and step != int(step):
        step = None
    if kind is PropertyKind.BOOLEAN:  # chosen as on/off (shown and confirmed so), sent as "true"/"false"
        return PropertySpec(name, PropertyKind.ENUM, choices=("on", "off"), to_device=_BOOLEAN, command=command)
    if kind is PropertyKind.ENUM:
        choices = tuple(dict.fromkeys(c for c in prop.format.split(",") if c))[:64]
        if not choices:
            return None
    return PropertySpec(name, kind, low, high, step, choices, prop.unit, command=command)


def _reading_names(props: list[_Property]) -> list[str]:
    counts: dict[str, int] = {}
    for prop in props:
        counts[prop.id] = counts.get(prop.id, 0) + 1
    return [p.id if counts[p.id] == 1 else f"{p.node}.{p.id}" for p in props]


def _device(
    base_profile: Profile,
    device_id: str,
    prefix: str,
    name: str,
    props: list[_Property],
    parent: str | None,
    model: str,
) -> DiscoveredDevice:
    state = TopicTemplate.parse(f"{prefix}/$state")
    availability = AvailabilitySpec(
        state,
        online=("ready", "alert"),
        offline=("disconnected", "lost", ""),  # an empty $state: the device is being removed
        sleeping=("sleeping",),
        transitional=("init",),
    )
    readings: dict[str, ReadingSpec] = {}
    telemetry: list[TelemetrySpec] = []
    properties: dict[str, PropertySpec] = {}
    for reading, prop in zip(_reading_names(props), props, strict=True):
        if prop.datatype == "json":  # a document, not one value: nothing to show in a status line
            continue
        topic = f"{prefix}/{prop.node}/{prop.id}"
        telemetry.append(TelemetrySpec(TopicTemplate.parse(topic), codec="plain", field=reading))
        known = base_profile.readings.get(reading)
        readings[reading] = replace(known, unit=prop.unit) if known else ReadingSpec(reading, reading, prop.unit)
        if prop.settable:
            command = CommandSpec(
                TopicTemplate.parse(f"{topic}/set"), set_payload="{value}", qos=1 if prop.retained else 0
            )
            spec = _spec(reading.lower(), prop, command)
            if spec is not None:
                properties[spec.name] = replace(spec, echo=reading) if spec.name != reading else spec
    first = {k: readings[k] for k in base_profile.readings if k in readings}  # the profile's order first
    profile = replace(
        base_profile,
        availability=(availability,),
        telemetry=tuple(telemetry),
        readings={**first, **readings},
        properties=properties,
        verbs={},
        switch=None,
        commands=None,
        discovery=(),
    )
    return DiscoveredDevice(device_id, name or device_id, profile, parent=parent, model=model)


def _base(binding: Binding) -> str:
    return {**binding.profile.defaults, **binding.slots}.get("base", "homie")


def _levels(topic: str, base: str) -> list[str]:
    if not topic.startswith(base + "/"):
        raise DiscoveryError(f"{topic}: not under the Homie base topic {base!r}")
    return topic[len(base) + 1 :].split("/")


def _id(value: str, what: str, topic: str) -> str:
    if not _ID.fullmatch(value):
        raise DiscoveryError(f"{topic}: {what} {value[:64]!r} is not a Homie id")
    return value


# ---------------------------------------------------------------------------------------------- Homie 5


def _members(value: object, where: str, skipped: list[str]) -> list[tuple[str, Mapping[str, object]]]:
    """Nodes or properties as ``(id, object)``: an object keyed by id (5.0), or a list with ``id`` (drafts)."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [(item.get("id"), item) for item in value if isinstance(item, dict)]
    else:
        return []
    found: list[tuple[str, Mapping[str, object]]] = []
    for key, member in pairs:
        if isinstance(key, str) and _ID.fullmatch(key) and isinstance(member, dict):
            found.append((key, member))
        else:
            skipped.append(f"{where}{str(key)[:64]!r}: not a Homie id with an object")
    return found


@register("homie5")
def map_description(message: DiscoveryInput) -> Discovery:
    """One Homie 5 device from its ``$description``; an empty one removes it."""
    base = _base(message.binding)
    levels = _levels(message.topic, base)
    if len(levels) != 3 or levels[0] != "5" or levels[2] != "$description":
        raise DiscoveryError(f"{message.topic}: not a Homie 5 $description topic")
    device_id = _id(levels[1], "device id", message.topic)
    prefix = f"{base}/5/{device_id}"
    if not message.payload:
        return Discovery(prefix)
    if len(message.payload) > MAX_DESCRIPTION_BYTES:
        raise DiscoveryError(f"{message.topic}: description of {len(message.payload)} bytes is too long")
    try:
        description = json.loads(message.payload.decode("utf-8"))
    except (ValueError, RecursionError):
        raise DiscoveryError(f"{message.topic}: description is not JSON") from None
    if not isinstance(description, dict):
        raise DiscoveryError(f"{message.topic}: description is JSON {type(description).__name__}, expected an object")
    props: list[_Property] = []
    skipped: list[str] = []
    for node_id, node in _members(description.get("nodes"), "node ", skipped)[:MAX_NODES]:
        for prop_id, attrs in _members(node.get("properties"), f"property {node_id}/", skipped):
            if len(props) >= MAX_PROPERTIES:
                break
            props.append(
                _Property(
                    node_id,
                    prop_id,
                    _text(attrs.get("datatype"), 16).lower() or "string",
                    _text(attrs.get("format"), 2000),
                    _flag(attrs.get("settable"), False),
                    _flag(attrs.get("retained"), True),
                    _text(attrs.get("unit"), 16),
                )
            )
    parent = _text(description.get("parent"), 64) or _text(description.get("root"), 64)
    version = _text(description.get("homie"), 8)
    kind = _text(description.get("type"), 60)
    model = " ".join(p for p in (f"Homie {version}" if version else "Homie 5", kind) if p)
    name = _text(description.get("name"))
    device = _device(
        message.binding.profile, device_id, prefix, name, props, parent if _ID.fullmatch(parent) else None, model
    )
    return Discovery(prefix, (device,), tuple(skipped))


# ---------------------------------------------------------------------------------------------- Homie 4


def _attribute(seen: Mapping[str, bytes], topic: str) -> str | None:
    payload = seen.get(topic)
    return payload[:4096].decode("utf-8", "replace").strip() if payload else None


def _ids(listing: str | None, where: str, skipped: list[str]) -> list[str]:
    """``a,b,c`` ids; 3.x array nodes (``lights[]``) and anything that is no id are left out."""
    found = []
    for item in (listing or "").split(","):
        if _ID.fullmatch(item.strip()):
            found.append(item.strip())
        elif item.strip():
            skipped.append(f"{where}: {item.strip()[:64]!r} is not a Homie id (3.x arrays are not read)")
    return found


@register("homie4")
def map_attributes(message: DiscoveryInput) -> Discovery:
    """One Homie 4 device, rebuilt from all its attributes held so far; none left removes it."""
    base = _base(message.binding)
    levels = _levels(message.topic, base)
    if not 2 <= len(levels) <= 4 or not levels[-1].startswith("$"):
        raise DiscoveryError(f"{message.topic}: not a Homie 4 attribute topic")
    device_id = _id(levels[0], "device id", message.topic)
    prefix = f"{base}/{device_id}"
    seen = message.seen
    name = _attribute(seen, f"{prefix}/$name")
    nodes = _attribute(seen, f"{prefix}/$nodes")
    if name is None and nodes is None:
        return Discovery(prefix)
    props: list[_Property] = []
    skipped: list[str] = []
    for node_id in _ids(nodes, f"{prefix}/$nodes", skipped)[:MAX_NODES]:
        listing = f"{prefix}/{node_id}/$properties"
        for prop_id in _ids(_attribute(seen, listing), listing, skipped):
            if len(props) >= MAX_PROPERTIES:
                break
            at = f"{prefix}/{node_id}/{prop_id}"
            props.append(
                _Property(
                    node_id,
                    prop_id,
                    (_attribute(seen, f"{at}/$datatype") or "string")[:16].lower(),
                    (_attribute(seen, f"{at}/$format") or "")[:2000],
                    _flag(_attribute(seen, f"{at}/$settable"), False),
                    _flag(_attribute(seen, f"{at}/$retained"), True),
                    (_attribute(seen, f"{at}/$unit") or "")[:16],
                )
            )
    version = _attribute(seen, f"{prefix}/$homie")
    model = f"Homie {version[:16]}" if version else "Homie 4"
    device = _device(message.binding.profile, device_id, prefix, (name or "")[:MAX_TEXT], props, None, model)
    return Discovery(prefix, (device,), tuple(skipped))
