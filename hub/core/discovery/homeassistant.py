"""Home Assistant MQTT discovery: the configs ESPHome, zigbee2mqtt, OpenMQTTGateway and others publish.

A config on ``<prefix>/<component>/[<node_id>/]<object_id>/config`` describes
one *entity* (a sensor, a switch, a light…) and, under ``device``, the device
it belongs to; the hub groups entities into one contact by the device's
identifiers (each config topic is a source, :func:`~hub.core.discovery.merge`
joins them). A config on ``<prefix>/device/<object_id>/config`` describes a
whole device with its entities under ``components``. Keys may be abbreviated
(``stat_t``, ``dev``/``ids``) and topics may start or end with ``~``, the
config's base topic. An empty config removes what its topic described.

Each entity becomes readings (from its state topic, through its value
template), a property with its own command topic (switch, light, number,
select, climate), or a verb (button). Anything this module does not
understand is ignored, or refused with a :class:`DiscoveryError` that says
which key is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hub.core.discovery import DiscoveredDevice, Discovery, DiscoveryError, DiscoveryInput, merge, register
from hub.core.payloads import placeholders
from hub.core.profile import (
    AvailabilityMode,
    AvailabilitySpec,
    CommandSpec,
    FieldSpec,
    JsonValue,
    Profile,
    PropertyKind,
    PropertySpec,
    Reading,
    ReadingSpec,
    SwitchSpec,
    TelemetrySpec,
    VerbSpec,
)
from hub.core.templates import MAX_TEMPLATE_CHARS, TemplateSyntaxError, compile_template
from hub.core.topics import TopicError, TopicTemplate, validate_topic_name

MAX_CONFIG_BYTES = 64 * 1024
MAX_COMPONENTS = 256
MAX_AVAILABILITY = 16
MAX_OPTIONS = 64
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 128

#: Home Assistant's documented abbreviations of config keys, for the keys this mapper reads.
ABBREVIATIONS: Mapping[str, str] = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "bri_cmd_t": "brightness_command_topic",
    "bri_cmd_tpl": "brightness_command_template",
    "bri_scl": "brightness_scale",
    "bri_stat_t": "brightness_state_topic",
    "bri_val_tpl": "brightness_value_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmps": "components",
    "curr_temp_t": "current_temperature_topic",
    "curr_temp_tpl": "current_temperature_template",
    "dev": "device",
    "dev_cla": "device_class",
    "en": "enabled_by_default",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "act_t": "action_topic",
    "act_tpl": "action_template",
    "mode_cmd_t": "mode_command_topic",
    "mode_cmd_tpl": "mode_command_template",
    "mode_stat_t": "mode_state_topic",
    "mode_stat_tpl": "mode_state_template",
    "o": "origin",
    "obj_id": "object_id",
    "ops": "options",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_prs": "payload_press",
    "ret": "retain",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "stat_val_tpl": "state_value_template",
    "sup_clrm": "supported_color_modes",
    "sug_dsp_prc": "suggested_display_precision",
    "t": "topic",
    "temp_cmd_t": "temperature_command_topic",
    "temp_cmd_tpl": "temperature_command_template",
    "temp_stat_t": "temperature_state_topic",
    "temp_stat_tpl": "temperature_state_template",
    "temp_unit": "temperature_unit",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}

#: The same for the keys of ``device``.
DEVICE_ABBREVIATIONS: Mapping[str, str] = {
    "cns": "connections",
    "ids": "identifiers",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "sw": "sw_version",
    "hw": "hw_version",
    "sn": "serial_number",
    "sa": "suggested_area",
    "cu": "configuration_url",
}

#: Words the chat grammar owns: a button cannot be a verb by these names.
_RESERVED = frozenset({"help", "status", "set", "on", "off", "toggle"})
#: zigbee2mqtt's identifiers for a device and for its bridge (named by the coordinator's address).
_Z2M_ID = re.compile(r"zigbee2mqtt_(?:bridge_)?(0x[0-9a-f]{16})")
_SLUG = re.compile(r"[^a-z0-9_-]+")
_AVAILABILITY_PATH = re.compile(r"\{\{\s*value_json((?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*|\s*\[\s*'[^'.]*'\s*\])+)\s*\}\}")
_VALUE = re.compile(r"\{\{\s*value\s*\}\}")
_MARK = "@@hub-value-mark@@"  # stands for {{ value }} while the rest is read as JSON


@dataclass(slots=True)
class _Parts:
    """What one entity adds to its device's profile."""

    telemetry: list[TelemetrySpec] = field(default_factory=list)
    readings: dict[str, ReadingSpec] = field(default_factory=dict)
    properties: dict[str, PropertySpec] = field(default_factory=dict)
    verbs: dict[str, VerbSpec] = field(default_factory=dict)
    switch: str | None = None


