"""Whole-packet checks of what an MQTT 3.1.1 client sends, before amqtt parses it.

amqtt 0.12.1 parses a packet field by field straight off the socket. When a
field is invalid it raises in the middle of the packet, its reader loop
logs "Message discarded" and goes on reading: the rest of the bad packet is
taken for the next one (a wildcard PUBLISH topic whose payload is a valid
PUBLISH gets that inner packet delivered). It also decodes invalid UTF-8 as
the text ``"b'...'"``, accepts fields that run past the packet's length, and
reads a body as slowly as the client sends it.

:func:`check_packet` is pure: given a packet's first byte and body it says
whether the packet is well formed, and :class:`ProtocolViolation` says why
not. The broker closes such a connection (MQTT-4.8.0-1) without reading on.
"""

from __future__ import annotations

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

#: Packets with a body of fixed length (MQTT 3.1.1 §3); a longer one would leave bytes amqtt reads as a packet.
_FIXED_LENGTH = {PUBACK: 2, PUBREC: 2, PUBREL: 2, PUBCOMP: 2, PINGREQ: 0, DISCONNECT: 0}
#: Fixed-header flags every packet but PUBLISH must carry (MQTT-2.2.2-1, -2).
_FLAGS = {PUBREL: 0b0010, SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010}
#: Packets only a server sends.
_SERVER_ONLY = {CONNACK: "CONNACK", SUBACK: "SUBACK", UNSUBACK: "UNSUBACK", PINGRESP: "PINGRESP"}


class ProtocolViolation(Exception):
    """A client sent something MQTT 3.1.1 forbids; the connection must be closed."""


class PacketTooLarge(ProtocolViolation):
    """A client announced a packet larger than the broker accepts."""


def decode_remaining_length(encoded: bytes) -> int | None:
    """The value of a complete variable-length integer, ``None`` while more bytes are needed.

    Raises :class:`ProtocolViolation` for a fifth byte (MQTT 3.1.1 §2.2.3 allows four).
    """
    value = 0
    for index, byte in enumerate(encoded):
        if index >= 4:
            raise ProtocolViolation("remaining length longer than four bytes")
        value += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value
    if len(encoded) >= 4:
        raise ProtocolViolation("remaining length longer than four bytes")
    return None


class _Fields:
    def __init__(self, body: bytes, kind: str) -> None:
        self._body = body
        self._at = 0
        self._kind = kind

    @property
    def done(self) -> bool:
        return self._at == len(self._body)

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._body):
            raise ProtocolViolation(f"{self._kind}: a field runs past the end of the packet")
        chunk = self._body[self._at : self._at + n]
        self._at += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self, what: str) -> str:
        """MQTT-1.5.3-1/-2: well-formed UTF-8 without U+0000."""
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(f"{self._kind}: {what} is not valid UTF-8") from None
        if "\x00" in text:
            raise ProtocolViolation(f"{self._kind}: {what} contains U+0000")
        return text

    def packet_id(self) -> int:
        packet_id = self.u16()
        if packet_id == 0:
            raise ProtocolViolation(f"{self._kind}: packet identifier 0")  # MQTT-2.3.1-1
        return packet_id


def _check_topic_name(topic: str, kind: str) -> None:
    if not topic:
        raise ProtocolViolation(f"{kind}: empty topic")  # MQTT-4.7.3-1
    if "+" in topic or "#" in topic:
        raise ProtocolViolation(f"{kind}: wildcard in topic {topic[:80]!r}")  # MQTT-3.3.2-2


def _check_topic_filter(topic_filter: str, kind: str) -> None:
    if not topic_filter:
        raise ProtocolViolation(f"{kind}: empty topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != len(levels) - 1)) or ("+" in level and level != "+"):
            raise ProtocolViolation(f"{kind}: invalid topic filter {topic_filter[:80]!r}")  # MQTT-4.7.1-2, -3


def _check_connect(fields: _Fields) -> None:
    fields.string("protocol name")
    fields.u8()  # protocol level: amqtt answers an unsupported one with a CONNACK refusal
    flags = fields.u8()
    if flags & 0x01:
        raise ProtocolViolation("CONNECT: reserved flag set")  # MQTT-3.1.2-3
    will, will_qos = bool(flags & 0x04), (flags >> 3) & 0x03
    if will_qos == 3 or (not will and (will_qos or flags & 0x20)):
        raise ProtocolViolation("CONNECT: invalid Will QoS or Will Retain")  # MQTT-3.1.2-13, -14, -15
    if flags & 0x40 and not flags & 0x80:
        raise ProtocolViolation("CONNECT: password without a user name")  # MQTT-3.1.2-22
    fields.u16()  # keep-alive
    fields.string("client identifier")
    if will:
        _check_topic_name(fields.string("Will topic"), "CONNECT")
        fields.binary()
    if flags & 0x80:
        fields.string("user name")
    if flags & 0x40:
        fields.binary()


def check_packet(first_byte: int, body: bytes, *, first: bool) -> None:
    """Raise :class:`ProtocolViolation` unless the packet is well formed.

    ``first`` says whether this is the connection's first packet, which must be
    a CONNECT and the only one (MQTT-3.1.0-1, -2).
    """
    packet_type, flags = first_byte >> 4, first_byte & 0x0F
    if packet_type in (0, 15):
        raise ProtocolViolation(f"reserved packet type {packet_type}")
    if first != (packet_type == CONNECT):
        raise ProtocolViolation("the first packet must be CONNECT" if first else "a second CONNECT")
    if packet_type in _SERVER_ONLY:
        raise ProtocolViolation(f"{_SERVER_ONLY[packet_type]} is sent by servers only")
    if packet_type != PUBLISH and flags != _FLAGS.get(packet_type, 0):
        raise ProtocolViolation(f"packet type {packet_type}: invalid fixed-header flags {flags:#06b}")
    expected = _FIXED_LENGTH.get(packet_type)
    if expected is not None and len(body) != expected:
        raise ProtocolViolation(f"packet type {packet_type}: body of {len(body)} bytes, expected {expected}")
    fields = _Fields(body, {CONNECT: "CONNECT", PUBLISH: "PUBLISH"}.get(packet_type, f"packet type {packet_type}"))
    if packet_type == CONNECT:
        _check_connect(fields)
        if not fields.done:
            raise ProtocolViolation("CONNECT: bytes after the last field")
    elif packet_type == PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise ProtocolViolation("PUBLISH: QoS 3")  # MQTT-3.3.1-4
        _check_topic_name(fields.string("topic"), "PUBLISH")
        if qos:
            fields.packet_id()
    elif packet_type in (SUBSCRIBE, UNSUBSCRIBE):
        kind = "SUBSCRIBE" if packet_type == SUBSCRIBE else "UNSUBSCRIBE"
        fields.packet_id()
        if fields.done:
            raise ProtocolViolation(f"{kind}: no topic filter")  # MQTT-3.8.3-3, MQTT-3.10.3-2
        while not fields.done:
            _check_topic_filter(fields.string("topic filter"), kind)
            if packet_type == SUBSCRIBE and fields.u8() > 2:
                raise ProtocolViolation("SUBSCRIBE: requested QoS above 2")  # MQTT-3.8.3-4
