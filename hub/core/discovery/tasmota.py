"""Tasmota's native discovery: ``tasmota/discovery/<MAC>/config`` and ``/sensors``.

A device publishes, retained, one ``config`` object (MAC, names, its topic,
FullTopic and prefixes, which relays it has, its Last Will words) and one
``sensors`` object (a first SENSOR payload under ``sn``). The two are read
together: both topics describe the same device, so they share one source,
and an empty retained config (how a device is taken out) describes nothing,
which removes it. The device keeps the family profile, with the FullTopic's
three prefixes filled in as literal topics.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.profile import AvailabilitySpec, Profile, SwitchSpec, TelemetrySpec
from hub.core.topics import TopicError, TopicTemplate

#: The FullTopic's place for each prefix, as the family profile names it.
PREFIX_SLOTS = ("cmnd", "stat", "tele")
DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
MAX_RELAYS = 32
_MAC = re.compile(r"[0-9A-Fa-f]{12}")
_TEXT_LIMIT = 128


def _object(payload: bytes, topic: str) -> dict[str, object]:
    try:
        value = json.loads(payload[:65536].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DiscoveryError(f"{topic}: not a JSON object") from None
    if not isinstance(value, dict):
        raise DiscoveryError(f"{topic}: not a JSON object")
    return value


def _text(config: dict[str, object], key: str, default: str = "") -> str:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise DiscoveryError(f"'{key}' is not text")
    return value[:_TEXT_LIMIT]


def _level(value: str, what: str) -> str:
    """A topic part taken from the payload: no wildcards, no slot braces, no empty levels."""
    if not value or any(c in value for c in "+#{}\x00") or "" in value.split("/"):
        raise DiscoveryError(f"{what} {value!r} cannot be part of a topic")
    return value


def full_topics(config: dict[str, object], mac: str) -> dict[str, str]:
    """The FullTopic with each prefix filled in: ``{"tele": "tele/kitchen", ...}``."""
    topic = _level(_text(config, "t"), "topic 't'")
    full = _text(config, "ft", DEFAULT_FULL_TOPIC) or DEFAULT_FULL_TOPIC
    prefixes = config.get("tp", list(PREFIX_SLOTS))
    if not isinstance(prefixes, list) or len(prefixes) < 3 or not all(isinstance(p, str) for p in prefixes[:3]):
        raise DiscoveryError("'tp' is not a list of the three prefixes (cmnd, stat, tele)")
    if "%prefix%" not in full:
        raise DiscoveryError(f"full topic 'ft' {full!r} has no %prefix%")
    tokens = {"%topic%": topic, "%hostname%": _text(config, "hn"), "%id%": mac.upper()}
    out: dict[str, str] = {}
    for slot, prefix in zip(PREFIX_SLOTS, prefixes, strict=False):
        text = full.replace("%prefix%", _level(str(prefix), "prefix"))
        for token, value in tokens.items():
            text = text.replace(token, value)
        if "%" in text:
            raise DiscoveryError(f"full topic 'ft' {full!r} uses a token the hub does not know")
        out[slot] = _level(text.strip("/"), "full topic")
    return out


def relay_count(config: dict[str, object]) -> int:
    """How many POWER<n> the device has: its ``rl`` entries that are not 0 (none)."""
    relays = config.get("rl", [])
    if not isinstance(relays, list):
        raise DiscoveryError("'rl' is not a list")
    return sum(1 for r in relays[:MAX_RELAYS] if r not in (0, None, False))


def _name(config: dict[str, object], topic: str) -> str:
    friendly = config.get("fn")
    first = friendly[0] if isinstance(friendly, list) and friendly else None
    for candidate in (config.get("dn"), first):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()[:_TEXT_LIMIT]
    return topic


def _filled(template: TopicTemplate, topics: dict[str, str]) -> TopicTemplate:
    try:
        return template.substitute({k: v for k, v in topics.items() if k in template.slots})
    except TopicError as exc:
        raise DiscoveryError(str(exc)) from None


def device_profile(base: Profile, config: dict[str, object], sensors: dict[str, object], mac: str) -> Profile:
    """The family profile with this device's topics, words, relays and units."""
    topics = full_topics(config, mac)
    relays = relay_count(config)
    # One relay reports POWER; several report POWER1..n (the plain stat topics follow suit).
    wanted = {"POWER"} if relays <= 1 else {f"POWER{n}" for n in range(1, relays + 1)}
    telemetry: list[TelemetrySpec] = []
    for spec in base.telemetry:
        last = spec.topic.source.rsplit("/", 1)[-1]
        if last.startswith("POWER") and last not in wanted:
            continue
        telemetry.append(replace(spec, topic=_filled(spec.topic, topics)))
    availability = tuple(
        AvailabilitySpec(
            _filled(a.topic, topics),
            online=(_text(config, "onln", "Online") or "Online",),
            offline=(_text(config, "ofln", "Offline") or "Offline",),
        )
        for a in base.availability
    )
    readings = dict(base.readings)
    unit = sensors.get("TempUnit")
    if unit in ("C", "F") and "temperature" in readings:
        readings["temperature"] = replace(readings["temperature"], unit=f"°{unit}")
    pressure = sensors.get("PressureUnit")
    if isinstance(pressure, str) and pressure and "pressure" in readings:
        readings["pressure"] = replace(readings["pressure"], unit=pressure[:16])
    properties = {
        name: replace(p, command=replace(p.command, topic=_filled(p.command.topic, topics)) if p.command else None)
        for name, p in base.properties.items()
    }
    verbs = {
        name: replace(v, command=replace(v.command, topic=_filled(v.command.topic, topics)) if v.command else None)
        for name, v in base.verbs.items()
    }
    commands = replace(base.commands, topic=_filled(base.commands.topic, topics)) if base.commands else None
    switch = base.switch or SwitchSpec()
    return replace(
        base,
        availability=availability,
        telemetry=tuple(telemetry),
        commands=commands,
        readings=readings,
        properties=properties,
        verbs=verbs,
        switch=replace(switch, property="power" if relays <= 1 else "power1") if relays else None,
        discovery=(),
    )


@register("tasmota")
def map_tasmota(given: DiscoveryInput) -> Discovery:
    head, _, _ = given.topic.rpartition("/")
    config_topic, sensors_topic = f"{head}/config", f"{head}/sensors"
    source = head  # config and sensors describe one device together
    sensors: dict[str, object] = {}
    raw_sensors = given.seen.get(sensors_topic)
    if raw_sensors:
        try:
            found = _object(raw_sensors, sensors_topic).get("sn", {})
        except DiscoveryError:
            if given.topic == sensors_topic:
                raise
            found = {}
        sensors = found if isinstance(found, dict) else {}
    raw = given.seen.get(config_topic)
    if not raw:
        return Discovery(source)  # no config, or an empty retained one: the device is gone
    config = _object(raw, config_topic)
    mac = _text(config, "mac") or head.rsplit("/", 1)[-1]
    if not _MAC.fullmatch(mac):
        raise DiscoveryError(f"{config_topic}: 'mac' {mac!r} is not 12 hexadecimal digits")
    profile = device_profile(given.binding.profile, config, sensors, mac)
    topic = _text(config, "t")
    model = " · ".join(p for p in (_text(config, "md"), f"Tasmota {_text(config, 'sw')}".strip()) if p)
    device = DiscoveredDevice(
        device_id=mac.lower(),
        name=_name(config, topic),
        profile=profile,
        aliases=tuple(dict.fromkeys((mac.lower(), topic.lower()))),
        model=model,
    )
    return Discovery(source, (device,))
