"""Payload codecs: bytes from a device to a flat mapping of readings.

Lenient with devices: a payload that does not decode raises
:class:`PayloadError` with a reason; the caller logs it with the topic and
carries on. A new codec kind is one function added to :data:`CODECS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

Reading = float | int | bool | str
Readings = dict[str, Reading]

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_READINGS = 64
MAX_TEXT_READING = 256
_MAX_DEPTH = 4


class PayloadError(ValueError):
    """A device payload the hub cannot use; the message says why."""


def _text(payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 (byte {exc.start})") from None


def scalar(value: object) -> Reading | None:
    """A JSON value as a reading, or ``None`` when it is not one (objects, NaN, long text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:  # a 400-digit integer is valid JSON but overflows every float the hub computes
            float(value)
        except OverflowError:
            return None
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT_READING else None
    return None


def _flatten(obj: dict[str, object], prefix: str, out: Readings, depth: int) -> None:
    for key, value in obj.items():
        if len(out) >= MAX_READINGS:
            return
        name = prefix + key if prefix else key
        if type(value) is float:  # the common case first: a sensor's reading
            if math.isfinite(value):
                out[name] = value
            continue
        if isinstance(value, dict):
            if depth < _MAX_DEPTH:
                _flatten(value, f"{name}.", out, depth + 1)
            continue
        reading = scalar(value)
        if reading is not None:
            out[name] = reading


def decode_json_object(payload: bytes, field: str | None = None) -> Readings:
    """A JSON object's scalar members as readings; nested objects become ``a.b`` keys."""
    text = _text(payload)
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: also an int past Python's digit limit
        if isinstance(exc, json.JSONDecodeError):
            reason = exc.msg
        else:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number is too long"
        raise PayloadError(f"payload is not JSON: {reason}") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"payload is JSON {type(obj).__name__}, expected an object")
    readings: Readings = {}
    _flatten(obj, "", readings, 0)
    if not readings and obj:
        raise PayloadError("payload has no readable values")
    return readings


def decode_plain(payload: bytes, field: str | None = None) -> Readings:
    """One plain value (``21.5``, ``ON``, ``true``) as the reading ``field``."""
    if field is None:
        raise PayloadError("plain codec needs a field name")
    text = _text(payload).strip()
    if len(text) > MAX_TEXT_READING:
        raise PayloadError(f"plain value of {len(text)} characters is too long")
    return {field: parse_scalar(text)}


def parse_scalar(text: str) -> Reading:
    """``"21.5"`` → 21.5, ``"3"`` → 3, ``"true"`` → True; anything else stays text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


Codec = Callable[[bytes, str | None], Readings]

CODECS: dict[str, Codec] = {
    "json": decode_json_object,
    "plain": decode_plain,
}
