"""The profile file format, as pydantic models: the schema is the code.

``hub profile-schema`` prints the JSON Schema generated from these models for
editors. Profiles are written by people, so unknown keys are errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.core.codecs import CODECS
from hub.core.payloads import placeholders
from hub.core.topics import TopicError, TopicTemplate


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

    _check_topic = field_validator("topic")(_template)


class TelemetryModel(_Strict):
    topic: str
    codec: str = "json"
    field: str | None = Field(default=None, description="Reading name for a plain (non-JSON) value.")

    _check_topic = field_validator("topic")(_template)

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


class PropertyModel(_Strict):
    kind: Literal["number", "integer", "boolean", "enum", "string"]
    min: float | None = None
    max: float | None = None
    step: float | None = Field(default=None, gt=0)
    choices: list[str] = []
    unit: str = ""
    max_length: int = Field(default=256, ge=1, le=4096)
    echo: str | None = Field(default=None, description="Reading that reports the property's state (default: its name).")

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
    availability: AvailabilityModel | None = None
    telemetry: list[TelemetryModel] = []
    commands: CommandsModel | None = None
    result: ResultModel | None = None
    readings: dict[str, ReadingModel] = {}
    properties: dict[str, PropertyModel] = {}
    verbs: dict[str, VerbModel] = {}
    switch: SwitchModel | None = None

    @model_validator(mode="after")
    def _cross_references(self) -> ProfileModel:
        slots = {self.id_slot, *self.defaults}
        topics = [("availability.topic", self.availability.topic if self.availability else None)]
        topics += [(f"telemetry.{i}.topic", t.topic) for i, t in enumerate(self.telemetry)]
        topics += [("commands.topic", self.commands.topic if self.commands else None)]
        topics += [("result.topic", self.result.topic if self.result else None)]
        for where, source in topics:
            if source is None:
                continue
            template = TopicTemplate.parse(source)
            if self.id_slot not in template.slots:
                raise ValueError(f"{where}: {source!r} has no {{{self.id_slot}}} slot")
            unknown = set(template.slots) - slots
            if unknown:
                raise ValueError(f"{where}: {source!r} uses {sorted(unknown)} without a default")
        if self.commands:
            base = {"cid", self.id_slot, "id", *self.defaults}
            for key, extra in (("set_payload", {"property", "value"}), ("verb_payload", {"verb"})):
                unknown = placeholders(getattr(self.commands, key)) - base - extra
                if unknown:
                    raise ValueError(f"commands.{key}: unknown placeholders {sorted(unknown)}")
        if (self.properties or self.switch) and (self.commands is None or self.commands.set_payload is None):
            raise ValueError("properties and switch need commands.set_payload")
        if self.verbs and (self.commands is None or self.commands.verb_payload is None):
            raise ValueError("verbs need commands.verb_payload")
        if self.switch and self.switch.property not in self.properties:
            raise ValueError(f"switch.property: {self.switch.property!r} is not in properties")
        if self.switch and "{channel}" not in self.switch.channel_property:
            raise ValueError("switch.channel_property: needs a {channel} placeholder")
        return self
