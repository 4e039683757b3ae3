"""Disco (XEP-0030) and ad-hoc command (XEP-0050) iqs to core events, and the core's answers to iqs.

Requests are read straight from the stanza's XML, answers are written as
XML under slixmpp's ``Iq``: the forms, identities and items are already
decided by the core as plain data, so nothing here needs slixmpp's disco or
command plugins (which would answer by themselves, from their own state).
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import InvalidJID

from hub.core.adhoc import NS_COMMANDS, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS
from hub.core.events import AdHocRequested, DiscoRequested
from hub.core.intents import AnswerCommand, AnswerDisco, Form

#: Fields read from one submitted form; a real form from the hub has far fewer.
MAX_SUBMITTED_FIELDS = 64
#: Characters kept of a node, a session id or a field's var (a value is checked by the core).
MAX_NAME_CHARS = 256

#: The stanza error type that goes with each condition the core uses (RFC 6120 §8.3.3).
_ERROR_TYPES = {"forbidden": "auth", "item-not-found": "cancel", "bad-request": "modify"}


def request_from_iq(iq: Any) -> DiscoRequested | AdHocRequested | None:
    """The core event for a disco query (``get``) or a command step (``set``); ``None`` for anything else.

    ``ValueError`` for a request in the right namespace but of the wrong iq type, which the caller answers
    ``bad-request`` (every get or set must be answered).
    """
    kind = iq.xml.get("type")
    if kind not in ("get", "set"):
        return None  # results and errors answer someone else's request
    try:
        sender, to = iq["from"], iq["to"]
    except InvalidJID:
        return None
    if not sender or not to:
        return None
    iq_id = (iq.xml.get("id") or "")[:MAX_NAME_CHARS]
    for child in iq.xml:
        if child.tag in (f"{{{NS_DISCO_INFO}}}query", f"{{{NS_DISCO_ITEMS}}}query"):
            if kind != "get":
                raise ValueError("disco queries are iq get")
            what = "info" if child.tag.startswith(f"{{{NS_DISCO_INFO}}}") else "items"
            node = (child.get("node") or "")[:MAX_NAME_CHARS]
            return DiscoRequested(str(sender.full), str(to.bare), iq_id, what, node)
        if child.tag == f"{{{NS_COMMANDS}}}command":
            if kind != "set":
                raise ValueError("ad-hoc commands are iq set")
            return AdHocRequested(
                sender=str(sender.full),
                to=str(to.bare),
                iq_id=iq_id,
                node=(child.get("node") or "")[:MAX_NAME_CHARS],
                action=child.get("action") or "execute",
                session=(child.get("sessionid") or "")[:MAX_NAME_CHARS],
                values=_submitted(child),
            )
    return None


def _submitted(command: ET.Element) -> tuple[tuple[str, str], ...] | None:
    """The first value of each field of a submitted form; ``None`` when the step carries no form."""
    form = command.find(f"{{{NS_DATA}}}x")
    if form is None or form.get("type") != "submit":
        return None
    values: list[tuple[str, str]] = []
    for field in form.iterfind(f"{{{NS_DATA}}}field"):
        var = field.get("var")
        if not var or len(values) >= MAX_SUBMITTED_FIELDS:
            continue
        value = field.find(f"{{{NS_DATA}}}value")
        values.append((var[:MAX_NAME_CHARS], (value.text or "") if value is not None else ""))
    return tuple(values)


def build_answer(xmpp: Any, intent: AnswerDisco | AnswerCommand, sender: Any, to: Any) -> Any:
    """The ``result`` or ``error`` iq answering one request."""
    if intent.error:
        error_type = _ERROR_TYPES.get(intent.error, "cancel")
        return xmpp.make_iq_error(intent.iq_id, error_type, intent.error, ito=to, ifrom=sender)
    iq = xmpp.make_iq_result(intent.iq_id, ito=to, ifrom=sender)
    if isinstance(intent, AnswerDisco):
        iq.append(_disco(intent))
    else:
        iq.append(_command(intent))
    return iq


def _disco(answer: AnswerDisco) -> ET.Element:
    ns = NS_DISCO_INFO if answer.kind == "info" else NS_DISCO_ITEMS
    query = ET.Element(f"{{{ns}}}query")
    if answer.node:
        query.set("node", answer.node)
    for identity in answer.identities:
        element = ET.SubElement(query, f"{{{ns}}}identity", category=identity.category, type=identity.type)
        if identity.name:
            element.set("name", identity.name)
    for feature in answer.features:
        ET.SubElement(query, f"{{{ns}}}feature", var=feature)
    for item in answer.items:
        element = ET.SubElement(query, f"{{{ns}}}item", jid=item.jid)
        if item.node:
            element.set("node", item.node)
        if item.name:
            element.set("name", item.name)
    return query


def _command(answer: AnswerCommand) -> ET.Element:
    command = ET.Element(f"{{{NS_COMMANDS}}}command", node=answer.node, status=answer.status)
    if answer.session:
        command.set("sessionid", answer.session)
    if answer.actions:
        actions = ET.SubElement(command, f"{{{NS_COMMANDS}}}actions", execute=answer.actions[0])
        for action in answer.actions:
            ET.SubElement(actions, f"{{{NS_COMMANDS}}}{action}")
    for kind, text in answer.notes:
        ET.SubElement(command, f"{{{NS_COMMANDS}}}note", type=kind).text = text
    if answer.form is not None:
        command.append(_form(answer.form))
    return command


def _form(form: Form) -> ET.Element:
    x = ET.Element(f"{{{NS_DATA}}}x", type=form.type)
    if form.title:
        ET.SubElement(x, f"{{{NS_DATA}}}title").text = form.title
    if form.instructions:
        ET.SubElement(x, f"{{{NS_DATA}}}instructions").text = form.instructions
    for field in form.fields:
        element = ET.SubElement(x, f"{{{NS_DATA}}}field", var=field.var, type=field.type)
        if field.label:
            element.set("label", field.label)
        if field.desc:
            ET.SubElement(element, f"{{{NS_DATA}}}desc").text = field.desc
        if field.required:
            ET.SubElement(element, f"{{{NS_DATA}}}required")
        for value in field.values:
            ET.SubElement(element, f"{{{NS_DATA}}}value").text = value
        for label, value in field.options:
            option = ET.SubElement(element, f"{{{NS_DATA}}}option", label=label)
            ET.SubElement(option, f"{{{NS_DATA}}}value").text = value
    return x
