"""Presence coalescing: a chatty device cannot flood operators.

At most one presence per device per ``presence_min_interval`` (changes in
between are held; the latest value wins when the interval is over, at the
latest on the next tick), and at most ``presence_budget`` stanzas per second.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from hub.core.events import MqttLinkUp, MqttMessageReceived, Tick, XmppLinkUp
from hub.core.hub import Hub, HubSettings
from hub.core.intents import Intent, SendPresence
from hub.core.mapping import Binding

DOMAIN = "hub.example"
OPS = ("a@example.org", "b@example.org")
T0 = 1_000_000.0


def make_hub(binding: Binding, devices: int = 1, *, interval: float = 0.0, budget: float = 0.0) -> Hub:
    from hub.core.auth import Grant
    from hub.core.profile import Role

    settings = HubSettings(
        domain=DOMAIN,
        bindings=(binding,),
        grants={op: Grant(Role.OPERATOR) for op in OPS},
        presence_min_interval=interval,
        presence_budget=budget,
    )
    subs = [(f"d{i}@{DOMAIN}", op) for i in range(devices) for op in OPS]
    hub = Hub(settings, subscriptions=subs)
    hub.handle(XmppLinkUp(), T0)
    hub.handle(MqttLinkUp(), T0)
    return hub


def reading(hub: Hub, device: int, temperature: float, now: float) -> list[SendPresence]:
    payload = json.dumps({"temperature": temperature}).encode()
    return presences(hub.handle(MqttMessageReceived(f"devices/d{device}/telemetry", payload), now))


def presences(intents: Sequence[Intent]) -> list[SendPresence]:
    return [i for i in intents if isinstance(i, SendPresence)]


def test_off_by_default_every_change_is_sent(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding)
    for k in range(5):
        sent = reading(hub, 0, 20 + k, T0 + k * 0.01)
        assert [p.to for p in sent] == list(OPS)


def test_changes_within_the_interval_are_held_and_the_latest_wins(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, interval=2.0)
    first = reading(hub, 0, 20.0, T0)
    assert {p.to for p in first} == set(OPS) and "20.0 °C" in first[0].status
    for k in range(1, 50):  # a chatty device: 49 more readings within a second
        assert reading(hub, 0, 20.0 + k / 10, T0 + k * 0.02) == []
    assert presences(hub.handle(Tick(), T0 + 1.5)) == []  # still inside the interval
    assert hub.presence_held_total == 49 and set(hub.presence_held) == {f"d0@{DOMAIN}"}  # counted for the metric
    released = presences(hub.handle(Tick(), T0 + 2.0))
    assert {p.to for p in released} == set(OPS)
    assert all("24.9 °C" in p.status for p in released)  # the latest value, not the first held one
    assert hub.presence_held == set()
    assert presences(hub.handle(Tick(), T0 + 3.0)) == []  # nothing new: nothing sent


def test_a_change_after_a_quiet_interval_goes_out_at_once(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, interval=2.0)
    assert reading(hub, 0, 20.0, T0)
    assert reading(hub, 0, 21.0, T0 + 2.5)  # no tick needed


def test_a_change_that_is_undone_within_the_interval_sends_nothing(hub_binding: Binding) -> None:
    hub = make_hub(hub_binding, interval=2.0)
    reading(hub, 0, 20.0, T0)
    assert reading(hub, 0, 25.0, T0 + 0.5) == []
    assert reading(hub, 0, 20.0, T0 + 1.0) == []
    assert presences(hub.handle(Tick(), T0 + 2.5)) == []  # what operators last saw is current again
    assert hub.presence_held == set()  # nothing left to send


def test_probes_are_answered_at_once_with_the_current_presence(hub_binding: Binding) -> None:
    from hub.core.events import PresenceProbed

    hub = make_hub(hub_binding, interval=10.0)
    reading(hub, 0, 20.0, T0)
    assert reading(hub, 0, 23.5, T0 + 1) == []
    answer = presences(hub.handle(PresenceProbed(OPS[0], f"d0@{DOMAIN}"), T0 + 1.1))
    assert answer and "23.5 °C" in answer[0].status


def test_the_stanza_rate_stays_within_the_budget(hub_binding: Binding) -> None:
    """40 chatty devices x 2 subscribers for 10 s, a reading every 50 ms each: at most 20 stanzas/s
    (plus one second's burst) go out, and at the end every operator has every device's latest reading."""
    devices, budget = 40, 20.0
    hub = make_hub(hub_binding, devices, interval=1.0, budget=budget)
    sent: list[tuple[float, SendPresence]] = []
    now = T0
    for step in range(200):
        now = T0 + step * 0.05
        for d in range(devices):
            sent += [(now, p) for p in reading(hub, d, round(20 + (step % 7) + d / 10, 1), now)]
        if step % 20 == 0:
            sent += [(now, p) for p in presences(hub.handle(Tick(), now))]
    for second in range(10):
        in_second = [p for t, p in sent if T0 + second <= t < T0 + second + 1]
        assert len(in_second) <= budget * (2 if second == 0 else 1), (second, len(in_second))
    # the flood stops; ticks release what is held, still within the budget, until all is current
    for k in range(1, 30):
        sent += [(now + k, p) for p in presences(hub.handle(Tick(), now + k))]
    latest = {(p.sender, p.to): p.status for _, p in sent}
    for d in range(devices):
        want = f"{20 + (199 % 7) + d / 10:.1f} °C"
        for op in OPS:
            assert want in latest[(f"d{d}@{DOMAIN}", op)], (d, op, latest[(f"d{d}@{DOMAIN}", op)])
