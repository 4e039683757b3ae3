"""Device state → presence (hub.core.presence, hub.core.device)."""

from __future__ import annotations

import pytest

from hub.core.alerts import AlertRule, AlertState
from hub.core.codecs import Reading
from hub.core.device import Device, alert_text
from hub.core.intents import Show
from hub.core.mapping import Binding
from hub.core.presence import MAX_STATUS_CHARS, PresenceFacts, derive, format_reading, readings_text
from hub.core.profile import Profile


def clock(timestamp: float) -> str:
    return f"T{timestamp:g}"


def facts(
    online: bool = True,
    seen: bool = True,
    sleeping: bool = False,
    silent_since: float | None = None,
    offline_since: float | None = None,
    alert: str | None = None,
    readings_text: str = "21.6 °C",
) -> PresenceFacts:
    return PresenceFacts(online, seen, sleeping, silent_since, offline_since, alert, readings_text)


# Every row of the table (DESIGN §2), first match wins.
@pytest.mark.parametrize(
    ("given", "show", "status"),
    [
        # offline, never heard of
        (facts(online=False, seen=False), Show.UNAVAILABLE, "not seen yet"),
        (facts(online=False, seen=False, alert="hot", sleeping=True), Show.UNAVAILABLE, "not seen yet"),
        # offline (LWT, disconnect): the moment, then the last readings
        (facts(online=False, offline_since=840.0), Show.UNAVAILABLE, "offline since T840 · 21.6 °C"),
        (facts(online=False, offline_since=840.0, readings_text=""), Show.UNAVAILABLE, "offline since T840"),
        (facts(online=False, offline_since=None), Show.UNAVAILABLE, "offline · 21.6 °C"),
        (facts(online=False, offline_since=840.0, alert="hot"), Show.UNAVAILABLE, "offline since T840 · 21.6 °C"),
        # an active alert beats sleeping and silence
        (facts(alert="temperature 31.2 °C > 30"), Show.DND, "temperature 31.2 °C > 30 · 21.6 °C"),
        (facts(alert="hot", sleeping=True, silent_since=5.0), Show.DND, "hot · 21.6 °C"),
        # sleeping by design beats silence
        (facts(sleeping=True), Show.XA, "sleeping · 21.6 °C"),
        (facts(sleeping=True, silent_since=5.0, readings_text=""), Show.XA, "sleeping"),
        # online but silent longer than expected
        (facts(silent_since=600.0), Show.AWAY, "no data since T600 · 21.6 °C"),
        (facts(silent_since=600.0, readings_text=""), Show.AWAY, "no data since T600"),
        # online with fresh data
        (facts(), Show.AVAILABLE, "21.6 °C"),
        (facts(readings_text=""), Show.AVAILABLE, "online"),
    ],
)
def test_presence_table(given: PresenceFacts, show: Show, status: str) -> None:
    assert derive(given, clock) == (show, status)


@pytest.mark.parametrize(
    "given",
    [
        facts(readings_text="x" * 600),
        facts(alert="a" * 600),
        facts(sleeping=True, readings_text="x" * 600),
        facts(silent_since=1.0, readings_text="x" * 600),
        facts(online=False, offline_since=1.0, readings_text="x" * 600),
    ],
)
def test_status_text_is_capped(given: PresenceFacts) -> None:
    _, status = derive(given, clock)
    assert len(status) == MAX_STATUS_CHARS
    assert status.endswith("…")


# ---------------------------------------------------------------- readings text


def test_readings_text_in_profile_order_with_units(hub_profile: Profile) -> None:
    readings = {"battery": 87, "humidity": 48, "temperature": 21.6}
    assert readings_text(hub_profile, readings) == "21.6 °C · 48 % · battery 87 %"


def test_readings_text_lists_unknown_fields_last_sorted(hub_profile: Profile) -> None:
    readings: dict[str, Reading] = {"rssi": -60, "temperature": 21.64, "power": True, "alpha": "x", "humidity": 48.4}
    assert readings_text(hub_profile, readings) == "21.6 °C · 48 % · power on · alpha x · rssi -60"


