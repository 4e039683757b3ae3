"""MQTT topic names, filters and the templates that name a device's topics.

Validated value types instead of bare strings: a :class:`TopicTemplate` is
parsed once at start-up and then matches and formats topics without building
regular expressions on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MAX_TOPIC_BYTES = 65535


class TopicError(ValueError):
    """A topic name, filter or template that MQTT or the hub does not accept."""


def validate_topic_name(topic: str) -> None:
    """Raise :class:`TopicError` unless ``topic`` may be published to (MQTT 3.1.1 §4.7)."""
    if not topic:
        raise TopicError("topic is empty")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TopicError("topic is longer than 65535 bytes")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic {topic!r} contains a wildcard")
    if "\x00" in topic:
        raise TopicError("topic contains a NUL character")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise :class:`TopicError` unless ``topic_filter`` is a valid subscription filter."""
    if not topic_filter:
        raise TopicError("filter is empty")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"filter {topic_filter!r}: '#' must be a whole, last level")
        if "+" in level and level != "+":
            raise TopicError(f"filter {topic_filter!r}: '+' must be a whole level")


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter``, including the rule that a leading
    wildcard never matches a ``$`` topic (MQTT 3.1.1 §4.7.2)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(frozen=True, slots=True)
class _Literal:
    text: str


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    multi: bool  # ``{name+}`` spans one or more levels (zigbee2mqtt names may hold '/')


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic with named slots, e.g. ``devices/{id}/telemetry`` or ``zigbee2mqtt/{id+}``.

    A slot covers exactly one level; ``{name+}`` covers one or more levels and
    may appear at most once. Templates are reversible: ``format(match(t)) == t``.
    """

    source: str
    levels: tuple[_Literal | _Slot, ...]

    @classmethod
    def parse(cls, source: str) -> TopicTemplate:
        if not source:
            raise TopicError("topic template is empty")
        levels: list[_Literal | _Slot] = []
        names: set[str] = set()
        for level in source.split("/"):
            if level.startswith("{") and level.endswith("}"):
                name = level[1:-1]
                multi = name.endswith("+")
                name = name.rstrip("+")
                if not name.isidentifier():
                    raise TopicError(f"template {source!r}: bad slot name {level!r}")
                if name in names:
                    raise TopicError(f"template {source!r}: slot {{{name}}} appears twice")
                names.add(name)
                levels.append(_Slot(name, multi))
            elif any(ch in level for ch in "{}+#"):
                raise TopicError(f"template {source!r}: level {level!r} must be a whole {{slot}} or plain text")
            else:
                levels.append(_Literal(level))
        if sum(1 for lv in levels if isinstance(lv, _Slot) and lv.multi) > 1:
            raise TopicError(f"template {source!r}: at most one multi-level slot")
        return cls(source, tuple(levels))

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels if isinstance(lv, _Slot))

    def substitute(self, values: Mapping[str, str]) -> TopicTemplate:
        """Fill some slots with fixed text (e.g. ``base``), keeping the others."""
        parts = []
        for lv in self.levels:
            if isinstance(lv, _Slot) and lv.name in values:
                parts.append(values[lv.name])
            elif isinstance(lv, _Slot):
                parts.append("{" + lv.name + ("+" if lv.multi else "") + "}")
            else:
                parts.append(lv.text)
        return TopicTemplate.parse("/".join(parts))

    def as_filter(self) -> str:
        """The subscription filter that covers every topic this template matches."""
        parts = []
        for lv in self.levels:
            if isinstance(lv, _Slot) and lv.multi:
                parts.append("#")  # '#' must be the last level of a filter; it covers what follows
                break
            parts.append("+" if isinstance(lv, _Slot) else lv.text)
        return "/".join(parts)

    def match(self, topic: str) -> dict[str, str] | None:
        """The slot values if ``topic`` fits this template, else ``None``."""
        parts = topic.split("/")
        multi_at = next((i for i, lv in enumerate(self.levels) if isinstance(lv, _Slot) and lv.multi), None)
        if multi_at is None:
            if len(parts) != len(self.levels):
                return None
            return self._match_levels(self.levels, parts)
        tail = len(self.levels) - multi_at - 1
        if len(parts) < len(self.levels):
            return None
        head = self._match_levels(self.levels[:multi_at], parts[:multi_at])
        rest = self._match_levels(self.levels[multi_at + 1 :], parts[len(parts) - tail :] if tail else [])
        if head is None or rest is None:
            return None
        middle = parts[multi_at : len(parts) - tail]
        if any(not p for p in middle):
            return None
        slot = self.levels[multi_at]
        assert isinstance(slot, _Slot)
        return {**head, slot.name: "/".join(middle), **rest}

    @staticmethod
    def _match_levels(levels: tuple[_Literal | _Slot, ...], parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for lv, part in zip(levels, parts, strict=True):
            if isinstance(lv, _Literal):
                if lv.text != part:
                    return None
            elif not part:
                return None
            else:
                values[lv.name] = part
        return values

    def format(self, values: Mapping[str, str]) -> str:
        """The topic for these slot values; a one-level slot refuses a value with '/'."""
        parts = []
        for lv in self.levels:
            if isinstance(lv, _Literal):
                parts.append(lv.text)
                continue
            value = values[lv.name]
            if not value or ("/" in value and (not lv.multi or "" in value.split("/"))) or "+" in value or "#" in value:
                raise TopicError(f"{lv.name}={value!r} does not fit template {self.source!r}")
            parts.append(value)
        return "/".join(parts)

    def overlaps(self, other: TopicTemplate) -> bool:
        """Whether some topic could match both templates (used to refuse ambiguous rules)."""
        return _overlap(self.levels, other.levels)


def _overlap(a: tuple[_Literal | _Slot, ...], b: tuple[_Literal | _Slot, ...]) -> bool:
    return _tokens_overlap(_tokens(a), _tokens(b))


def _tokens(levels: tuple[_Literal | _Slot, ...]) -> tuple[_Literal | _Slot | None, ...]:
    """A multi-level slot as one level followed by ``None``: zero or more further levels."""
    out: list[_Literal | _Slot | None] = []
    for lv in levels:
        out.append(lv)
        if isinstance(lv, _Slot) and lv.multi:
            out.append(None)
    return tuple(out)


def _tokens_overlap(a: tuple[_Literal | _Slot | None, ...], b: tuple[_Literal | _Slot | None, ...]) -> bool:
    if a and a[0] is None:  # the tail matches nothing more, or swallows b's next level (or tail)
        return _tokens_overlap(a[1:], b) or (bool(b) and _tokens_overlap(a, b[1:]))
    if b and b[0] is None:
        return _tokens_overlap(b, a)
    if not a or not b:
        return not a and not b
    first_a, first_b = a[0], b[0]
    if isinstance(first_a, _Literal) and isinstance(first_b, _Literal) and first_a.text != first_b.text:
        return False
    return _tokens_overlap(a[1:], b[1:])
