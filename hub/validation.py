"""Strict YAML loading whose errors say ``file:line: field: reason``.

Config and profiles are written by people, so every problem is reported at
once, with the line it is on, before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class ConfigError(Exception):
    """One or more problems in a file a person wrote; ``str()`` lists them, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at ``loc`` (or of its nearest parent that exists)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                key = next((k for k, v in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else best
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parsed data and the node tree (for line numbers) of a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), None, "", "not UTF-8 text")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([Problem(str(path), line, "", f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), None, "", f"not valid YAML: {exc}")]) from None
    return data, node


def problems_from(
    exc: ValidationError, file: str, node: yaml.Node | None, prefix: Sequence[str | int] = ()
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [*prefix, *(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))]
        reason = error["msg"].removeprefix("Value error, ")
        where, sep, rest = reason.partition(": ")
        if len(loc) == len(prefix) and sep and re.fullmatch(r"\w+(\.\w+)*", where):
            # A whole-model check names the field it is about: "switch.property: ...".
            loc, reason = [*prefix, *(int(p) if p.isdigit() else p for p in where.split("."))], rest
        field = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            reason = "unknown field (check the spelling)"
        problems.append(Problem(file, _line_of(node, loc), field, reason))
    return problems


def validate(model: type[M], data: Any, file: str, node: yaml.Node | None) -> M:
    """``model`` built from ``data``, or a :class:`ConfigError` listing every problem."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, file, node)) from None