def test_readings_text_empty(hub_profile: Profile) -> None:
    assert readings_text(hub_profile, {}) == ""


@pytest.mark.parametrize(
    ("key", "value", "with_label", "text"),
    [
        ("temperature", 21.6, None, "21.6 °C"),
        ("temperature", 21.0, None, "21.0 °C"),  # precision 1
        ("temperature", 21, None, "21 °C"),  # ints are shown as sent
        ("temperature", 21.6, True, "temperature 21.6 °C"),
        ("humidity", 47.6, None, "48 %"),
        ("target", 21.5, None, "target 21.5 °C"),
        ("target", 21.5, False, "21.5 °C"),
        ("power", False, None, "power off"),
        ("power", "ON", None, "power ON"),
        ("energy", 12.25, None, "energy 12.25 kWh"),
        ("rssi", -60, None, "rssi -60"),
        ("state.power", "ON", None, "state.power ON"),
    ],
)
def test_format_reading(hub_profile: Profile, key: str, value: Reading, with_label: bool | None, text: str) -> None:
    assert format_reading(hub_profile, key, value, with_label) == text


# ---------------------------------------------------------------- device facts


def _device(hub_binding: Binding, **changes: object) -> Device:
    device = Device(hub_binding, "k1", "k1@hub.example", "k1", expected_interval=120.0)
    for name, value in changes.items():
        setattr(device, name, value)
    return device


@pytest.mark.parametrize(
    ("available", "session", "last_live", "online"),
    [
        (None, None, None, False),
        (None, None, 5.0, True),  # heard from: online until told otherwise
        (True, None, None, True),
        (False, None, 5.0, False),
        (None, True, None, True),
        (None, False, 5.0, False),
        (True, False, 5.0, False),  # either source saying offline wins
        (False, True, 5.0, False),
    ],
)
def test_device_online(
    hub_binding: Binding, available: bool | None, session: bool | None, last_live: float | None, online: bool
) -> None:
    device = _device(hub_binding, available=available, session=session, last_live=last_live)
    assert device.online is online


def test_device_facts_silence(hub_binding: Binding) -> None:
    device = _device(hub_binding, available=True, last_live=1000.0, readings={"temperature": 21.6})
    assert device.facts(1120.0).silent_since is None  # exactly the expected interval is not silence
    assert device.facts(1120.5).silent_since == 1000.0
    assert device.facts(1120.5).readings_text == "21.6 °C"
    assert derive(device.facts(1120.5), clock) == (Show.AWAY, "no data since T1000 · 21.6 °C")


def test_device_seen(hub_binding: Binding) -> None:
    assert not _device(hub_binding).facts(0.0).seen
    assert _device(hub_binding, available=False).facts(0.0).seen
    assert _device(hub_binding, offline_since=3.0, session=False).facts(0.0).seen


def test_device_alert_text_uses_the_newest_alert(hub_binding: Binding) -> None:
    hot = AlertRule("hot", "temperature", ">", 30.0)
    wet = AlertRule("wet", "humidity", ">=", 80.0)
    device = _device(hub_binding, available=True, last_live=0.0)
    device.alerts = {
        "hot": AlertState(hot, since=10.0, last_sent=10.0, value=31.2, reading=31.2),
        "wet": AlertState(wet, since=20.0, last_sent=20.0, value=85.0, reading=85),
    }
    assert device.facts(30.0).alert == "humidity 85 % >= 80 %"
    assert alert_text(device, device.alerts["hot"]) == "temperature 31.2 °C > 30 °C"


def test_update_readings_is_bounded(hub_binding: Binding) -> None:
    device = _device(hub_binding)
    device.update_readings({f"k{i}": i for i in range(64)})
    device.update_readings({"extra": 1, "k0": 100})
    assert len(device.readings) == 64
    assert "extra" not in device.readings
    assert device.readings["k0"] == 100  # known keys still update
