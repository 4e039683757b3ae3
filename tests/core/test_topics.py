"""Topic names, filters and templates (hub.core.topics)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.topics import (
    TopicError,
    TopicTemplate,
    filter_matches,
    validate_topic_filter,
    validate_topic_name,
)

# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("devices/+/status", "devices/k1/status", True),
        ("devices/+/status", "devices/k1/telemetry", False),
        ("devices/+/status", "devices/a/b/status", False),
        ("devices/#", "devices/k1/status", True),
        ("devices/#", "devices", True),  # '#' also matches the parent level (MQTT 3.1.1 §4.7.1.2)
        ("devices/#", "other/k1", False),
        ("#", "anything/at/all", True),
        ("+", "one", True),
        ("+", "one/two", False),
        ("+/+", "/x", True),  # an empty level is a level
        ("devices/+", "devices/", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("A/b", "a/b", False),  # topics are case-sensitive
    ],
)
def test_filter_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("#", "$SYS/broker/uptime", False),
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("+/#", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("$SYS/+/uptime", "$SYS/broker/uptime", True),
        ("#", "devices/$weird", True),  # only a leading '$' is special
        ("devices/+", "devices/$weird", True),
    ],
)
def test_leading_wildcard_never_matches_dollar_topics(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("topic_filter", ["#", "+", "a/+/b", "a/#", "+/+/#", "$SYS/#", "a//b"])
def test_valid_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "reason"),
    [
        ("", "filter is empty"),
        ("a/#/b", "'#' must be a whole, last level"),
        ("a/b#", "'#' must be a whole, last level"),
        ("a+/b", "'+' must be a whole level"),
        ("a/+b", "'+' must be a whole level"),
    ],
)
def test_invalid_filters(topic_filter: str, reason: str) -> None:
    with pytest.raises(TopicError, match=re.escape(reason)):
        validate_topic_filter(topic_filter)


@pytest.mark.parametrize("topic", ["a", "a/b/c", "/leading", "trailing/", "$SYS/x", "with space", "ünïcode"])
def test_valid_topic_names(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("", "topic is empty"),
        ("a/+/b", "contains a wildcard"),
        ("a/#", "contains a wildcard"),
        ("a\x00b", "NUL"),
        ("x" * 65536, "longer than 65535 bytes"),
        ("é" * 32768, "longer than 65535 bytes"),  # bytes, not characters
    ],
)
def test_invalid_topic_names(topic: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        validate_topic_name(topic)


def test_topic_of_exactly_max_bytes_is_valid() -> None:
    validate_topic_name("x" * 65535)


# ---------------------------------------------------------------- templates


def test_parse_slots_and_filter() -> None:
    template = TopicTemplate.parse("{base}/{id}/telemetry")
    assert template.slots == ("base", "id")
    assert template.as_filter() == "+/+/telemetry"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "empty"),
        ("a/{1x}/b", "bad slot name"),
        ("a/{}/b", "bad slot name"),
        ("a/{+}/b", "bad slot name"),
        ("a/{id.attr}", "bad slot name"),
        ("{id}/{id}", "appears twice"),
        ("{id}/{id+}", "appears twice"),
        ("a/x{id}", "must be a whole"),
        ("a/{id}x", "must be a whole"),
        ("a/+/b", "must be a whole"),
        ("a/#", "must be a whole"),
        ("{a+}/{b+}", "at most one multi-level slot"),
    ],
)
def test_parse_refuses(source: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        TopicTemplate.parse(source)


def test_match_single_level_slots() -> None:
    template = TopicTemplate.parse("devices/{id}/telemetry")
    assert template.match("devices/k1/telemetry") == {"id": "k1"}
    assert template.match("devices/k1/status") is None
    assert template.match("devices/a/b/telemetry") is None
    assert template.match("devices//telemetry") is None  # a slot never matches an empty level
    assert template.match("other/k1/telemetry") is None
    assert template.match("devices/k1") is None


def test_match_multi_level_slot() -> None:
    template = TopicTemplate.parse("zigbee2mqtt/{id+}/availability")
    assert template.match("zigbee2mqtt/lamp/availability") == {"id": "lamp"}
    assert template.match("zigbee2mqtt/living room/lamp/availability") == {"id": "living room/lamp"}
    assert template.match("zigbee2mqtt/availability") is None  # {id+} needs at least one level
    assert template.match("zigbee2mqtt/a//b/availability") is None  # no empty level inside
    assert template.match("zigbee2mqtt/lamp/state") is None
    tail = TopicTemplate.parse("{base}/{id+}")
    assert tail.match("z/a/b/c") == {"base": "z", "id": "a/b/c"}
    assert tail.match("z") is None


def test_format() -> None:
    assert TopicTemplate.parse("devices/{id}/cmd").format({"id": "k1"}) == "devices/k1/cmd"
    assert TopicTemplate.parse("z/{id+}/set").format({"id": "hall/lamp"}) == "z/hall/lamp/set"


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("devices/{id}/cmd", ""),
        ("devices/{id}/cmd", "a/b"),  # one level only
        ("devices/{id}/cmd", "a+"),
        ("devices/{id}/cmd", "a#"),
        ("z/{id+}/set", "a//b"),  # match() would never give these back
        ("z/{id+}/set", "a/"),
        ("z/{id+}/set", "/a"),
        ("z/{id+}/set", "#"),
    ],
)
def test_format_refuses_values_that_do_not_fit(source: str, value: str) -> None:
    with pytest.raises(TopicError, match="does not fit template"):
        TopicTemplate.parse(source).format({"id": value})


def test_substitute_keeps_unfilled_slots() -> None:
    template = TopicTemplate.parse("{base}/{id}/status").substitute({"base": "home/devices"})
    assert template.source == "home/devices/{id}/status"
    assert template.slots == ("id",)
    assert template.match("home/devices/k1/status") == {"id": "k1"}
    multi = TopicTemplate.parse("{base}/{id+}").substitute({"base": "z"})
    assert multi.source == "z/{id+}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("devices/{id}/telemetry", "devices/+/telemetry"),
        ("z/{id+}", "z/#"),
        ("z/{id+}/availability", "z/#"),  # '#' must be last: it covers the levels after it
        ("{site}/{id+}/state/{channel}", "+/#"),
    ],
)
def test_as_filter_is_a_valid_filter(source: str, expected: str) -> None:
    topic_filter = TopicTemplate.parse(source).as_filter()
    assert topic_filter == expected
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("devices/{id}/status", "devices/{id}/telemetry", False),
        ("devices/{id}/status", "devices/{x}/status", True),
        ("devices/{id}/cmd", "devices/{id}/cmd/result", False),
        ("devices/{id}/status", "{a}/{b}/{c}", True),
        ("devices/{id}/status", "home/{id}/status", False),
        ("zigbee2mqtt/{id+}", "zigbee2mqtt/{id}/availability", True),
        ("zigbee2mqtt/{id+}", "zigbee2mqtt/{id+}/availability", True),
        ("zigbee2mqtt/{id+}/availability", "zigbee2mqtt/{id+}", True),
        ("{id+}/a", "{id+}", True),
        ("{id+}/a", "{id+}/b", False),
        ("a/{id+}/a", "{x}/{id+}", True),
        ("zigbee2mqtt/{id+}", "zigbee2mqtt", False),  # {id+} needs one level
        ("tasmota/{id}/tele", "zigbee2mqtt/{id+}", False),
    ],
)
def test_overlaps(first: str, second: str, expected: bool) -> None:
    a, b = TopicTemplate.parse(first), TopicTemplate.parse(second)
    assert a.overlaps(b) is expected
    assert b.overlaps(a) is expected


def _small_templates() -> list[TopicTemplate]:
    out = []
    for n in range(1, 4):
        for combo in itertools.product(["a", "b", "{x}", "{y+}"], repeat=n):
            if combo.count("{y+}") > 1:
                continue
            parts = [p.replace("x", f"x{i}") for i, p in enumerate(combo)]
            out.append(TopicTemplate.parse("/".join(parts)))
    return out


def test_overlaps_agrees_with_brute_force_matching() -> None:
    """Every template of up to three levels against every topic of up to five levels."""
    templates = _small_templates()
    topics = ["/".join(t) for n in range(1, 6) for t in itertools.product("abc", repeat=n)]
    matched = {t.source: {topic for topic in topics if t.match(topic) is not None} for t in templates}
    wrong = [
        (a.source, b.source)
        for a in templates
        for b in templates
        if a.overlaps(b) != bool(matched[a.source] & matched[b.source])
    ]
    assert wrong == []


# ---------------------------------------------------------------- properties

_level = st.text(
    alphabet=st.characters(exclude_characters="/+#\x00", exclude_categories=["Cs"]), min_size=1, max_size=8
)
_multi = st.lists(_level, min_size=1, max_size=4).map("/".join)

TEMPLATES = [
    "devices/{id}/telemetry",
    "{base}/{id}/cmd/result",
    "zigbee2mqtt/{id+}",
    "zigbee2mqtt/{id+}/availability",
    "{site}/{id+}/state/{channel}",
    "homie/{id}/{node}/{prop}",
]


def _values_for(template: TopicTemplate) -> st.SearchStrategy[dict[str, str]]:
    multi = {name for name in template.slots if "{" + name + "+}" in template.source}
    return st.fixed_dictionaries({name: (_multi if name in multi else _level) for name in template.slots})


@given(st.sampled_from(TEMPLATES).flatmap(lambda s: st.tuples(st.just(s), _values_for(TopicTemplate.parse(s)))))
def test_match_of_format_gives_the_values_back(case: tuple[str, dict[str, str]]) -> None:
    source, values = case
    template = TopicTemplate.parse(source)
    topic = template.format(values)
    validate_topic_name(topic)
    assert template.match(topic) == values
    validate_topic_filter(template.as_filter())
    # The filter covers the topic, except that a leading wildcard never matches a '$' topic.
    assert filter_matches(template.as_filter(), topic) or (topic.startswith("$") and source.startswith("{"))


@given(
    st.sampled_from(TEMPLATES),
    st.lists(st.sampled_from(["devices", "zigbee2mqtt", "x", "", "state", "telemetry", "a b", "é"]), max_size=7),
)
def test_format_of_match_gives_the_topic_back(source: str, levels: list[str]) -> None:
    template = TopicTemplate.parse(source)
    topic = "/".join(levels)
    values = template.match(topic)
    if values is not None:
        assert template.format(values) == topic


@given(st.sampled_from(TEMPLATES).flatmap(lambda s: st.tuples(st.just(s), _values_for(TopicTemplate.parse(s)))))
def test_format_of_match_gives_generated_topics_back(case: tuple[str, dict[str, str]]) -> None:
    source, values = case
    template = TopicTemplate.parse(source)
    topic = template.format(values)
    matched = template.match(topic)
    assert matched is not None
    assert template.format(matched) == topic
