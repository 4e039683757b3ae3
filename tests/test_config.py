"""The hub's YAML configuration (hub.config): file:line: field: reason, and HUB_… overrides."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from hub.config import load_config
from hub.validation import ConfigError, Problem
from tests.support.certs import self_signed

ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide which HUB_… variables exist."""
    for name in list(os.environ):
        if name.upper().startswith("HUB_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp:
          domain: Hub.Example
          secret: from-file
        """,
    )
    config = load_config(path)
    assert config.xmpp.domain == "hub.example"
    assert config.xmpp.secret is not None
    assert config.xmpp.secret.get_secret_value() == "from-file"
    assert "from-file" not in repr(config)
    assert config.mqtt.mode == "embedded"
    assert config.mqtt.embedded.allow_anonymous is False
    assert [(b.name, b.profile) for b in config.bindings] == [("hub", "hub")]
    assert config.limits.confirm_timeout == 5.0
    assert (config.mqtt.embedded.max_topic_levels, config.mqtt.embedded.max_subscriptions_per_client) == (16, 100)
    # Relative paths are relative to the file, not to the working directory.
    assert config.state_dir == tmp_path / "state"


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp:
          domain: "hub example"
          port: 70000
        mqtt:
          mode: embedded
          embedded:
            users:
              sensor2: "hunter2"
              sensor1: "$argon2id$v=19$ok"
        operators:
          bob@example.org: {role: superuser}
        alerts:
          - name: hot
            field: temperature
            op: "=>"
            threshold: thirty
        limits:
          confirm_timeout: 0
        colour: blue
        """,
    )
    assert [str(p) for p in problems(path)] == [
        f"{path}:2: xmpp.domain: 'hub example' is not a domain",
        f"{path}:3: xmpp.port: Input should be less than or equal to 65535",
        f"{path}:8: mqtt.embedded.users: password of 'sensor2' is not an argon2 hash: "
        "store 'hub passwd' output, not the password",
        f"{path}:11: operators.bob@example.org.role: Input should be 'viewer', 'operator' or 'admin'",
        f"{path}:15: alerts.0.op: Input should be '>', '>=', '<' or '<='",
        f"{path}:16: alerts.0.threshold: Input should be a valid number, unable to parse string as a number",
        f"{path}:18: limits.confirm_timeout: Input should be greater than 0",
        f"{path}:19: colour: unknown field (check the spelling)",
    ]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(str(caught.value).splitlines()) == 8


def test_plaintext_mqtt_password_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        mqtt:
          embedded:
            users:
              thermostat: correct-horse
        """,
    )
    assert problems(path) == [
        Problem(
            str(path),
            5,
            "mqtt.embedded.users",
            "password of 'thermostat' is not an argon2 hash: store 'hub passwd' output, not the password",
        )
    ]


def test_argon2_hashes_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        xmpp: {{domain: hub.example, secret: s}}
        mqtt:
          embedded:
            users:
              thermostat: "{ARGON2}"
        """,
    )
    assert load_config(path).mqtt.embedded.users == {"thermostat": ARGON2}


def test_environment_secret_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        """
        xmpp:
          domain: hub.example
          secret: from-file
        """,
    )
    monkeypatch.setenv("HUB_XMPP__SECRET", "from-env")
    config = load_config(path)
    assert config.xmpp.secret is not None
    assert config.xmpp.secret.get_secret_value() == "from-env"
    assert config.xmpp.domain == "hub.example"  # the rest of the section still comes from the file


def test_environment_secret_fills_a_missing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "xmpp:\n  domain: hub.example\n")
    assert problems(path) == [
        Problem(
            str(path),
            2,
            "xmpp",
            "the component secret is missing: set xmpp.secret, xmpp.secret_file or HUB_XMPP__SECRET",
        )
    ]
    monkeypatch.setenv("HUB_XMPP__SECRET", "from-env")
    config = load_config(path)
    assert config.xmpp.secret is not None
    assert config.xmpp.secret.get_secret_value() == "from-env"


def test_environment_overrides_other_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "xmpp: {domain: hub.example, secret: s}\nlimits: {confirm_timeout: 9}\n")
    monkeypatch.setenv("HUB_LIMITS__CONFIRM_TIMEOUT", "3")
    monkeypatch.setenv("hub_mqtt__mode", "external")
    config = load_config(path)
    assert config.limits.confirm_timeout == 3.0
    assert config.mqtt.mode == "external"


