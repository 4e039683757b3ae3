"""Command payload templates (hub.core.payloads): typed placeholders, no code."""

from __future__ import annotations

import json

import pytest

from hub.core.codecs import Reading
from hub.core.payloads import TemplateError, fill, placeholders, render
from hub.core.profile import JsonValue

HUB_SET: JsonValue = {"id": "{cid}", "set": {"{property}": "{value}"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (21.5, b'{"id":"h-1","set":{"target":21.5}}'),
        (20, b'{"id":"h-1","set":{"target":20}}'),
        (True, b'{"id":"h-1","set":{"target":true}}'),
        ("eco", b'{"id":"h-1","set":{"target":"eco"}}'),
    ],
)
def test_a_whole_placeholder_takes_the_typed_value(value: Reading, expected: bytes) -> None:
    assert render(HUB_SET, {"cid": "h-1", "property": "target", "value": value}) == expected


def test_placeholders_inside_text_are_filled_as_text() -> None:
    template: JsonValue = {"cmd": "set {property}={value}", "flag": "{value}!"}
    assert fill(template, {"property": "power", "value": True}) == {"cmd": "set power=true", "flag": "true!"}
    assert fill("{verb} now", {"verb": "reboot"}) == "reboot now"


def test_a_string_template_is_sent_as_text_not_json() -> None:
    assert render("{value}", {"value": "ON"}) == b"ON"
    assert render("POWER {value}", {"value": 1}) == b"POWER 1"
    assert render("{value}", {"value": 21.5}) == b"21.5"  # a typed whole placeholder is JSON


def test_lists_and_literals_pass_through() -> None:
    template: JsonValue = ["{verb}", 1, None, False, {"k": ["{cid}"]}]
    assert fill(template, {"verb": "identify", "cid": "h-2"}) == ["identify", 1, None, False, {"k": ["h-2"]}]
    assert render(None, {}) == b"null"


def test_non_ascii_is_kept() -> None:
    assert render({"unit": "°C", "v": "{value}"}, {"value": "größer"}) == '{"unit":"°C","v":"größer"}'.encode()


@pytest.mark.parametrize(
    "template",
    [
        "{value.__class__}",
        "{value.__class__.__mro__}",
        "{value[0]}",
        "{0}",
        "{__import__('os').system('true')}",
        "{value!r}",
        "{value:>10}",
        "{ value }",
        "{}",
    ],
)
def test_no_attribute_access_or_format_spec(template: str) -> None:
    # Only {name} is a placeholder; anything else is literal text, never evaluated.
    assert fill(template, {"value": 21.5}) == template
    assert fill({"k": template}, {"value": 21.5}) == {"k": template}
    assert placeholders(template) == set()


def test_attribute_like_text_next_to_a_real_placeholder() -> None:
    assert fill("{value}.__class__ {value.__class__}", {"value": 1}) == "1.__class__ {value.__class__}"


@pytest.mark.parametrize(
    "template",
    ["{valeu}", "x {valeu} y", {"set": "{valeu}"}, {"{valeu}": 1}, ["{valeu}"]],
)
def test_missing_placeholder_is_a_template_error(template: JsonValue) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, {"value": 1})
    assert str(caught.value) == "placeholder {valeu} has no value"


def test_placeholders_lists_every_name() -> None:
    assert placeholders(HUB_SET) == {"cid", "property", "value"}
    assert placeholders(["{a}", {"{b}": "x{c}y"}, 3, None]) == {"a", "b", "c"}
    assert placeholders([]) == set()


def test_rendered_json_round_trips() -> None:
    values: dict[str, Reading] = {"cid": 'q"uote\\', "property": "mode", "value": "a\nb"}
    assert json.loads(render(HUB_SET, values)) == {"id": 'q"uote\\', "set": {"mode": "a\nb"}}
