"""Hostile input, part 3: the whole ``Hub.handle`` fed random event sequences.

Random topics under ``devices/`` and elsewhere, random bytes, random chat
from operators and strangers, subscriptions, probes, link changes and ticks,
in any order. Whatever happens:

- no exception escapes ``handle`` or ``shutdown``;
- a stranger's chat or ad-hoc command never leads to an MQTT publish, and with
  no chat or command from an operator (or admin) at all there is no publish;
- every disco or ad-hoc request gets exactly one answer, to whoever asked, and a
  stranger's command is always ``forbidden``;
- strangers never get presence, and get chat only after they wrote;
- every stanza the hub would send has a ``from`` inside the component domain
  (a foreign ``from`` makes the XMPP server close the whole component stream);
- every publish goes to a valid command topic under ``devices/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from hub.core.adhoc import NS_COMMANDS
from hub.core.alerts import AlertRule
from hub.core.auth import Grant
from hub.core.device import DeviceConfig
from hub.core.events import (
    AdHocRequested,
    ChatReceived,
    DiscoRequested,
    Event,
    MqttClientConnected,
    MqttClientDisconnected,
    MqttLinkDown,
    MqttLinkUp,
    MqttMessageReceived,
    PresenceProbed,
    SubscriptionCancelled,
    SubscriptionRequested,
    Tick,
    XmppLinkDown,
    XmppLinkUp,
)
from hub.core.hub import Hub, HubSettings
from hub.core.intents import (
    AnswerCommand,
    AnswerDisco,
    Intent,
    PublishMqtt,
    SendChat,
    SendPresence,
    SendSubscription,
)
from hub.core.jid import bare
from hub.core.mapping import Binding
from hub.core.profile import Profile, Role
from hub.core.topics import validate_topic_name

DOMAIN = "hub.example"
GRANTS = {
    "admin@example.org": Grant(Role.ADMIN),
    "op@example.org": Grant(Role.OPERATOR),
    "viewer@example.org": Grant(Role.VIEWER),
    "cook@example.org": Grant(Role.OPERATOR, groups=frozenset({"kitchen"})),
}
COMMANDERS = {"admin@example.org", "op@example.org", "cook@example.org"}
STRANGERS = ["eve@elsewhere.example", "mallory@hub.example", "hub.example", "k1@hub.example", "ADMIN@example.org.evil"]

_ids = st.one_of(
    st.sampled_from(["k1", "k2", "plug", "Living Room", "küche", "x\\20y", "a@b", "K1"]),
    st.text(max_size=12),
)
_suffixes = st.one_of(
    st.sampled_from(["status", "telemetry", "cmd", "cmd/result", "", "status/x"]), st.text(max_size=6)
)
_topics = st.one_of(
    st.builds(lambda device, suffix: f"devices/{device}/{suffix}", _ids, _suffixes),
    st.text(max_size=30),
    st.sampled_from(["devices/+/telemetry", "devices/#", "$SYS/x", "devices//status", "devices/k1/telemetry/"]),
)
_readings = st.dictionaries(
    st.sampled_from(["temperature", "humidity", "power", "target", "brightness", "mode", "battery", "power2", "x"]),
    st.one_of(
        st.floats(-50, 60),
        st.sampled_from(["on", "off", "auto", "heat", True, False, None, 1e308, "", "ON"]),
        st.integers(-5, 200),
        st.text(max_size=5),
    ),
    max_size=5,
)
_payloads = st.one_of(
    st.sampled_from([b"online", b"offline", b"sleeping", b"ONLINE", b"", b"\xff\xfe", b"null", b"[]"]),
    _readings.map(lambda readings: json.dumps(readings).encode()),
    st.builds(
        lambda n, ok, message: json.dumps({"id": f"h-{n}", "ok": ok, "message": message}).encode(),
        st.integers(0, 6),
        st.one_of(st.booleans(), st.none(), st.text(max_size=3)),
        st.text(max_size=20),
    ),
    st.binary(max_size=80),
)
_mqtt_events = st.one_of(
    st.builds(
        MqttMessageReceived,
        topic=_topics,
        payload=_payloads,
        retain=st.booleans(),
        client_id=st.one_of(st.none(), _ids),
    ),
    st.builds(MqttClientConnected, client_id=_ids, username=st.one_of(st.none(), _ids)),
    st.builds(MqttClientDisconnected, client_id=_ids, username=st.one_of(st.none(), _ids)),
    st.sampled_from([MqttLinkUp(), MqttLinkDown()]),
)

_people = st.one_of(st.sampled_from(sorted(GRANTS)), st.sampled_from(STRANGERS), st.emails())
_senders = st.builds(
    lambda who, resource: who + resource, _people, st.sampled_from(["", "/phone", "/Gajim.x1", "/a/b", "/"])
)
_device_jids = st.one_of(
    st.sampled_from(["k1", "k2", "plug", "living\\20room", "küche", "nobody", "K1"]).map(lambda n: f"{n}@{DOMAIN}"),
    # What the bridge hands over is a valid bare JID (slixmpp refuses the rest): no '@', '/' or space.
    st.text(
        st.characters(blacklist_characters="@/ \"&'<>:", blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=10
    ).map(lambda n: f"{n}@{DOMAIN}"),
    st.just(DOMAIN),
    st.sampled_from([f"k1@{DOMAIN}/res", f"K1@{DOMAIN.upper()}"]),
)
_words = st.sampled_from(
    ["help", "status", "on", "off", "toggle", "toggle 2", "on 1", "set target 21.5", "set target 50",
     "set target 1e308", "set power on", "set mode eco", "set brightness 50.5", "identify", "reboot",
     "temperature?", "devices", "find k", "list", "?", "set", "x" * 1100]
)  # fmt: skip
_bodies = st.one_of(_words, st.text(max_size=40))
_nodes = st.one_of(
    st.sampled_from(["status", "set", "on", "off", "toggle", "identify", "reboot", "devices", "help", "", NS_COMMANDS]),
    st.text(max_size=10),
)
_form_values = st.one_of(
    st.none(),
    st.lists(
        st.tuples(
            st.sampled_from(["target", "power", "mode", "brightness", "power2", "FORM_TYPE", "x"]),
            st.one_of(
                st.sampled_from(["21.5", "22", "50", "1e308", "nan", "on", "off", "eco", ""]), st.text(max_size=8)
            ),
        ),
        max_size=5,
    ).map(tuple),
)
_actions = st.sampled_from(["execute", "complete", "next", "cancel", "prev", "bogus"])


def _adhoc(sender: str, to: str, node: str, action: str, values: tuple[tuple[str, str], ...] | None) -> AdHocRequested:
    return AdHocRequested(sender, to, "iq-1", node, action, "", values)


_requests = st.one_of(
    st.builds(_adhoc, _senders, _device_jids, _nodes, _actions, _form_values),
    st.builds(
        lambda sender, to, kind, node: DiscoRequested(sender, to, "iq-1", kind, node),
        _senders,
        _device_jids,
        st.sampled_from(["info", "items"]),
        _nodes,
    ),
)
_xmpp_events = st.one_of(
    st.builds(ChatReceived, sender=_senders, to=_device_jids, body=_bodies),
    st.builds(SubscriptionRequested, sender=_senders, to=_device_jids),
    st.builds(SubscriptionCancelled, sender=_senders, to=_device_jids),
    st.builds(PresenceProbed, sender=_senders, to=_device_jids),
    _requests,
    st.sampled_from([XmppLinkUp(), XmppLinkDown()]),
)
# Sequences that reach commands need an online device that reported its properties and an
# operator writing to it: these events are drawn as often as all the random ones together.
_pool = st.sampled_from(["k1", "k2", "plug"])
_likely = st.one_of(
    st.builds(
        lambda d, p: MqttMessageReceived(f"devices/{d}/status", p),
        _pool,
        st.sampled_from([b"online", b"offline", b"sleeping"]),
    ),
    st.builds(lambda d, r: MqttMessageReceived(f"devices/{d}/telemetry", json.dumps(r).encode()), _pool, _readings),
    st.builds(lambda d, p: MqttMessageReceived(f"devices/{d}/cmd/result", p), _pool, _payloads),
    st.builds(
        lambda who, d, body: ChatReceived(f"{who}/phone", f"{d}@{DOMAIN}", body),
        st.sampled_from(sorted(GRANTS)),
        _pool,
        st.one_of(_words, st.sampled_from(["on", "off", "toggle", "set target 22", "set power on", "identify"])),
    ),
    st.builds(
        lambda who, d, node, values: _adhoc(f"{who}/gajim", f"{d}@{DOMAIN}", node, "execute", values),
        st.sampled_from(sorted(GRANTS)),
        _pool,
        st.sampled_from(["set", "on", "toggle", "identify", "reboot", "status"]),
        _form_values,
    ),
)
_events = st.one_of(_likely, _likely, _mqtt_events, _xmpp_events, st.just(Tick()))
_steps = st.lists(st.tuples(_events, st.sampled_from([0.0, 0.5, 3.0, 6.0, 61.0, 400.0])), min_size=5, max_size=60)


def _in_domain(jid: str) -> bool:
    return jid == DOMAIN or (jid.endswith("@" + DOMAIN) and "/" not in jid and len(jid) > len(DOMAIN) + 1)


@dataclass
class Observer:
    """Checks every intent against the invariants as the sequence runs."""

    commanded: bool = False
    wrote: set[str] | None = None

    def __post_init__(self) -> None:
        self.wrote = set()

    def see(self, event: Event, intents: list[Intent]) -> None:
        assert self.wrote is not None
        asked = isinstance(event, ChatReceived | AdHocRequested | DiscoRequested)
        sender = bare(event.sender) if asked else None
        stranger_chat = sender is not None and sender not in GRANTS
        if asked:
            self.wrote.add(bare(event.sender))
            if sender in COMMANDERS and not isinstance(event, DiscoRequested):
                self.commanded = True
        if isinstance(event, AdHocRequested | DiscoRequested):
            answers = [i for i in intents if isinstance(i, AnswerCommand | AnswerDisco)]
            assert len(answers) == 1, f"{event} answered by {answers}"
            assert answers[0].to == event.sender and answers[0].iq_id == event.iq_id, answers
            assert _in_domain(answers[0].sender), f"answer from outside the component domain: {answers}"
            if isinstance(event, AdHocRequested) and stranger_chat:
                assert answers[0].error == "forbidden", answers
        for intent in intents:
            note(type(intent).__name__)  # --hypothesis-show-statistics: what the sequences reach
            if isinstance(intent, PublishMqtt):
                assert not stranger_chat, f"a stranger's chat published {intent}"
                assert self.commanded, f"publish with no operator command: {intent}"
                validate_topic_name(intent.topic)
                assert intent.topic.startswith("devices/") and intent.topic.endswith("/cmd"), intent
            if isinstance(intent, SendPresence | SendChat | SendSubscription):
                assert _in_domain(intent.sender), f"sender outside the component domain: {intent}"
            if isinstance(intent, SendPresence):
                assert bare(intent.to) in GRANTS, f"presence to a stranger: {intent}"
            if isinstance(intent, SendChat) and bare(intent.to) not in GRANTS:
                assert bare(intent.to) in self.wrote, f"unsolicited chat to a stranger: {intent}"


def _hub(profile: Profile, max_devices: int) -> Hub:
    settings = HubSettings(
        domain=DOMAIN,
        bindings=(Binding("hub", profile, {"base": "devices"}),),
        devices={"k1": DeviceConfig("k1", name="Kitchen", group="kitchen")},
        grants=GRANTS,
        alert_rules=(AlertRule("hot", "temperature", ">", 30.0, hysteresis=1.0, repeat_every=60.0),),
        max_devices=max_devices,
        max_pending_commands=3,
    )
    return Hub(settings, subscriptions=[(f"k1@{DOMAIN}", "op@example.org"), (DOMAIN, "admin@example.org")])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_steps, st.booleans(), st.sampled_from([3, 10_000]))
def test_random_event_sequences_keep_the_invariants(
    hub_profile: Profile, steps: list[tuple[Event, float]], links_up: bool, max_devices: int
) -> None:
    hub = _hub(hub_profile, max_devices)
    observer = Observer()
    now = 1_700_000_000.0
    if links_up:
        for link in (MqttLinkUp(), XmppLinkUp()):
            observer.see(link, hub.handle(link, now))
    for event, dt in steps:
        now += dt
        observer.see(event, hub.handle(event, now))
    out = hub.shutdown()
    observer.see(Tick(), out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(STRANGERS), _device_jids, _bodies), min_size=1, max_size=30))
def test_strangers_never_publish_even_to_online_devices(
    hub_profile: Profile, chats: list[tuple[str, str, str]]
) -> None:
    """The devices are online and have reported every property: only authorization stands in the way."""
    hub = _hub(hub_profile, 10_000)
    now = 1_700_000_000.0
    hub.handle(MqttLinkUp(), now)
    hub.handle(XmppLinkUp(), now)
    for device in ("k1", "k2", "plug"):
        hub.handle(MqttMessageReceived(f"devices/{device}/status", b"online"), now)
        telemetry = {"power": "off", "target": 20, "mode": "auto", "brightness": 3, "power2": "on"}
        hub.handle(MqttMessageReceived(f"devices/{device}/telemetry", json.dumps(telemetry).encode()), now)
    observer = Observer()
    for sender, to, body in chats:
        now += 1
        observer.see(ChatReceived(sender, to, body), hub.handle(ChatReceived(sender, to, body), now))
    # An operator is still served afterwards.
    reply = hub.handle(ChatReceived("op@example.org/phone", f"k2@{DOMAIN}", "on"), now + 1)
    assert any(isinstance(intent, PublishMqtt) for intent in reply)