@register("homeassistant")
def map_homeassistant(message: DiscoveryInput) -> Discovery:
    """One config topic's message: the device (with this entity, or all its components) it describes now."""
    source = message.topic
    if not message.payload.strip():
        return Discovery(source)
    config = _load(message.payload)
    if config.get("migrate_discovery"):  # the entity moves to another config topic, which describes it
        return Discovery(source)
    component, node_id, object_id = _topic_parts(message)
    profile = message.binding.profile
    if component == "device":
        found, skipped = _device_config(config, object_id, profile)
        return Discovery(source, (found,) if found else (), skipped)
    fallback = f"{node_id}_{object_id}" if node_id else object_id
    described = _describe_entity(component, _slug(object_id), _expand(config), fallback, profile)
    return Discovery(source, (described,) if described else ())


# ------------------------------------------------------------------ reading the message


def _load(payload: bytes) -> dict[str, object]:
    if len(payload) > MAX_CONFIG_BYTES:
        raise DiscoveryError(f"config of {len(payload)} bytes is over the {MAX_CONFIG_BYTES}-byte limit")
    try:
        config = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise DiscoveryError("config is not UTF-8") from None
    except (ValueError, RecursionError):
        raise DiscoveryError("config is not JSON") from None
    if not isinstance(config, dict):
        raise DiscoveryError(f"config is JSON {type(config).__name__}, expected an object")
    return config


def _topic_parts(message: DiscoveryInput) -> tuple[str, str, str]:
    """``component``, ``node_id`` (maybe empty) and ``object_id`` from the config topic."""
    levels = message.topic.split("/")
    prefix = message.binding.slots.get("prefix") or message.binding.profile.defaults.get("prefix", "homeassistant")
    rest = levels[len(prefix.split("/")) :]
    if len(rest) == 3:
        return rest[0], "", rest[1]
    if len(rest) == 4:
        return rest[0], rest[1], rest[2]
    raise DiscoveryError(f"topic {message.topic!r} is not <prefix>/<component>/[<node_id>/]<object_id>/config")


def _expand(config: Mapping[str, object]) -> dict[str, object]:
    """Abbreviated keys spelled out and ``~`` put into topics."""
    return _with_base(_spell_out(config))


def _spell_out(config: Mapping[str, object], table: Mapping[str, str] = ABBREVIATIONS) -> dict[str, object]:
    """Abbreviated keys spelled out, those of ``device`` and ``availability`` entries too."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = table.get(key, key)
        if name != key and name in config:
            continue  # a spelled-out key wins over its abbreviation
        if name == "device" and isinstance(value, dict):
            value = _spell_out(value, DEVICE_ABBREVIATIONS)
        elif name == "availability" and isinstance(value, list):
            value = [_spell_out(entry) for entry in value[: MAX_AVAILABILITY + 1] if isinstance(entry, dict)]
        out[name] = value
    return out


def _with_base(config: dict[str, object]) -> dict[str, object]:
    """Topics that start or end with ``~`` get the config's base topic there."""
    base = config.get("~")
    if not isinstance(base, str):
        return config
    out = {key: _tilde(v, base) if key.endswith("_topic") and isinstance(v, str) else v for key, v in config.items()}
    availability = out.get("availability")
    if isinstance(availability, list):
        out["availability"] = [
            {**entry, "topic": _tilde(entry["topic"], base)} if isinstance(entry.get("topic"), str) else entry
            for entry in availability
        ]
    return out


