"""Topic ⇄ device ⇄ JID routing (hub.core.mapping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.mapping import MEMO_LIMIT, Binding, MappingError, Route, Router, TopicRole
from hub.core.profile import AvailabilitySpec, CommandSpec, DiscoverySpec, Profile, TelemetrySpec
from hub.core.topics import TopicTemplate, filter_matches

DOMAIN = "hub.example"

t = TopicTemplate.parse


def _zigbee_profile(availability: str | None = None) -> Profile:
    return Profile(
        name="z2m",
        telemetry=(TelemetrySpec(t("{base}/{id+}")),),
        availability=(AvailabilitySpec(t(availability)),) if availability else (),
        defaults={"base": "zigbee2mqtt"},
    )


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("topic", "role", "device_id"),
    [
        ("devices/k1/status", TopicRole.AVAILABILITY, "k1"),
        ("devices/k1/telemetry", TopicRole.TELEMETRY, "k1"),
        ("devices/k1/cmd", TopicRole.COMMAND, "k1"),
        ("devices/k1/cmd/result", TopicRole.RESULT, "k1"),
        ("devices/Kitchen Temp/telemetry", TopicRole.TELEMETRY, "Kitchen Temp"),
    ],
)
def test_routes_the_hub_convention(hub_binding: Binding, topic: str, role: TopicRole, device_id: str) -> None:
    router = Router([hub_binding], DOMAIN)
    assert router.route(topic) == Route(hub_binding, role, device_id, 0)


@pytest.mark.parametrize(
    "topic",
    [
        "devices/k1",
        "devices/k1/other",
        "devices/a/b/telemetry",
        "devices//telemetry",
        "home/k1/telemetry",
        "$SYS/broker/uptime",
        "devices/k1/cmd/result/extra",
    ],
)
def test_unclaimed_topics_route_nowhere(hub_binding: Binding, topic: str) -> None:
    assert Router([hub_binding], DOMAIN).route(topic) is None


def test_routing_answers_stay_the_same_when_remembered_and_past_the_memo_limit(hub_binding: Binding) -> None:
    router = Router([hub_binding], DOMAIN)
    expected = Route(hub_binding, TopicRole.TELEMETRY, "k1")
    assert router.route("devices/k1/telemetry") == expected
    assert router.route("devices/k1/telemetry") == expected  # from the memo
    assert router.route("devices/+/telemetry") is None
    for n in range(MEMO_LIMIT + 10):  # a flood of made-up topics: the memo starts afresh, answers do not change
        assert router.route(f"junk/{n}") is None
        assert router.jid_for(hub_binding, f"d{n}") == f"d{n}@hub.example"
    assert len(router._routes) <= MEMO_LIMIT and len(router._jids) <= MEMO_LIMIT
    assert router.route("devices/k1/telemetry") == expected
    assert router.route("devices/+/telemetry") is None


def test_remembered_jids_tell_bindings_with_other_prefixes_apart(hub_profile: Profile) -> None:
    plain = Binding("lab", hub_profile, {"base": "lab"})
    prefixed = Binding("lab", hub_profile, {"base": "lab"}, jid_prefix="lab-")
    router = Router([plain], DOMAIN)
    assert router.jid_for(plain, "k1") == "k1@hub.example"
    assert router.jid_for(prefixed, "k1") == "lab-k1@hub.example"
    with pytest.raises(MappingError):  # errors are not remembered as answers
        router.jid_for(plain, " padded")
    with pytest.raises(MappingError):
        router.jid_for(plain, " padded")


def test_binding_slots_override_profile_defaults(hub_profile: Profile) -> None:
    home = Binding("home", hub_profile, {"base": "home/things"})
    router = Router([home], DOMAIN)
    assert router.route("home/things/k1/telemetry") == Route(home, TopicRole.TELEMETRY, "k1", 0)
    assert router.route("devices/k1/telemetry") is None
    assert router.topic_for(home, hub_profile.commands.topic, "k1") == "home/things/k1/cmd"  # type: ignore[union-attr]


def test_default_base_is_devices(hub_profile: Profile) -> None:
    binding = Binding("hub", hub_profile)
    assert Router([binding], DOMAIN).route("devices/k1/status") == Route(binding, TopicRole.AVAILABILITY, "k1", 0)


def test_two_bases_of_one_profile_route_apart(hub_profile: Profile) -> None:
    first = Binding("first", hub_profile, {"base": "devices"})
    second = Binding("second", hub_profile, {"base": "lab"})
    router = Router([first, second], DOMAIN)
    assert router.route("devices/k1/telemetry") == Route(first, TopicRole.TELEMETRY, "k1", 0)
    assert router.route("lab/k1/telemetry") == Route(second, TopicRole.TELEMETRY, "k1", 0)


def test_multi_level_ids_next_to_the_hub_convention(hub_binding: Binding) -> None:
    zigbee = Binding("zigbee", _zigbee_profile())
    router = Router([hub_binding, zigbee], DOMAIN)
    assert router.route("zigbee2mqtt/hall/lamp") == Route(zigbee, TopicRole.TELEMETRY, "hall/lamp", 0)
    assert router.route("devices/k1/telemetry") == Route(hub_binding, TopicRole.TELEMETRY, "k1", 0)


def test_subscription_filters(hub_binding: Binding) -> None:
    zigbee = Binding("zigbee", _zigbee_profile())
    router = Router([hub_binding, zigbee], DOMAIN)
    # Sorted, de-duplicated, and never the hub's own command topic.
    assert router.subscription_filters() == (
        "devices/+/cmd/result",
        "devices/+/status",
        "devices/+/telemetry",
        "zigbee2mqtt/#",
    )


# ---------------------------------------------------------------- ambiguity


def test_same_profile_same_base_twice_is_refused(hub_profile: Profile) -> None:
    first = Binding("first", hub_profile, {"base": "devices"})
    second = Binding("second", hub_profile, {"base": "devices"})
    with pytest.raises(MappingError) as caught:
        Router([first, second], DOMAIN)
    message = str(caught.value)
    assert message.startswith("ambiguous rules: ")
    assert "binding 'first'" in message
    assert "binding 'second'" in message
    assert message.endswith("can match the same topic")


def test_overlapping_templates_of_different_profiles_are_refused(hub_binding: Binding) -> None:
    catch_all = Binding("catch-all", _zigbee_profile(), {"base": "devices"})
    with pytest.raises(MappingError) as caught:
        Router([hub_binding, catch_all], DOMAIN)
    assert str(caught.value) == (
        "ambiguous rules: availability topic 'devices/{id}/status' of binding 'hub' and telemetry topic "
        "'devices/{id+}' of binding 'catch-all' can match the same topic"
    )


def test_overlapping_rules_inside_one_profile_are_refused() -> None:
    # zigbee2mqtt/<name>/availability also matches zigbee2mqtt/{id+}.
    binding = Binding("zigbee", _zigbee_profile(availability="{base}/{id+}/availability"))
    with pytest.raises(MappingError) as caught:
        Router([binding], DOMAIN)
    assert str(caught.value) == (
        "ambiguous rules: availability topic 'zigbee2mqtt/{id+}/availability' of binding 'zigbee' and "
        "telemetry topic 'zigbee2mqtt/{id+}' of binding 'zigbee' can match the same topic"
    )


def test_binding_name_twice_is_refused(hub_profile: Profile) -> None:
    with pytest.raises(MappingError, match="binding 'hub' is defined twice"):
        Router([Binding("hub", hub_profile, {"base": "a"}), Binding("hub", hub_profile, {"base": "b"})], DOMAIN)


def test_template_without_a_value_for_a_slot_is_refused() -> None:
    profile = Profile(name="p", telemetry=(TelemetrySpec(t("{site}/{id}/data")),))
    with pytest.raises(MappingError) as caught:
        Router([Binding("p", profile)], DOMAIN)
    assert str(caught.value) == "binding 'p': telemetry topic '{site}/{id}/data' needs a value for {site}"


def test_template_without_the_id_slot_is_refused() -> None:
    profile = Profile(name="p", commands=CommandSpec(t("all/cmd")))
    with pytest.raises(MappingError, match=r"command topic 'all/cmd' has no \{id\} slot"):
        Router([Binding("p", profile)], DOMAIN)


# ---------------------------------------------------------------- JIDs


@pytest.mark.parametrize(
    ("device_id", "jid"),
    [
        ("k1", "k1@hub.example"),
        ("Kitchen Temp", "kitchen\\20temp@hub.example"),
        ("aa:bb:cc", "aa\\3abb\\3acc@hub.example"),
        ("hall/lamp", "hall\\2flamp@hub.example"),
    ],
)
def test_jid_for(hub_binding: Binding, device_id: str, jid: str) -> None:
    router = Router([hub_binding], "Hub.Example")
    assert router.jid_for(hub_binding, device_id) == jid
    assert router.device_id_for(hub_binding, jid) == device_id.lower()


def test_jid_prefix(hub_profile: Profile) -> None:
    binding = Binding("lab", hub_profile, {"base": "lab"}, jid_prefix="lab-")
    router = Router([binding], DOMAIN)
    assert router.jid_for(binding, "k1") == "lab-k1@hub.example"
    assert router.device_id_for(binding, "lab-k1@hub.example") == "k1"
    assert router.device_id_for(binding, "k1@hub.example") is None


def test_device_id_for_other_jids(hub_binding: Binding) -> None:
    router = Router([hub_binding], DOMAIN)
    assert router.device_id_for(hub_binding, "k1@other.example") is None
    assert router.device_id_for(hub_binding, DOMAIN) is None
    assert router.device_id_for(hub_binding, "K1@Hub.Example/resource") == "k1"


@pytest.mark.parametrize("device_id", ["", " padded", "tab\tid"])
def test_jid_for_bad_ids_is_a_mapping_error(hub_binding: Binding, device_id: str) -> None:
    with pytest.raises(MappingError):
        Router([hub_binding], DOMAIN).jid_for(hub_binding, device_id)


_lower_ids = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40).filter(
    lambda s: s[0] != " " and s[-1] != " " and s == s.lower()
)


@given(_lower_ids, st.sampled_from(["", "lab-", "x_"]))
def test_device_id_for_inverts_jid_for(hub_profile: Profile, device_id: str, prefix: str) -> None:
    binding = Binding("hub", hub_profile, {"base": "devices"}, jid_prefix=prefix)
    router = Router([binding], DOMAIN)
    jid = router.jid_for(binding, device_id)
    assert jid == jid.lower()
    assert jid.endswith("@" + DOMAIN)
    assert router.device_id_for(binding, jid) == device_id


def test_device_namespaces_cover_every_topic_of_a_device(hub_binding: Binding) -> None:
    """The embedded broker's default ACL: each device's topics lie under one namespace per prefix."""
    zigbee = Binding("z2m", _zigbee_profile())
    router = Router((hub_binding, zigbee), "hub.example")
    assert router.device_namespaces("{username}") == ("devices/{username}/#", "zigbee2mqtt/{username}/#")
    for topic in ("devices/k1/status", "devices/k1/telemetry", "devices/k1/cmd", "devices/k1/cmd/result"):
        assert filter_matches("devices/k1/#", topic)


def test_a_discovery_topic_is_no_device_route_and_the_answer_is_remembered() -> None:
    family = Profile(name="fam", discovery=(DiscoverySpec(t("fam/{node}/config"), "test-inventory"),))
    binding = Binding("fam", family)
    router = Router([binding], DOMAIN)
    found = router.discovery_rule("fam/a/config")
    assert found == Route(binding, TopicRole.DISCOVERY, "", 0)
    assert router.routes("fam/a/config") == []  # described by it, read by no device
    assert router.route("fam/a/config") is found  # one lookup, remembered, serves both questions
    assert router.discovery_rule("fam/a/other") is None
