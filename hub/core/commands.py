"""The plain-text chat grammar and the validation of values against a profile.

Works in every client because it is only text: ``help``, ``status``,
``<field>?``, ``on``/``off``/``toggle [channel]``, ``set <property> <value>``
and the profile's verbs. Parsing and validation return values or a
:class:`CommandError` whose message is the chat reply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hub.core.codecs import Reading
from hub.core.profile import Profile, PropertyKind, PropertySpec

MAX_COMMAND_CHARS = 1024


class CommandError(ValueError):
    """A command the hub will not send; ``str(error)`` is the reply to the operator."""


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    pass


@dataclass(frozen=True, slots=True)
class Query:
    field: str


@dataclass(frozen=True, slots=True)
class Switch:
    action: str  # "on" | "off" | "toggle"
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class SetProperty:
    name: str
    raw_value: str


@dataclass(frozen=True, slots=True)
class RunVerb:
    name: str
    #: The words after the verb (``dim 40``), checked against the verb's parameter later.
    arg: str | None = None


@dataclass(frozen=True, slots=True)
class ListDevices:
    query: str = ""


DeviceCommand = Help | Status | Query | Switch | SetProperty | RunVerb
HubCommand = Help | Status | ListDevices


def _words(text: str) -> list[str]:
    if len(text) > MAX_COMMAND_CHARS:
        raise CommandError(f"That message is {len(text)} characters long; commands are at most {MAX_COMMAND_CHARS}.")
    return text.strip().split()


def parse_device_command(text: str) -> DeviceCommand:
    """Parse what an operator wrote to a device. Verbs are checked later, against the profile."""
    words = _words(text)
    if not words:
        raise CommandError("Empty message. Write 'help' for the commands.")
    head = words[0].lower()
    rest = words[1:]
    if head in ("help", "?") and not rest:
        return Help()
    if head == "status" and not rest:
        return Status()
    if head in ("on", "off", "toggle"):
        if len(rest) > 1:
            raise CommandError(f"'{head}' takes at most one channel, e.g. '{head} 2'.")
        return Switch(head, rest[0] if rest else None)
    if head == "set":
        if len(rest) < 2:
            raise CommandError("Usage: set <property> <value>, e.g. 'set target 21.5'.")
        return SetProperty(rest[0].lower(), " ".join(rest[1:]))
    if len(words) == 1 and head.endswith("?") and len(head) > 1:
        return Query(words[0][:-1])
    if len(words) == 1:
        return RunVerb(head)
    if len(rest) == 1 and head.isidentifier() and head not in ("help", "status", "set"):
        return RunVerb(head, rest[0])
    raise CommandError(f"Unknown command '{head}'. Write 'help' for the commands.")


def parse_hub_command(text: str) -> HubCommand:
    """Parse what an operator wrote to the hub's own JID."""
    words = _words(text)
    head = words[0].lower() if words else ""
    if head in ("help", "?", ""):
        return Help()
    if head == "status" and len(words) == 1:
        return Status()
    if head in ("devices", "list") and len(words) == 1:
        return ListDevices()
    if head == "find" and len(words) > 1:
        return ListDevices(" ".join(words[1:]).lower())
    raise CommandError(f"Unknown command '{head}'. Write 'help' for the commands.")


_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def _strip_unit(raw: str, unit: str) -> str:
    text = raw.strip().replace(" ", "")
    if unit:
        compact = unit.replace(" ", "")
        for suffix in (compact, compact.lstrip("°")):  # longest first: a set's order varies per run
            if suffix and text.lower().endswith(suffix.lower()):
                return text[: -len(suffix)]
    return text


def _describe_range(spec: PropertySpec) -> str:
    unit = f" {spec.unit}" if spec.unit else ""
    low = "…" if spec.minimum is None else format_number(spec.minimum)
    high = "…" if spec.maximum is None else format_number(spec.maximum)
    step = f", step {format_number(spec.step)}" if spec.step else ""
    return f"{low}–{high}{unit}{step}"


def describe_property(spec: PropertySpec) -> str:
    """Human summary of what ``set`` accepts, for help and error replies."""
    match spec.kind:
        case PropertyKind.NUMBER | PropertyKind.INTEGER:
            return _describe_range(spec)
        case PropertyKind.BOOLEAN:
            return "on|off"
        case PropertyKind.ENUM:
            return "|".join(spec.choices)
        case PropertyKind.STRING:
            return f"text up to {spec.max_length} characters"


def validate_value(spec: PropertySpec, raw: str) -> Reading:
    """The typed value for ``set <spec.name> <raw>``, or a :class:`CommandError` saying why not."""
    name = spec.name
    match spec.kind:
        case PropertyKind.NUMBER | PropertyKind.INTEGER:
            text = _strip_unit(raw, spec.unit).replace(",", ".")
            try:
                number = float(text)
            except ValueError:
                raise CommandError(f"'{raw}' is not a number; {name} takes {_describe_range(spec)}.") from None
            if not math.isfinite(number):
                raise CommandError(f"{name} must be a finite number.")
            if spec.kind is PropertyKind.INTEGER and number != int(number):
                raise CommandError(f"{name} takes whole numbers: {_describe_range(spec)}.")
            if (spec.minimum is not None and number < spec.minimum) or (
                spec.maximum is not None and number > spec.maximum
            ):
                raise CommandError(f"{format_number(number)} is out of range: {name} takes {_describe_range(spec)}.")
            if spec.step:
                origin = spec.minimum or 0.0
                steps = (number - origin) / spec.step  # inf when the value is ~1e308 steps away
                if not math.isfinite(steps) or abs(steps - round(steps)) > 1e-6:
                    raise CommandError(f"{name} moves in steps of {format_number(spec.step)}: {_describe_range(spec)}.")
            return int(number) if spec.kind is PropertyKind.INTEGER else number
        case PropertyKind.BOOLEAN:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise CommandError(f"{name} is on or off, not '{raw}'.")
        case PropertyKind.ENUM:
            for choice in spec.choices:
                if raw.strip().lower() == choice.lower():
                    return choice
            raise CommandError(f"{name} is one of {', '.join(spec.choices)}; not '{raw}'.")
        case PropertyKind.STRING:
            if len(raw) > spec.max_length:
                raise CommandError(f"{name} takes at most {spec.max_length} characters.")
            return raw


def switch_property(profile: Profile, channel: str | None) -> PropertySpec:
    """The property that ``on``/``off``/``toggle [channel]`` drives on this profile."""
    if profile.switch is None:
        raise CommandError("This device has no switch: write 'help' for what it can do.")
    if channel is None:
        name = profile.switch.property
    else:
        if not channel.isdigit() or len(channel) > 3:
            raise CommandError(f"Channel must be a number, not '{channel}'.")
        name = profile.switch.channel_property.format(channel=channel)
    spec = profile.properties.get(name)
    if spec is None and channel is not None:
        # Channels share the main switch's kind unless the profile lists them; not its device key or
        # its own command, which name the main relay (``POWER``, ``"id": 0``) and would drive that one.
        base = profile.properties.get(profile.switch.property)
        spec = replace(base, name=name, echo=None, key=None, command=None) if base else None
    if spec is None:
        raise CommandError("This device has no switch.")
    return spec


def format_number(value: float) -> str:
    """``21.0`` → ``21``, ``21.50`` → ``21.5``: numbers as people write them."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"
