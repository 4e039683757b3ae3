"""Service discovery (XEP-0030) and ad-hoc commands (XEP-0050) on device JIDs and the hub's own JID.

Clients with a command UI (Gajim, Psi, Profanity, Converse.js) list a
device's commands and run them through forms. A command run this way takes
the very path of the chat command it stands for (``Hub._command``):
authorization by role and group, validation against the profile, publish or
queue, and the confirmation later as a chat message. This module only
decides what is offered to whom, and turns the chat reply into the
command's note.

No session is kept between steps: every step is authorized and validated on
its own, so a submitted form needs nothing from the step that sent it, and
there is no session table to bound or to lose on a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.core import forms
from hub.core.commands import CommandError, RunVerb, SetProperty, Switch, validate_value
from hub.core.device import Device
from hub.core.events import AdHocRequested, ChatReceived, DiscoRequested
from hub.core.intents import (
    AnswerCommand,
    AnswerDisco,
    DiscoIdentity,
    DiscoItem,
    Form,
    Intent,
    Log,
    PublishMqtt,
    SendChat,
)
from hub.core.jid import bare
from hub.core.profile import Role
from hub.core.replies import settable_properties, title

if TYPE_CHECKING:
    from hub.core.hub import Hub

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
FEATURES = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_COMMANDS, NS_DATA)

#: The hub lists at most this many devices in its disco#items.
MAX_DISCO_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class CommandNode:
    """One ad-hoc command: its node, the name a client shows, and the role it needs."""

    node: str
    name: str
    role: Role


STATUS, SET, DEVICES = "status", "set", "devices"
_SWITCH_NAMES = {"on": "Switch on", "off": "Switch off", "toggle": "Toggle"}
#: Nodes a verb may not take: the chat grammar reads these words first, so such a verb is unreachable there too.
_RESERVED = frozenset({STATUS, SET, "help", *_SWITCH_NAMES})
HUB_NODES = (CommandNode(STATUS, "Hub status", Role.VIEWER), CommandNode(DEVICES, "Devices", Role.VIEWER))


def device_nodes(device: Device) -> tuple[CommandNode, ...]:
    """Every command the device offers, in the order ``help`` lists them; roles filter later.

    A property or verb is offered only where its profile says how to send it
    (its own command, or the profile's), so nothing offered ends in "cannot
    be sent".
    """
    profile = device.profile
    nodes = [CommandNode(STATUS, "Status", Role.VIEWER)]
    settable = sendable_properties(device)
    if settable:
        nodes.append(CommandNode(SET, "Set…", Role.OPERATOR))
    if profile.switch is not None and profile.switch.property in settable:
        nodes += [CommandNode(action, name, Role.OPERATOR) for action, name in _SWITCH_NAMES.items()]
    for verb in profile.verbs.values():
        where = verb.command or profile.commands
        if verb.name not in _RESERVED and where is not None and where.verb_payload is not None:
            nodes.append(CommandNode(verb.name, f"{verb.name}: {verb.help}" if verb.help else verb.name, verb.role))
    return tuple(nodes)


def sendable_properties(device: Device) -> list[str]:
    """The properties ``set`` offers: reported by the device, and with a command to send them by."""
    profile = device.profile
    out = []
    for name in settable_properties(device):
        where = profile.properties[name].command or profile.commands
        if where is not None and where.set_payload is not None:
            out.append(name)
    return out


def allowed(nodes: Sequence[CommandNode], role: Role) -> tuple[CommandNode, ...]:
    return tuple(n for n in nodes if role.rank >= n.role.rank)


def handle(hub: Hub, event: DiscoRequested | AdHocRequested, now: float) -> list[Intent]:
    """The hub's answer to one disco query or one command step."""
    if isinstance(event, DiscoRequested):
        return _on_disco(hub, event, now)
    return _on_command(hub, event, now)


# ---------------------------------------------------------------------------------------- discovery


def _on_disco(hub: Hub, event: DiscoRequested, now: float) -> list[Intent]:
    to = bare(event.to)

    def answer(
        identities: tuple[DiscoIdentity, ...] = (),
        features: tuple[str, ...] = (),
        items: tuple[DiscoItem, ...] = (),
        error: str = "",
    ) -> AnswerDisco:
        return AnswerDisco(to, event.sender, event.iq_id, event.kind, event.node, identities, features, items, error)

    if to == hub.domain:
        role = hub.auth.hub_role(event.sender)
        if role is None and not (event.kind == "info" and not event.node):
            if event.kind == "items" and not event.node:
                return [answer()]  # nothing to see, and nothing worth refusing
            return [answer(error="forbidden")]
        identity = DiscoIdentity("component", "generic", "MQTT–XMPP hub")
        nodes = allowed(HUB_NODES, role) if role is not None else ()
        children: tuple[DiscoItem, ...] = ()
        if event.kind == "items" and not event.node:
            visible = sorted(
                (d for d in hub.devices.values() if hub.auth.role_for(event.sender, d.group) is not None),
                key=lambda d: d.device_id,
            )
            children = tuple(DiscoItem(d.jid, name=title(d)) for d in visible[:MAX_DISCO_ITEMS])
    else:
        device = hub.devices.get(to)
        role = _device_role(hub, event.sender, to, device)
        if role is None:
            return [answer(error="forbidden"), *_refusal(hub, event.sender, to, event.node, now)]
        if device is None:
            return [answer(error="item-not-found")]
        identity = DiscoIdentity("client", "bot", title(device))
        nodes = allowed(device_nodes(device), role)
        children = ()
    if not event.node:
        if event.kind == "info":
            return [answer(identities=(identity,), features=FEATURES)]
        return [answer(items=children)]
    if event.node == NS_COMMANDS:
        if event.kind == "info":
            return [answer(identities=(DiscoIdentity("automation", "command-list", "Commands"),))]
        return [answer(items=tuple(DiscoItem(to, n.node, n.name) for n in nodes))]
    found = next((n for n in nodes if n.node == event.node), None)
    if found is None:
        return [answer(error="item-not-found")]
    if event.kind == "info":
        identities = (DiscoIdentity("automation", "command-node", found.name),)
        return [answer(identities=identities, features=(NS_COMMANDS, NS_DATA))]
    return [answer()]


def _device_role(hub: Hub, sender: str, to: str, device: Device | None) -> Role | None:
    return hub.auth.role_for(sender, device.group if device is not None else hub._group_of(to))


def _refusal(hub: Hub, sender: str, to: str, node: str, now: float) -> list[Intent]:
    """The log line of a refusal to someone not on the list, rate-limited like chat refusals."""
    fields = {"jid": bare(sender), "device": to, "node": node[:64]}
    return hub.refusals.gate(f"{bare(sender)} {to}", now, [Log("warning", "adhoc.refused", fields)])


# ---------------------------------------------------------------------------------------- commands


def _on_command(hub: Hub, event: AdHocRequested, now: float) -> list[Intent]:
    to = bare(event.to)
    # Every answer names a session (XEP-0050), even a one-step command's; a first step gets one from its iq id.
    answer = _Answer(to, event, event.session or f"{hub.settings.session_tag}-{event.iq_id[:32]}")
    if to == hub.domain:
        role = hub.auth.hub_role(event.sender)
        if role is None:
            return [answer(error="forbidden"), *_refusal(hub, event.sender, to, event.node, now)]
        if event.node not in {n.node for n in allowed(HUB_NODES, role)}:
            return [answer(error="item-not-found")]
        if event.action == "cancel":
            return [answer(status="canceled")]
        if event.node == STATUS:
            return [answer(form=forms.text_form("Hub", "Status", hub._hub_presence()[1]))]
        visible = [
            (d, hub._presence(d, now)[0])
            for d in hub.devices.values()
            if hub.auth.role_for(event.sender, d.group) is not None
        ]
        return [answer(form=forms.device_list_form(visible))]

    device = hub.devices.get(to)
    role = _device_role(hub, event.sender, to, device)
    if role is None:
        return [answer(error="forbidden"), *_refusal(hub, event.sender, to, event.node, now)]
    if device is None:
        return [answer(error="item-not-found")]
    node = next((n for n in device_nodes(device) if n.node == event.node), None)
    if node is None:
        return [answer(error="item-not-found")]
    if role.rank < node.role.rank:
        fields = {"jid": bare(event.sender), "device": device.device_id, "role": role.value, "node": node.node}
        return [answer(error="forbidden"), Log("warning", "command.forbidden", fields)]
    if event.action == "cancel":
        return [answer(status="canceled")]
    if event.action not in ("execute", "complete", "next"):
        return [answer(error="bad-request")]
    if node.node == STATUS:
        show, text = hub._presence(device, now)
        clock = hub.settings.format_time
        queued = [f"{c.summary} (expires {clock(c.expires or now)})" for c in hub.queued.get(device.jid, ())]
        return [answer(form=forms.status_form(device, show, text, hub.settings.format_time, queued))]
    if node.node == SET:
        if event.values is None:
            return [answer("executing", forms.set_form(device, sendable_properties(device)), actions=("complete",))]
        return _submit_set(hub, event, device, role, now, answer)
    command: Switch | RunVerb
    if node.node in _SWITCH_NAMES:
        command = Switch(node.node)
    else:
        param = device.profile.verbs[node.node].param
        if param is not None and event.values is None:  # ask for its argument first
            return [answer("executing", forms.verb_form(device, node.node, param), actions=("complete",))]
        arg = dict(event.values or ()).get(forms.ARGUMENT, "").strip() if param is not None else None
        command = RunVerb(node.node, arg or None)
    done, note, rest = _run(hub, event, device, role, command, now)
    return [answer(notes=(("info" if done else "error", note),)), *rest]


def _submit_set(
    hub: Hub, event: AdHocRequested, device: Device, role: Role, now: float, answer: _Answer
) -> list[Intent]:
    """Send what the operator changed; if any value is invalid, say why and send nothing."""
    profile = device.profile
    submitted: dict[str, str] = {}
    for var, value in event.values or ():
        submitted.setdefault(var, value)
    changes: list[SetProperty] = []
    errors: list[tuple[str, str]] = []
    for name in sendable_properties(device):
        raw = submitted.get(name, "").strip()
        if not raw:
            continue
        spec = profile.properties[name]
        try:
            wanted = validate_value(spec, raw)
        except CommandError as exc:
            errors.append(("error", str(exc)))
            continue
        current = device.readings.get(spec.echo_key)
        if current is None or forms.form_value(spec, wanted) != forms.form_value(spec, current):
            changes.append(SetProperty(name, raw))
    if errors:
        return [answer(notes=tuple(errors)), Log("info", "adhoc.invalid", {"device": device.device_id})]
    if not changes:
        return [answer(notes=(("info", "Nothing changed: every field still has the device's value."),))]
    notes: list[tuple[str, str]] = []
    out: list[Intent] = []
    for change in changes:
        done, note, rest = _run(hub, event, device, role, change, now)
        notes.append(("info" if done else "error", note))
        out += rest
    return [answer(notes=tuple(notes)), *out]


@dataclass(frozen=True, slots=True)
class _Answer:
    """Builds the answers to one command step: from the addressed JID to whoever asked."""

    sender: str
    event: AdHocRequested
    session: str

    def __call__(
        self,
        status: str = "completed",
        form: Form | None = None,
        notes: tuple[tuple[str, str], ...] = (),
        actions: tuple[str, ...] = (),
        error: str = "",
    ) -> AnswerCommand:
        e = self.event
        return AnswerCommand(self.sender, e.sender, e.iq_id, e.node, self.session, status, form, notes, actions, error)


def _run(
    hub: Hub, event: AdHocRequested, device: Device, role: Role, command: Switch | SetProperty | RunVerb, now: float
) -> tuple[bool, str, list[Intent]]:
    """Run a command as if typed in chat; the chat reply becomes the note, everything else is kept.

    Returns whether it was sent or queued, the note, and the other intents.
    """
    chat = ChatReceived(event.sender, device.jid, "")
    out = hub._command(chat, device, role, command, now)
    # The immediate reply is the first message to the requester from the device; later ones (a queued
    # command this one replaced, sent to the same person) stay chat messages.
    reply = next((i for i in out if isinstance(i, SendChat) and i.sender == device.jid and i.to == event.sender), None)
    rest = [i for i in out if i is not reply]
    done = any(isinstance(i, PublishMqtt) or (isinstance(i, Log) and i.event == "command.queued") for i in out)
    return done, reply.body if reply is not None else "", rest
