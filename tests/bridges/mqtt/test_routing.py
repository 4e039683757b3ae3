"""Routing by lookup: exact filters are found with one dict lookup, wildcard filters are still matched.

Behaviour through real clients is covered by the other broker tests; this checks the
table logic directly, including that the wildcard list follows filters coming and going.
"""

from __future__ import annotations

import logging
from typing import Any

from bridges.mqtt.hardened import HardenedBroker


def broker_with(table: dict[str, list[Any]]) -> HardenedBroker:
    broker = HardenedBroker.__new__(HardenedBroker)  # only the routing table is needed
    broker._subscriptions = table
    broker.logger = logging.getLogger("test")
    return broker


def test_exact_and_wildcard_filters_both_route() -> None:
    exact, plus, hash_, other = ["exact"], ["plus"], ["hash"], ["other"]
    broker = broker_with(
        {"devices/a/telemetry": exact, "devices/+/telemetry": plus, "devices/#": hash_, "devices/b/cmd": other}
    )
    routes = broker._routes("devices/a/telemetry")
    assert sorted(map(tuple, routes)) == [("exact",), ("hash",), ("plus",)]
    assert broker._routes("devices/b/cmd") == [other, hash_]
    assert broker._routes("elsewhere/x") == []


def test_wildcard_list_is_rebuilt_when_filters_change() -> None:
    table: dict[str, list[Any]] = {"devices/a/cmd": ["a"]}
    broker = broker_with(table)
    assert broker._routes("devices/z/cmd") == []
    table["devices/+/cmd"] = ["all"]
    broker._wildcards = None  # what add_subscription and _del_all_subscriptions do
    assert broker._routes("devices/z/cmd") == [["all"]]
    del table["devices/+/cmd"]  # a stale wildcard list must not route to a removed filter
    assert broker._routes("devices/z/cmd") == []


def test_dollar_topics_do_not_match_leading_wildcards() -> None:
    broker = broker_with({"#": ["everything"], "$SYS/#": ["sys"]})
    assert broker._routes("$SYS/broker/uptime") == [["sys"]]
