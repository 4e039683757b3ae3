"""Disco and ad-hoc iqs ⇄ core events and answers, without a server."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from slixmpp import ComponentXMPP, Iq
from slixmpp.plugins.xep_0004 import FieldOption
from slixmpp.plugins.xep_0004 import Form as FormStanza
from slixmpp.plugins.xep_0004 import FormField as FieldStanza
from slixmpp.plugins.xep_0050 import Command
from slixmpp.xmlstream import register_stanza_plugin

from bridges.xmpp.iq import MAX_SUBMITTED_FIELDS, request_from_iq
from bridges.xmpp.translate import build_stanza
from hub.core.adhoc import NS_COMMANDS, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS
from hub.core.events import AdHocRequested, DiscoRequested
from hub.core.intents import AnswerCommand, AnswerDisco, DiscoIdentity, DiscoItem, Form, FormField

DOMAIN = "devices.localhost"
KITCHEN = f"kitchen-temp@{DOMAIN}"
ALICE = "alice@localhost/gajim"


def iq(kind: str, child: str) -> Iq:
    stanza = Iq(sfrom=ALICE, sto=KITCHEN, stype=kind)  # type: ignore[no-untyped-call]
    stanza["id"] = "a1"
    stanza.append(ET.fromstring(child))
    return stanza


@pytest.fixture(scope="module")
def xmpp() -> ComponentXMPP:
    return ComponentXMPP(DOMAIN, "secret", "127.0.0.1", 1)  # type: ignore[no-untyped-call]


def test_disco_queries_become_disco_requested() -> None:
    info = iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>")
    assert request_from_iq(info) == DiscoRequested(ALICE, KITCHEN, "a1", "info", "")
    items = iq("get", f"<query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'/>")
    assert request_from_iq(items) == DiscoRequested(ALICE, KITCHEN, "a1", "items", NS_COMMANDS)


def test_a_command_step_carries_node_action_session_and_submitted_values() -> None:
    step = iq(
        "set",
        f"<command xmlns='{NS_COMMANDS}' node='set' action='complete' sessionid='s1'>"
        f"<x xmlns='{NS_DATA}' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>x</value></field>"
        "<field var='target'><value>21.5</value><value>ignored</value></field>"
        "<field var='power'/>"
        "</x></command>",
    )
    assert request_from_iq(step) == AdHocRequested(
        ALICE, KITCHEN, "a1", "set", "complete", "s1", (("FORM_TYPE", "x"), ("target", "21.5"), ("power", ""))
    )
    first = iq("set", f"<command xmlns='{NS_COMMANDS}' node='on'/>")
    assert request_from_iq(first) == AdHocRequested(ALICE, KITCHEN, "a1", "on", "execute", "", None)


def test_a_submitted_form_is_bounded() -> None:
    fields = "".join(f"<field var='f{i}'><value>{i}</value></field>" for i in range(500))
    step = iq(
        "set", f"<command xmlns='{NS_COMMANDS}' node='set'><x xmlns='{NS_DATA}' type='submit'>{fields}</x></command>"
    )
    event = request_from_iq(step)
    assert isinstance(event, AdHocRequested) and event.values is not None
    assert len(event.values) == MAX_SUBMITTED_FIELDS


def test_wrong_iq_type_is_refused_and_answers_are_not_requests() -> None:
    with pytest.raises(ValueError, match="iq get"):
        request_from_iq(iq("set", f"<query xmlns='{NS_DISCO_INFO}'/>"))
    with pytest.raises(ValueError, match="iq set"):
        request_from_iq(iq("get", f"<command xmlns='{NS_COMMANDS}' node='on'/>"))
    assert request_from_iq(iq("result", f"<query xmlns='{NS_DISCO_INFO}'/>")) is None
    assert request_from_iq(iq("get", "<ping xmlns='urn:xmpp:ping'/>")) is None


def test_disco_answer_is_rendered(xmpp: ComponentXMPP) -> None:
    answer = AnswerDisco(
        KITCHEN,
        ALICE,
        "a1",
        "items",
        NS_COMMANDS,
        (DiscoIdentity("client", "bot", "Kitchen"),),
        ("jabber:x:data",),
        (DiscoItem(KITCHEN, "on", "Switch on"),),
    )
    stanza = build_stanza(xmpp, answer, DOMAIN)
    assert stanza["type"] == "result" and stanza["id"] == "a1"
    assert str(stanza["from"]) == KITCHEN and str(stanza["to"]) == ALICE
    query = stanza.xml.find(f"{{{NS_DISCO_ITEMS}}}query")
    assert query is not None and query.get("node") == NS_COMMANDS
    item = query.find(f"{{{NS_DISCO_ITEMS}}}item")
    assert item is not None and item.attrib == {"jid": KITCHEN, "node": "on", "name": "Switch on"}


def test_errors_carry_their_condition_and_type(xmpp: ComponentXMPP) -> None:
    stanza = build_stanza(xmpp, AnswerCommand(KITCHEN, ALICE, "a1", "on", error="forbidden"), DOMAIN)
    assert stanza["type"] == "error"
    assert stanza["error"]["condition"] == "forbidden" and stanza["error"]["type"] == "auth"


def test_command_answer_with_form_notes_and_actions(xmpp: ComponentXMPP) -> None:
    form = Form(
        "form",
        "Set Kitchen",
        "Change what you want",
        (
            FormField("power", "list-single", "power", ("off",), (("on", "on"), ("off", "off"))),
            FormField("target", "text-single", "target (°C)", ("20",), desc="5–35 °C, step 0.5"),
        ),
    )
    answer = AnswerCommand(KITCHEN, ALICE, "a1", "set", "s1", "executing", form, (("info", "hi"),), ("complete",))
    # Read back through slixmpp's own stanza classes, as its xep_0050 plugin does for a client.
    register_stanza_plugin(Iq, Command)
    register_stanza_plugin(Command, FormStanza)
    register_stanza_plugin(FormStanza, FieldStanza, iterable=True)
    register_stanza_plugin(FieldStanza, FieldOption, iterable=True)
    wire = str(build_stanza(xmpp, answer, DOMAIN))
    command = Iq(xml=ET.fromstring(wire))["command"]  # type: ignore[no-untyped-call]
    assert command["node"] == "set" and command["sessionid"] == "s1" and command["status"] == "executing"
    assert command["actions"] == {"complete"} and command["notes"] == [("info", "hi")]
    fields = command["form"].get_fields()
    assert fields["power"]["type"] == "list-single" and fields["power"]["value"] == "off"
    assert [(o["label"], o["value"]) for o in fields["power"]["options"]] == [("on", "on"), ("off", "off")]
    assert fields["target"]["desc"] == "5–35 °C, step 0.5" and fields["target"]["label"] == "target (°C)"


def test_an_answer_from_outside_the_domain_never_reaches_the_wire(xmpp: ComponentXMPP) -> None:
    with pytest.raises(ValueError, match="outside the component domain"):
        build_stanza(xmpp, AnswerDisco("x@elsewhere.example", ALICE, "a1", "info"), DOMAIN)
