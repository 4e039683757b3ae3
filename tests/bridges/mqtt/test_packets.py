"""The PUBLISH packets the broker writes itself, checked against amqtt's own encoder and our framing checks."""

from __future__ import annotations

import pytest
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.publish import PublishPacket
from hypothesis import given
from hypothesis import strategies as st

from bridges.mqtt.framing import check_packet, decode_remaining_length
from bridges.mqtt.packets import MAX_REMAINING_LENGTH, encode_remaining_length, puback, publish_qos0

_topics = st.text(
    alphabet=st.characters(exclude_characters="#+\x00", exclude_categories=["Cs"]), min_size=1, max_size=80
)


@given(_topics, st.binary(max_size=300), st.booleans())
def test_same_bytes_as_amqtt_builds(topic: str, payload: bytes, retain: bool) -> None:
    expected = PublishPacket.build(topic, payload, None, False, 0, retain).to_bytes()
    assert publish_qos0(topic, payload, retain) == bytes(expected)


@given(_topics, st.binary(max_size=20_000))
def test_a_written_packet_passes_the_checks_a_client_packet_gets(topic: str, payload: bytes) -> None:
    packet = publish_qos0(topic, payload)
    length_bytes = 1
    while packet[length_bytes] & 0x80:
        length_bytes += 1
    length = decode_remaining_length(packet[1 : length_bytes + 1])
    body = packet[length_bytes + 1 :]
    assert length == len(body)
    check_packet(packet[0], body, first=False)


@pytest.mark.parametrize("value", [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_REMAINING_LENGTH])
def test_remaining_length_round_trips_at_every_width(value: int) -> None:
    assert decode_remaining_length(encode_remaining_length(value)) == value


@pytest.mark.parametrize("value", [-1, MAX_REMAINING_LENGTH + 1])
def test_remaining_length_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_remaining_length(value)


@given(st.integers(min_value=1, max_value=0xFFFF))
def test_puback_same_bytes_as_amqtt_builds(packet_id: int) -> None:
    assert puback(packet_id) == bytes(PubackPacket.build(packet_id).to_bytes())