def _tilde(topic: str, base: str) -> str:
    if topic.startswith("~"):
        topic = base + topic[1:]
    if topic.endswith("~"):
        topic = topic[:-1] + base
    return topic


def _text(config: Mapping[str, object], key: str, default: str = "") -> str:
    """A string option; numbers and booleans as devices often write them (``payload_on: 1``, ``true``)."""
    value = config.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else default


def _number(config: Mapping[str, object], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DiscoveryError(f"{key}: {value!r} is not a number")
    return float(value)


def _slug(text: str) -> str:
    """A name the chat grammar can take as one word: ``set <slug> …``, ``<slug>?``."""
    slug = _SLUG.sub("_", text.strip().lower()).strip("_")[:64]
    return slug or "entity"


def _topic(config: Mapping[str, object], key: str) -> TopicTemplate | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DiscoveryError(f"{key}: {value!r} is not a topic")
    try:
        validate_topic_name(value)
        if "{" in value or "}" in value:
            raise TopicError("braces are not supported in topics")
        return TopicTemplate.parse(value)
    except TopicError as exc:
        raise DiscoveryError(f"{key}: {exc}") from None


def _template(config: Mapping[str, object], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DiscoveryError(f"{key}: {value!r} is not a template")
    try:
        compile_template(value)
    except TemplateSyntaxError as exc:
        raise DiscoveryError(f"{key}: {exc}") from None
    return value


def _qos(config: Mapping[str, object]) -> tuple[int, bool]:
    qos = config.get("qos", 0)
    return (1 if isinstance(qos, int) and not isinstance(qos, bool) and qos > 0 else 0), config.get("retain") is True


# ------------------------------------------------------------------ devices


def _identity(
    config: Mapping[str, object], fallback: str, by_unique_id: bool = True
) -> tuple[str, tuple[str, ...], str, str]:
    """The device id, its aliases, name and model: by ``device`` identifiers or connections, else the entity."""
    device = config.get("device")
    device = device if isinstance(device, dict) else {}
    ids = device.get("identifiers")
    identifiers = [i for i in (ids if isinstance(ids, list) else [ids]) if isinstance(i, str) and i.strip()]
    pairs = device.get("connections")
    connections = [
        pair[1]
        for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str) and pair[1].strip()
    ]
    aliases: list[str] = []
    for raw in identifiers[:8] + connections[:8]:
        lowered = raw.strip().lower()
        zigbee = _Z2M_ID.fullmatch(lowered)
        aliases.append(zigbee.group(1) if zigbee else lowered)  # the IEEE address, as zigbee2mqtt's own family
        if ":" in lowered:
            aliases.append(lowered.replace(":", ""))  # a MAC as other families write it
    unique_id = _text(config, "unique_id") if by_unique_id else ""
    device_id = aliases[0] if aliases else (unique_id.strip().lower() or fallback.lower())
    if len(device_id) > MAX_ID_CHARS or any(ord(ch) < 0x20 for ch in device_id):
        raise DiscoveryError(f"device id {device_id[:40]!r}… is too long or has control characters")
    name = _text(device, "name") if device else ""
    name = name or _text(config, "name") or device_id
    model = " ".join(part for part in (_text(device, "manufacturer"), _text(device, "model")) if part)
    aliases = [a for a in dict.fromkeys(aliases) if a != device_id and len(a) <= MAX_ID_CHARS]
    return device_id, (device_id, *aliases), name[:MAX_NAME_CHARS], model[:MAX_NAME_CHARS]


def _describe_entity(
    component: str, key: str, config: Mapping[str, object], fallback: str, profile: Profile, by_unique_id: bool = True
) -> DiscoveredDevice | None:
    if not isinstance(config.get("device"), dict) and component not in _BUILDERS:
        return None  # a device trigger, a tag…: nothing to show, and no device to name
    device_id, aliases, name, model = _identity(config, fallback, by_unique_id)
    key = _without_device_prefix(key, aliases)
    parts = _Parts()
    if config.get("enabled_by_default") is not False and component in _BUILDERS:
        _BUILDERS[component](parts, key, config)
    availability, mode = _availability(config)
    own = replace(
        profile,
        availability=availability,
        availability_mode=mode,
        telemetry=tuple(parts.telemetry),
        readings=parts.readings,
        properties=parts.properties,
        verbs=parts.verbs,
        switch=SwitchSpec(property=parts.switch) if parts.switch else None,
        commands=None,
        result=None,
        discovery=(),
    )
    return DiscoveredDevice(device_id, name, own, aliases=aliases, model=model)


def _without_device_prefix(key: str, device_ids: tuple[str, ...]) -> str:
    """``a4c138aabbcc-tempc`` → ``tempc``: object ids that repeat the device's id say it once too often."""
    for device_id in device_ids:
        prefix = _slug(device_id)
        if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1] in ("-", "_") and key[len(prefix) + 1 :]:
            return key[len(prefix) + 1 :]
    return key


