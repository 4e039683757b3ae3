"""``hub devices`` rows from stored records: the availability operators see, and configured devices not seen yet."""

from __future__ import annotations

from dataclasses import replace

from device_profiles.loader import builtin_profiles
from hub.core.alerts import AlertRule
from hub.core.device import DeviceConfig
from hub.core.hub import HubSettings
from hub.core.mapping import Binding
from hub.core.snapshot import AlertRecord, DeviceRecord
from hub.inventory import format_rows, rows

DOMAIN = "devices.example.org"
NOW = 1_000_000.0


def settings() -> HubSettings:
    binding = Binding("hub", builtin_profiles()["hub"], {"base": "devices"})
    devices = {"plug-1": DeviceConfig("plug-1"), "k1": DeviceConfig("k1", name="Kitchen", expected_interval=60)}
    return HubSettings(domain=DOMAIN, bindings=(binding,), devices=devices)


def record(device_id: str, binding: str = "hub", **fields: object) -> DeviceRecord:
    return DeviceRecord(f"{device_id}@{DOMAIN}", binding, device_id, **fields)  # type: ignore[arg-type]


def test_availability_is_derived_as_for_presence() -> None:
    found = rows(
        settings(),
        [
            record("k1", available=True, last_live=NOW - 30, readings=(("temperature", 21.6), ("battery", 87))),
            record("k2", available=True, last_live=NOW - 1000),
            record("k3", available=False, last_live=NOW - 50, offline_since=NOW - 40),
            record("k4", sleeping=True, available=True, last_live=NOW - 5),
            record("k5", binding="gone"),
        ],
        (),
        NOW,
    )
    by_id = {r.jid.split("@")[0]: r for r in found}
    assert [r.jid for r in found] == sorted(r.jid for r in found)
    assert (by_id["k1"].family, by_id["k1"].name, by_id["k1"].availability) == ("hub", "Kitchen", "online")
    assert by_id["k1"].readings_text == "21.6 °C · battery 87 %"
    assert by_id["k2"].availability == "away"  # silent longer than the profile's 120 s
    assert by_id["k3"].availability == "offline"
    assert by_id["k4"].availability == "sleeping"
    assert (by_id["k5"].family, by_id["k5"].availability) == ("(gone?)", "unknown")
    assert (by_id["plug-1"].availability, by_id["plug-1"].last_seen) == ("not seen yet", None)  # configured only


def test_a_running_hubs_session_devices_stay_online() -> None:
    """A restart takes broker sessions for ended; the CLI reads a hub that may be running, so it does not."""
    found = rows(settings(), [record("k1", session=True, last_live=NOW - 5)], (), NOW)
    assert found[0].availability == "online"


def test_active_alerts_show_as_for_presence() -> None:
    rule = AlertRule("hot", "temperature", ">", 30.0)
    config = replace(settings(), alert_rules=(rule,))
    alert = AlertRecord("hot", NOW - 60, NOW - 60, 31.0, 31.0)
    stored = record("k1", available=True, last_live=NOW, readings=(("temperature", 31.0),), alerts=(alert,))
    found = rows(config, [stored], (), NOW)
    assert (found[0].availability, found[0].status) == ("alert", "temperature 31.0 °C > 30 °C · 31.0 °C")


def test_lines_are_aligned_and_say_what_is_missing() -> None:
    found = rows(settings(), [record("k1", available=True, last_live=NOW, readings=(("temperature", 21.6),))], (), NOW)
    text = format_rows(found, format_seen=lambda t: f"t{t:g}")
    assert text.splitlines() == [
        f"hub  k1@{DOMAIN}      online        t1e+06  21.6 °C",
        f"hub  plug-1@{DOMAIN}  not seen yet  -       -",
    ]
    assert list(found[0].as_json()) == ["family", "jid", "name", "availability", "status", "last_seen", "readings"]
    assert format_rows([]) == "No devices known yet."
