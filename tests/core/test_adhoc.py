"""Disco and ad-hoc commands in the core: what is offered to whom, and that running one is the chat command."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from device_profiles.loader import load_profile
from hub.core.adhoc import FEATURES, NS_COMMANDS
from hub.core.events import AdHocRequested, DiscoRequested, MqttMessageReceived, Tick
from hub.core.hub import Hub, HubSettings
from hub.core.intents import (
    AnswerCommand,
    AnswerDisco,
    DiscoIdentity,
    DiscoItem,
    FormField,
    Intent,
    Log,
    PublishMqtt,
    SendChat,
)
from hub.core.mapping import Binding
from tests.core.test_hub import (
    ADMIN,
    COOK,
    DOMAIN,
    GRANTS,
    K1,
    K2,
    OPERATOR,
    READINGS,
    STRANGER,
    T0,
    VIEWER,
    make_hub,
    of,
    status,
    telemetry,
    up,
)
from tests.device_profiles.test_worked_example import _example

OP_PHONE = OPERATOR + "/gajim"


@pytest.fixture
def hub(hub_binding: Binding) -> Hub:
    """Both links up; k1 (Kitchen, group kitchen) online with readings; k2 (no group) online."""
    hub = make_hub(hub_binding)
    up(hub)
    hub.handle(status("k1", "online"), T0)
    hub.handle(telemetry("k1", READINGS), T0)
    hub.handle(status("k2", "online"), T0)
    hub.handle(telemetry("k2", {"temperature": 19}), T0)
    return hub


def disco(hub: Hub, sender: str, to: str = K1, kind: str = "items", node: str = NS_COMMANDS) -> AnswerDisco:
    out = hub.handle(DiscoRequested(sender, to, "q1", kind, node), T0 + 1)
    answers = of(AnswerDisco, out)
    assert len(answers) == 1, out
    return answers[0]


def run(
    hub: Hub,
    sender: str,
    node: str,
    values: dict[str, str] | None = None,
    to: str = K1,
    action: str = "execute",
    now: float = T0 + 10,
) -> tuple[AnswerCommand, list[Intent]]:
    event = AdHocRequested(sender, to, "c1", node, action, "s1", None if values is None else tuple(values.items()))
    out = hub.handle(event, now)
    answers = of(AnswerCommand, out)
    assert len(answers) == 1, out
    return answers[0], [i for i in out if not isinstance(i, AnswerCommand)]


def nodes(answer: AnswerDisco) -> list[str]:
    return [item.node for item in answer.items]


# ================================================================ discovery


def test_device_disco_info_names_the_device_and_the_command_features(hub: Hub) -> None:
    answer = disco(hub, OP_PHONE, kind="info", node="")
    assert answer == AnswerDisco(
        K1, OP_PHONE, "q1", "info", "", (DiscoIdentity("client", "bot", "Kitchen (k1)"),), FEATURES
    )
    assert NS_COMMANDS in answer.features and "jabber:x:data" in answer.features


def test_commands_offered_follow_the_role(hub: Hub) -> None:
    assert nodes(disco(hub, OP_PHONE)) == ["status", "set", "on", "off", "toggle", "identify"]
    assert nodes(disco(hub, ADMIN)) == ["status", "set", "on", "off", "toggle", "identify", "reboot"]
    assert nodes(disco(hub, VIEWER)) == ["status"]
    items = disco(hub, OP_PHONE).items
    assert items[0] == DiscoItem(K1, "status", "Status")
    assert items[-1] == DiscoItem(K1, "identify", "identify: blink the device's LED")


def test_a_device_without_settable_readings_offers_no_set_or_switch(hub: Hub) -> None:
    assert nodes(disco(hub, OP_PHONE, to=K2)) == ["status", "identify"]


def test_command_node_info_and_unknown_nodes(hub: Hub) -> None:
    info = disco(hub, OP_PHONE, kind="info", node="set")
    assert info.identities == (DiscoIdentity("automation", "command-node", "Set…"),)
    assert disco(hub, OP_PHONE, kind="info", node="reboot").error == "item-not-found"  # admin only
    assert disco(hub, OP_PHONE, kind="info", node="nonsense").error == "item-not-found"


def test_strangers_and_other_groups_are_refused_discovery(hub: Hub) -> None:
    out = hub.handle(DiscoRequested(STRANGER, K1, "q1", "info", ""), T0)
    assert of(AnswerDisco, out)[0].error == "forbidden"
    assert [entry.event for entry in of(Log, out)] == ["adhoc.refused"]
    assert disco(hub, COOK, to=K2).error == "forbidden"  # cook covers the kitchen group only
    assert nodes(disco(hub, COOK, to=K1)) == ["status", "set", "on", "off", "toggle", "identify"]


def test_the_hub_jid_is_public_in_info_and_lists_what_each_operator_may_see(hub: Hub) -> None:
    info = disco(hub, STRANGER, to=DOMAIN, kind="info", node="")
    assert info.identities == (DiscoIdentity("component", "generic", "MQTT–XMPP hub"),)
    assert disco(hub, STRANGER, to=DOMAIN, node="").items == ()
    assert disco(hub, STRANGER, to=DOMAIN).error == "forbidden"
    assert disco(hub, OPERATOR, to=DOMAIN, node="").items == (
        DiscoItem(K1, name="Kitchen (k1)"),
        DiscoItem(K2, name="k2"),
    )
    assert disco(hub, COOK, to=DOMAIN, node="").items == (DiscoItem(K1, name="Kitchen (k1)"),)
    assert nodes(disco(hub, VIEWER, to=DOMAIN)) == ["status", "devices"]


# ================================================================ commands


def test_status_is_a_result_form_of_state_and_readings(hub: Hub) -> None:
    answer, rest = run(hub, VIEWER, "status")
    assert answer.status == "completed" and answer.error == "" and rest == []
    assert answer.form is not None and answer.form.type == "result"
    fields = {f.var: f.values for f in answer.form.fields}
    assert fields["state"] == ("online",)
    assert fields["reading.temperature"] == ("21.6 °C",)
    assert fields["reading.target"] == ("20 °C",)


def test_set_without_a_form_asks_for_one(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "set")
    assert answer.status == "executing" and answer.actions == ("complete",) and answer.session == "s1"
    assert answer.form is not None
    assert [f.var for f in answer.form.fields] == ["power", "target"]
    assert rest == []
    first = of(AnswerCommand, hub.handle(AdHocRequested(OP_PHONE, K1, "c9", "set"), T0))[0]
    assert first.session == "h-c9"  # a new session gets an id


def test_submitted_set_goes_the_chat_way_and_is_confirmed_in_chat(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "set", {"power": "off", "target": "21.5"}, action="complete")
    assert answer.status == "completed"
    assert answer.notes == (("info", "→ sent: set target 21.5 °C"),)  # power did not change: not sent
    assert of(PublishMqtt, rest) == [PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"target":21.5}}', qos=1)]
    assert [entry.event for entry in of(Log, rest)] == ["command.sent"]
    assert of(SendChat, rest) == []
    echo = hub.handle(telemetry("k1", {"target": 21.5}), T0 + 11)
    assert of(SendChat, echo) == [SendChat(K1, OP_PHONE, "✓ set target 21.5 °C: confirmed in 1.0 s")]


def test_an_invalid_value_is_an_error_note_and_nothing_is_sent(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "set", {"power": "on", "target": "50"})
    assert answer.status == "completed"
    assert answer.notes == (("error", "50 is out of range: target takes 5–35 °C, step 0.5."),)
    assert of(PublishMqtt, rest) == [] and hub.pending == {}


def test_an_unchanged_form_sends_nothing(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "set", {"power": "OFF", "target": "20"})
    assert answer.notes == (("info", "Nothing changed: every field still has the device's value."),)
    assert of(PublishMqtt, rest) == []


def test_two_changes_are_two_commands(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "set", {"power": "on", "target": "22"})
    assert answer.notes == (("info", "→ sent: set power on"), ("info", "→ sent: set target 22 °C"))
    assert len(of(PublishMqtt, rest)) == 2


def test_switch_and_verbs_run_at_once(hub: Hub) -> None:
    answer, rest = run(hub, OP_PHONE, "on")
    assert answer.notes == (("info", "→ sent: on"),)
    assert of(PublishMqtt, rest) == [PublishMqtt("devices/k1/cmd", b'{"id":"h-1","set":{"power":"on"}}', qos=1)]
    answer, rest = run(hub, OP_PHONE, "identify")
    assert answer.notes == (("info", "→ sent: identify"),)
    assert of(PublishMqtt, rest) == [PublishMqtt("devices/k1/cmd", b'{"id":"h-2","action":"identify"}', qos=1)]
    one_step = of(AnswerCommand, hub.handle(AdHocRequested(OP_PHONE, K1, "c7", "status"), T0 + 11))[0]
    assert (one_step.status, one_step.session) == ("completed", "h-c7")  # every answer names a session


def test_strangers_are_forbidden_and_nothing_is_published(hub: Hub) -> None:
    for node in ("on", "set", "status", "nonsense"):
        answer, rest = run(hub, STRANGER, node, {"target": "22"})
        assert answer.error == "forbidden"
        assert of(PublishMqtt, rest) == []
    answer, _ = run(hub, STRANGER, "devices", to=DOMAIN)
    assert answer.error == "forbidden"
    assert hub.pending == {}


def test_roles_bound_what_may_run(hub: Hub) -> None:
    for node in ("set", "on", "identify"):
        answer, rest = run(hub, VIEWER, node, {"target": "22"})
        assert answer.error == "forbidden", node
        assert of(PublishMqtt, rest) == []
        assert [entry.event for entry in of(Log, rest)] == ["command.forbidden"]
    assert run(hub, OP_PHONE, "reboot")[0].error == "forbidden"
    answer, rest = run(hub, ADMIN, "reboot")
    assert answer.notes == (("info", "→ sent: reboot"),) and len(of(PublishMqtt, rest)) == 1


def test_cancel_and_unknown_nodes(hub: Hub) -> None:
    assert run(hub, OP_PHONE, "set", action="cancel")[0].status == "canceled"
    assert run(hub, OP_PHONE, "nonsense")[0].error == "item-not-found"
    assert run(hub, OP_PHONE, "on", action="prev")[0].error == "bad-request"
    assert run(hub, OP_PHONE, "status", to=f"nobody@{DOMAIN}")[0].error == "item-not-found"


def test_an_offline_device_queues_the_command_and_says_so(hub: Hub) -> None:
    hub.handle(status("k1", "offline", retain=False), T0 + 5)
    answer, rest = run(hub, OP_PHONE, "on")
    assert answer.notes == (("info", "→ on: queued until k1 is back (expires 15:02 UTC)"),)
    assert of(PublishMqtt, rest) == []
    # A newer desired state replaces it; the replaced one's notice stays a chat message, to the same person.
    answer, rest = run(hub, OP_PHONE, "off", now=T0 + 20)
    assert answer.notes == (("info", "→ off: queued until k1 is back (expires 15:02 UTC)"),)
    assert of(SendChat, rest) == [SendChat(K1, OP_PHONE, "✗ on: replaced by off before k1 came back")]
    back = hub.handle(status("k1", "online", retain=False), T0 + 30)
    assert of(SendChat, back) == [SendChat(K1, OP_PHONE, "→ sent: off (k1 is back)")]


def test_a_command_the_device_does_not_confirm_is_reported_in_chat(hub: Hub) -> None:
    run(hub, OP_PHONE, "identify")
    late = hub.handle(Tick(), T0 + 100)
    assert of(SendChat, late) == [SendChat(K1, OP_PHONE, "✗ identify: no confirmation after 5 s")]


def test_the_hub_jid_answers_status_and_devices(hub: Hub) -> None:
    answer, _ = run(hub, VIEWER, "status", to=DOMAIN)
    assert answer.form is not None
    assert answer.form.fields == (FormField("text", "text-single", "Status", ("2 of 2 devices online",)),)
    answer, _ = run(hub, COOK, "devices", to=DOMAIN)
    assert answer.form is not None
    assert answer.form.fields == (FormField(K1, "text-single", "Kitchen (k1)", ("online",)),)


# ================================================================ a profile of one's own (docs/profiles.md)


@pytest.fixture
def pool(tmp_path: Path) -> Hub:
    """The guide's pool controller: per-property topics, device words, a verb with an argument, an admin verb."""
    path = tmp_path / "pool.yaml"
    path.write_text(_example(), encoding="utf-8")
    profile = load_profile(path)
    hub = Hub(HubSettings(domain=DOMAIN, bindings=(Binding("pool", profile),), grants=GRANTS))
    up(hub)
    hub.handle(MqttMessageReceived("pool/backyard/lwt", b"up", retain=True), T0)
    hub.handle(MqttMessageReceived("pool/backyard/state", b'{"pump": "RUNNING", "setpoint": 27}'), T0)
    return hub