def _device_config(
    config: Mapping[str, object], object_id: str, profile: Profile
) -> tuple[DiscoveredDevice | None, tuple[str, ...]]:
    """A device-based config: shared options, ``device`` and ``components`` (each with its ``platform``).

    A component that cannot work is left out, saying why; when none can, the config is refused.
    """
    top = _spell_out(config)
    components = top.get("components")
    if not isinstance(components, dict):
        raise DiscoveryError("a device config needs 'components' (or 'cmps'), an object")
    if len(components) > MAX_COMPONENTS:
        raise DiscoveryError(f"{len(components)} components is over the limit of {MAX_COMPONENTS}")
    shared = {k: v for k, v in top.items() if k not in ("components", "origin")}
    described: list[DiscoveredDevice] = []
    skipped: list[str] = []
    for key, component in components.items():
        if not isinstance(component, dict):
            continue
        own = _spell_out(component)
        platform = _text(own, "platform")
        if not platform or set(own) == {"platform"}:
            continue  # only a platform left: Home Assistant's way to remove one component
        entity = _with_base({**shared, **own})
        try:
            found = _describe_entity(platform, _slug(str(key)), entity, object_id, profile, by_unique_id=False)
        except DiscoveryError as exc:
            skipped.append(f"component {str(key)[:40]!r}: {exc}")
            continue
        if found is not None:
            described.append(found)
    if skipped and not described:
        raise DiscoveryError(skipped[0] + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
    return (merge(described) if described else None), tuple(skipped)


# ------------------------------------------------------------------ availability


def _availability(config: Mapping[str, object]) -> tuple[tuple[AvailabilitySpec, ...], AvailabilityMode]:
    entries: list[tuple[Mapping[str, object], str, str]] = []
    listed = config.get("availability")
    if isinstance(listed, list):
        if len(listed) > MAX_AVAILABILITY:
            raise DiscoveryError(f"availability: {len(listed)} entries is over the limit of {MAX_AVAILABILITY}")
        entries += [(entry, "topic", "value_template") for entry in listed if isinstance(entry, dict)]
    elif config.get("availability_topic"):
        entries.append((config, "availability_topic", "availability_template"))
    specs: list[AvailabilitySpec] = []
    for entry, topic_key, template_key in entries:
        topic = _topic(entry, topic_key)
        if topic is None:
            raise DiscoveryError(f"availability: an entry without {topic_key}")
        online = _text(entry, "payload_available", "online")
        offline = _text(entry, "payload_not_available", "offline")
        specs.append(AvailabilitySpec(topic, (online,), (offline,), path=_availability_path(entry, template_key)))
    mode = _text(config, "availability_mode", "latest")
    return tuple(dict.fromkeys(specs)), AvailabilityMode(mode) if mode in ("all", "any") else AvailabilityMode.LATEST


def _availability_path(entry: Mapping[str, object], key: str) -> str | None:
    """``{{ value_json.state }}`` as the JSON path ``state``; other availability templates are refused."""
    template = _template(entry, key)
    if template is None:
        return None
    match = _AVAILABILITY_PATH.fullmatch(template.strip())
    if match is None:
        raise DiscoveryError(f"{key}: only {{{{ value_json.<member> }}}} is supported here, not {template[:80]!r}")
    members = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|'[^']*'", match.group(1))
    return ".".join(m.strip("'") for m in members)


