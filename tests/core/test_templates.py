"""Value templates: the Jinja subset real discovery configs use, and everything else refused.

The supported cases are the shapes ESPHome, zigbee2mqtt, OpenMQTTGateway and
Tasmota put in their Home Assistant discovery configs. The hostile cases are
what someone who can publish a config might try: code execution through
attribute access, huge loops, deep nesting, huge numbers and long texts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.core.codecs import MAX_PAYLOAD_BYTES, PayloadError
from hub.core.templates import MAX_TEMPLATE_CHARS, TemplateSyntaxError, compile_template, render_value_template

SOME = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

STATE = json.dumps(
    {
        "temperature": 21.55,
        "humidity": 48,
        "state": "ON",
        "brightness": 254,
        "ENERGY": {"Power": 1250, "Total": 3.5},
        "list": [10, 20, 30],
        "nothing": None,
        "RSSI": -71,
        "tempc": 19.0,
    }
).encode()


@pytest.mark.parametrize(
    ("template", "reading"),
    [
        # zigbee2mqtt: one member of the device's JSON state
        ("{{ value_json.temperature }}", 21.55),
        ("{{ value_json.state }}", "ON"),
        # brackets, filters, rounding, arithmetic (Tasmota energy in kW)
        ("{{ value_json['humidity'] }}", 48),
        ("{{ value_json.temperature | float | round(1) }}", 21.6),
        ("{{ value_json.temperature | round(0, 'floor') }}", 21),
        ("{{ (value_json.ENERGY.Power | float) * 0.001 }}", 1.25),
        ("{{ value_json.ENERGY.Power / 1000 }}", 1.25),
        ("{{ value_json.brightness | int }}", 254),
        ("{{ (value_json.brightness / 254 * 100) | round }}", 100),
        ("{{ value_json.list[1] + value_json.list.2 }}", 50),
        ("{{ value_json.humidity // 10 }} {{ value_json.humidity % 10 }}", "4 8"),
        ("{{ -value_json.RSSI }}", 71),
        # OpenMQTTGateway: Home Assistant's is_defined passes the value through
        ("{{ value_json.tempc | is_defined }}", 19.0),
        # defaults and tests
        ("{{ value_json.missing | default(0) }}", 0),
        ("{{ value_json.nothing | default('none') }}", "none"),
        ("{{ value_json.humidity if value_json.humidity is defined else 0 }}", 48),
        ("{{ value_json.missing if value_json.missing is defined else -1 }}", -1),
        ("{{ value_json.nothing is none }}", True),
        ("{{ value_json.state is not number }}", True),
        ("{{ not value_json.missing is defined }}", True),
        ("{{ 'state' in value_json and value_json.state == 'ON' }}", True),
        ("{{ 'ON' if value_json.state | lower == 'on' else 'OFF' }}", "ON"),
        ("{{ value_json.state ~ '/' ~ value_json.humidity }}", "ON/48"),
        # if blocks, with whitespace control
        ("{% if value_json.state == 'ON' %}on{% else %}off{% endif %}", "on"),
        ("{% if value_json.humidity > 60 %}wet{% elif value_json.humidity > 40 %}ok{% else %}dry{% endif %}", "ok"),
        ("{%- if value_json.missing is defined -%} {{ value_json.missing }} {%- else -%} 7 {%- endif %}", 7),
        ("{# a comment #}{{ value_json.humidity }}", 48),
        ("{% if true %}{% if value_json.state == 'ON' %}{{ value_json.brightness }}{% endif %}{% endif %}", 254),
    ],
)
def test_templates_devices_use(template: str, reading: object) -> None:
    assert render_value_template(template, STATE) == reading


def test_plain_payloads_are_value_and_not_value_json() -> None:
    assert render_value_template("{{ value | float * 2 }}", b" 10.5 ") == 21.0
    assert render_value_template("{{ value }}", b"ON") == "ON"
    assert render_value_template("{{ value_json.x }}", b"ON") is None  # not JSON: value_json is undefined


@pytest.mark.parametrize(
    "template",
    [
        "{{ value_json.missing }}",
        "{{ value_json.state | float }}",  # not a number and no default: no reading (Home Assistant fails too)
        "{{ value_json.temperature.deeper }}",
        "{{ value_json.list[7] }}",
        "{{ value_json.humidity / 0 }}",
        "{{ value_json.missing | round(1) }}",
        "{% if value_json.missing %}{{ value_json.missing }}{% endif %}",  # says nothing: no reading
    ],
)
def test_a_template_that_finds_nothing_gives_no_reading(template: str) -> None:
    assert render_value_template(template, STATE) is None


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # code execution and escapes from the data
        ("{{ range(10**9) }}", "unknown name 'range'"),
        ("{{ cycler.__init__.__globals__ }}", "unknown name 'cycler'"),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", "unknown name 'lipsum'"),
        ("{{ value.__class__.__mro__[1].__subclasses__() }}", "member name '__class__' is not allowed"),
        ("{{ value_json['__class__'].x() }}", "unexpected '('"),
        ("{{ value_json.get('x') }}", "unexpected '('"),
        ("{{ self }}", "unknown name 'self'"),
        ("{{ 10 ** 10 ** 10 }}", "unexpected '*'"),
        ("{{ value | attr('__class__') }}", "filter 'attr' is not supported"),
        ("{{ value | map('upper') | list }}", "filter 'map' is not supported"),
        ("{{ value is callable }}", "test 'callable' is not supported"),
        # statements other than if
        ("{% for i in range(10) %}{{ i }}{% endfor %}", "statement 'for' is not supported"),
        ("{% set x = 1 %}{{ x }}", "statement 'set' is not supported"),
        ("{% macro m() %}{% endmacro %}", "statement 'macro' is not supported"),
        ("{% include 'x' %}", "statement 'include' is not supported"),
        ("{% raw %}{% endraw %}", "statement 'raw' is not supported"),
        # broken structure
        ("{% if true %}x", "without {% endif %}"),
        ("{% endif %}", "without {% if %}"),
        ("{% if true %}a{% else %}b{% else %}c{% endif %}", "after {% else %}"),
        ("{{ value_json.x", "without '}}'"),
        ("{{ value_json. }}", "expected more"),
        ("{{ 'a' 'b' }}", "unexpected"),
        ("{{ value_json.x | round(1, 2, 3, 4, 5, 6) }}", "too many filter arguments"),
        # size and depth
        ("{{ " + "(" * 40 + "1" + ")" * 40 + " }}", "nested too deeply"),
        ("{{ " + "-" * 40 + "1 }}", "nested too deeply"),
        ("{{ " + "not " * 40 + "1 }}", "nested too deeply"),
        ("{% if true %}" * 40 + "{% endif %}" * 40, "nested too deeply"),
        ("{{ value }}" * 200, f"over {MAX_TEMPLATE_CHARS}"),
    ],
)
def test_hostile_templates_are_refused_when_the_config_is_read(template: str, reason: str) -> None:
    with pytest.raises(TemplateSyntaxError) as refused:
        compile_template(template)
    assert reason in str(refused.value)
    with pytest.raises(PayloadError, match="value template not supported"):
        render_value_template(template, STATE)


def test_attribute_access_only_looks_inside_json() -> None:
    """``.name`` is a JSON member lookup: Python attributes of strings and dicts do not exist here."""
    assert render_value_template("{{ value.upper }}", b"text") is None
    assert render_value_template("{{ value_json.items }}", b'{"a": 1}') is None
    assert render_value_template("{{ value_json['__class__'] }}", b"{}") is None
    assert render_value_template("{{ value_json['__class__'] }}", b'{"__class__": 3}') == 3


def test_huge_numbers_texts_and_payloads_are_bounded() -> None:
    huge = "9" * 500
    assert render_value_template("{{ " + huge + " * " + huge + " }}", b"") is None  # past float: no reading
    assert render_value_template("{{ value_json.n + 1 }}", json.dumps({"n": 10**4000}).encode()) is None
    assert render_value_template("{{ value_json.n * 2 }}", b'{"n": 1e308}') is None  # infinite: no reading
    long_text = json.dumps({"t": "x" * 60_000}).encode()
    assert render_value_template("{{ value_json.t ~ value_json.t ~ value_json.t }}", long_text) is None
    assert render_value_template("{{ value_json.t }}" + " {{ value_json.t }}" * 40, long_text) is None
    with pytest.raises(PayloadError, match="over the"):
        render_value_template("{{ value }}", b"x" * (MAX_PAYLOAD_BYTES + 1))
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads gives up: value_json is undefined, no crash
    assert render_value_template("{{ value_json[0] }}", deep[:MAX_PAYLOAD_BYTES]) is None


# ------------------------------------------------------------------ the subset's first cases

BASIC_STATE = b'{"temperature": 21.64, "humidity": "48", "state": "ON", "ENERGY": {"Power": 1200}, "list": [1, 2]}'


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ value_json.temperature }}", 21.64),
        ("{{ value_json['temperature'] | round(1) }}", 21.6),
        ("{{ value_json.humidity | int }}", 48),
        ("{{ value_json.humidity | float + 1 }}", 49.0),
        ("{{ (value_json.ENERGY.Power | float) / 1000 }}", 1.2),
        ("{{ value_json.state | lower }}", "on"),
        ("{{ 'on' if value_json.state == 'ON' else 'off' }}", "on"),
        ("{{ value_json.missing | default('n/a') }}", "n/a"),
        ("{{ value_json.list[1] }}", 2),
        ("{{ value_json.temperature }} °C", "21.64 °C"),
        ("{{ -value_json.temperature }}", -21.64),
    ],
)
def test_supported_templates(template: str, expected: float | str) -> None:
    assert render_value_template(template, BASIC_STATE) == expected


def test_plain_value() -> None:
    assert render_value_template("{{ value }}", b" 21.5 ") == "21.5"
    assert render_value_template("{{ value | float }}", b"21.5") == 21.5


def test_a_missing_member_gives_no_reading() -> None:
    assert render_value_template("{{ value_json.nope }}", BASIC_STATE) is None
    assert render_value_template("{{ value_json.list[9] }}", BASIC_STATE) is None


@pytest.mark.parametrize(
    "template",
    [
        "{{ value_json.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ range(10**9) }}",
        "{{ cycler }}",
        "{% for x in value_json.list %}{{ x }}{% endfor %}",
        "{{ value_json.x | attr('y') }}",
        "{{ lipsum.__globals__ }}",
        "{{ value_json.temperature",
        "{{ (((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))) }}",
        "{{ 1 " + "+ 1 " * 600 + "}}",
    ],
)
def test_hostile_or_unsupported_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        compile_template(template)
    with pytest.raises(PayloadError, match="value template not supported"):
        render_value_template(template, BASIC_STATE)


def test_size_limit() -> None:
    with pytest.raises(TemplateSyntaxError, match=f"over {MAX_TEMPLATE_CHARS}"):
        compile_template("x" * (MAX_TEMPLATE_CHARS + 1))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200), st.binary(max_size=200))
def test_any_template_and_payload_render_or_are_refused(template: str, payload: bytes) -> None:
    try:
        value = render_value_template(template, payload)
    except PayloadError:
        return
    assert value is None or isinstance(value, bool | int | float | str)


_PIECES = st.sampled_from(
    [
        "value_json",
        "value",
        ".a",
        "['a']",
        "[0]",
        " | float",
        " | int",
        " | round(2)",
        " | default(1)",
        " + ",
        " * ",
        " / ",
        " == ",
        " if ",
        " else ",
        "(",
        ")",
        "1",
        "'x'",
        " and ",
        " not ",
        "-",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30), st.sampled_from([b'{"a": 1}', b'{"a": {"a": [0]}}', b"7", b"[]", b'"s"']))
def test_expressions_from_pieces_evaluate_or_are_refused(pieces: list[str], payload: bytes) -> None:
    template = "{{ " + "".join(pieces) + " }}"
    try:
        value = render_value_template(template, payload)
    except PayloadError:
        return
    assert value is None or isinstance(value, bool | int | float | str)


def _node_count(parts: tuple[object, ...]) -> int:
    count = 0
    for part in parts:
        count += 1
        node = getattr(part, "node", None)
        stack = [node] if node is not None else []
        while stack:
            current = stack.pop()
            count += 1
            stack += [a for a in current.args if hasattr(a, "kind")]
            stack += [b for a in current.args if isinstance(a, tuple) for b in a if hasattr(b, "kind")]
        for condition, body in getattr(part, "branches", ()):
            count += 1 + (condition is not None) + _node_count(body)
    return count


# ------------------------------------------------------------------ generated templates

_atoms = st.sampled_from(
    [
        "value",
        "value_json",
        "value_json.temperature",
        "value_json['state']",
        "value_json.list[1]",
        "value_json.missing",
        "1",
        "2.5",
        "'ON'",
        "none",
        "true",
    ]
)
_binary_ops = st.sampled_from(["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "and", "or", "in"])
_filters = st.sampled_from(
    ["float", "int", "round(1)", "default(0)", "lower", "string", "abs", "bool", "is_defined", "length", "trim"]
)
_tests = st.sampled_from(["is defined", "is not none", "is number", "is string"])
_expressions = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.tuples(inner, _binary_ops, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, _filters).map(lambda t: f"{t[0]} | {t[1]}"),
        st.tuples(inner, _tests).map(lambda t: f"({t[0]} {t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=12,
)
_templates = st.one_of(
    _expressions.map(lambda e: "{{ " + e + " }}"),
    st.tuples(_expressions, _expressions, _expressions).map(
        lambda t: "{% if " + t[0] + " %}{{ " + t[1] + " }}{% else %}x{{ " + t[2] + " }}{% endif %}"
    ),
)
_payloads = st.one_of(
    st.just(STATE),
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.dictionaries(st.sampled_from(["temperature", "state", "list", "x"]), st.integers() | st.text(max_size=5)).map(
        lambda d: json.dumps(d).encode()
    ),
)


@SOME
@given(_templates, _payloads)
@example("{{ (value_json.list | string) ~ (value_json.list | string) }}", STATE)
def test_generated_templates_give_a_reading_or_none(template: str, payload: bytes) -> None:
    try:
        parts = compile_template(template)
    except TemplateSyntaxError:
        return  # e.g. over the length limit: refused, which is allowed
    assert _node_count(parts) <= 2 * len(template)  # the tree grows with the text, never beyond it
    reading = render_value_template(template, payload)
    assert reading is None or isinstance(reading, bool | int | float | str)
    if isinstance(reading, str):
        assert len(reading) <= 256


@SOME
@given(st.text(max_size=300), _payloads)
@example("{{ value_json[value_json[value_json]] }}", STATE)
@example("{% if %}{% endif %}", b"")
@example("{{ }}", b"")
@example("{%%}", b"")
@example("{{ 'a' in 1 }}{{ 1 in 'a' }}", b"")
def test_any_text_is_a_template_or_refused(template: str, payload: bytes) -> None:
    try:
        compile_template(template)
    except TemplateSyntaxError:
        with pytest.raises(PayloadError):
            render_value_template(template, payload)
        return
    reading = render_value_template(template, payload)
    assert reading is None or isinstance(reading, bool | int | float | str)
