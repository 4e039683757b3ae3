"""Command payloads from a profile's template: JSON-shaped data, filled safely.

Only named placeholders are filled, by plain substitution: no expressions,
no attribute access, no code. A string that is exactly ``"{name}"`` takes the
typed value (so ``21.5`` stays a number); others are filled as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from hub.core.codecs import Reading
from hub.core.profile import JsonValue

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """A payload template names a placeholder that has no value."""


def _fill_text(text: str, values: Mapping[str, Reading]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"placeholder {{{name}}} has no value")
        value = values[name]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _PLACEHOLDER.sub(replace, text)


def fill(template: JsonValue, values: Mapping[str, Reading]) -> JsonValue:
    """``template`` with every placeholder replaced (see the module docstring)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            name = whole.group(1)
            if name not in values:
                raise TemplateError(f"placeholder {{{name}}} has no value")
            return values[name]
        return _fill_text(template, values)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {_fill_text(key, values): fill(item, values) for key, item in template.items()}
    return template


def placeholders(template: JsonValue) -> set[str]:
    """Every placeholder a template uses, for checking profiles at start-up."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, list):
        return set().union(*(placeholders(item) for item in template)) if template else set()
    if isinstance(template, dict):
        found: set[str] = set()
        for key, item in template.items():
            found |= set(_PLACEHOLDER.findall(key)) | placeholders(item)
        return found
    return set()


def render(template: JsonValue, values: Mapping[str, Reading]) -> bytes:
    """The payload bytes: a filled string is sent as text, anything else as JSON."""
    filled = fill(template, values)
    if isinstance(filled, str):
        return filled.encode("utf-8")
    return json.dumps(filled, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