# ------------------------------------------------------------------ commands


def _payload_template(template: str | None, key: str) -> JsonValue:
    """A ``command_template`` as the hub's payload template: only ``{{ value }}`` is filled in.

    ``{{ value }}`` alone sends the value; inside JSON (``{"level": {{ value }}}``)
    it becomes the typed value; inside text it is filled as text. Anything else
    a template could compute is refused.
    """
    if template is None:
        return "{value}"
    if len(template) > MAX_TEMPLATE_CHARS:
        raise DiscoveryError(f"{key}: template is over {MAX_TEMPLATE_CHARS} characters")
    marked = _VALUE.sub(_MARK, template)
    if "{{" in marked or "{%" in marked or "{#" in marked:
        raise DiscoveryError(f"{key}: only {{{{ value }}}} can be filled in, not {template[:80]!r}")
    if placeholders(marked.replace(_MARK, "")):
        raise DiscoveryError(f"{key}: text in braces such as '{{name}}' cannot be sent")
    if marked.strip() == _MARK:
        return "{value}"
    for candidate in (marked.replace(_MARK, json.dumps(_MARK)), marked):  # {{ value }} bare, or in a JSON string
        try:
            parsed = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(parsed, dict | list):
            return _mark_to_placeholder(parsed)
    return marked.replace(_MARK, "{value}")


