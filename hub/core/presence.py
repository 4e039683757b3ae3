"""Device state → what an operator's client shows. One table, one place.

Status texts name moments ("offline since 14:02", "no data since 14:02")
rather than durations, so a silent device's presence does not change every
minute and nobody's client is flooded with updates that say nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hub.core.codecs import Reading
from hub.core.commands import format_number
from hub.core.intents import Show
from hub.core.profile import Profile

STATUS_SEPARATOR = " · "
MAX_STATUS_CHARS = 500


@dataclass(frozen=True, slots=True)
class PresenceFacts:
    """Everything presence depends on, computed from device state."""

    online: bool
    seen: bool  # ever heard from
    sleeping: bool
    silent_since: float | None  # last live message, if longer ago than expected
    offline_since: float | None
    alert: str | None  # text of the most recent active alert
    readings_text: str


def derive(facts: PresenceFacts, format_time: Callable[[float], str]) -> tuple[Show, str]:
    """The presence table (DESIGN §2): first matching row wins."""
    if not facts.online:
        if not facts.seen:
            return Show.UNAVAILABLE, "not seen yet"
        since = f" since {format_time(facts.offline_since)}" if facts.offline_since is not None else ""
        return Show.UNAVAILABLE, _join(f"offline{since}", facts.readings_text)
    if facts.alert:
        return Show.DND, _join(facts.alert, facts.readings_text)
    if facts.sleeping:
        return Show.XA, _join("sleeping", facts.readings_text)
    if facts.silent_since is not None:
        return Show.AWAY, _join(f"no data since {format_time(facts.silent_since)}", facts.readings_text)
    return Show.AVAILABLE, _join(facts.readings_text) or "online"


def _join(*parts: str) -> str:
    text = STATUS_SEPARATOR.join(p for p in parts if p)
    return text if len(text) <= MAX_STATUS_CHARS else text[: MAX_STATUS_CHARS - 1] + "…"


def format_reading(profile: Profile, key: str, value: Reading, with_label: bool | None = None) -> str:
    """``21.6 °C``, ``battery 87 %``, ``power on``: one reading as people read it."""
    spec = profile.reading(key)
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, float) and spec.precision is not None:
        text = f"{value:.{spec.precision}f}"
    elif isinstance(value, int | float):
        text = format_number(value)
    else:
        text = value
    if spec.unit:
        text = f"{text} {spec.unit}"
    show_label = spec.show_label if with_label is None else with_label
    label = spec.label or key
    return f"{label} {text}" if show_label else text


def readings_text(profile: Profile, readings: Mapping[str, Reading]) -> str:
    """The readings the profile lists first (in its order), then the rest, in one line."""
    ordered = [k for k in profile.readings if k in readings]
    ordered += sorted(k for k in readings if k not in profile.readings)
    return STATUS_SEPARATOR.join(format_reading(profile, k, readings[k]) for k in ordered)
