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

Reading = float | int | bool | str
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
    #: What the value measures (``temperature``, ``power``, ``energy``: Home Assistant's device classes).
    device_class: str = ""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One reading taken out of a decoded payload, renamed and converted.

    ``path`` names a flattened key (``ENERGY.Power``, ``switch:0.output``);
    ``*`` stands for any one level (``*.Temperature`` finds a Tasmota sensor
    whatever its name). Numbers are multiplied by ``scale`` then shifted by
    ``offset`` (Wh → kWh is ``scale: 0.001``); text found in ``values`` is
    replaced case-insensitively (``ON`` → ``on``).
    """

    name: str
    path: str
    scale: float | None = None
    offset: float | None = None
    values: Mapping[str, Reading] = field(default_factory=dict)


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
    #: The device's own name for the property, for topics and payloads (``POWER1``, ``state``).
    key: str | None = None
    #: What the device is sent for a value the operator chose (``on`` → ``ON``); others go as they are.
    to_device: Mapping[str, Reading] = field(default_factory=dict)
    #: Where this property's commands go when it is not the profile's usual place (an HA entity's own topic).
    command: CommandSpec | None = None
    help: str = ""

    @property
    def echo_key(self) -> str:
        return self.echo or self.name

    @property
    def device_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True, slots=True)
class VerbSpec:
    name: str
    help: str = ""
    role: Role = Role.OPERATOR
    #: Its own topic and payload (``cmnd/{id}/Restart`` with ``1``), else the profile's ``verb_payload``.
    command: CommandSpec | None = None
    #: One optional argument, checked like a property: ``dim 40``.
    param: PropertySpec | None = None


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
    """A topic whose payload says whether the device is there (Last Will, status, Homie ``$state``).

    With ``path`` the payload may be a JSON object whose member at ``path``
    holds the word (zigbee2mqtt 2.x ``{"state": "online"}``); plain text is
    still understood. Words in ``transitional`` (Homie ``init``) change nothing.
    """

    topic: TopicTemplate
    online: tuple[str, ...] = ("online",)
    offline: tuple[str, ...] = ("offline",)
    sleeping: tuple[str, ...] = ()
    path: str | None = None
    transitional: tuple[str, ...] = ()


class AvailabilityMode(StrEnum):
    """How several availability topics combine (Home Assistant's ``availability_mode``)."""

    LATEST = "latest"  # the last one heard decides
    ALL = "all"  # online only when every topic says so
    ANY = "any"  # online when one topic says so


@dataclass(frozen=True, slots=True)
class TelemetrySpec:
    """A topic that carries readings: a JSON object, or one plain value for ``field``."""

    topic: TopicTemplate
    codec: str = "json"
    field: str | None = None
    #: Readings picked out and converted; without any, every scalar is a reading under its own key.
    fields: tuple[FieldSpec, ...] = ()
    #: With ``fields``: whether keys no field names are kept too.
    keep_unmapped: bool = False
    #: A value template (``{{ value_json.temperature }}``) giving the reading ``field``.
    template: str | None = None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Where commands go and what their payloads look like.

    Payload templates are JSON-shaped values; a string that is exactly one
    placeholder (``"{value}"``) is replaced by the typed value, other strings
    are filled as text. Placeholders: ``cid``, ``property`` (the device's own
    key of the property), ``value``, ``verb``, ``arg`` (a verb's argument) and
    the binding's slots; the topic may use ``{property}`` and ``{verb}`` too.
    """

    topic: TopicTemplate
    set_payload: JsonValue = None
    verb_payload: JsonValue = None
    qos: int = 1
    retain: bool = False
    #: For ``toggle`` when the device has a method of its own (Shelly's ``Switch.Toggle``);
    #: without it ``toggle`` sends ``set_payload`` with the switch's toggle word.
    toggle_payload: JsonValue = None


@dataclass(frozen=True, slots=True)
class ResultSpec:
    """The device's answer to a command, matched by correlation id."""

    topic: TopicTemplate
    id_field: str = "id"
    ok_field: str = "ok"
    message_field: str = "message"


@dataclass(frozen=True, slots=True)
class DiscoverySpec:
    """A topic whose messages describe devices; ``mapper`` names the pure function that reads them."""

    topic: TopicTemplate
    mapper: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str = ""
    id_slot: str = "id"
    availability: tuple[AvailabilitySpec, ...] = ()
    availability_mode: AvailabilityMode = AvailabilityMode.LATEST
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
    #: Topics that describe devices of this family, read by a discovery mapper.
    discovery: tuple[DiscoverySpec, ...] = ()
    #: Which of two conventions describing the same device is listed (higher wins).
    rank: int = 0

    def reading(self, key: str) -> ReadingSpec:
        return self.readings.get(key) or ReadingSpec(key=key, label=key)
