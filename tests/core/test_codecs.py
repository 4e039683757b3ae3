"""Device payload codecs (hub.core.codecs): lenient, bounded, never crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.codecs import (
    CODECS,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    MAX_TEXT_READING,
    PayloadError,
    decode_json_object,
    decode_plain,
    parse_scalar,
)


def test_flat_object() -> None:
    payload = b'{"temperature": 21.6, "humidity": 48, "power": true, "mode": "eco"}'
    assert decode_json_object(payload) == {"temperature": 21.6, "humidity": 48, "power": True, "mode": "eco"}


def test_types_are_kept() -> None:
    readings = decode_json_object(b'{"i": 3, "f": 3.0, "b": false}')
    assert type(readings["i"]) is int
    assert type(readings["f"]) is float
    assert readings["b"] is False


def test_nested_objects_become_dotted_keys() -> None:
    payload = b'{"state": {"power": "ON", "color": {"x": 0.3, "y": 0.4}}, "linkquality": 120}'
    assert decode_json_object(payload) == {
        "state.power": "ON",
        "state.color.x": 0.3,
        "state.color.y": 0.4,
        "linkquality": 120,
    }


def test_nesting_beyond_four_levels_is_dropped() -> None:
    payload = json.dumps({"a": {"b": {"c": {"d": {"e": 1, "f": {"g": 2}}}}}, "top": 1}).encode()
    assert decode_json_object(payload) == {"a.b.c.d.e": 1, "top": 1}


def test_non_scalars_are_skipped() -> None:
    payload = json.dumps({"list": [1, 2], "null": None, "long": "x" * (MAX_TEXT_READING + 1), "ok": 1}).encode()
    assert decode_json_object(payload) == {"ok": 1}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_skipped(literal: bytes) -> None:
    assert decode_json_object(b'{"t": ' + literal + b', "h": 48}') == {"h": 48}
    with pytest.raises(PayloadError, match=r"^payload has no readable values$"):
        decode_json_object(b'{"t": ' + literal + b"}")


def test_empty_object_is_fine() -> None:
    assert decode_json_object(b"{}") == {}


def test_readings_are_capped() -> None:
    payload = json.dumps({f"k{i}": i for i in range(MAX_READINGS + 10)}).encode()
    readings = decode_json_object(payload)
    assert len(readings) == MAX_READINGS
    assert list(readings) == [f"k{i}" for i in range(MAX_READINGS)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "payload is not JSON: Expecting value"),
        (b"{", "payload is not JSON: Expecting property name enclosed in double quotes"),
        (b'{"t": 21.6', "payload is not JSON: Expecting ',' delimiter"),
        (b"online", "payload is not JSON: Expecting value"),
        (b"[1, 2]", "payload is JSON list, expected an object"),
        (b"21.5", "payload is JSON float, expected an object"),
        (b'"text"', "payload is JSON str, expected an object"),
        (b"null", "payload is JSON NoneType, expected an object"),
        (b'{"t": [1]}', "payload has no readable values"),
        (b"\xff\xfe{}", "payload is not UTF-8 (byte 0)"),
        (b'{"t": "\xc3\x28"}', "payload is not UTF-8 (byte 7)"),
        (b"[" * 50_000, "payload is not JSON: nested too deeply"),
        (b'{"t": ' + b"9" * 5000 + b"}", "payload is not JSON: a number is too long"),
    ],
)
def test_malformed_json_is_a_payload_error(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_json_object(payload)
    assert str(caught.value) == reason


def test_integer_too_big_for_a_float_is_not_a_reading() -> None:
    # Valid JSON, but every number the hub formats or compares would overflow.
    huge = b"1" + b"0" * 400
    assert decode_json_object(b'{"t": ' + huge + b', "h": 48}') == {"h": 48}
    assert decode_json_object(b'{"t": ' + b"9" * 300 + b"}") == {"t": int("9" * 300)}


def test_megabyte_payload_is_refused_before_parsing() -> None:
    payload = b'{"t": "' + b"x" * (1024 * 1024) + b'"}'
    with pytest.raises(PayloadError) as caught:
        decode_json_object(payload)
    assert str(caught.value) == f"payload of {len(payload)} bytes is over the 65536-byte limit"


def test_payload_at_the_limit_is_accepted() -> None:
    padding = MAX_PAYLOAD_BYTES - len(b'{"t": 1, "pad": ""}')
    payload = b'{"t": 1, "pad": "' + b" " * padding + b'"}'
    assert len(payload) == MAX_PAYLOAD_BYTES
    assert decode_json_object(payload) == {"t": 1}  # the long text itself is not a reading


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"21.5", 21.5),
        (b" 21.5\n", 21.5),
        (b"3", 3),
        (b"-4", -4),
        (b"ON", "ON"),
        (b"true", True),
        (b"False", False),
        (b"nan", "nan"),
        (b"inf", "inf"),
        (b"", ""),
    ],
)
def test_plain_values(payload: bytes, value: object) -> None:
    readings = decode_plain(payload, "temperature")
    assert readings == {"temperature": value}
    assert type(readings["temperature"]) is type(value)


def test_plain_needs_a_field() -> None:
    with pytest.raises(PayloadError, match=r"^plain codec needs a field name$"):
        decode_plain(b"1", None)


def test_plain_refuses_long_text_and_bad_utf8() -> None:
    with pytest.raises(PayloadError, match=r"^plain value of 257 characters is too long$"):
        decode_plain(b"x" * 257, "f")
    with pytest.raises(PayloadError, match=r"^payload is not UTF-8 \(byte 0\)$"):
        decode_plain(b"\xff", "f")


def test_parse_scalar_of_huge_digit_strings_stays_text() -> None:
    assert parse_scalar("9" * 5000) == "9" * 5000


def test_codec_table() -> None:
    assert set(CODECS) == {"json", "plain"}
    assert CODECS["plain"](b"7", "battery") == {"battery": 7}


@given(st.binary(max_size=2048))
def test_any_bytes_decode_or_raise_payload_error(payload: bytes) -> None:
    for codec in CODECS.values():
        try:
            readings = codec(payload, "field")
        except PayloadError:
            continue
        assert isinstance(readings, dict)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
        max_leaves=30,
    )
)
def test_any_json_value_decodes_or_raises_payload_error(value: object) -> None:
    payload = json.dumps(value).encode()
    try:
        readings = decode_json_object(payload)
    except PayloadError:
        return
    assert len(readings) <= MAX_READINGS
    for reading in readings.values():
        assert isinstance(reading, bool | int | float | str)
