"""Per-connection pieces of the embedded broker that amqtt makes heavier than the broker needs.

:class:`DirectWriter` writes QoS 0 deliveries and acknowledgements without a task per
packet; :class:`SessionState` stands in for the ``transitions.Machine`` amqtt builds
for every session. ``bridges.mqtt.hardened`` puts both in place.
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.adapters import StreamWriterAdapter
from amqtt.session import Session

#: Bytes a subscriber's socket may have waiting before deliveries to it take amqtt's path again, which
#: waits for the socket to drain. Four times asyncio's mark for ``drain``: a busy wildcard subscriber
#: (a dashboard, a logger) that lags a moment behind must not fall back to a task per message.
_WRITE_HIGH_WATER = 256 * 1024


class SessionState:
    """A session's connection state, in place of the ``transitions.Machine`` amqtt builds per session.

    That machine (three states, five transitions, two callbacks) took about 15 KiB per connected
    device, nearly a third of its memory; the broker uses only ``state``, ``connect()``,
    ``disconnect()`` and ``is_connected()``, with the same rules: connecting twice raises
    (``ValueError``, which amqtt's take-over catches alongside ``MachineError``), disconnecting
    is always allowed, and the session's enter callbacks run as before.
    """

    __slots__ = ("_session", "state")

    def __init__(self, session: Session, state: str) -> None:
        self._session = session
        self.state = state

    def connect(self) -> None:
        if self.state == "connected":
            raise ValueError("session already connected")
        self.state = "connected"
        self._session._on_enter_connected()

    def disconnect(self) -> None:
        self.state = "disconnected"
        self._session._on_enter_disconnected()

    def is_connected(self) -> bool:
        return self.state == "connected"


class DirectWriter(StreamWriterAdapter):  # type: ignore[misc]
    """amqtt's stream writer, plus a write that needs no task: QoS 0 deliveries while the socket keeps up.

    amqtt delivers every message through a task that takes a lock, writes and waits for the
    socket to drain. While the transport's buffer is below :data:`_WRITE_HIGH_WATER`, that wait
    returns at once, so the bytes are written directly instead, and all written in one pass of
    the event loop go out in one ``send`` (a busy subscriber got one system call per message).
    Past the mark, and while deliveries sent the slow way are still pending, :meth:`write_now`
    declines, so a slow subscriber is still paced by ``drain`` and QoS 0 messages keep their order.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        super().__init__(writer)
        self._transport = writer.transport
        self._behind = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write_now(self, data: bytes) -> bool:
        """Write ``data`` at once if nothing is queued ahead of it and the socket keeps up."""
        transport = self._transport
        if self._behind or self.is_closed or transport.is_closing():
            return False
        if transport.get_write_buffer_size() + self._pending_bytes > _WRITE_HIGH_WATER:
            return False
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(data)
        self._pending_bytes += len(data)
        return True

    def flush(self) -> None:
        """Hand what :meth:`write_now` collected to the transport, in one write."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if pending and not self.is_closed and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def write(self, data: bytes) -> None:
        self.flush()  # amqtt's own packets never overtake deliveries collected before them
        super().write(data)

    def queued(self, delivery: asyncio.Future[Any]) -> None:
        """A delivery went the slow way: later ones wait behind it."""
        self._behind += 1
        delivery.add_done_callback(self._caught_up)

    def _caught_up(self, _: asyncio.Future[Any]) -> None:
        self._behind -= 1

    async def close(self) -> None:
        self.flush()
        await super().close()