def _mark_to_placeholder(value: object) -> JsonValue:
    if isinstance(value, str):
        return value.replace(_MARK, "{value}")
    if isinstance(value, list):
        return [_mark_to_placeholder(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _mark_to_placeholder(v) for k, v in value.items()}
    return value  # type: ignore[return-value]


def _literal(payload: str, key: str) -> str:
    if placeholders(payload):
        raise DiscoveryError(f"{key}: text in braces such as '{{name}}' cannot be sent")
    return payload


def _command(config: Mapping[str, object], topic_key: str, payload: JsonValue) -> CommandSpec | None:
    topic = _topic(config, topic_key)
    if topic is None:
        return None
    qos, retain = _qos(config)
    return CommandSpec(topic, set_payload=payload, verb_payload=payload, qos=qos, retain=retain)


def _templated_command(config: Mapping[str, object], topic_key: str, template_key: str) -> CommandSpec | None:
    """An entity's command topic with its ``*_command_template`` turned into a payload template."""
    if _topic(config, topic_key) is None:
        return None
    return _command(config, topic_key, _payload_template(_template(config, template_key), template_key))


def _state(
    parts: _Parts,
    config: Mapping[str, object],
    key: str,
    topic_key: str,
    template_key: str,
    values: Mapping[str, Reading] | None = None,
) -> bool:
    """A reading ``key`` from a state topic (plain, or through its value template); whether there is one."""
    topic = _topic(config, topic_key)
    if topic is None:
        return False
    template = _template(config, template_key)
    fields = (FieldSpec(key, key, values=dict(values)),) if values else ()
    parts.telemetry.append(TelemetrySpec(topic, "plain", key, fields, template=template))
    return True


def _label(config: Mapping[str, object], key: str) -> str:
    return (_text(config, "name") or key)[:MAX_NAME_CHARS]


# ------------------------------------------------------------------ components


def _sensor(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    if not _state(parts, config, key, "state_topic", "value_template"):
        return
    precision = config.get("suggested_display_precision")
    if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 6:
        precision = None
    parts.readings[key] = ReadingSpec(
        key,
        _label(config, key),
        _text(config, "unit_of_measurement")[:16],
        precision=precision,
        device_class=_text(config, "device_class")[:32],
    )


def _binary_sensor(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    words = {_text(config, "payload_on", "ON"): "on", _text(config, "payload_off", "OFF"): "off"}
    if _state(parts, config, key, "state_topic", "value_template", words):
        parts.readings[key] = ReadingSpec(key, _label(config, key), device_class=_text(config, "device_class")[:32])


def _on_off(parts: _Parts, key: str, config: Mapping[str, object], state_template_key: str) -> None:
    """A switch, or a light of the default schema: ON/OFF on its own command topic."""
    payload_on, payload_off = _text(config, "payload_on", "ON"), _text(config, "payload_off", "OFF")
    words = {_text(config, "state_on", payload_on): "on", _text(config, "state_off", payload_off): "off"}
    _state(parts, config, key, "state_topic", state_template_key, words)
    parts.readings[key] = ReadingSpec(key, _label(config, key))
    to_device: dict[str, Reading] = {"on": payload_on, "off": payload_off}
    if payload_on == "ON":  # ESPHome and zigbee2mqtt take TOGGLE next to ON and OFF
        to_device["toggle"] = "TOGGLE"
    command = _templated_command(config, "command_topic", "command_template")
    if command is None:
        return
    parts.properties[key] = PropertySpec(
        key, PropertyKind.ENUM, choices=("on", "off"), to_device=to_device, command=command
    )
    parts.switch = parts.switch or key


def _switch(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    _on_off(parts, key, config, "value_template")


def _light(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    schema = _text(config, "schema", "default")
    brightness = "brightness" if key == "light" else f"{key}_brightness"
    scale = _number(config, "brightness_scale", 255)
    if not 1 <= scale <= 65535:
        raise DiscoveryError(f"brightness_scale: {scale} is out of range")
    if schema in ("default", "basic"):
        _on_off(parts, key, config, "state_value_template")
        _state(parts, config, brightness, "brightness_state_topic", "brightness_value_template")
        command = _templated_command(config, "brightness_command_topic", "brightness_command_template")
        if command is not None:
            parts.readings[brightness] = ReadingSpec(brightness, "brightness")
            parts.properties[brightness] = PropertySpec(
                brightness, PropertyKind.INTEGER, minimum=0, maximum=scale, step=1, command=command
            )
        return
    if schema != "json":
        raise DiscoveryError(f"schema: light schema {schema!r} is not supported (only default and json)")
    modes = config.get("supported_color_modes")
    dims = config.get("brightness") is True or (
        isinstance(modes, list) and any(isinstance(m, str) and m not in ("onoff",) for m in modes)
    )
    topic = _topic(config, "state_topic")
    if topic is not None:
        fields = [FieldSpec(key, "state", values={"ON": "on", "OFF": "off"})]
        if dims:
            fields.append(FieldSpec(brightness, "brightness"))
        parts.telemetry.append(TelemetrySpec(topic, "json", None, tuple(fields)))
    parts.readings[key] = ReadingSpec(key, _label(config, key))
    on_off = _command(config, "command_topic", {"state": "{value}"})
    if on_off is None:
        return
    parts.properties[key] = PropertySpec(
        key,
        PropertyKind.ENUM,
        choices=("on", "off"),
        to_device={"on": "ON", "off": "OFF", "toggle": "TOGGLE"},
        command=on_off,
    )
    parts.switch = parts.switch or key
    if dims:
        parts.readings[brightness] = ReadingSpec(brightness, "brightness")
        parts.properties[brightness] = PropertySpec(
            brightness,
            PropertyKind.INTEGER,
            minimum=0,
            maximum=scale,
            step=1,
            command=replace(on_off, set_payload={"state": "ON", "brightness": "{value}"}),
        )


def _range_kind(*numbers: float) -> PropertyKind:
    return PropertyKind.INTEGER if all(n == int(n) for n in numbers) else PropertyKind.NUMBER


def _number_entity(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    low, high, step = _number(config, "min", 1), _number(config, "max", 100), _number(config, "step", 1)
    if low > high or step <= 0:
        raise DiscoveryError(f"min/max/step: {low}/{high}/{step} is not a range")
    unit = _text(config, "unit_of_measurement")[:16]
    _state(parts, config, key, "state_topic", "value_template")
    parts.readings[key] = ReadingSpec(key, _label(config, key), unit)
    command = _templated_command(config, "command_topic", "command_template")
    if command is not None:
        parts.properties[key] = PropertySpec(
            key, _range_kind(low, high, step), minimum=low, maximum=high, step=step, unit=unit, command=command
        )


def _select(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    options = config.get("options")
    if not isinstance(options, list) or not options or len(options) > MAX_OPTIONS:
        raise DiscoveryError(f"options: a select needs a list of 1 to {MAX_OPTIONS} options")
    choices = tuple(dict.fromkeys(o for o in options if isinstance(o, str) and 0 < len(o) <= 64))
    _state(parts, config, key, "state_topic", "value_template")
    parts.readings[key] = ReadingSpec(key, _label(config, key))
    command = _templated_command(config, "command_topic", "command_template")
    if command is not None and choices:
        parts.properties[key] = PropertySpec(key, PropertyKind.ENUM, choices=choices, command=command)


def _button(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    payload = _literal(_text(config, "payload_press", "PRESS"), "payload_press")
    command = _command(config, "command_topic", payload)
    if command is not None:
        name = f"press_{key}" if key in _RESERVED else key
        parts.verbs[name] = VerbSpec(name, help=f"press {_label(config, key)}", command=command)


def _climate(parts: _Parts, key: str, config: Mapping[str, object]) -> None:
    prefix = "" if key == "climate" else f"{key}_"
    unit = _text(config, "temperature_unit", "°C")
    unit = {"C": "°C", "F": "°F"}.get(unit, unit)[:16]
    current, target, mode = f"{prefix}temperature", f"{prefix}target", f"{prefix}mode"
    if _state(parts, config, current, "current_temperature_topic", "current_temperature_template"):
        parts.readings[current] = ReadingSpec(current, current, unit, device_class="temperature")
    if _state(parts, config, target, "temperature_state_topic", "temperature_state_template"):
        parts.readings[target] = ReadingSpec(target, target, unit)
    if _state(parts, config, f"{prefix}action", "action_topic", "action_template"):
        parts.readings[f"{prefix}action"] = ReadingSpec(f"{prefix}action", f"{prefix}action")
    command = _templated_command(config, "temperature_command_topic", "temperature_command_template")
    if command is not None:
        low, high = _number(config, "min_temp", 7), _number(config, "max_temp", 35)
        step = _number(config, "temp_step", 1)
        if low > high or step <= 0:
            raise DiscoveryError(f"min_temp/max_temp/temp_step: {low}/{high}/{step} is not a range")
        parts.properties[target] = PropertySpec(
            target, PropertyKind.NUMBER, minimum=low, maximum=high, step=step, unit=unit, command=command
        )
    _state(parts, config, mode, "mode_state_topic", "mode_state_template")
    command = _templated_command(config, "mode_command_topic", "mode_command_template")
    modes = config.get("modes", ["auto", "off", "cool", "heat", "dry", "fan_only"])
    if command is not None and isinstance(modes, list):
        choices = tuple(dict.fromkeys(m for m in modes[:MAX_OPTIONS] if isinstance(m, str) and 0 < len(m) <= 32))
        if choices:
            parts.readings[mode] = ReadingSpec(mode, mode)
            parts.properties[mode] = PropertySpec(mode, PropertyKind.ENUM, choices=choices, command=command)


_BUILDERS = {
    "sensor": _sensor,
    "binary_sensor": _binary_sensor,
    "switch": _switch,
    "light": _light,
    "number": _number_entity,
    "select": _select,
    "button": _button,
    "climate": _climate,
}
