"""zigbee2mqtt: ``<base>/bridge/devices`` (one retained JSON list) into one contact per Zigbee device.

Each entry names a device by its IEEE address (the stable id: a rename in
zigbee2mqtt changes only the contact's name) and its ``friendly_name``, which
is also its topic (``<base>/<friendly name>``, ``/`` allowed). Its
``definition.exposes`` say what it reports and takes: generic exposes
(``numeric``, ``binary``, ``enum``, ``text``) directly, specific ones
(``light``, ``switch``, ``climate``…) and ``composite`` ones through their
``features``. Access bit 1 means the value is in the published state (a
reading), bit 2 that ``/set`` takes it (a property, or a verb when the state
never shows it).

The bridge itself is a contact too, with the base topic as its id: the
coordinator entry (``type: Coordinator``) is the bridge (its IEEE address is an
alias), not a contact of its own. Every device names the bridge as its parent,
so when ``<base>/bridge/state`` says ``offline`` all of them are unreachable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.profile import (
    AvailabilitySpec,
    CommandSpec,
    Profile,
    PropertyKind,
    PropertySpec,
    Reading,
    ReadingSpec,
    SwitchSpec,
    TelemetrySpec,
    VerbSpec,
)
from hub.core.topics import TopicError, TopicTemplate, validate_topic_name

#: A bridge/devices list is large (a few kB per device) but not without end.
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_EXPOSES = 256
MAX_NAME_CHARS = 200
_MAX_DEPTH = 4
_DEVICES_SUFFIX = "/bridge/devices"
#: Words of a binary expose that mean on/off, so ``on``/``off``/``toggle`` fit it.
_ON_WORDS = ("on", "true")
_OFF_WORDS = ("off", "false")
#: Chat words a verb may not take: the grammar already means something by them.
_RESERVED_VERBS = frozenset({"help", "status", "set", "on", "off", "toggle"})


@dataclass(slots=True)
class _Capabilities:
    """What one device's exposes add up to."""

    readings: dict[str, ReadingSpec] = field(default_factory=dict)
    properties: dict[str, PropertySpec] = field(default_factory=dict)
    verbs: dict[str, VerbSpec] = field(default_factory=dict)
    #: Binary properties whose words are ON/OFF-like, with their toggle word if they have one.
    switches: dict[str, str | None] = field(default_factory=dict)
    count: int = 0


def _text(value: object, limit: int = MAX_NAME_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None  # Python's JSON reads Infinity and NaN


def _word(value: object) -> Reading | None:
    """A binary expose's value_on/value_off as the device sends it (``ON``, ``true``, ``LOCK``)."""
    if isinstance(value, bool | int | float | str) and not (isinstance(value, str) and len(value) > 64):
        return value
    return None


def _spoken(value: Reading) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value).lower()


def _binary_property(name: str, key: str, expose: Mapping[str, object], caps: _Capabilities) -> PropertySpec | None:
    on, off = _word(expose.get("value_on")), _word(expose.get("value_off"))
    if on is None or off is None:
        return None
    standard = _spoken(on) in _ON_WORDS and _spoken(off) in _OFF_WORDS
    choices = ("on", "off") if standard else (_spoken(on), _spoken(off))
    if len(set(choices)) < 2:
        return None
    to_device: dict[str, Reading] = {choices[0]: on, choices[1]: off}
    toggle = _word(expose.get("value_toggle"))
    if standard:
        caps.switches[name] = str(toggle) if isinstance(toggle, str) else None
        if isinstance(toggle, str):
            to_device["toggle"] = toggle
    return PropertySpec(name, PropertyKind.ENUM, choices=choices, key=key, echo=key, to_device=to_device)


def _numeric_property(name: str, key: str, expose: Mapping[str, object], unit: str) -> PropertySpec:
    low, high, step = (_number(expose.get(k)) for k in ("value_min", "value_max", "value_step"))
    if step is not None and step <= 0:
        step = None
    if low is not None and high is not None and low > high:
        low, high = None, None
    whole = all(v is None or v == int(v) for v in (low, high, step))
    integer = whole and (step is not None or (low is not None and high is not None))
    kind = PropertyKind.INTEGER if integer else PropertyKind.NUMBER
    return PropertySpec(name, kind, low, high, step, unit=unit, key=key, echo=key)


