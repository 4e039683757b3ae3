"""Profile files → core Profile values, and errors that name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from device_profiles.loader import BUILTIN_DIR, builtin_profiles, load_profile, load_profiles
from device_profiles.schema import ProfileModel
from hub.core.mapping import Binding, MappingError, Router
from hub.core.profile import PropertyKind, Role
from hub.validation import ConfigError, Problem

SHIPPED = sorted(BUILTIN_DIR.glob("*.yaml"))


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    return list(caught.value.problems)


# ---------------------------------------------------------------- shipped profiles


def test_there_are_shipped_profiles() -> None:
    assert "hub.yaml" in {p.name for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_profile_loads_and_routes(path: Path) -> None:
    profile = load_profile(path)
    # A profile applied with its defaults must give unambiguous routing rules.
    router = Router([Binding(profile.name, profile)], "hub.example")
    assert router.subscription_filters()


def test_builtin_profiles_are_keyed_by_name() -> None:
    profiles = builtin_profiles()
    assert set(profiles) == {load_profile(p).name for p in SHIPPED}


def test_hub_profile_content() -> None:
    hub = builtin_profiles()["hub"]
    assert hub.defaults == {"base": "devices"}
    assert hub.expected_interval == 120
    assert [a.topic.source for a in hub.availability] == ["{base}/{id}/status"]
    assert hub.availability[0].sleeping == ("sleeping",)
    assert [t.topic.source for t in hub.telemetry] == ["{base}/{id}/telemetry"]
    assert hub.commands is not None
    assert hub.commands.set_payload == {"id": "{cid}", "set": {"{property}": "{value}"}}
    assert hub.commands.verb_payload == {"id": "{cid}", "action": "{verb}"}
    assert hub.result is not None
    assert hub.result.topic.source == "{base}/{id}/cmd/result"
    target = hub.properties["target"]
    assert (target.kind, target.minimum, target.maximum, target.step, target.unit) == (
        PropertyKind.NUMBER,
        5,
        35,
        0.5,
        "°C",
    )
    assert hub.properties["mode"].choices == ("auto", "heat", "eco", "off")
    assert hub.verbs["reboot"].role is Role.ADMIN
    assert hub.verbs["identify"].role is Role.OPERATOR
    assert hub.switch is not None
    assert hub.switch.property == "power"
    assert hub.readings["temperature"].show_label is False
    assert hub.readings["battery"].label == "battery"
    assert hub.readings["mode"].unit == ""


def test_json_schema_is_strict() -> None:
    schema = ProfileModel.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "name" in schema["required"]


# ---------------------------------------------------------------- broken profiles


def test_unknown_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        description: a typo below
        telemetry:
          - topic: "x/{id}/t"
            codex: json
        """,
    )
    assert problems(path) == [Problem(str(path), 5, "telemetry.0.codex", "unknown field (check the spelling)")]
    assert str(ConfigError(problems(path))) == f"{path}:5: telemetry.0.codex: unknown field (check the spelling)"


def test_several_field_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        colour: red
        properties:
          target: {kind: number, min: 40, max: 10}
          mode:
            kind: enum
          level: {kind: integer, step: 0}
          relay: {kind: boolean, choices: ["a"]}
        """,
    )
    found = {(p.line, p.field, p.reason) for p in problems(path)}
    assert found == {
        (2, "colour", "unknown field (check the spelling)"),
        (4, "properties.target", "min 40.0 is above max 10.0"),
        (6, "properties.mode", "an enum property needs 'choices'"),
        (7, "properties.level.step", "Input should be greater than 0"),
        (8, "properties.relay", "'choices' only fits kind 'enum'"),
    }


def test_set_payload_with_an_unknown_placeholder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        commands:
          topic: "x/{id}/cmd"
          set_payload: {id: "{cid}", set: "{valeu}"}
        """,
    )
    assert problems(path) == [Problem(str(path), 4, "commands.set_payload", "unknown placeholders ['valeu']")]


def test_attribute_access_is_not_a_placeholder(tmp_path: Path) -> None:
    # '{value.__class__}' is literal text, not a placeholder: the profile loads and it stays text.
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        commands:
          topic: "x/{id}/cmd"
          set_payload: "{value.__class__}"
        """,
    )
    assert load_profile(path).commands.set_payload == "{value.__class__}"  # type: ignore[union-attr]


def test_switch_property_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        commands:
          topic: "x/{id}/cmd"
          set_payload: "{value}"
        properties:
          relay: {kind: boolean}
        switch:
          property: power
        """,
    )
    assert problems(path) == [Problem(str(path), 8, "switch.property", "'power' is not in properties")]
    assert str(ConfigError(problems(path))) == f"{path}:8: switch.property: 'power' is not in properties"


