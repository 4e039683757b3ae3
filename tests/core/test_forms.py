"""Data forms built from a profile: one field per settable property, with the chat grammar's limits."""

from __future__ import annotations

from hub.core.device import Device
from hub.core.forms import device_list_form, form_value, property_field, set_form, status_form
from hub.core.intents import FormField, Show
from hub.core.mapping import Binding
from hub.core.profile import PropertyKind, PropertySpec


def clock(timestamp: float) -> str:
    return f"t{timestamp:g}"


def device(binding: Binding, readings: dict[str, object], device_id: str = "k1", name: str = "Kitchen") -> Device:
    found = Device(binding=binding, device_id=device_id, jid=f"{device_id}@hub.example", name=name)
    found.readings.update(readings)  # type: ignore[arg-type]
    return found


def test_set_form_offers_what_the_device_reported_with_current_values(hub_binding: Binding) -> None:
    form = set_form(device(hub_binding, {"temperature": 21.6, "target": 20, "power": "off"}))
    assert form.type == "form"
    assert form.title == "Set Kitchen (k1)"
    assert form.fields == (
        FormField("power", "list-single", "power", ("off",), (("on", "on"), ("off", "off"))),
        FormField("target", "text-single", "target (°C)", ("20",), desc="5–35 °C, step 0.5"),
    )


def test_set_form_of_a_device_that_reported_nothing_settable_is_empty(hub_binding: Binding) -> None:
    assert set_form(device(hub_binding, {"temperature": 21.6})).fields == ()


def test_enum_field_lists_the_choices(hub_binding: Binding) -> None:
    form = set_form(device(hub_binding, {"mode": "ECO"}))
    assert form.fields == (
        FormField(
            "mode",
            "list-single",
            "mode",
            ("eco",),
            (("auto", "auto"), ("heat", "heat"), ("eco", "eco"), ("off", "off")),
        ),
    )


def test_boolean_field_is_a_choice_of_on_and_off() -> None:
    spec = PropertySpec("relay", PropertyKind.BOOLEAN)
    assert property_field(spec, True) == FormField(
        "relay", "list-single", "relay", ("on",), (("on", "on"), ("off", "off"))
    )
    assert property_field(spec, "OFF").values == ("off",)


def test_number_fields_describe_range_step_and_unit() -> None:
    brightness = PropertySpec("brightness", PropertyKind.INTEGER, minimum=0, maximum=100, unit="%")
    assert property_field(brightness, 40) == FormField(
        "brightness", "text-single", "brightness (%)", ("40",), desc="0–100 %"
    )
    open_ended = PropertySpec("offset", PropertyKind.NUMBER, step=0.1)
    assert property_field(open_ended, None) == FormField("offset", "text-single", "offset", (), desc="…–…, step 0.1")


def test_text_field_says_how_long_it_may_be() -> None:
    spec = PropertySpec("label", PropertyKind.STRING, max_length=20)
    assert property_field(spec, "hall") == FormField(
        "label", "text-single", "label", ("hall",), desc="text up to 20 characters"
    )


def test_form_value_is_the_same_for_a_reading_and_its_validated_value() -> None:
    target = PropertySpec("target", PropertyKind.NUMBER)
    assert form_value(target, 21.5) == form_value(target, 21.5) == "21.5"
    assert form_value(target, 20) == form_value(target, 20.0) == "20"
    power = PropertySpec("power", PropertyKind.ENUM, choices=("on", "off"))
    assert form_value(power, "ON") == "on"
    relay = PropertySpec("relay", PropertyKind.BOOLEAN)
    assert form_value(relay, "true") == form_value(relay, True) == "on"
    assert form_value(relay, 0) == "off"


def test_status_form_lists_state_and_every_reading(hub_binding: Binding) -> None:
    found = device(hub_binding, {"battery": 87, "temperature": 21.6, "zz": "x"})
    found.last_live = 100.0
    form = status_form(found, Show.AWAY, "no data since t100 · 21.6 °C", clock, ["on (expires t200)"])
    assert form.type == "result"
    assert form.title == "Kitchen (k1)"
    assert form.fields == (
        FormField("state", "text-single", "State", ("away (no data since t100 · 21.6 °C)",)),
        FormField("reading.temperature", "text-single", "temperature", ("21.6 °C",)),
        FormField("reading.battery", "text-single", "battery", ("87 %",)),
        FormField("reading.zz", "text-single", "zz", ("x",)),
        FormField("last-message", "text-single", "Last message", ("t100",)),
        FormField("queued", "text-multi", "Queued commands", ("on (expires t200)",)),
    )


def test_status_form_of_an_online_device_says_online(hub_binding: Binding) -> None:
    form = status_form(device(hub_binding, {}), Show.AVAILABLE, "online", clock)
    assert form.fields == (FormField("state", "text-single", "State", ("online",)),)


def test_device_list_is_sorted_and_bounded(hub_binding: Binding) -> None:
    entries = [(device(hub_binding, {}, f"d{i}", f"d{i}"), Show.AVAILABLE) for i in (3, 1, 2)]
    form = device_list_form(entries, limit=2)
    assert [f.label for f in form.fields[:2]] == ["d1", "d2"]
    assert form.fields[2] == FormField("more", "fixed", values=("… and 1 more; write 'find <text>'.",))
    assert device_list_form([]).fields == (FormField("none", "fixed", values=("No devices.",)),)
