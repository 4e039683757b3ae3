"""Fixtures for the XMPP component adapter: a recording event sink and running components."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from bridges.xmpp.component import ComponentOptions, XmppComponent
from hub.core.events import Event, XmppLinkUp
from tests.support.operator import Operator
from tests.support.xmpp_servers import XmppServer

E = TypeVar("E")


class Events:
    """The test's stand-in for the core: records what the adapter emits, in order."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._unread: list[Event] = []
        self._signal = asyncio.Event()

    def emit(self, event: Event) -> None:
        self.seen.append(event)
        self._unread.append(event)
        self._signal.set()
        self._signal = asyncio.Event()

    async def expect(
        self,
        kind: type[E],
        predicate: Callable[[E], bool] | None = None,
        timeout: float = 10.0,
    ) -> E:
        """Consume the first unread event of ``kind`` (matching ``predicate``); fail after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._signal
            for i, event in enumerate(self._unread):
                if isinstance(event, kind) and (predicate is None or predicate(event)):
                    del self._unread[i]
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {timeout} s; emitted so far: {self.seen}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)

    def unread(self, kind: type[Any] | None = None) -> list[Event]:
        return [e for e in self._unread if kind is None or isinstance(e, kind)]


@dataclass
class RunningComponent:
    component: XmppComponent
    events: Events
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def options_for(server: XmppServer, **overrides: Any) -> ComponentOptions:
    values: dict[str, Any] = {
        "domain": server.component_domain,
        "secret": server.component_secret,
        "host": server.host,
        "port": server.component_port,
        "reconnect_min_delay": 0.1,
        "reconnect_max_delay": 1.0,
    }
    values.update(overrides)
    return ComponentOptions(**values)


StartComponent = Callable[..., Awaitable[RunningComponent]]


@pytest.fixture
async def start_component(xmpp_server: XmppServer) -> AsyncIterator[StartComponent]:
    """``await start_component()`` runs an adapter on ``xmpp_server`` and waits for its link to come up."""
    running: list[RunningComponent] = []

    async def start(wait_up: bool = True, **overrides: Any) -> RunningComponent:
        events = Events()
        component = XmppComponent(options_for(xmpp_server, **overrides), events.emit)
        task = asyncio.create_task(component.run(), name="xmpp-component")
        handle = RunningComponent(component, events, task)
        running.append(handle)
        if wait_up:
            await events.expect(XmppLinkUp)
        return handle

    yield start
    for handle in running:
        await handle.stop()


Login = Callable[..., Awaitable[Operator]]


@pytest.fixture
async def login(xmpp_server: XmppServer) -> AsyncIterator[Login]:
    """``await login()`` logs a brand-new operator in; ``await login(creds)`` logs that account in again."""
    sessions: list[Operator] = []

    async def log_in(credentials: tuple[str, str] | None = None, resource: str = "test") -> Operator:
        jid, password = credentials or await xmpp_server.new_user_async()
        operator = Operator(xmpp_server, jid, password, resource=resource)
        await operator.login()
        sessions.append(operator)
        return operator

    yield log_in
    for operator in sessions:
        await operator.logout()