POOL = f"backyard@{DOMAIN}"


def test_a_profile_of_ones_own_offers_its_verbs_and_properties(pool: Hub) -> None:
    assert nodes(disco(pool, OP_PHONE, to=POOL)) == [
        "status", "set", "on", "off", "toggle", "backwash"
    ]  # fmt: skip
    assert nodes(disco(pool, ADMIN, to=POOL))[-1] == "reboot"
    answer, _ = run(pool, OP_PHONE, "set", to=POOL)
    assert answer.form is not None
    assert [(f.var, f.type, f.values) for f in answer.form.fields] == [
        ("pump", "list-single", ("on",)),
        ("setpoint", "text-single", ("27",)),
    ]
    answer, rest = run(pool, OP_PHONE, "off", to=POOL)
    assert answer.notes == (("info", "→ sent: off"),)
    assert of(PublishMqtt, rest) == [PublishMqtt("pool/backyard/command/pump", b"STOPPED", qos=1)]


def test_a_verb_with_an_argument_asks_for_it_and_checks_it(pool: Hub) -> None:
    ask, rest = run(pool, OP_PHONE, "backwash", to=POOL)
    assert (ask.status, ask.actions, rest) == ("executing", ("complete",), [])
    assert ask.form is not None
    assert ask.form.fields == (
        FormField("argument", "text-single", "backwash (min)", (), desc="1–10 min", required=True),
    )
    bad, rest = run(pool, OP_PHONE, "backwash", {"argument": "50"}, to=POOL)
    assert bad.notes == (("error", "50 is out of range: backwash takes 1–10 min."),)
    assert of(PublishMqtt, rest) == []
    done, rest = run(pool, OP_PHONE, "backwash", {"argument": "5"}, to=POOL)
    assert done.notes == (("info", "→ sent: backwash 5"),)
    assert of(PublishMqtt, rest) == [PublishMqtt("pool/backyard/command/backwash", b"5", qos=1)]


def test_only_what_can_be_sent_is_offered(pool: Hub) -> None:
    """Without the profile's command topic, only the verb with its own command is left."""
    binding = pool.router.bindings["pool"]
    bare_profile = replace(binding.profile, commands=None)
    hub = Hub(HubSettings(domain=DOMAIN, bindings=(Binding("pool", bare_profile),), grants=GRANTS))
    up(hub)
    hub.handle(MqttMessageReceived("pool/backyard/state", b'{"pump": "RUNNING", "setpoint": 27}'), T0)
    assert nodes(disco(hub, ADMIN, to=POOL)) == ["status", "reboot"]


def test_a_discovered_device_is_offered_what_its_own_profile_says(hub: Hub, pool: Hub) -> None:
    device = hub.devices[K1]
    device.own_profile = pool.devices[POOL].profile  # as discovery gives a device its own
    assert nodes(disco(hub, OP_PHONE)) == ["status", "backwash"]  # pump and setpoint not reported by k1
    device.readings["setpoint"] = 27
    answer, _ = run(hub, OP_PHONE, "set")
    assert answer.form is not None and [f.var for f in answer.form.fields] == ["setpoint"]