def _property(
    kind: str, name: str, key: str, expose: Mapping[str, object], unit: str, caps: _Capabilities
) -> PropertySpec | None:
    if kind == "numeric":
        return _numeric_property(name, key, expose, unit)
    if kind == "binary":
        return _binary_property(name, key, expose, caps)
    if kind == "enum":
        values = expose.get("values")
        if not isinstance(values, list):
            return None
        choices = tuple(dict.fromkeys(str(v)[:64] for v in values[:64] if isinstance(v, str | int | float)))
        return PropertySpec(name, PropertyKind.ENUM, choices=choices, key=key, echo=key) if choices else None
    if kind == "text":
        return PropertySpec(name, PropertyKind.STRING, key=key, echo=key)
    return None


def _generic(expose: Mapping[str, object], prefix: str, endpoint: str, caps: _Capabilities) -> None:
    """One numeric/binary/enum/text expose: a reading, and a property or verb if settable."""
    kind = _text(expose.get("type"))
    key = _text(expose.get("property")) or (
        _text(expose.get("name")) + (f"_{endpoint}" if endpoint and expose.get("name") else "")
    )
    if not key or kind not in ("numeric", "binary", "enum", "text"):
        return
    access = expose.get("access", 1)
    access = access if isinstance(access, int) and not isinstance(access, bool) else 1
    unit = _text(expose.get("unit"), 16)
    reading = f"{prefix}{key}"
    if access & 1:
        caps.readings.setdefault(reading, ReadingSpec(reading, reading, unit))
    if not access & 2 or prefix:  # a composite's members are set together, as one object: not one by one
        return
    name = key.lower()
    spec = _property(kind, name, key, expose, unit, caps)
    if spec is None:
        return
    if access & 1:
        caps.properties.setdefault(name, spec)
        return
    caps.switches.pop(name, None)  # a state never echoed cannot be switched and confirmed
    if kind in ("numeric", "enum") and name.isidentifier() and name not in _RESERVED_VERBS:
        # Write-only (``effect``, ``identify``): never echoed, so a verb with one argument rather than ``set``.
        caps.verbs.setdefault(name, VerbSpec(name, _text(expose.get("description"), 120), param=spec))


def _walk(exposes: object, prefix: str, endpoint: str, caps: _Capabilities, depth: int = 0) -> None:
    if not isinstance(exposes, list) or depth > _MAX_DEPTH:
        return
    for expose in exposes:
        caps.count += 1
        if caps.count > MAX_EXPOSES:
            return
        if not isinstance(expose, dict):
            continue
        where = _text(expose.get("endpoint"), 32) or endpoint
        features = expose.get("features")
        if expose.get("type") == "composite":
            key = _text(expose.get("property")) or _text(expose.get("name"))
            if key:
                _walk(features, f"{prefix}{key}.", where, caps, depth + 1)
        elif isinstance(features, list):  # light, switch, climate, fan, cover, lock…
            _walk(features, prefix, where, caps, depth + 1)
        else:
            _generic(expose, prefix, where, caps)


def _switch(caps: _Capabilities) -> SwitchSpec | None:
    """``on``/``off``/``toggle`` for a device whose ``state`` (or first endpoint's) is an ON/OFF binary."""
    channels = sorted(n for n in caps.switches if n.startswith("state_l") and n[7:].isdigit())
    main = "state" if "state" in caps.switches else (channels[0] if channels else None)
    if main is None:
        return None
    return SwitchSpec(property=main, channel_property="state_l{channel}")


def _literal(topic: str) -> TopicTemplate | None:
    """The topic as a template without slots, or ``None`` when a name makes it no valid topic."""
    try:
        validate_topic_name(topic)
        template = TopicTemplate.parse(topic)
    except TopicError:
        return None
    return template if not template.slots else None


def _availability(topic: TopicTemplate) -> AvailabilitySpec:
    """Legacy ``online``/``offline`` text or the JSON form ``{"state": "online"}``."""
    return AvailabilitySpec(topic, online=("online",), offline=("offline",), path="state")


