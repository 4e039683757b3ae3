"""The plain-text chat grammar and value validation (hub.core.commands)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

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
from hub.core.profile import CommandSpec, Profile, PropertyKind, PropertySpec
from hub.core.topics import TopicTemplate

# ---------------------------------------------------------------- device grammar


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("help", Help()),
        ("HELP", Help()),
        ("?", Help()),
        ("  help  ", Help()),
        ("status", Status()),
        ("Status", Status()),
        ("temperature?", Query("temperature")),
        ("Temperature?", Query("Temperature")),
        ("state.power?", Query("state.power")),
        ("on", Switch("on")),
        ("off", Switch("off")),
        ("toggle", Switch("toggle")),
        ("ON 2", Switch("on", "2")),
        ("toggle 3", Switch("toggle", "3")),
        ("set target 21.5", SetProperty("target", "21.5")),
        ("set Target 21.5°C", SetProperty("target", "21.5°C")),
        ("set target 21.5 °C", SetProperty("target", "21.5 °C")),
        ("set   mode    eco", SetProperty("mode", "eco")),
        ("set label hello world", SetProperty("label", "hello world")),
        ("identify", RunVerb("identify")),
        ("Reboot", RunVerb("reboot")),
    ],
)
def test_parse_device_command(text: str, command: object) -> None:
    assert parse_device_command(text) == command


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("", "Empty message. Write 'help' for the commands."),
        ("   \n\t ", "Empty message. Write 'help' for the commands."),
        ("on 1 2", "'on' takes at most one channel, e.g. 'on 2'."),
        ("toggle a b", "'toggle' takes at most one channel, e.g. 'toggle 2'."),
        ("set", "Usage: set <property> <value>, e.g. 'set target 21.5'."),
        ("set target", "Usage: set <property> <value>, e.g. 'set target 21.5'."),
        ("make me a sandwich", "Unknown command 'make'. Write 'help' for the commands."),
        ("help me", "Unknown command 'help'. Write 'help' for the commands."),
        ("status now", "Unknown command 'status'. Write 'help' for the commands."),
        ("temperature? please", "Unknown command 'temperature?'. Write 'help' for the commands."),
    ],
)
def test_device_command_errors_are_the_reply(text: str, reply: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_device_command(text)
    assert str(caught.value) == reply


def test_oversized_message_is_refused() -> None:
    assert parse_device_command("set label " + "x" * (MAX_COMMAND_CHARS - 10)) == SetProperty(
        "label", "x" * (MAX_COMMAND_CHARS - 10)
    )
    with pytest.raises(CommandError) as caught:
        parse_device_command("set label " + "x" * MAX_COMMAND_CHARS)
    assert str(caught.value) == "That message is 1034 characters long; commands are at most 1024."


# ---------------------------------------------------------------- hub grammar


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help()),
        ("help", Help()),
        ("?", Help()),
        ("status", Status()),
        ("devices", ListDevices()),
        ("LIST", ListDevices()),
        ("find Kitchen", ListDevices("kitchen")),
        ("find living room", ListDevices("living room")),
    ],
)
def test_parse_hub_command(text: str, command: object) -> None:
    assert parse_hub_command(text) == command


@pytest.mark.parametrize("text", ["find", "reboot", "devices all", "status please"])
def test_hub_command_errors(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_hub_command(text)
    assert str(caught.value) == f"Unknown command '{text.split()[0]}'. Write 'help' for the commands."


# ---------------------------------------------------------------- values

TARGET = PropertySpec("target", PropertyKind.NUMBER, minimum=5, maximum=35, step=0.5, unit="°C")
BRIGHTNESS = PropertySpec("brightness", PropertyKind.INTEGER, minimum=0, maximum=100, unit="%")
MODE = PropertySpec("mode", PropertyKind.ENUM, choices=("auto", "heat", "eco", "off"))
RELAY = PropertySpec("relay", PropertyKind.BOOLEAN)
LABEL = PropertySpec("label", PropertyKind.STRING, max_length=5)


@pytest.mark.parametrize("raw", ["21.5", "21.5°C", "21.5 °C", "21.5 C", "21.5c", "21,5", " 21.5 ", "2.15e1", "+21.5"])
def test_number_with_or_without_unit(raw: str) -> None:
    value = validate_value(TARGET, raw)
    assert value == 21.5
    assert type(value) is float


def test_unit_parsing_does_not_depend_on_the_hash_seed() -> None:
    """The unit suffixes were once tried in set order: '21.5°C' failed for some PYTHONHASHSEED."""
    code = (
        "from hub.core.commands import validate_value\n"
        "from hub.core.profile import PropertySpec, PropertyKind\n"
        "spec = PropertySpec('target', PropertyKind.NUMBER, unit='°C')\n"
        "print(validate_value(spec, '21.5°C'), validate_value(spec, '21.5 °C'))\n"
    )
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
        assert (seed, result.stdout.strip(), result.stderr) == (seed, "21.5 21.5", "")


@pytest.mark.parametrize(
    ("spec", "raw", "reply"),
    [
        (TARGET, "4.5", "4.5 is out of range: target takes 5–35 °C, step 0.5."),
        (TARGET, "36", "36 is out of range: target takes 5–35 °C, step 0.5."),
        (TARGET, "21.3", "target moves in steps of 0.5: 5–35 °C, step 0.5."),
        (TARGET, "warm", "'warm' is not a number; target takes 5–35 °C, step 0.5."),
        (TARGET, "21.5 °F", "'21.5 °F' is not a number; target takes 5–35 °C, step 0.5."),
        (TARGET, "nan", "target must be a finite number."),
        (TARGET, "inf", "target must be a finite number."),
        (TARGET, "1e999", "target must be a finite number."),
        (BRIGHTNESS, "50.5", "brightness takes whole numbers: 0–100 %."),
        (BRIGHTNESS, "101", "101 is out of range: brightness takes 0–100 %."),
        (BRIGHTNESS, "-1 %", "-1 is out of range: brightness takes 0–100 %."),
        (MODE, "cool", "mode is one of auto, heat, eco, off; not 'cool'."),
        (RELAY, "maybe", "relay is on or off, not 'maybe'."),
        (LABEL, "toolong", "label takes at most 5 characters."),
    ],
)
def test_invalid_values_are_the_reply(spec: PropertySpec, raw: str, reply: str) -> None:
    with pytest.raises(CommandError) as caught:
        validate_value(spec, raw)
    assert str(caught.value) == reply


@pytest.mark.parametrize(("raw", "value"), [("5", 5.0), ("35", 35.0), ("5.5", 5.5), ("34.5 °C", 34.5)])
def test_range_and_step_edges(raw: str, value: float) -> None:
    assert validate_value(TARGET, raw) == value


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("100", 100), ("50 %", 50), ("50%", 50), ("50.0", 50)])
def test_integer_values(raw: str, value: int) -> None:
    result = validate_value(BRIGHTNESS, raw)
    assert result == value
    assert type(result) is int


def test_step_counts_from_the_minimum() -> None:
    odd = PropertySpec("odd", PropertyKind.NUMBER, minimum=1, maximum=9, step=2)
    assert validate_value(odd, "3") == 3.0
    with pytest.raises(CommandError) as caught:
        validate_value(odd, "4")
    assert str(caught.value) == "odd moves in steps of 2: 1–9, step 2."


def test_open_ranges() -> None:
    free = PropertySpec("offset", PropertyKind.NUMBER)
    assert validate_value(free, "-1e6") == -1e6
    assert describe_property(free) == "…–…"
    assert describe_property(PropertySpec("x", PropertyKind.NUMBER, minimum=0)) == "0–…"


@pytest.mark.parametrize(("raw", "value"), [("ECO", "eco"), (" Off ", "off"), ("auto", "auto")])
def test_enum_values_take_the_profile_spelling(raw: str, value: str) -> None:
    assert validate_value(MODE, raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [("on", True), ("TRUE", True), ("yes", True), ("1", True), ("off", False), ("False", False), ("no", False)],
)
def test_boolean_values(raw: str, value: bool) -> None:
    assert validate_value(RELAY, raw) is value


def test_string_values_are_kept_verbatim() -> None:
    assert validate_value(LABEL, "Hi Yo") == "Hi Yo"


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (TARGET, "5–35 °C, step 0.5"),
        (BRIGHTNESS, "0–100 %"),
        (MODE, "auto|heat|eco|off"),
        (RELAY, "on|off"),
        (LABEL, "text up to 5 characters"),
    ],
)
def test_describe_property(spec: PropertySpec, text: str) -> None:
    assert describe_property(spec) == text


# ---------------------------------------------------------------- switch


def test_switch_property_of_the_hub_profile(hub_profile: Profile) -> None:
    assert switch_property(hub_profile, None) == hub_profile.properties["power"]
    channel = switch_property(hub_profile, "2")
    assert channel == replace(hub_profile.properties["power"], name="power2", echo=None)
    assert channel.echo_key == "power2"


def test_an_unlisted_channel_does_not_inherit_the_main_relays_device_key_or_command(hub_profile: Profile) -> None:
    main = replace(
        hub_profile.properties["power"], key="POWER", command=CommandSpec(TopicTemplate.parse("cmnd/{id}/POWER"), "{v}")
    )
    profile = replace(hub_profile, properties={**hub_profile.properties, "power": main})
    channel = switch_property(profile, "3")
    assert (channel.name, channel.key, channel.command, channel.kind) == ("power3", None, None, main.kind)


@pytest.mark.parametrize(
    ("channel", "reply"),
    [("x", "Channel must be a number, not 'x'."), ("1000", "Channel must be a number, not '1000'.")],
)
def test_switch_channel_must_be_a_small_number(hub_profile: Profile, channel: str, reply: str) -> None:
    with pytest.raises(CommandError) as caught:
        switch_property(hub_profile, channel)
    assert str(caught.value) == reply


def test_profile_without_switch() -> None:
    with pytest.raises(CommandError) as caught:
        switch_property(Profile(name="sensor"), None)
    assert str(caught.value) == "This device has no switch: write 'help' for what it can do."


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "text"),
    [(21.0, "21"), (21.5, "21.5"), (21.50, "21.5"), (0.1 + 0.2, "0.3"), (-3.0, "-3"), (1e20, "1e+20"), (7, "7")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
