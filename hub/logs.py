"""Structured logs that name the device, topic or JID, and never a secret.

Text lines read ``event key=value …``; JSON lines carry the same fields. A
filter masks anything that looks like a password or secret, whatever logger
it comes from (amqtt and slixmpp included).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping

_SECRET_KEYS = re.compile(r"(?i)\b(password|passwd|secret|token|handshake)\b(\s*[=:]\s*|['\"]\s*:\s*['\"]?)(\S+)")
_HANDSHAKE = re.compile(r"<handshake[^>]*>[^<]*</handshake>")


class RedactSecrets(logging.Filter):
    """Masks secrets in every record, including third-party libraries' messages."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _HANDSHAKE.sub("<handshake>***</handshake>", text)
        return _SECRET_KEYS.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self.scrub(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {k: ("***" if _SECRET_KEYS.search(f"{k}=x") else v) for k, v in fields.items()}
        return True


def _value(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text or '"' in text) else text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {}) or {}
        parts = [
            self.formatTime(record, "%Y-%m-%d %H:%M:%S"),
            record.levelname.lower(),
            record.name,
            record.getMessage(),
        ]
        parts += [f"{k}={_value(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(
            {
                k: v if isinstance(v, int | float | bool) else str(v)
                for k, v in (getattr(record, "fields", {}) or {}).items()
            }
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str, fmt: str, secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The wire libraries are chatty at INFO and log whole packets at DEBUG.
    for noisy in ("amqtt", "transitions", "slixmpp", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "debug" else logging.INFO)


def log(logger: logging.Logger, level: str, event: str, fields: Mapping[str, object] | None = None) -> None:
    logger.log(logging.getLevelNamesMapping()[level.upper()], event, extra={"fields": dict(fields or {})})
