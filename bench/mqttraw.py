"""Just enough MQTT 3.1.1 on raw sockets for a load generator that is not the bottleneck.

Packets are built once as bytes and written in batches; incoming bytes are
only framed (fixed header + length), never decoded further than the type.
"""

from __future__ import annotations

import socket
import struct

CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP = 2, 3, 4, 9, 13


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect(
    client_id: str,
    keepalive: int = 0,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | 0x20  # will flag, will retain
        payload += _str(will[0]) + _str(will[1])
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return bytes([0x10]) + _varlen(len(body)) + body


def subscribe(packet_id: int, topic: str, qos: int) -> bytes:
    body = struct.pack("!H", packet_id) + _str(topic) + bytes([qos])
    return bytes([0x82]) + _varlen(len(body)) + body


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1, retain: bool = False) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1) | int(retain)]) + _varlen(len(body)) + body


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


DISCONNECT = b"\xe0\x00"


class Framer:
    """Splits a byte stream into (type, flags, body) packets."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self.buf += data
        out = []
        buf = self.buf
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first = buf[pos]
            length, mult, i = 0, 1, pos + 1
            while True:
                if i >= end:
                    length = -1
                    break
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80:
                    break
            if length < 0 or i + length > end:
                break
            out.append((first >> 4, first & 0x0F, bytes(buf[i : i + length])))
            pos = i + length
        del buf[:pos]
        return out


def open_client(
    host: str,
    port: int,
    client_id: str,
    *,
    keepalive: int = 0,
    subscribe_to: str | None = None,
    sub_qos: int = 1,
    will: tuple[str, bytes] | None = None,
    timeout: float = 30.0,
) -> socket.socket:
    """A connected (and optionally subscribed) blocking socket; waits for CONNACK/SUBACK."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect(client_id, keepalive, will=will))
    framer = Framer()
    wanted = {CONNACK}
    if subscribe_to is not None:
        sock.sendall(subscribe(1, subscribe_to, sub_qos))
        wanted.add(SUBACK)
    while wanted:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"{client_id}: connection closed during handshake")
        for kind, _, body in framer.feed(data):
            if kind == CONNACK and body[1] != 0:
                raise ConnectionError(f"{client_id}: CONNACK return code {body[1]}")
            wanted.discard(kind)
    return sock
