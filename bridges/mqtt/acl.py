"""Per-device topic ACL for the embedded broker: each user publishes and subscribes only in its own namespace.

Patterns are MQTT topic filters in which ``{username}`` stands for the
client's user name, e.g. ``devices/{username}/#``: a device that logs in as
``kitchen`` may publish to ``devices/kitchen/telemetry`` and subscribe to
``devices/kitchen/cmd``, but cannot publish into another device's telemetry,
subscribe to another device's commands, or subscribe to ``#``. A user name
that holds ``/``, ``+``, ``#`` or NUL would widen its pattern, so such a user
gets no ``{username}`` pattern at all. Users listed as unrestricted (an admin
or a test client) are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.core.topics import filter_matches

USERNAME = "{username}"


def filter_covers(allowed: str, requested: str) -> bool:
    """Whether every topic that ``requested`` matches is also matched by ``allowed``."""
    if requested.startswith("$") and allowed[:1] in ("+", "#"):
        return False  # a leading wildcard never matches '$' topics (MQTT-4.7.2-1)
    allowed_levels = allowed.split("/")
    requested_levels = requested.split("/")
    for index, level in enumerate(allowed_levels):
        if level == "#":
            return True
        if index >= len(requested_levels):
            return False
        wanted = requested_levels[index]
        if wanted == "#":
            return False  # '#' reaches levels that only '#' covers
        if level != "+" and (wanted == "+" or wanted != level):
            return False
    return len(allowed_levels) == len(requested_levels)


def _safe_username(username: str) -> bool:
    return bool(username) and not any(ch in username for ch in "/+#\x00")


@dataclass(frozen=True, slots=True)
class TopicAcl:
    """What each user may publish to and subscribe to (see the module docstring)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    unrestricted: frozenset[str] = frozenset()
    _cache: dict[tuple[str | None, bool], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, publish: Iterable[str], subscribe: Iterable[str], unrestricted: Iterable[str] = ()) -> TopicAcl:
        acl = cls(tuple(publish), tuple(subscribe), frozenset(unrestricted))
        for pattern in (*acl.publish, *acl.subscribe):
            check_pattern(pattern)
        return acl

    def _patterns(self, username: str | None, publish: bool) -> tuple[str, ...]:
        key = (username, publish)
        found = self._cache.get(key)
        if found is None:
            source = self.publish if publish else self.subscribe
            safe = username is not None and _safe_username(username)
            found = tuple(
                pattern.replace(USERNAME, username) if safe and username is not None else pattern
                for pattern in source
                if safe or USERNAME not in pattern
            )
            if len(self._cache) < 100_000:  # bounded: user names come from the configured user list
                self._cache[key] = found
        return found

    def may_publish(self, username: str | None, topic: str) -> bool:
        if username is not None and username in self.unrestricted:
            return True
        return any(filter_matches(pattern, topic) for pattern in self._patterns(username, True))

    def may_subscribe(self, username: str | None, topic_filter: str) -> bool:
        if username is not None and username in self.unrestricted:
            return True
        return any(filter_covers(pattern, topic_filter) for pattern in self._patterns(username, False))

    def may_receive(self, username: str | None, topic: str) -> bool:
        if username is not None and username in self.unrestricted:
            return True
        return any(filter_matches(pattern, topic) for pattern in self._patterns(username, False))


def check_pattern(pattern: str) -> None:
    """Raise ``ValueError`` unless ``pattern`` is a topic filter once ``{username}`` is filled."""
    sample = pattern.replace(USERNAME, "u")
    levels = sample.split("/")
    if not sample or "{" in sample or "}" in sample:
        raise ValueError(f"ACL pattern {pattern!r}: only {USERNAME} may be written in braces")
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != len(levels) - 1)) or ("+" in level and level != "+"):
            raise ValueError(f"ACL pattern {pattern!r} is not a valid topic filter")
