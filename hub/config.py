"""The hub's configuration: one YAML file, validated once, with ``HUB_…`` overrides.

Environment variables win over the file (``HUB_XMPP__SECRET`` sets
``xmpp.secret``), so secrets can stay out of the file. Every problem is
reported as ``file:line: field: reason`` before anything starts.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.core.topics import TopicError, validate_topic_filter
from hub.validation import ConfigError, Problem, problems_from, read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(value: SecretStr | None, file: Path | None, what: str) -> SecretStr | None:
    if value is not None and file is not None:
        raise ValueError(f"give {what} or {what}_file, not both")
    if file is None:
        return value
    try:
        return SecretStr(file.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"cannot read {what}_file {str(file)!r}: {exc.strerror}") from None


class XmppConfig(_Strict):
    domain: str = Field(description="The component's domain; each device is <id>@<domain>.")
    host: str = "127.0.0.1"
    port: int = Field(default=5347, ge=1, le=65535)
    secret: SecretStr | None = None
    secret_file: Path | None = None
    ping_interval: float = Field(default=60.0, ge=0, description="Seconds between liveness pings; 0: none.")
    ping_timeout: float = Field(default=20.0, gt=0, description="No answer within this: the stream is stalled.")
    ping_to: str | None = Field(default=None, description="Who is pinged (default: the domain's parent).")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value or "@" in value or "/" in value or " " in value:
            raise ValueError(f"{value!r} is not a domain")
        return value.lower()

    @model_validator(mode="after")
    def _secret(self) -> XmppConfig:
        secret = _read_secret(self.secret, self.secret_file, "secret")
        if secret is None or not secret.get_secret_value():
            raise ValueError("the component secret is missing: set xmpp.secret, xmpp.secret_file or HUB_XMPP__SECRET")
        object.__setattr__(self, "secret", secret)
        return self


class TlsConfig(_Strict):
    """A listener's certificate: with it the listener speaks only TLS (MQTT over TLS, or secure WebSocket)."""

    certfile: Path = Field(description="PEM certificate, followed by any intermediate certificates.")
    keyfile: Path = Field(description="PEM private key of that certificate.")

    @field_validator("certfile", "keyfile")
    @classmethod
    def _readable(cls, path: Path) -> Path:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        return path

    @model_validator(mode="after")
    def _a_pair(self) -> TlsConfig:
        """Load them as the broker will, so a wrong key or a file that is no PEM fails here, not at start."""
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.certfile, self.keyfile)
        except ssl.SSLError as exc:
            files = f"{str(self.certfile)!r} and {str(self.keyfile)!r}"
            raise ValueError(f"{files} are not a certificate and its key: {exc.reason or exc}") from None
        return self


class ListenerConfig(_Strict):
    name: str = "default"
    kind: Literal["tcp", "ws"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    tls: TlsConfig | None = None

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if value != "localhost":
                raise ValueError(f"{value!r} is not an IP address to bind to") from None
        return value


class AclConfig(_Strict):
    """Per-device topic ACL of the embedded broker; ``{username}`` is the device's MQTT user name."""

    enabled: bool = Field(default=True, description="Restrict each device to its own topics.")
    publish: list[str] | None = Field(
        default=None, description="Topic filters a device may publish to; default: its namespaces from the bindings."
    )
    subscribe: list[str] | None = Field(
        default=None, description="Topic filters a device may subscribe to; default: as for publish."
    )
    unrestricted: list[str] = Field(default=[], description="MQTT users the ACL does not restrict (admin, tester).")

    @field_validator("publish", "subscribe")
    @classmethod
    def _patterns(cls, patterns: list[str] | None) -> list[str] | None:
        for pattern in patterns or []:
            sample = pattern.replace("{username}", "u")
            if "{" in sample or "}" in sample:
                raise ValueError(f"{pattern!r}: only {{username}} may be written in braces")
            try:
                validate_topic_filter(sample)
            except TopicError as exc:
                raise ValueError(f"{pattern!r}: {exc}") from None
        return patterns


class EmbeddedConfig(_Strict):
    listeners: list[ListenerConfig] = [ListenerConfig()]
    allow_anonymous: bool = Field(default=False, description="Let devices connect without a password.")
    users: dict[str, str] = Field(default={}, description="MQTT username → argon2 hash (from 'hub passwd').")
    acl: AclConfig = AclConfig()
    max_publish_rate: float | None = Field(
        default=1000.0, gt=0, description="PUBLISH packets per second per connection; past it the client is slowed."
    )
    max_topic_levels: int = Field(
        default=16, ge=1, le=1024, description="Levels a topic may have; a deeper PUBLISH is dropped, a filter refused."
    )
    max_subscriptions_per_client: int = Field(
        default=100, ge=1, description="Topic filters one MQTT client may hold; further ones get return code 0x80."
    )

    @field_validator("users")
    @classmethod
    def _hashed(cls, users: dict[str, str]) -> dict[str, str]:
        for name, hashed in users.items():
            if not hashed.startswith("$argon2"):
                raise ValueError(
                    f"password of {name!r} is not an argon2 hash: store 'hub passwd' output, not the password"
                )
        return users

    @model_validator(mode="after")
    def _someone_can_connect(self) -> EmbeddedConfig:
        names = [listener.name for listener in self.listeners]
        if len(set(names)) != len(names):
            raise ValueError("listener names must be unique")
        return self


class ExternalConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    client_id: str = "mqtt-xmpp-hub"
    keepalive: int = Field(default=30, ge=5, le=3600)
    tls: bool = False
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _password(self) -> ExternalConfig:
        object.__setattr__(self, "password", _read_secret(self.password, self.password_file, "password"))
        return self


class MqttConfig(_Strict):
    mode: Literal["embedded", "external"] = "embedded"
    embedded: EmbeddedConfig = EmbeddedConfig()
    external: ExternalConfig = ExternalConfig()


class BindingConfig(_Strict):
    name: str | None = None
    profile: str
    slots: dict[str, str] = {}
    jid_prefix: str = ""


class DeviceEntry(_Strict):
    name: str | None = None
    binding: str | None = None
    group: str | None = None
    expected_interval: float | None = Field(default=None, gt=0)


class OperatorEntry(_Strict):
    role: Literal["viewer", "operator", "admin"] = "operator"
    groups: list[str] | None = None
    notify_new_devices: bool = False


class AlertEntry(_Strict):
    name: str
    field: str
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    devices: list[str] | None = Field(default=None, description="Device ids or 'group:<name>'; all if omitted.")
    hysteresis: float = Field(default=0.0, ge=0)
    repeat_every: float = Field(default=900.0, ge=60)


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class LimitsConfig(_Strict):
    max_devices: int = Field(default=10_000, ge=1)
    event_queue: int = Field(default=10_000, ge=10)
    confirm_timeout: float = Field(default=5.0, gt=0, le=600)
    xmpp_buffer: int = Field(
        default=500, ge=0, description="Alerts and confirmations kept while the XMPP server is unreachable."
    )
    queued_command_expiry: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="Seconds a command for an offline device waits for it."
    )
    max_queued_per_device: int = Field(default=10, ge=1, description="Commands waiting for one offline device.")
    max_queued_commands: int = Field(default=1000, ge=1, description="Commands waiting for offline devices, in all.")
    max_connections: int = Field(
        default=10_000, ge=1, description="Embedded broker: open MQTT connections per listener; more wait."
    )
    presence_min_interval: float = Field(
        default=1.0, ge=0, le=3600, description="Seconds between two presences of one device; the latest wins."
    )
    presence_budget: float = Field(default=1000.0, ge=0, description="Presence stanzas per second in all; 0: no limit.")
    operator_commands_per_minute: int | None = Field(
        default=30, ge=1, description="Commands one operator may give per minute (a minute's burst); null: no limit."
    )


class MetricsConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="Where the Prometheus endpoint listens; loopback by default.")
    port: int | None = Field(default=None, ge=1, le=65535, description="null: no endpoint.")


class HubConfig(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="HUB_", env_nested_delimiter="__", case_sensitive=False
    )

    xmpp: XmppConfig
    mqtt: MqttConfig = MqttConfig()
    bindings: list[BindingConfig] = [BindingConfig(name="hub", profile="hub")]
    profile_dirs: list[Path] = []
    devices: dict[str, DeviceEntry] = {}
    accept_unknown_devices: bool = True
    operators: dict[str, OperatorEntry] = {}
    alerts: list[AlertEntry] = []
    state_dir: Path = Path("state")
    log: LogConfig = LogConfig()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @field_validator("operators")
    @classmethod
    def _bare_jids(cls, operators: dict[str, OperatorEntry]) -> dict[str, OperatorEntry]:
        for jid in operators:
            if "@" not in jid or "/" in jid:
                raise ValueError(f"{jid!r} is not a bare JID like alice@example.org")
        return {jid.lower(): entry for jid, entry in operators.items()}

    @model_validator(mode="after")
    def _names(self) -> HubConfig:
        names = [b.name or b.profile for b in self.bindings]
        if len(set(names)) != len(names):
            raise ValueError("two bindings have the same name: give each a distinct 'name'")
        return self


_FILE_KEYS = (("xmpp", "secret_file"), ("mqtt", "external", "password_file"), ("mqtt", "external", "ca_file"))


def _rebase_files(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative secret and certificate paths in the file are relative to the file."""
    sections: list[tuple[Any, str]] = []
    for keys in _FILE_KEYS:
        section: Any = data
        for key in keys[:-1]:
            section = section.get(key) if isinstance(section, dict) else None
        sections.append((section, keys[-1]))
    listeners = _get(data, "mqtt", "embedded", "listeners")
    for listener in listeners if isinstance(listeners, list) else []:
        tls = _get(listener, "tls")
        sections += [(tls, "certfile"), (tls, "keyfile")]
    for section, key in sections:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            value = Path(section[key])
            if not value.is_absolute():
                section[key] = str(base / value)
    return data


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def load_config(path: Path) -> HubConfig:
    """The validated configuration, or a :class:`ConfigError` that lists every problem."""
    data, node = read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, "", "the file must hold a mapping of settings")])
    base = path.parent
    data = _rebase_files(data or {}, base)
    try:
        config = HubConfig(**data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, str(path), node)) from None
    # Relative paths in the file are relative to the file, not to where the hub was started.
    updates: dict[str, Any] = {}
    if not config.state_dir.is_absolute():
        updates["state_dir"] = base / config.state_dir
    updates["profile_dirs"] = [d if d.is_absolute() else base / d for d in config.profile_dirs]
    return config.model_copy(update=updates)
