"""XEP-0004 data forms built from a device's profile and state, as plain data.

The facts the chat grammar checks (a property's kind, range, step, unit and
choices) become form fields, so a client with a form UI offers the same
commands with the same limits. Pure: the XMPP bridge renders the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hub.core.codecs import Reading
from hub.core.commands import describe_property, format_number
from hub.core.device import Device
from hub.core.intents import Form, FormField, Show
from hub.core.presence import format_reading
from hub.core.profile import PropertyKind, PropertySpec
from hub.core.replies import settable_properties, show_word, title

_ON = frozenset({"on", "true", "yes", "1"})
_OFF = frozenset({"off", "false", "no", "0"})

#: A result form lists at most this many devices; a stanza must stay well under the servers' limits.
MAX_LISTED_DEVICES = 200


def form_value(spec: PropertySpec, value: Reading) -> str:
    """A property's value as its field shows it; a submission is compared with this to see what changed."""
    match spec.kind:
        case PropertyKind.BOOLEAN:
            text = str(value).strip().lower()
            if value is True or text in _ON:
                return "on"
            if value is False or text in _OFF:
                return "off"
            return text
        case PropertyKind.ENUM:
            text = str(value).strip()
            return next((c for c in spec.choices if c.lower() == text.lower()), text)
        case PropertyKind.NUMBER | PropertyKind.INTEGER:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return format_number(float(value))
            return str(value).strip()
        case PropertyKind.STRING:
            return str(value)


def property_field(spec: PropertySpec, current: Reading | None) -> FormField:
    """One field for ``set <name> <value>``: a choice for enums and switches, text with its limits for the rest."""
    values = () if current is None else (form_value(spec, current),)
    label = f"{spec.name} ({spec.unit})" if spec.unit else spec.name
    match spec.kind:
        case PropertyKind.ENUM:
            return FormField(spec.name, "list-single", label, values, tuple((c, c) for c in spec.choices), spec.help)
        case PropertyKind.BOOLEAN:
            return FormField(spec.name, "list-single", label, values, (("on", "on"), ("off", "off")), spec.help)
        case PropertyKind.NUMBER | PropertyKind.INTEGER | PropertyKind.STRING:
            limits = describe_property(spec)
            desc = f"{spec.help}: {limits}" if spec.help else limits
            return FormField(spec.name, "text-single", label, values, desc=desc)


def set_form(device: Device, names: Iterable[str] | None = None) -> Form:
    """One field per property in ``names`` (default: every one the device reported), with its current value."""
    profile = device.profile
    fields = tuple(
        property_field(profile.properties[name], device.readings.get(profile.properties[name].echo_key))
        for name in (settable_properties(device) if names is None else names)
    )
    return Form(
        "form",
        title=f"Set {title(device)}",
        instructions="Change what you want; fields left as they are are not sent.",
        fields=fields,
    )


#: The one field of a verb's form: its argument (``dim 40``).
ARGUMENT = "argument"


def verb_form(device: Device, verb: str, param: PropertySpec) -> Form:
    """A verb that takes an argument asks for it, checked like a property (``dim <0–100 %>``)."""
    field = property_field(param, None)
    return Form(
        "form",
        title=f"{verb} {title(device)}",
        fields=(FormField(ARGUMENT, field.type, field.label, (), field.options, field.desc, required=True),),
    )


def status_form(
    device: Device,
    show: Show,
    presence_text: str,
    format_time: Callable[[float], str],
    queued: Iterable[str] = (),
) -> Form:
    """What ``status`` says in chat, one field per line: state, each reading, last message, queued commands."""
    profile = device.profile
    state = show_word(show) + (f" ({presence_text})" if show is not Show.AVAILABLE else "")
    fields = [FormField("state", "text-single", "State", (state,))]
    ordered = dict.fromkeys([*(k for k in profile.readings if k in device.readings), *sorted(device.readings)])
    for key in ordered:
        spec = profile.reading(key)
        value = format_reading(profile, key, device.readings[key], with_label=False)
        fields.append(FormField(f"reading.{key}", "text-single", spec.label or key, (value,)))
    if device.last_live is not None:
        fields.append(FormField("last-message", "text-single", "Last message", (format_time(device.last_live),)))
    waiting = tuple(queued)
    if waiting:
        fields.append(FormField("queued", "text-multi", "Queued commands", waiting))
    return Form("result", title=title(device), fields=tuple(fields))


def device_list_form(entries: Iterable[tuple[Device, Show]], limit: int = MAX_LISTED_DEVICES) -> Form:
    """The devices someone may see, one field each (name → state), sorted by id."""
    rows = sorted(entries, key=lambda e: e[0].device_id)
    fields = [FormField(d.jid, "text-single", title(d), (show_word(s),)) for d, s in rows[:limit]]
    if len(rows) > limit:
        fields.append(FormField("more", "fixed", values=(f"… and {len(rows) - limit} more; write 'find <text>'.",)))
    if not rows:
        fields.append(FormField("none", "fixed", values=("No devices.",)))
    return Form("result", title="Devices", fields=tuple(fields))


def text_form(form_title: str, label: str, text: str) -> Form:
    """A one-field result, e.g. the hub's ``status``."""
    return Form("result", title=form_title, fields=(FormField("text", "text-single", label, (text,)),))
