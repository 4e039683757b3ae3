"""The embedded broker's per-device ACL as configured: default from the bindings, overrides, errors."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bridges.mqtt.embedded import EmbeddedBroker
from hub.app import App
from hub.config import load_config
from hub.validation import ConfigError, Problem


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HUB_"):
            monkeypatch.delenv(name)


def _app(tmp_path: Path, text: str) -> App:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hub.yaml"
    path.write_text("xmpp: {domain: hub.example, secret: s}\n" + textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return App(load_config(path))


def _options(app: App) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    assert isinstance(app.mqtt, EmbeddedBroker)
    options = app.mqtt._options
    return dict(options.acl), options.acl_unrestricted


def test_default_is_each_devices_own_namespace_from_the_bindings(tmp_path: Path) -> None:
    app = _app(tmp_path, "bindings: [{profile: hub, slots: {base: sensors}}]\n")
    acl, unrestricted = _options(app)
    assert acl == {"publish": ("sensors/{username}/#",), "subscribe": ("sensors/{username}/#",)}
    assert unrestricted == frozenset()


def test_patterns_and_unrestricted_users_from_the_file(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        """
        mqtt:
          embedded:
            acl:
              publish: ["devices/{username}/status", "devices/{username}/telemetry"]
              subscribe: ["devices/{username}/cmd"]
              unrestricted: [tester]
        """,
    )
    acl, unrestricted = _options(app)
    assert acl == {
        "publish": ("devices/{username}/status", "devices/{username}/telemetry"),
        "subscribe": ("devices/{username}/cmd",),
    }
    assert unrestricted == frozenset({"tester"})


def test_acl_can_be_turned_off(tmp_path: Path) -> None:
    app = _app(tmp_path, "mqtt: {embedded: {acl: {enabled: false}}}\n")
    assert _options(app) == ({}, frozenset())


def test_bad_patterns_are_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(
        textwrap.dedent(
            """
            xmpp: {domain: hub.example, secret: s}
            mqtt:
              embedded:
                acl:
                  publish: ["devices/{user}/#"]
                  subscribe: ["devices/#/cmd"]
            """
        ).lstrip("\n"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    fields = [(p.line, p.field) for p in caught.value.problems]
    assert fields == [(5, "mqtt.embedded.acl.publish"), (6, "mqtt.embedded.acl.subscribe")]
    assert all(isinstance(p, Problem) and "devices/" in p.reason for p in caught.value.problems)


def test_publish_rate_cap_from_the_file(tmp_path: Path) -> None:
    app = _app(tmp_path, "\n")
    assert isinstance(app.mqtt, EmbeddedBroker)
    assert app.mqtt._options.max_publish_rate == 1000.0
    off = _app(tmp_path / "off", "mqtt: {embedded: {max_publish_rate: null}}\n")
    assert isinstance(off.mqtt, EmbeddedBroker) and off.mqtt._options.max_publish_rate is None
