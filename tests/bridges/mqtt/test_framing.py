"""The whole-packet checks the hardened broker runs before amqtt parses a packet (bridges.mqtt.framing)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridges.mqtt.framing import ProtocolViolation, check_packet, decode_remaining_length


def string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


CONNECT_BODY = (
    string(b"MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big") + string(b"dev") + string(b"u") + string(b"p")
)


@pytest.mark.parametrize(
    ("first_byte", "body", "first"),
    [
        (0x10, CONNECT_BODY, True),
        (0x30, string(b"devices/k1/telemetry") + b"{}", False),
        (0x32, string(b"devices/k1/telemetry") + b"\x00\x07{}", False),
        (0x30, string(b"$SYS/x"), False),  # refused later, without closing (defect 5)
        (0x82, b"\x00\x01" + string(b"devices/+/cmd") + b"\x01" + string(b"#") + b"\x00", False),
        (0xA2, b"\x00\x01" + string(b"devices/#"), False),
        (0x40, b"\x00\x01", False),
        (0x62, b"\x00\x01", False),
        (0xC0, b"", False),
        (0xE0, b"", False),
    ],
)
def test_well_formed_packets_pass(first_byte: int, body: bytes, first: bool) -> None:
    check_packet(first_byte, body, first=first)


@pytest.mark.parametrize(
    ("first_byte", "body", "first", "reason"),
    [
        (0x30, string(b"x"), True, "first packet must be CONNECT"),
        (0x10, CONNECT_BODY, False, "second CONNECT"),
        (0x10, CONNECT_BODY + b"\x00", True, "bytes after the last field"),
        (0x10, string(b"MQTT") + bytes([4, 0x42, 0, 60]) + string(b"d") + string(b"p"), True, "password without"),
        (0x10, string(b"MQTT") + bytes([4, 0x03, 0, 60]) + string(b"d"), True, "reserved flag"),
        (0x10, string(b"MQTT") + bytes([4, 0x1E, 0, 60]) + string(b"d"), True, "Will QoS"),
        (0x10, string(b"MQTT") + bytes([4, 0x06, 0, 60]) + string(b"d") + string(b"a/+") + string(b""), True, "wild"),
        (0x10, string(b"MQTT") + bytes([4, 0x02, 0, 60]) + string(b"\xed\xa0\x80"), True, "not valid UTF-8"),
        (0x30, string(b"devices/\xff"), False, "not valid UTF-8"),
        (0x30, string(b"a\x00b"), False, "contains U"),
        (0x30, string(b""), False, "empty topic"),
        (0x30, string(b"a/#"), False, "wildcard"),
        (0x36, string(b"a"), False, "QoS 3"),
        (0x32, string(b"a") + b"\x00\x00", False, "packet identifier 0"),
        (0x32, string(b"a"), False, "past the end"),
        (0x30, b"\x00\x09abc", False, "past the end"),
        (0x80, b"\x00\x01" + string(b"a") + b"\x00", False, "flags"),
        (0x82, b"\x00\x01", False, "no topic filter"),
        (0x82, b"\x00\x01" + string(b"a/b#") + b"\x00", False, "invalid topic filter"),
        (0x82, b"\x00\x01" + string(b"a") + b"\x03", False, "above 2"),
        (0x82, b"\x00\x01" + string(b"a"), False, "past the end"),
        (0xA2, b"\x00\x01" + string(b"a+"), False, "invalid topic filter"),
        (0x40, b"\x00\x01\x00", False, "expected 2"),
        (0xC0, b"\x00", False, "expected 0"),
        (0x20, b"\x00\x00", False, "servers only"),
        (0x90, b"\x00\x01\x00", False, "servers only"),
        (0x00, b"", False, "reserved packet type"),
        (0xF0, b"", False, "reserved packet type"),
    ],
)
def test_malformed_packets_are_violations(first_byte: int, body: bytes, first: bool, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason):
        check_packet(first_byte, body, first=first)


def test_remaining_length() -> None:
    assert decode_remaining_length(b"") is None
    assert decode_remaining_length(b"\x00") == 0
    assert decode_remaining_length(b"\x7f") == 127
    assert decode_remaining_length(b"\x80") is None
    assert decode_remaining_length(b"\x80\x01") == 128
    assert decode_remaining_length(b"\xff\xff\xff\x7f") == 268_435_455
    with pytest.raises(ProtocolViolation):
        decode_remaining_length(b"\xff\xff\xff\xff")


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 255), st.binary(max_size=300), st.booleans())
def test_any_bytes_pass_or_are_a_violation(first_byte: int, body: bytes, first: bool) -> None:
    try:
        check_packet(first_byte, body, first=first)
    except ProtocolViolation as exc:
        assert str(exc)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=6))
def test_any_length_prefix_decodes_or_is_a_violation(encoded: bytes) -> None:
    try:
        value = decode_remaining_length(encoded)
    except ProtocolViolation:
        return
    assert value is None or 0 <= value <= 268_435_455
