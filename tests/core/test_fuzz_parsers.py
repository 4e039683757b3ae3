"""Hostile input, part 1: payload decoders, the chat grammar, value validation and payload templates.

Every function that reads something a device or a stranger wrote either
returns a value or raises the one error type the hub catches for it; nothing
else escapes. Thousands of generated cases in a few seconds.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.core.codecs import (
    CODECS,
    MAX_READINGS,
    MAX_TEXT_READING,
    PayloadError,
    Reading,
    parse_scalar,
    scalar,
)
from hub.core.commands import (
    MAX_COMMAND_CHARS,
    CommandError,
    Help,
    ListDevices,
    Query,
    RunVerb,
    SetProperty,
    Status,
    Switch,
    describe_property,
    format_number,
    parse_device_command,
    parse_hub_command,
    switch_property,
    validate_value,
)
from hub.core.payloads import TemplateError, fill, placeholders, render
from hub.core.presence import format_reading, readings_text
from hub.core.profile import JsonValue, Profile, PropertyKind, PropertySpec, SwitchSpec

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ device payloads

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # valid JSON, overflows a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=8)
    ),
    max_leaves=40,
)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_payloads = st.one_of(
    st.binary(max_size=512),
    _json_values.map(_json_bytes),
    st.dictionaries(st.text(max_size=12), _json_values, max_size=80).map(_json_bytes),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),  # nesting past the recursion limit
    st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.integers(4000, 5000).map(lambda digits: b'{"n": ' + b"9" * digits + b"}"),  # past int's digit limit
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def _check_readings(readings: dict[str, Reading]) -> None:
    assert len(readings) <= MAX_READINGS
    for key, value in readings.items():
        assert isinstance(key, str)
        assert isinstance(value, bool | int | float | str)
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, int) and not isinstance(value, bool):
            float(value)  # every integer reading fits a float
        if isinstance(value, str):
            assert len(value) <= MAX_TEXT_READING


@settings(MANY, max_examples=1000)
@given(_payloads, st.sampled_from(sorted(CODECS)), st.one_of(st.none(), st.text(max_size=10)))
def test_decoders_return_readings_or_payload_error(payload: bytes, codec: str, field: str | None) -> None:
    try:
        readings = CODECS[codec](payload, field)
    except PayloadError as exc:
        assert str(exc)  # the reason goes to the log
        return
    _check_readings(readings)


@MANY
@given(st.text(max_size=300))
def test_parse_scalar_never_fails(text: str) -> None:
    value = parse_scalar(text)
    assert not isinstance(value, float) or math.isfinite(value)


@SOME
@given(_json_values)
def test_scalar_accepts_only_finite_short_scalars(value: object) -> None:
    reading = scalar(value)
    if reading is not None:
        _check_readings({"x": reading})


@SOME
@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(
            st.booleans(),
            st.integers(-(10**20), 10**20),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=MAX_TEXT_READING),
        ),
        max_size=MAX_READINGS,
    ),
    st.sampled_from(["hub"]),
)
def test_readings_always_render(readings: dict[str, Reading], profile_name: str) -> None:
    """Whatever a device reported, its status line and each reading can be shown."""
    profile = Profile(profile_name)
    text = readings_text(profile, readings)
    assert isinstance(text, str)
    for key, value in readings.items():
        assert isinstance(format_reading(profile, key, value, True), str)


# ------------------------------------------------------------------ the chat grammar

_words = st.sampled_from(
    ["help", "?", "status", "on", "off", "toggle", "set", "target", "power", "identify", "reboot", "devices",
     "list", "find", "temperature?", "?", "21.5", "21,5°C", "1e308", "-inf", "nan", "0x10", "２１", "١٢",
     "\u200b", "\x00", "ON", "Set", "TARGET"]
)  # fmt: skip
_bodies = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_words, st.text(max_size=8)), max_size=6).map(" ".join),
    st.integers(MAX_COMMAND_CHARS - 2, MAX_COMMAND_CHARS + 2).map(lambda n: "x" * n),
    st.integers(1, 4).map(lambda n: "set target " + "9" * (4300 * n)),
)


@MANY
@given(_bodies)
def test_device_grammar_returns_a_command_or_a_reply(body: str) -> None:
    try:
        command = parse_device_command(body)
    except CommandError as exc:
        assert str(exc)
        return
    assert isinstance(command, Help | Status | Query | Switch | SetProperty | RunVerb)
    assert len(body) <= MAX_COMMAND_CHARS


@MANY
@given(_bodies)
def test_hub_grammar_returns_a_command_or_a_reply(body: str) -> None:
    try:
        command = parse_hub_command(body)
    except CommandError as exc:
        assert str(exc)
        return
    assert isinstance(command, Help | Status | ListDevices)


_bounds = st.one_of(st.none(), st.floats(-1e6, 1e6), st.floats(allow_nan=False, allow_infinity=False))
_specs = st.builds(
    PropertySpec,
    name=st.text(min_size=1, max_size=10),
    kind=st.sampled_from(list(PropertyKind)),
    minimum=_bounds,
    maximum=_bounds,
    step=st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e6), st.sampled_from([0.5, 0.1, 1.0])),
    choices=st.lists(st.text(min_size=1, max_size=6), max_size=4).map(tuple),
    unit=st.sampled_from(["", "°C", "%", "W", "kWh", " ", "°"]),
    max_length=st.integers(1, 300),
)
_raw_values = st.one_of(
    _bodies,
    st.floats().map(repr),
    st.floats().map(lambda f: f"{f}°C"),
    st.integers().map(str),
    st.sampled_from(["1e308", "-1e308", "1e-320", "1_000", "inf", "nan", "5e-324", "9" * 400, " 21 , 5 "]),
)


@MANY
@given(_specs, _raw_values)
@example(PropertySpec("t", PropertyKind.NUMBER, minimum=-8.98846567431158e307, step=0.5), "0.0")  # was OverflowError
@example(PropertySpec("t", PropertyKind.NUMBER, step=1e-9), "1e308")
def test_validate_value_returns_a_checked_value_or_a_reply(spec: PropertySpec, raw: str) -> None:
    try:
        value = validate_value(spec, raw)
    except CommandError as exc:
        assert str(exc)
        return
    if spec.kind in (PropertyKind.NUMBER, PropertyKind.INTEGER):
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value)
        if spec.minimum is not None:
            assert value >= spec.minimum
        if spec.maximum is not None:
            assert value <= spec.maximum
        assert isinstance(format_number(value), str)
    elif spec.kind is PropertyKind.BOOLEAN:
        assert isinstance(value, bool)
    elif spec.kind is PropertyKind.ENUM:
        assert value in spec.choices
    else:
        assert isinstance(value, str) and len(value) <= spec.max_length


@SOME
@given(_specs)
def test_every_property_can_be_described(spec: PropertySpec) -> None:
    assert isinstance(describe_property(spec), str)


@SOME
@given(st.one_of(st.none(), st.text(max_size=10), st.integers(-(10**6), 10**6).map(str)))
def test_switch_channels_are_checked(channel: str | None) -> None:
    profile = Profile(
        "p", switch=SwitchSpec(), properties={"power": PropertySpec("power", PropertyKind.ENUM, choices=("on", "off"))}
    )
    try:
        spec = switch_property(profile, channel)
    except CommandError:
        return
    assert spec.name == "power" or (channel is not None and spec.name == f"power{channel}" and channel.isdigit())


@MANY
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_number_any_finite(value: float) -> None:
    assert isinstance(format_number(value), str)


# ------------------------------------------------------------------ payload templates

_names = st.sampled_from(["cid", "property", "value", "verb", "id", "base"])
_template_text = st.lists(
    st.one_of(
        st.text(max_size=5),
        _names.map(lambda n: "{" + n + "}"),
        st.sampled_from(["{", "}", "{{", "{0}", "{value.__class__}"]),
    ),
    max_size=5,
).map("".join)
_templates: st.SearchStrategy[JsonValue] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _template_text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_template_text, children, max_size=4)),
    max_leaves=15,
)
_hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(['"}, "evil": {"', "{value}", "{cid}", "\\", "\x00", "'; DROP", "\ud800x"[1:], "#", "+/#"]),
)
_values = st.dictionaries(
    _names,
    st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _hostile_text),
)


def _shape(value: object) -> object:
    """The template's structure with leaves erased: what filling may not change."""
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, dict):
        return len(value)  # keys are filled too and may collide; only the count is bounded
    return "leaf"


@settings(MANY, max_examples=1000)
@given(_templates, _values)
def test_templates_fill_values_as_data_never_as_structure(template: JsonValue, values: dict[str, Reading]) -> None:
    try:
        payload = render(template, values)
    except TemplateError:
        assert placeholders(template) - set(values)
        return
    assert not placeholders(template) - set(values)
    filled = fill(template, values)
    if isinstance(filled, str):
        assert payload == filled.encode()
        return
    decoded = json.loads(payload)
    # A value full of quotes and braces stays one JSON string: the structure is the template's.
    if isinstance(template, list):
        assert _shape(decoded) == _shape(filled)
    if isinstance(template, dict):
        assert isinstance(decoded, dict) and len(decoded) <= len(template)


@SOME
@given(_hostile_text)
def test_a_filled_value_is_never_expanded_again(text: str) -> None:
    payload = render(
        {"id": "{cid}", "set": {"{property}": "{value}"}}, {"cid": "{value}", "property": "p", "value": text}
    )
    assert json.loads(payload) == {"id": "{value}", "set": {"p": text}}