def _bridge(base: str, profile: Profile, coordinator: str | None) -> DiscoveredDevice | None:
    state = _literal(f"{base}/bridge/state")
    if state is None:
        return None
    own = replace(
        profile,
        availability=(_availability(state),),
        telemetry=(),
        properties={},
        verbs={},
        switch=None,
        commands=None,
        discovery=(),
    )
    aliases = (coordinator,) if coordinator else ()
    return DiscoveredDevice(base, f"Zigbee2MQTT ({base})", own, aliases=aliases, model="Zigbee2MQTT bridge")


def _device(base: str, entry: Mapping[str, object], profile: Profile) -> DiscoveredDevice | str:
    """The device an entry describes, or why it cannot be one."""
    ieee = _text(entry.get("ieee_address"), 64).strip().lower()
    if not ieee:
        return "no ieee_address"
    name = _text(entry.get("friendly_name")) or ieee
    state, availability, command = (_literal(f"{base}/{name}{suffix}") for suffix in ("", "/availability", "/set"))
    if state is None or availability is None or command is None:
        return f"{ieee}: friendly_name {name[:64]!r} cannot be a topic ('+', '#', braces or NUL)"
    definition = entry.get("definition")
    caps = _Capabilities()
    model = ""
    if isinstance(definition, dict):
        _walk(definition.get("exposes"), "", "", caps)
        model = " ".join(p for p in (_text(definition.get("vendor"), 60), _text(definition.get("model"), 60)) if p)
    # The profile's known readings first, in its order, each with the unit its expose gives.
    readings = {
        k: replace(v, unit=caps.readings[k].unit or v.unit) for k, v in profile.readings.items() if k in caps.readings
    }
    for key, spec in caps.readings.items():
        readings.setdefault(key, spec)
    own = replace(
        profile,
        availability=(_availability(availability),),
        telemetry=(TelemetrySpec(state),),
        commands=CommandSpec(command, set_payload={"{property}": "{value}"}),
        readings=readings,
        properties=caps.properties,
        verbs={
            n: replace(v, command=CommandSpec(command, verb_payload={v.param.device_key: "{arg}"}))
            for n, v in caps.verbs.items()
            if v.param is not None
        },
        switch=_switch(caps),
        discovery=(),
    )
    return DiscoveredDevice(ieee, name, own, parent=base, aliases=(ieee,), model=model)


@register("zigbee2mqtt")
def map_bridge_devices(message: DiscoveryInput) -> Discovery:
    """Every device of one zigbee2mqtt bridge, and the bridge; an empty payload removes them all."""
    if not message.topic.endswith(_DEVICES_SUFFIX):
        raise DiscoveryError(f"{message.topic}: not a zigbee2mqtt bridge/devices topic")
    base = message.topic[: -len(_DEVICES_SUFFIX)]
    if not message.payload:
        return Discovery(message.topic)
    if len(message.payload) > MAX_PAYLOAD_BYTES:
        raise DiscoveryError(f"bridge/devices payload of {len(message.payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        entries = json.loads(message.payload.decode("utf-8"))
    except (ValueError, RecursionError):
        raise DiscoveryError("bridge/devices payload is not JSON") from None
    if not isinstance(entries, list):
        raise DiscoveryError(f"bridge/devices payload is JSON {type(entries).__name__}, expected a list of devices")
    profile = message.binding.profile
    coordinator = None
    devices: list[DiscoveredDevice] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skipped.append(f"entry {index}: not an object")
            continue
        if entry.get("type") == "Coordinator":
            coordinator = _text(entry.get("ieee_address"), 64).strip().lower() or None
            continue
        device = _device(base, entry, profile)
        if isinstance(device, str):
            skipped.append(f"entry {index}: {device}")
        else:
            devices.append(device)
    bridge = _bridge(base, profile, coordinator)
    if bridge is None:
        raise DiscoveryError(f"{message.topic}: base topic {base!r} cannot name topics")
    return Discovery(message.topic, (bridge, *devices), tuple(skipped))
