"""The hub as ``hub run`` starts it (same App, uvloop when installed), plus counters for the bench.

    python -m bench.hub_proc -c hub.yaml --counters F [--profile out.pstats]

Counter slots: 0 device messages the core handled, 1 events dropped on a full
queue, 2 presence stanzas sent, 3 chat messages sent, 4 links (MQTT or XMPP) that
came up, the first two included. ``READY`` is printed on
stdout once the hub is ready (broker up and component stream established).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
from pathlib import Path
from typing import Any

from bench.counters import Counters
from hub import logs
from hub.app import App, install_uvloop, secrets_of
from hub.config import load_config
from hub.core.events import MqttLinkUp, MqttMessageReceived, XmppLinkUp
from hub.core.intents import SendChat, SendPresence

MESSAGES, DROPPED, PRESENCES, CHATS, LINK_UPS = 0, 1, 2, 3, 4


def instrument(app: App, counters: Counters) -> None:
    handle = app.core.handle
    totals = [0, 0, 0, 0]

    def counted(event: Any, now: float) -> Any:
        intents = handle(event, now)
        if type(event) is MqttMessageReceived:
            totals[0] += 1
            counters.set(MESSAGES, totals[0])
        elif type(event) in (MqttLinkUp, XmppLinkUp):
            totals[3] += 1
            counters.set(LINK_UPS, totals[3])
        for intent in intents:
            kind = type(intent)
            if kind is SendPresence:
                totals[1] += 1
                counters.set(PRESENCES, totals[1])
            elif kind is SendChat:
                totals[2] += 1
                counters.set(CHATS, totals[2])
        counters.set(DROPPED, app.dropped_events)
        return intents

    app.core.handle = counted  # type: ignore[method-assign]


async def serve(config_path: Path, counters: Counters, profile: Path | None) -> None:
    app = App(load_config(config_path))
    instrument(app, counters)
    profiler = cProfile.Profile() if profile else None

    async def announce() -> None:
        await app.ready.wait()
        print("READY", flush=True)
        if profiler is not None:
            profiler.enable()

    task = asyncio.create_task(announce())
    try:
        await app.run()
    finally:
        task.cancel()
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hub_proc")
    parser.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("--counters", type=Path, required=True)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    config = load_config(args.config)
    logs.setup(config.log.level, config.log.format, secrets_of(config))
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.config, Counters(args.counters, create=True), args.profile))


if __name__ == "__main__":
    main()