def test_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("from-secret-file\n", encoding="utf-8")
    path = write(tmp_path, f"xmpp:\n  domain: hub.example\n  secret_file: {secret}\n")
    config = load_config(path)
    assert config.xmpp.secret is not None
    assert config.xmpp.secret.get_secret_value() == "from-secret-file"


def test_secret_and_secret_file_together_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "xmpp:\n  domain: hub.example\n  secret: s\n  secret_file: /nonexistent\n")
    assert problems(path) == [Problem(str(path), 2, "xmpp", "give secret or secret_file, not both")]


def test_operators(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        operators:
          Alice@Example.ORG: {role: admin}
          bob@example.org: {role: viewer, groups: [kitchen]}
        """,
    )
    operators = load_config(path).operators
    assert set(operators) == {"alice@example.org", "bob@example.org"}
    assert operators["alice@example.org"].role == "admin"
    assert operators["bob@example.org"].groups == ["kitchen"]


@pytest.mark.parametrize("jid", ["alice", "alice@example.org/phone"])
def test_operators_must_be_bare_jids(tmp_path: Path, jid: str) -> None:
    path = write(tmp_path, f"xmpp: {{domain: hub.example, secret: s}}\noperators:\n  {jid}: {{}}\n")
    assert problems(path) == [Problem(str(path), 3, "operators", f"{jid!r} is not a bare JID like alice@example.org")]


def test_listener_must_bind_to_an_address(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        mqtt:
          embedded:
            listeners:
              - {name: lan, host: 0.0.0.0, port: 1883}
              - {name: web, kind: ws, host: example.org, port: 8080}
        """,
    )
    assert problems(path) == [
        Problem(str(path), 6, "mqtt.embedded.listeners.1.host", "'example.org' is not an IP address to bind to")
    ]


def test_broker_limits_must_be_positive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        mqtt:
          embedded:
            max_topic_levels: 0
            max_subscriptions_per_client: 5
        """,
    )
    assert problems(path) == [
        Problem(str(path), 4, "mqtt.embedded.max_topic_levels", "Input should be greater than or equal to 1")
    ]


def test_tls_listener_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    self_signed(tmp_path / "tls", "mqtt")
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        mqtt:
          embedded:
            listeners:
              - {name: secure, port: 8883, tls: {certfile: tls/mqtt.crt, keyfile: tls/mqtt.key}}
              - {name: web, kind: ws, port: 8884}
        """,
    )
    secure, web = load_config(path).mqtt.embedded.listeners
    assert secure.tls is not None
    assert (secure.tls.certfile, secure.tls.keyfile) == (tmp_path / "tls/mqtt.crt", tmp_path / "tls/mqtt.key")
    assert web.tls is None


def test_tls_files_that_are_missing_or_do_not_match_are_refused(tmp_path: Path) -> None:
    self_signed(tmp_path, "one")
    self_signed(tmp_path, "two")
    path = write(
        tmp_path,
        """
        xmpp: {domain: hub.example, secret: s}
        mqtt:
          embedded:
            listeners:
              - {name: a, port: 8883, tls: {certfile: nosuch.crt, keyfile: one.key}}
              - {name: b, port: 8884, tls: {certfile: one.crt, keyfile: two.key}}
        """,
    )
    missing, mismatched = problems(path)
    assert missing == Problem(
        str(path),
        5,
        "mqtt.embedded.listeners.0.tls.certfile",
        f"cannot read '{tmp_path / 'nosuch.crt'}': No such file or directory",
    )
    assert (mismatched.line, mismatched.field) == (6, "mqtt.embedded.listeners.1.tls")
    assert mismatched.reason.startswith(
        f"'{tmp_path / 'one.crt'}' and '{tmp_path / 'two.key'}' are not a certificate and its key: "
    ), mismatched.reason


def test_duplicate_binding_names(tmp_path: Path) -> None:
    path = write(tmp_path, "xmpp: {domain: hub.example, secret: s}\nbindings:\n  - profile: hub\n  - profile: hub\n")
    assert problems(path) == [Problem(str(path), 1, "", "two bindings have the same name: give each a distinct 'name'")]


def test_file_must_hold_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- xmpp\n")
    assert problems(path) == [Problem(str(path), 1, "", "the file must hold a mapping of settings")]


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "xmpp:\n  domain: hub.example\n  secret: [unclosed\n")
    (problem,) = problems(path)
    assert (problem.file, problem.field) == (str(path), "")
    assert problem.line == 4
    assert problem.reason.startswith("not valid YAML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert problems(path) == [Problem(str(path), None, "", "cannot read: No such file or directory")]
