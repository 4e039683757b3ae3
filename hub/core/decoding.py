"""From a payload to readings and availability, as a profile describes them.

The codecs (:mod:`hub.core.codecs`) turn bytes into flat readings; this
module applies a telemetry spec on top (value templates, picked and renamed
fields, scaling, value maps) and reads availability words, plain or inside
JSON. Everything raises :class:`~hub.core.codecs.PayloadError` for a payload
that does not fit, and nothing else.
"""

from __future__ import annotations

import json
from enum import Enum

from hub.core.codecs import CODECS, MAX_PAYLOAD_BYTES, PayloadError, Reading, Readings, parse_scalar, scalar
from hub.core.profile import AvailabilitySpec, FieldSpec, TelemetrySpec
from hub.core.templates import render_value_template


class Availability(Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    SLEEPING = "sleeping"
    UNCHANGED = "unchanged"  # a transitional word (Homie ``init``)


def decode_telemetry(spec: TelemetrySpec, payload: bytes) -> Readings:
    """The readings one message on a telemetry topic carries."""
    if spec.template is not None:
        value = render_value_template(spec.template, payload)
        if value is None:  # the template chose to say nothing about this message
            return {}
        readings: Readings = {spec.field or "value": value}
    else:
        readings = CODECS[spec.codec](payload, spec.field)
    if spec.fields:
        readings = pick_fields(spec.fields, readings, spec.keep_unmapped)
    return readings


def pick_fields(fields: tuple[FieldSpec, ...], readings: Readings, keep_unmapped: bool) -> Readings:
    """The named fields found in ``readings`` (the first key matching each path), converted."""
    out: Readings = {}
    used: set[str] = set()
    for spec in fields:
        key = _find(spec.path, readings)
        if key is None:
            continue
        used.add(key)
        value = convert(spec, readings[key])
        if value is not None:
            out[spec.name] = value
    if keep_unmapped:
        for key, value in readings.items():
            if key not in used and key not in out:
                out[key] = value
    return out


def _find(path: str, readings: Readings) -> str | None:
    if path in readings:
        return path
    if "*" not in path:
        return None
    wanted = path.split(".")
    for key in readings:
        parts = key.split(".")
        if len(parts) == len(wanted) and all(w == "*" or w == p for w, p in zip(wanted, parts, strict=True)):
            return key
    return None


def convert(spec: FieldSpec, value: Reading) -> Reading | None:
    """Apply a field's value map, then its scale and offset to numbers (numeric text included)."""
    if spec.values:
        lowered = str(value).strip().lower()
        for raw, mapped in spec.values.items():
            if raw.lower() == lowered:
                return mapped
    if spec.scale is None and spec.offset is None:
        return value
    if isinstance(value, str):
        value = parse_scalar(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    result = value * (1.0 if spec.scale is None else spec.scale) + (spec.offset or 0.0)
    return scalar(round(result, 9))


def decode_availability(spec: AvailabilitySpec, payload: bytes) -> Availability:
    """What an availability message says, by the profile's words (compared case-insensitively)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"availability payload of {len(payload)} bytes is too long")
    text = payload[:4096].decode("utf-8", "replace").strip()
    if spec.path is not None and text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise PayloadError("availability payload is not JSON") from None
        for part in spec.path.split("."):
            obj = obj.get(part) if isinstance(obj, dict) else None
        if not isinstance(obj, str | bool):
            raise PayloadError(f"availability payload has no text at {spec.path!r}")
        text = str(obj).lower() if isinstance(obj, bool) else obj
    word = text.lower()
    for words, meaning in (
        (spec.online, Availability.ONLINE),
        (spec.sleeping, Availability.SLEEPING),
        (spec.offline, Availability.OFFLINE),
        (spec.transitional, Availability.UNCHANGED),
    ):
        if any(word == w.lower() for w in words):
            return meaning
    raise PayloadError(f"availability word {text[:64]!r} is not one of the profile's")
