"""The only two amqtt plugins the hub loads: one turns broker hooks into core events, one authenticates.

amqtt loads plugins by dotted path and hands each a copy of its context, so
the hub's state travels in the plugin ``Config`` as one :class:`HubHooks`
value. amqtt runs event hooks as fire-and-forget tasks and swallows their
exceptions, so each hook does one non-blocking ``emit`` and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin, BasePlugin
from amqtt.session import Session

from bridges.mqtt.passwords import PasswordVerifier
from hub.core.events import MqttClientConnected, MqttClientDisconnected
from hub.core.ports import EventSink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubHooks:
    """What the plugins need from the hub: where events go and who may connect."""

    emit: EventSink
    verifier: PasswordVerifier
    allow_anonymous: bool


@dataclass
class HooksConfig:
    """amqtt fills a plugin's ``Config`` from the broker config (with dacite, so a dataclass)."""

    hooks: Any = None


class HubEventsPlugin(BasePlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Reports sessions to the core. Messages do not come through a hook: amqtt runs every hook
    call as a task, so the broker hands them to ``EmbeddedBroker`` directly (``on_message``)."""

    Config = HooksConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._emit: EventSink = context.config.hooks.emit

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        self._emit(MqttClientConnected(client_id, client_session.username))

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        self._emit(MqttClientDisconnected(client_id, client_session.username))


class HubAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Username/password against argon2 hashes; anonymous only when allowed.

    Sets ``session.is_anonymous`` itself: amqtt's own plugin flags every session
    anonymous once anonymous access is on, and anonymous sessions get no
    offline queue (defect 4). The password is dropped from the session once checked.
    """

    Config = HooksConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._hooks: HubHooks = context.config.hooks

    async def authenticate(self, *, session: Session) -> bool:
        username, password = session.username, session.password
        session.password = None
        if username is None:
            session.is_anonymous = True
            if not self._hooks.allow_anonymous:
                log.info("anonymous MQTT connection refused (client %r)", session.client_id)
            return self._hooks.allow_anonymous
        session.is_anonymous = False
        ok = await self._hooks.verifier.verify(username, password)
        if not ok:
            log.warning("MQTT login refused for user %r (client %r)", username, session.client_id)
        return ok
