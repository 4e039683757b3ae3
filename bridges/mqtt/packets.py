"""MQTT 3.1.1 packets the embedded broker writes itself, without amqtt's packet objects.

Delivering a QoS 0 message and acknowledging a QoS 1 one are the broker's most
frequent writes; amqtt builds each from packet objects and sends it through a
lock and a drain. Here they are bytes, written straight to the client's
transport (``bridges.mqtt.hardened``).
"""

from __future__ import annotations

from bridges.mqtt.framing import PUBACK, PUBLISH

MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable-length integer (MQTT 3.1.1 §2.2.3)


def encode_remaining_length(value: int) -> bytes:
    """The variable-length integer of MQTT 3.1.1 §2.2.3."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {value} out of range")
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def publish_qos0(topic: str, payload: bytes, retain: bool = False) -> bytes:
    """A whole QoS 0 PUBLISH packet (no packet id, DUP clear)."""
    name = topic.encode("utf-8")
    if len(name) > 0xFFFF:
        raise ValueError(f"topic of {len(name)} bytes is longer than MQTT allows")
    header = bytes((PUBLISH << 4 | (1 if retain else 0),))
    return b"".join(
        (header, encode_remaining_length(2 + len(name) + len(payload)), len(name).to_bytes(2, "big"), name, payload)
    )


def puback(packet_id: int) -> bytes:
    """The acknowledgement of a QoS 1 PUBLISH."""
    return bytes((PUBACK << 4, 2)) + packet_id.to_bytes(2, "big")
