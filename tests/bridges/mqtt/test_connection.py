"""The per-connection pieces of the embedded broker: the per-session connection state."""

from __future__ import annotations

import pytest
from amqtt.session import Session

from bridges.mqtt.connection import SessionState
from tests.bridges.mqtt.embedded_support import embedded_broker, paho, wait_until

pytestmark = pytest.mark.integration


def test_session_state_follows_amqtts_rules() -> None:
    session = Session()
    state = SessionState(session, "new")
    assert not state.is_connected()
    state.disconnect()  # new → disconnected is allowed, as in amqtt's machine
    assert state.state == "disconnected" and session.last_disconnect_time is not None
    state.connect()
    assert state.is_connected() and session.last_connect_time is not None and session.last_disconnect_time is None
    with pytest.raises(ValueError, match="already connected"):
        state.connect()  # amqtt's take-over path catches this
    state.disconnect()
    state.disconnect()
    assert state.state == "disconnected"


async def test_broker_sessions_carry_the_light_state_through_reconnects() -> None:
    async with embedded_broker() as running:
        broker = running.adapter._broker
        assert broker is not None
        async with paho(running.port, "keeper", clean=False) as client:
            await client.subscribe("devices/keeper/cmd")
            session = broker._sessions["keeper"][0]
            assert isinstance(session.transitions, SessionState) and session.transitions.is_connected()
            await client.disconnect()
        assert await wait_until(lambda: not broker._sessions["keeper"][0].transitions.is_connected())
        async with paho(running.port, "keeper", clean=False) as again:
            assert again.session_present  # the same persistent session, connected again
            assert broker._sessions["keeper"][0] is session and session.transitions.is_connected()
