"""The profile file format, as pydantic models: the schema is the code.

``hub profile-schema`` prints the JSON Schema generated from these models for
editors. Profiles are written by people, so unknown keys are errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.core.codecs import CODECS
from hub.core.discovery import MAPPERS
from hub.core.payloads import placeholders
from hub.core.templates import TemplateSyntaxError, compile_template
from hub.core.topics import TopicError, TopicTemplate

Scalar = float | int | bool | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _template(value: str) -> str:
    try:
        TopicTemplate.parse(value)
    except TopicError as exc:
        raise ValueError(str(exc)) from None
    return value


class AvailabilityModel(_Strict):
    topic: str = Field(description="Topic template of the device's availability (often its Last Will).")
    online: list[str] = ["online"]
    offline: list[str] = ["offline"]
    sleeping: list[str] = []
    path: str | None = Field(default=None, description="JSON member holding the word, e.g. 'state'.")
    transitional: list[str] = Field(default=[], description="Words that change nothing (Homie 'init').")

    _check_topic = field_validator("topic")(_template)


class FieldModel(_Strict):
    path: str = Field(description="Flattened key of the value ('ENERGY.Power'); '*' matches any one level.")
    scale: float | None = None
    offset: float | None = None
    values: dict[str, Scalar] = Field(default={}, description="Device text → reading, e.g. {ON: 'on'}.")


def _check_value_template(value: str | None) -> str | None:
    if value is not None:
        try:
            compile_template(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"value template: {exc}") from None
    return value


class TelemetryModel(_Strict):
    topic: str
    codec: str = "json"
    field: str | None = Field(default=None, description="Reading name for a plain (non-JSON) value.")
    fields: dict[str, FieldModel | str] = Field(
        default={}, description="Readings picked out of the payload, by name: a path or {path, scale, values}."
    )
    keep_unmapped: bool = False
    template: str | None = Field(default=None, description="A value template such as '{{ value_json.t }}'.")

    _check_topic = field_validator("topic")(_template)
    _check_template = field_validator("template")(_check_value_template)

    @field_validator("codec")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        if value not in CODECS:
            raise ValueError(f"unknown codec {value!r}; known: {', '.join(sorted(CODECS))}")
        return value

    @model_validator(mode="after")
    def _plain_needs_field(self) -> TelemetryModel:
        if self.codec == "plain" and not self.field:
            raise ValueError("a plain codec needs 'field': the name of the reading")
        return self


class CommandsModel(_Strict):
    topic: str
    set_payload: Any = Field(default=None, description="Payload template for set/on/off/toggle.")
    verb_payload: Any = Field(default=None, description="Payload template for the profile's verbs.")
    qos: int = Field(default=1, ge=0, le=1)
    retain: bool = False
    toggle_payload: Any = Field(
        default=None, description="Payload template for 'toggle' when the device has its own toggle method."
    )

    _check_topic = field_validator("topic")(_template)


class ResultModel(_Strict):
    topic: str
    id_field: str = "id"
    ok_field: str = "ok"
    message_field: str = "message"

    _check_topic = field_validator("topic")(_template)


class ReadingModel(_Strict):
    label: str = ""
    unit: str = ""
    show_label: bool = True
    precision: int | None = Field(default=None, ge=0, le=6)
    device_class: str = ""


class PropertyModel(_Strict):
    kind: Literal["number", "integer", "boolean", "enum", "string"]
    min: float | None = None
    max: float | None = None
    step: float | None = Field(default=None, gt=0)
    choices: list[str] = []
    unit: str = ""
    max_length: int = Field(default=256, ge=1, le=4096)
    echo: str | None = Field(default=None, description="Reading that reports the property's state (default: its name).")
    key: str | None = Field(default=None, description="The device's own name for it, for {property} in topics.")
    to_device: dict[str, Scalar] = Field(default={}, description="Value sent for a chosen value, e.g. {on: 'ON'}.")
    command: CommandsModel | None = Field(default=None, description="Its own topic and set_payload.")
    help: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> PropertyModel:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.kind == "enum" and not self.choices:
            raise ValueError("an enum property needs 'choices'")
        if self.kind != "enum" and self.choices:
            raise ValueError("'choices' only fits kind 'enum'")
        return self


class VerbModel(_Strict):
    help: str = ""
    role: Literal["viewer", "operator", "admin"] = "operator"
    command: CommandsModel | None = Field(default=None, description="Its own topic and verb_payload.")
    param: PropertyModel | None = Field(default=None, description="One argument, checked like a property.")


class DiscoveryModel(_Strict):
    topic: str = Field(description="Topic template of the messages that describe devices.")
    mapper: str

    _check_topic = field_validator("topic")(_template)

    @field_validator("mapper")
    @classmethod
    def _known_mapper(cls, value: str) -> str:
        if value not in MAPPERS:
            raise ValueError(f"unknown mapper {value!r}; known: {', '.join(sorted(MAPPERS))}")
        return value


class SwitchModel(_Strict):
    property: str = "power"
    channel_property: str = "power{channel}"
    on: str = "on"
    off: str = "off"
    toggle: str = "toggle"


class ProfileModel(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    id_slot: str = "id"
    defaults: dict[str, str] = {}
    expected_interval: float = Field(default=300.0, gt=0)
    availability: list[AvailabilityModel] = Field(
        default=[], description="One availability topic, or a list of them combined by availability_mode."
    )
    availability_mode: Literal["latest", "all", "any"] = "latest"
    telemetry: list[TelemetryModel] = []
    commands: CommandsModel | None = None
    result: ResultModel | None = None
    readings: dict[str, ReadingModel] = {}
    properties: dict[str, PropertyModel] = {}
    verbs: dict[str, VerbModel] = {}
    switch: SwitchModel | None = None
    discovery: list[DiscoveryModel] = Field(default=[], description="Topics whose messages describe devices.")
    rank: int = Field(default=0, description="Of two conventions describing one device, the higher rank is listed.")

    @field_validator("availability", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def availability_list(self) -> list[AvailabilityModel]:
        return self.availability

    @model_validator(mode="after")
    def _cross_references(self) -> ProfileModel:
        slots = {self.id_slot, *self.defaults}
        topics: list[tuple[str, str | None, set[str]]] = [
            (f"availability.{i}.topic", a.topic, set()) for i, a in enumerate(self.availability_list)
        ]
        topics += [(f"telemetry.{i}.topic", t.topic, set()) for i, t in enumerate(self.telemetry)]
        commands = [("commands", self.commands)]
        commands += [(f"properties.{n}.command", p.command) for n, p in self.properties.items()]
        commands += [(f"verbs.{n}.command", v.command) for n, v in self.verbs.items()]
        topics += [(f"{where}.topic", c.topic, {"property", "verb"}) for where, c in commands if c]
        topics += [("result.topic", self.result.topic if self.result else None, set())]
        for where, source, extra_slots in topics:
            if source is None:
                continue
            template = TopicTemplate.parse(source)
            # A default may span levels and name the id (Tasmota's FullTopic: tele: "tele/{id}").
            spanning = {k: v for k, v in self.defaults.items() if k in template.slots}
            try:
                template = template.substitute(spanning)
            except TopicError as exc:
                raise ValueError(f"{where}: {source!r} with the defaults: {exc}") from None
            if self.id_slot not in template.slots:
                raise ValueError(f"{where}: {source!r} has no {{{self.id_slot}}} slot")
            unknown = set(template.slots) - slots - extra_slots
            if unknown:
                raise ValueError(f"{where}: {source!r} uses {sorted(unknown)} without a default")
        base = {"cid", self.id_slot, "id", *self.defaults}
        for where, command in commands:
            if command is None:
                continue
            for key, extra in (
                ("set_payload", {"property", "value"}),
                ("toggle_payload", {"property", "value"}),
                ("verb_payload", {"verb", "arg"}),
            ):
                unknown = placeholders(getattr(command, key)) - base - extra
                if unknown:
                    raise ValueError(f"{where}.{key}: unknown placeholders {sorted(unknown)}")
        general_set = self.commands is not None and self.commands.set_payload is not None
        for name, prop in self.properties.items():
            if not general_set and (prop.command is None or prop.command.set_payload is None):
                raise ValueError(f"properties.{name}: needs commands.set_payload or its own command.set_payload")
        if self.switch and not general_set and self.switch.property not in self.properties:
            raise ValueError("switch needs commands.set_payload")
        general_verb = self.commands is not None and self.commands.verb_payload is not None
        for name, verb in self.verbs.items():
            if not general_verb and (verb.command is None or verb.command.verb_payload is None):
                raise ValueError(f"verbs.{name}: needs commands.verb_payload or its own command.verb_payload")
        if self.switch and self.switch.property not in self.properties:
            raise ValueError(f"switch.property: {self.switch.property!r} is not in properties")
        if self.switch and "{channel}" not in self.switch.channel_property:
            raise ValueError("switch.channel_property: needs a {channel} placeholder")
        return self
