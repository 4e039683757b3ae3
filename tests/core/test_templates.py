"""Value templates: the subset devices use is evaluated as data; everything else is refused up front."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.codecs import PayloadError
from hub.core.templates import MAX_TEMPLATE_CHARS, TemplateSyntaxError, compile_template, render_value_template

STATE = b'{"temperature": 21.64, "humidity": "48", "state": "ON", "ENERGY": {"Power": 1200}, "list": [1, 2]}'


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
    assert render_value_template(template, STATE) == expected


def test_plain_value() -> None:
    assert render_value_template("{{ value }}", b" 21.5 ") == "21.5"
    assert render_value_template("{{ value | float }}", b"21.5") == 21.5


def test_a_missing_member_gives_no_reading() -> None:
    assert render_value_template("{{ value_json.nope }}", STATE) is None
    assert render_value_template("{{ value_json.list[9] }}", STATE) is None


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
        render_value_template(template, STATE)


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