def test_switch_channel_property_needs_channel(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        name: p
        commands: {topic: "x/{id}/cmd", set_payload: "{value}"}
        properties: {relay: {kind: boolean}}
        switch:
          property: relay
          channel_property: relay
        """,
    )
    assert problems(path) == [Problem(str(path), 6, "switch.channel_property", "needs a {channel} placeholder")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'telemetry:\n  - topic: "x/t"\n',
            (3, "telemetry.0.topic", "'x/t' has no {id} slot"),
        ),
        (
            'telemetry:\n  - topic: "{site}/{id}/t"\n',
            (3, "telemetry.0.topic", "'{site}/{id}/t' uses ['site'] without a default"),
        ),
        (
            'telemetry:\n  - topic: "x/{id}/t"\n    codec: plain\n',
            (3, "telemetry.0", "a plain codec needs 'field': the name of the reading"),
        ),
        (
            'telemetry:\n  - topic: "x/{id}/t"\n    codec: xml\n',
            (4, "telemetry.0.codec", "unknown codec 'xml'; known: json, plain"),
        ),
        (
            'availability:\n  topic: "x/{id}+/s"\n',
            (3, "availability.0.topic", "template 'x/{id}+/s': level '{id}+' must be a whole {slot} or plain text"),
        ),
        (
            "properties: {relay: {kind: boolean}}\n",
            (2, "properties.relay", "needs commands.set_payload or its own command.set_payload"),
        ),
        (
            "verbs:\n  identify: {}\n",
            (3, "verbs.identify", "needs commands.verb_payload or its own command.verb_payload"),
        ),
        (
            "expected_interval: 0\n",
            (2, "expected_interval", "Input should be greater than 0"),
        ),
        (
            "readings:\n  t: {precision: 9}\n",
            (3, "readings.t.precision", "Input should be less than or equal to 6"),
        ),
    ],
)
def test_other_broken_profiles(tmp_path: Path, body: str, expected: tuple[int, str, str]) -> None:
    path = write(tmp_path, "p.yaml", "name: p\n" + body)
    line, field, reason = expected  # line 1 is 'name: p'; whole-profile checks point at the top
    assert problems(path) == [Problem(str(path), line, field, reason)]


def test_bad_name(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "name: Bad Name\n")
    assert problems(path) == [Problem(str(path), 1, "name", "String should match pattern '^[a-z0-9][a-z0-9_-]*$'")]


def test_missing_name_in_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "")
    assert problems(path) == [Problem(str(path), None, "name", "Field required")]
    assert str(ConfigError(problems(path))) == f"{path}: name: Field required"


def test_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "- a\n- b\n")
    assert problems(path) == [
        Problem(str(path), 1, "", "Input should be a valid dictionary or instance of ProfileModel")
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", 'name: p\ntelemetry:\n  - topic: "x/{id}/t"\n  bad: [\n')
    (problem,) = problems(path)
    assert (problem.file, problem.line, problem.field) == (str(path), 4, "")
    assert problem.reason.startswith("not valid YAML: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert problems(path) == [Problem(str(path), None, "", "not UTF-8 text")]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert problems(path) == [Problem(str(path), None, "", "cannot read: No such file or directory")]


# ---------------------------------------------------------------- directories


def test_load_profiles_reports_every_file(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", "name: good\n")
    first = write(tmp_path, "a.yaml", "name: a\ncolour: red\n")
    second = write(tmp_path, "b.yaml", "name: b\nexpected_interval: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_profiles([tmp_path])
    assert str(caught.value) == (
        f"{first}:2: colour: unknown field (check the spelling)\n"
        f"{second}:2: expected_interval: Input should be greater than 0"
    )


def test_same_name_twice_in_one_directory(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "name: same\n")
    second = write(tmp_path, "b.yaml", "name: same\n")
    with pytest.raises(ConfigError) as caught:
        load_profiles([tmp_path])
    assert caught.value.problems == (Problem(str(second), None, "name", f"'same' is also defined in {first}"),)


def test_later_directory_overrides(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    write(own, "hub.yaml", "name: hub\ndescription: my own\n")
    write(own, "extra.yaml", "name: extra\n")
    profiles = load_profiles([BUILTIN_DIR, own])
    assert profiles["hub"].description == "my own"
    assert profiles["hub"].availability == ()
    assert set(profiles) >= {"hub", "extra"}


def test_a_default_may_span_levels_and_name_the_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "layout.yaml",
        """
        name: layout
        defaults: {tele: "tele/{id}", cmnd: "cmnd/{id}"}
        availability: {topic: "{tele}/LWT"}
        properties:
          power: {kind: boolean, command: {topic: "{cmnd}/POWER", set_payload: "{value}", toggle_payload: TOGGLE}}
        """,
    )
    profile = load_profile(path)
    power = profile.properties["power"].command
    assert power is not None and power.toggle_payload == "TOGGLE"
    router = Router([Binding("layout", profile, {"tele": "{id}/tele"})], "hub.example")
    assert router.subscription_filters() == ("+/tele/LWT",)


def test_a_spanning_default_must_still_name_the_id(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", 'name: bad\ndefaults: {tele: "tele/all"}\navailability: {topic: "{tele}/LWT"}\n')
    assert [(p.field, p.reason) for p in problems(path)] == [("availability.0.topic", "'{tele}/LWT' has no {id} slot")]


def test_every_shipped_family_can_be_bound_at_once() -> None:
    """A site with all of them on one broker starts: no two families' topics can match one message.

    generic-json's default base ``json`` would share ``json/online`` with Shelly Gen2's
    ``<prefix>/online``; docs/families/shelly-gen2.md says to give it a deeper base, as here.
    """
    profiles = builtin_profiles()
    slots = {"generic-json": {"base": "json/devices"}}
    bindings = [Binding(name, profile, slots.get(name, {})) for name, profile in sorted(profiles.items())]
    router = Router(bindings, "devices.example.org")
    assert set(router.bindings) == set(profiles)
    with pytest.raises(MappingError, match="can match the same topic"):
        Router([Binding(n, p) for n, p in profiles.items() if n in ("generic-json", "shelly-gen2")], "d.example")
