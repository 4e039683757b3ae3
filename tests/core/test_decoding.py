"""Telemetry specs on top of the codecs: picked fields, scaling, value maps, JSON availability."""

from __future__ import annotations

import pytest

from hub.core.codecs import PayloadError
from hub.core.decoding import Availability, convert, decode_availability, decode_telemetry, pick_fields
from hub.core.profile import AvailabilitySpec, FieldSpec, TelemetrySpec
from hub.core.topics import TopicTemplate

TOPIC = TopicTemplate.parse("x/{id}/t")

SENSOR = (
    b'{"Time":"2026-12-01T08:00:00","ENERGY":{"Total":1.25,"Power":42,"Voltage":231},'
    b'"AM2301":{"Temperature":21.6,"Humidity":48.1},"TempUnit":"C"}'
)


def test_fields_pick_rename_and_drop_the_rest() -> None:
    spec = TelemetrySpec(
        TOPIC,
        fields=(FieldSpec("load", "ENERGY.Power"), FieldSpec("temperature", "*.Temperature"), FieldSpec("x", "nope")),
    )
    assert decode_telemetry(spec, SENSOR) == {"load": 42, "temperature": 21.6}


def test_keep_unmapped_keeps_other_keys_under_their_names() -> None:
    spec = TelemetrySpec(TOPIC, fields=(FieldSpec("load", "ENERGY.Power"),), keep_unmapped=True)
    readings = decode_telemetry(spec, SENSOR)
    assert readings["load"] == 42
    assert readings["ENERGY.Voltage"] == 231
    assert "ENERGY.Power" not in readings


def test_without_fields_every_scalar_is_a_reading() -> None:
    assert decode_telemetry(TelemetrySpec(TOPIC), b'{"a": {"b": 1}, "c": "x"}') == {"a.b": 1, "c": "x"}


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (FieldSpec("energy", "e", scale=0.001), 1250, 1.25),
        (FieldSpec("energy", "e", scale=1 / 60000), 60000, 1.0),  # Shelly Gen1 watt-minutes
        (FieldSpec("t", "t", scale=0.1, offset=-40), "650", 25.0),
        (FieldSpec("power", "p", values={"ON": "on", "OFF": "off"}), "on", "on"),
        (FieldSpec("power", "p", values={"ON": "on", "OFF": "off"}), "OFF", "off"),
        (FieldSpec("power", "p", values={"true": "on"}), True, "on"),
        (FieldSpec("t", "t", scale=2.0), "warm", "warm"),  # not a number: left alone
        (FieldSpec("b", "b", scale=2.0), True, True),
    ],
)
def test_convert(spec: FieldSpec, value: float | str | bool, expected: float | str | bool) -> None:
    assert convert(spec, value) == expected


def test_pick_fields_takes_the_first_match_of_a_wildcard() -> None:
    readings = {"DS18B20-1.Temperature": 20.5, "DS18B20-2.Temperature": 19.0}
    assert pick_fields((FieldSpec("temperature", "*.Temperature"),), readings, False) == {"temperature": 20.5}


def test_plain_codec_with_a_field_and_a_value_map() -> None:
    spec = TelemetrySpec(
        TOPIC, codec="plain", field="relay", fields=(FieldSpec("power", "relay", values={"on": "on"}),)
    )
    assert decode_telemetry(spec, b"on") == {"power": "on"}


def test_value_template_gives_the_named_reading() -> None:
    spec = TelemetrySpec(TOPIC, field="temperature", template="{{ value_json.AM2301.Temperature | round(0) }}")
    assert decode_telemetry(spec, SENSOR) == {"temperature": 22.0}


def test_value_template_naming_a_missing_member_gives_no_reading() -> None:
    spec = TelemetrySpec(TOPIC, field="temperature", template="{{ value_json.nothing }}")
    assert decode_telemetry(spec, SENSOR) == {}


AVAIL = AvailabilitySpec(TOPIC, online=("online",), offline=("offline",), path="state")
HOMIE = AvailabilitySpec(
    TOPIC, online=("ready",), offline=("disconnected", "lost"), sleeping=("sleeping",), transitional=("init",)
)


@pytest.mark.parametrize(
    ("spec", "payload", "said"),
    [
        (AVAIL, b"online", Availability.ONLINE),
        (AVAIL, b'{"state": "offline"}', Availability.OFFLINE),
        (AVAIL, b'{"state":"online"}', Availability.ONLINE),
        (AVAIL, b"  OFFLINE \n", Availability.OFFLINE),
        (HOMIE, b"init", Availability.UNCHANGED),
        (HOMIE, b"lost", Availability.OFFLINE),
        (HOMIE, b"sleeping", Availability.SLEEPING),
        (AvailabilitySpec(TOPIC, online=("true",), offline=("false",), path="online"), b"true", Availability.ONLINE),
    ],
)
def test_availability_words(spec: AvailabilitySpec, payload: bytes, said: Availability) -> None:
    assert decode_availability(spec, payload) is said


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"maybe", "availability word 'maybe' is not one of the profile's"),
        (b'{"state": 3}', "availability payload has no text at 'state'"),
        (b'{"state": ', "availability payload is not JSON"),
        (b"x" * 70_000, "availability payload of 70000 bytes is too long"),
    ],
)
def test_bad_availability_says_why(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match="^" + reason.replace("(", r"\(").replace(")", r"\)") + "$"):
        decode_availability(AVAIL, payload)
