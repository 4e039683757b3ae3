"""Shelly Gen2+ devices, found by their ``<prefix>/online`` word and ``<prefix>/events/rpc`` notifications.

A Gen2 device's topics all start with its prefix, which defaults to its id
(``shellyplus1pm-a8032ab12345``) and may be set to anything. A first level
that any other family could use cannot be a fixed rule, so these two topics
are discovery topics, also read by the device they describe (the online word
is its availability, the notifications its readings):

- a prefix is a Shelly when a Notify frame on its ``events/rpc`` names the
  device in ``src`` (whatever the prefix), or when it says ``true``/``false``
  on ``online`` and the prefix looks like a Shelly id;
- the device keeps the family profile: the ``<id>/status/<component>``
  telemetry there is made literal for its prefix, and the same fields, under
  ``params.<component>.``, read its NotifyStatus and NotifyFullStatus frames,
  so a partial NotifyStatus only updates what it carries.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register
from hub.core.profile import AvailabilitySpec, CommandSpec, FieldSpec, Profile, TelemetrySpec
from hub.core.topics import TopicError, TopicTemplate

#: Model, a dash, the MAC in lower-case hex: shellyplus1pm-a8032ab12345, shellypro4pm-f008d1d8b8b8.
SHELLY_ID = re.compile(r"shelly[a-z0-9]+-([0-9a-f]{12})")
_ONLINE, _EVENTS = "online", "events/rpc"
_MAX_ID = 64


def _frame_source(payload: bytes | None, topic: str) -> str | None:
    """The ``src`` of a Notify frame, or ``None`` when the payload is not one."""
    if not payload:
        return None
    try:
        frame = json.loads(payload[:65536].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DiscoveryError(f"{topic}: not a JSON-RPC frame") from None
    if not isinstance(frame, dict):
        raise DiscoveryError(f"{topic}: not a JSON-RPC frame")
    method, src = frame.get("method"), frame.get("src")
    if not isinstance(method, str) or not method.startswith("Notify"):
        return None
    if not isinstance(src, str) or not src or len(src) > _MAX_ID or any(c in src for c in "/+#{}\x00 "):
        raise DiscoveryError(f"{topic}: {method} frame without a usable 'src'")
    return src


def _literal(template: TopicTemplate, prefix: str) -> TopicTemplate:
    try:
        return template.substitute({"id": prefix}) if "id" in template.slots else template
    except TopicError as exc:
        raise DiscoveryError(str(exc)) from None


def device_profile(base: Profile, prefix: str) -> Profile:
    """The family profile with this prefix's topics and the notification reader."""
    status: list[TelemetrySpec] = []
    notified: list[FieldSpec] = []
    for spec in base.telemetry:
        component = spec.topic.source.rsplit("/", 1)[-1]  # {id}/status/switch:0 → switch:0
        status.append(replace(spec, topic=_literal(spec.topic, prefix)))
        notified += [replace(f, path=f"params.{component}.{f.path}") for f in spec.fields]
    events = TelemetrySpec(TopicTemplate.parse(f"{prefix}/{_EVENTS}"), fields=tuple(notified))

    def own(command: CommandSpec | None) -> CommandSpec | None:
        return replace(command, topic=_literal(command.topic, prefix)) if command else None

    return replace(
        base,
        availability=(AvailabilitySpec(TopicTemplate.parse(f"{prefix}/{_ONLINE}"), ("true",), ("false",)),),
        telemetry=(events, *status),
        commands=own(base.commands),
        properties={name: replace(p, command=own(p.command)) for name, p in base.properties.items()},
        verbs={name: replace(v, command=own(v.command)) for name, v in base.verbs.items()},
        discovery=(),
    )


@register("shelly_gen2")
def map_shelly_gen2(given: DiscoveryInput) -> Discovery:
    topic = given.topic
    suffix = _ONLINE if topic.endswith(f"/{_ONLINE}") else _EVENTS
    prefix = topic[: -len(suffix) - 1]
    if any(c in prefix for c in "{}"):
        raise DiscoveryError(f"{topic}: prefix {prefix!r} cannot be part of a topic template")
    online = given.seen.get(f"{prefix}/{_ONLINE}")
    events = given.seen.get(f"{prefix}/{_EVENTS}")
    try:
        src = _frame_source(events, f"{prefix}/{_EVENTS}")
    except DiscoveryError:
        if suffix == _EVENTS:
            raise
        src = None
    if online is not None and suffix == _ONLINE and online.strip().lower() not in (b"true", b"false"):
        if SHELLY_ID.fullmatch(prefix):
            raise DiscoveryError(f"{topic}: a Shelly says true or false here, not {online[:32]!r}")
        return Discovery(prefix)
    if src is None and not (online is not None and SHELLY_ID.fullmatch(prefix)):
        return Discovery(prefix)  # nothing says this prefix is a Shelly
    device_id = (src or prefix).lower()
    found = SHELLY_ID.fullmatch(device_id)
    model = device_id.rsplit("-", 1)[0] if found else ""
    aliases = [device_id, prefix.lower()] + ([found.group(1)] if found else [])
    device = DiscoveredDevice(
        device_id=device_id,
        name=device_id,
        profile=device_profile(given.binding.profile, prefix),
        aliases=tuple(dict.fromkeys(aliases)),
        model=model,
    )
    return Discovery(prefix, (device,))
