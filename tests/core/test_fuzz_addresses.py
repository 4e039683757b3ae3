"""Hostile input, part 2: topic names and filters, topic templates, XEP-0106 JIDs and the router.

Addresses come from devices (topics) and from anyone on the XMPP network
(JIDs). Each function returns a value or its own error type; templates stay
reversible and a topic can never be formatted with a wildcard or an extra level.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from hub.core.jid import JidError, bare, escape_localpart, split_bare, unescape_localpart
from hub.core.mapping import Binding, MappingError, Router, TopicRole
from hub.core.profile import Profile
from hub.core.topics import (
    TopicError,
    TopicTemplate,
    filter_matches,
    validate_topic_filter,
    validate_topic_name,
)

MANY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_level_chars = st.sampled_from(["a", "b", "k1", "", "+", "#", "$", " ", "é", "\x00", "{", "}", "{id}", "{id+}", "/"])
_levels = st.lists(st.one_of(st.text(max_size=4), _level_chars), min_size=1, max_size=5)
_topics = st.one_of(st.text(max_size=40), _levels.map("/".join))
_names = st.lists(st.sampled_from(["a", "b", "devices", "x", "$SYS", "é", " "]), min_size=1, max_size=5).map("/".join)


@MANY
@given(_topics)
def test_topic_validation_raises_only_topic_error(text: str) -> None:
    for check in (validate_topic_name, validate_topic_filter):
        with contextlib.suppress(TopicError):
            check(text)


@MANY
@given(_topics, _topics)
def test_filter_matching_never_fails_and_honours_wildcards(topic_filter: str, topic: str) -> None:
    try:
        validate_topic_filter(topic_filter)
        validate_topic_name(topic)
    except TopicError:
        return
    matched = filter_matches(topic_filter, topic)
    if "+" not in topic_filter and "#" not in topic_filter:
        assert matched == (topic_filter == topic)
    if topic_filter == "#":
        assert matched == (not topic.startswith("$"))


_template_sources = st.lists(
    st.one_of(st.sampled_from(["devices", "{id}", "{id+}", "{base}", "tele", "x"]), st.text(max_size=4)),
    min_size=1,
    max_size=5,
).map("/".join)


@MANY
@given(_template_sources, _topics)
def test_templates_parse_match_and_format_back(source: str, topic: str) -> None:
    try:
        template = TopicTemplate.parse(source)
    except TopicError:
        return
    validate_topic_filter(template.as_filter())
    try:
        validate_topic_name(topic)
    except TopicError:
        assume(False)
    values = template.match(topic)
    if values is None:
        return
    assert filter_matches(template.as_filter(), topic) or topic.startswith("$")
    assert template.format(values) == topic


@MANY
@given(_template_sources, st.dictionaries(st.sampled_from(["id", "base"]), st.text(max_size=8)))
def test_format_refuses_values_that_would_change_the_topic_shape(source: str, values: dict[str, str]) -> None:
    """A device id or slot value can never add a level, a wildcard or an empty level."""
    try:
        template = TopicTemplate.parse(source)
    except TopicError:
        return
    assume(all(slot in values for slot in template.slots))
    try:
        topic = template.format(values)
    except TopicError:
        return
    assert "+" not in topic and "#" not in topic
    assert template.match(topic) == {slot: values[slot] for slot in template.slots}


@SOME
@given(_template_sources, _template_sources, _names)
def test_overlap_check_is_sound(first: str, second: str, topic: str) -> None:
    """If one topic matches both templates, the start-up check must have called them overlapping."""
    try:
        a, b = TopicTemplate.parse(first), TopicTemplate.parse(second)
    except TopicError:
        return
    if a.match(topic) is not None and b.match(topic) is not None:
        assert a.overlaps(b) and b.overlaps(a)


_ids = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.sampled_from(list(" \"&'/:<>@\\20253a5cxX")), max_size=12),
    st.sampled_from(["\\20", "\\5c", "a\\", "\\", " x", "x ", "\x7f", "\ud7ff", "A" * 1100]),
)


@MANY
@given(_ids)
def test_escape_round_trips_or_refuses(raw: str) -> None:
    try:
        escaped = escape_localpart(raw)
    except JidError:
        return
    assert unescape_localpart(escaped) == raw
    assert not set(escaped) & set(" \"&'/:<>@")


@MANY
@given(st.text(max_size=60))
def test_jid_helpers_take_any_text(text: str) -> None:
    unescape_localpart(text)
    assert "/" not in bare(text)
    node, domain = split_bare(text)
    assert node is None or "@" not in domain


DOMAIN = "hub.example"


def _router(profile: Profile, prefix: str = "") -> tuple[Router, Binding]:
    binding = Binding("hub", profile, {"base": "devices"}, jid_prefix=prefix)
    return Router((binding,), DOMAIN), binding


@MANY
@given(st.one_of(_topics, _ids.map(lambda device: f"devices/{device}/telemetry")), st.sampled_from(["", "lab-"]))
@example(topic="devices/+/telemetry", prefix="")  # routed to a device '+' whose command topic raised
@example(topic="devices/#/status", prefix="")
def test_router_routes_any_topic_or_declines(hub_profile: Profile, topic: str, prefix: str) -> None:
    router, binding = _router(hub_profile, prefix)
    route = router.route(topic)
    if route is None:
        return
    assert route.binding is binding
    assert route.device_id and "/" not in route.device_id
    assert "+" not in route.device_id and "#" not in route.device_id
    try:
        jid = router.jid_for(binding, route.device_id)
    except MappingError:
        return
    assert jid.endswith("@" + DOMAIN)
    if route.device_id == route.device_id.lower():
        assert router.device_id_for(binding, jid) == route.device_id
    if route.role is not TopicRole.COMMAND:
        # The hub's own command topic for the device is well formed.
        assert hub_profile.commands is not None
        assert (
            router.topic_for(binding, hub_profile.commands.topic, route.device_id) == f"devices/{route.device_id}/cmd"
        )


@MANY
@given(st.text(max_size=40))
def test_device_id_for_any_jid(hub_profile: Profile, jid: str) -> None:
    router, binding = _router(hub_profile)
    device_id = router.device_id_for(binding, jid)
    assert device_id is None or isinstance(device_id, str)
