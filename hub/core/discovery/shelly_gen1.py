"""Shelly Gen1's announce: ``shellies/announce`` and ``shellies/<id>/announce``.

Gen1 topics carry the device id (``shellies/<id>/relay/0``), so the family's
fixed rules already route every device; the announce adds what the topics
do not say: the model, the firmware, the MAC (an alias, so another convention
describing the same device lists it once) and a name when one is set. Every
device announces on the same topic, so each id is its own source: one
device's announce never takes another's description away.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, register

#: A Gen1 id as its topics use it: shelly1pm-84CCA8ABCDEF, shellyplug-s-7AB123.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TEXT_LIMIT = 128


def _text(announce: dict[str, object], key: str) -> str:
    value = announce.get(key)
    return value.strip()[:_TEXT_LIMIT] if isinstance(value, str) else ""


@register("shelly_gen1")
def map_shelly_gen1(given: DiscoveryInput) -> Discovery:
    topic = given.topic
    if not given.payload:
        return Discovery(f"{topic}#")  # an empty retained announce says nothing
    try:
        announce = json.loads(given.payload[:65536].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DiscoveryError(f"{topic}: not a JSON object") from None
    if not isinstance(announce, dict):
        raise DiscoveryError(f"{topic}: not a JSON object")
    device_id = _text(announce, "id")
    if not _ID.fullmatch(device_id):
        raise DiscoveryError(f"{topic}: 'id' {device_id!r} is not a Shelly id")
    levels = topic.split("/")
    if len(levels) == 3 and levels[1] != device_id:
        raise DiscoveryError(f"{topic}: announces {device_id!r}, another device's id")
    mac = _text(announce, "mac").lower()
    model = " · ".join(p for p in (_text(announce, "model"), _text(announce, "fw_ver")) if p)
    device = DiscoveredDevice(
        device_id=device_id,
        name=_text(announce, "name") or device_id,
        profile=replace(given.binding.profile, discovery=()),
        aliases=tuple(dict.fromkeys([device_id.lower(), *([mac] if re.fullmatch(r"[0-9a-f]{12}", mac) else [])])),
        model=model,
    )
    return Discovery(f"shellies/announce#{device_id}", (device,))
