"""What a device family looks like on the wire, as frozen values.

These are the core's view of a profile. ``device_profiles`` loads the YAML
files, validates them with pydantic and builds these; the core never reads a
file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from hub.core.topics import TopicTemplate

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class Role(StrEnum):
    """What an operator may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class PropertyKind(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ENUM = "enum"
    STRING = "string"


@dataclass(frozen=True, slots=True)
class ReadingSpec:
    """How one decoded field is named and shown (``21.6 °C``, ``battery 87 %``)."""

    key: str
    label: str = ""
    unit: str = ""
    show_label: bool = True
    precision: int | None = None


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """A settable property: ``set <name> <value>`` is checked against this."""

    name: str
    kind: PropertyKind
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    max_length: int = 256
    #: The reading that echoes the property's state, for confirmation.
    echo: str | None = None

    @property
    def echo_key(self) -> str:
        return self.echo or self.name


@dataclass(frozen=True, slots=True)
class VerbSpec:
    name: str
    help: str = ""
    role: Role = Role.OPERATOR


@dataclass(frozen=True, slots=True)
class SwitchSpec:
    """How ``on``/``off``/``toggle [channel]`` map onto a property."""

    property: str = "power"
    #: Property name for a numbered channel, e.g. ``power{channel}``.
    channel_property: str = "power{channel}"
    on: str = "on"
    off: str = "off"
    toggle: str = "toggle"


@dataclass(frozen=True, slots=True)
class AvailabilitySpec:
    """A topic whose payload says whether the device is there (Last Will, status)."""

    topic: TopicTemplate
    online: tuple[str, ...] = ("online",)
    offline: tuple[str, ...] = ("offline",)
    sleeping: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TelemetrySpec:
    """A topic that carries readings: a JSON object, or one plain value for ``field``."""

    topic: TopicTemplate
    codec: str = "json"
    field: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Where commands go and what their payloads look like.

    Payload templates are JSON-shaped values; a string that is exactly one
    placeholder (``"{value}"``) is replaced by the typed value, other strings
    are filled as text. Placeholders: ``cid``, ``property``, ``value``, ``verb``
    and the binding's slots.
    """

    topic: TopicTemplate
    set_payload: JsonValue = None
    verb_payload: JsonValue = None


@dataclass(frozen=True, slots=True)
class ResultSpec:
    """The device's answer to a command, matched by correlation id."""

    topic: TopicTemplate
    id_field: str = "id"
    ok_field: str = "ok"
    message_field: str = "message"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str = ""
    id_slot: str = "id"
    availability: AvailabilitySpec | None = None
    telemetry: tuple[TelemetrySpec, ...] = ()
    commands: CommandSpec | None = None
    result: ResultSpec | None = None
    readings: Mapping[str, ReadingSpec] = field(default_factory=dict)
    properties: Mapping[str, PropertySpec] = field(default_factory=dict)
    verbs: Mapping[str, VerbSpec] = field(default_factory=dict)
    switch: SwitchSpec | None = None
    #: Seconds of silence after which an online device is shown as away.
    expected_interval: float = 300.0
    #: Values for slots other than the id, e.g. ``{"base": "devices"}``.
    defaults: Mapping[str, str] = field(default_factory=dict)

    def reading(self, key: str) -> ReadingSpec:
        return self.readings.get(key) or ReadingSpec(key=key, label=key)
