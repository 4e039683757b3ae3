"""Home Assistant style value templates, as data: a small expression language, never code.

Discovery configs carry Jinja templates such as ``{{ value_json.temperature }}``
or ``{{ (value_json.ENERGY.Power | float) * 0.001 }}``. Running them with a
template engine would run whatever a device (or anyone who can publish a
discovery config) wrote. Instead this module parses the subset devices use
into a tree and evaluates it: names ``value`` and ``value_json``, member and
index access, numbers and strings, ``+ - * /``, comparisons, ``a if c else b``
and a fixed set of filters. Templates are at most :data:`MAX_TEMPLATE_CHARS`
long and evaluation touches each node once, so the cost is bounded by the
template's length. Anything else is refused with a :class:`TemplateSyntaxError`
when the config is read, not when a message arrives.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from hub.core.codecs import MAX_PAYLOAD_BYTES, PayloadError, Reading, parse_scalar, scalar

MAX_TEMPLATE_CHARS = 1024
_MAX_DEPTH = 32


class TemplateSyntaxError(ValueError):
    """A template outside the supported subset; the message says where."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'[^'\\]*'|\"[^\"\\]*\")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|[-+*/().\[\]|,<>]))"
)

Value = Reading | None | dict[str, object] | list[object]


@dataclass(frozen=True, slots=True)
class _Node:
    kind: str
    args: tuple[object, ...]


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise TemplateSyntaxError(f"unexpected {text[pos : pos + 10].strip()!r} at character {pos}")
        tokens.append(match.group(match.lastgroup or "op"))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise TemplateSyntaxError(f"expected {expected or 'more'}, found {token or 'the end'}")
        self.pos += 1
        return token

    def expression(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise TemplateSyntaxError("template nested too deeply")
        node = self.comparison()
        if self.peek() == "if":
            self.take()
            condition = self.comparison()
            self.take("else")
            node = _Node("if", (condition, node, self.expression()))
        self.depth -= 1
        return node

    def comparison(self) -> _Node:
        node = self.additive()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">=", "and", "or"):
            op = self.take()
            node = _Node("bin", (op, node, self.additive()))
        return node

    def additive(self) -> _Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = _Node("bin", (op, node, self.term()))
        return node

    def term(self) -> _Node:
        node = self.filtered()
        while self.peek() in ("*", "/"):
            op = self.take()
            node = _Node("bin", (op, node, self.filtered()))
        return node

    def filtered(self) -> _Node:
        node = self.unary()
        while self.peek() == "|":
            self.take()
            name = self.take()
            if name not in _FILTERS:
                raise TemplateSyntaxError(f"filter {name!r} is not supported; known: {', '.join(sorted(_FILTERS))}")
            args: list[_Node] = []
            if self.peek() == "(":
                self.take()
                while self.peek() != ")":
                    args.append(self.expression())
                    if self.peek() == ",":
                        self.take()
                self.take(")")
            node = _Node("filter", (name, node, tuple(args)))
        return node

    def unary(self) -> _Node:
        if self.peek() == "-":
            self.take()
            return _Node("neg", (self.unary(),))
        if self.peek() == "not":
            self.take()
            return _Node("not", (self.unary(),))
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while self.peek() in (".", "["):
            if self.take() == ".":
                name = self.take()
                if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                    raise TemplateSyntaxError(f"member name {name!r} is not allowed")
                node = _Node("get", (node, _Node("lit", (name,))))
            else:
                key = self.expression()
                self.take("]")
                node = _Node("get", (node, key))
        return node

    def primary(self) -> _Node:
        token = self.take()
        if token == "(":
            node = self.expression()
            self.take(")")
            return node
        if token[0].isdigit():
            return _Node("lit", (float(token) if "." in token else int(token),))
        if token[0] in "'\"":
            return _Node("lit", (token[1:-1],))
        if token in ("value", "value_json"):
            return _Node("var", (token,))
        if token in ("true", "True", "false", "False"):
            return _Node("lit", (token.lower() == "true",))
        if token in ("none", "None"):
            return _Node("lit", (None,))
        raise TemplateSyntaxError(f"unknown name {token!r}: only value and value_json are known")


class _Undefined:
    """A member that is not there: filters like ``default`` replace it, output turns it into no reading."""


_UNDEFINED = _Undefined()


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _f_float(value: object, default: object = 0.0) -> object:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else default


def _f_int(value: object, default: object = 0) -> object:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else default


def _f_round(value: object, digits: object = 0) -> object:
    number = _number(value)
    if number is None or not math.isfinite(number):
        return value
    places = int(digits) if isinstance(digits, int | float) and not isinstance(digits, bool) else 0
    return round(number, max(0, min(places, 9)))


def _f_default(value: object, fallback: object = "") -> object:
    return fallback if value is _UNDEFINED or value is None else value


_FILTERS: dict[str, Callable[..., object]] = {
    "float": _f_float,
    "int": _f_int,
    "round": _f_round,
    "default": _f_default,
    "lower": lambda v: str(v).lower() if isinstance(v, str) else v,
    "upper": lambda v: str(v).upper() if isinstance(v, str) else v,
    "string": lambda v: v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list) else str(v),
    "abs": lambda v: abs(n) if (n := _number(v)) is not None else v,
    "bool": lambda v: str(v).strip().lower() in ("true", "on", "yes", "1"),
    "is_defined": lambda v: v is not _UNDEFINED,
}


def _binary(op: str, left: object, right: object) -> object:
    if op == "and":
        return bool(left) and bool(right)
    if op == "or":
        return bool(left) or bool(right)
    if op in ("==", "!="):
        same = left == right
        return same if op == "==" else not same
    if op in ("+", "-", "*", "/", "<", ">", "<=", ">="):
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return (left + right)[:MAX_TEMPLATE_CHARS]
        a, b = _number(left), _number(right)
        if a is None or b is None:
            return _UNDEFINED
        match op:
            case "+":
                return a + b
            case "-":
                return a - b
            case "*":
                return a * b
            case "/":
                return a / b if b else _UNDEFINED
            case "<":
                return a < b
            case ">":
                return a > b
            case "<=":
                return a <= b
            case _:
                return a >= b
    raise TemplateSyntaxError(f"operator {op!r}")  # pragma: no cover - the parser admits no other


def _evaluate(node: _Node, env: dict[str, object]) -> object:
    kind, args = node.kind, node.args
    if kind == "lit":
        return args[0]
    if kind == "var":
        name = str(args[0])
        return env.get(name, _UNDEFINED)
    if kind == "get":
        base = _evaluate(args[0], env)  # type: ignore[arg-type]
        key = _evaluate(args[1], env)  # type: ignore[arg-type]
        if isinstance(base, dict) and isinstance(key, str):
            return base.get(key, _UNDEFINED)
        if isinstance(base, list) and isinstance(key, int) and not isinstance(key, bool):
            return base[key] if -len(base) <= key < len(base) else _UNDEFINED
        return _UNDEFINED
    if kind == "neg":
        number = _number(_evaluate(args[0], env))  # type: ignore[arg-type]
        return -number if number is not None else _UNDEFINED
    if kind == "not":
        return not _evaluate(args[0], env)  # type: ignore[arg-type]
    if kind == "bin":
        return _binary(str(args[0]), _evaluate(args[1], env), _evaluate(args[2], env))  # type: ignore[arg-type]
    if kind == "if":
        condition, then, otherwise = args
        chosen = then if _evaluate(condition, env) else otherwise  # type: ignore[arg-type]
        return _evaluate(chosen, env)  # type: ignore[arg-type]
    filter_name, target, extra = args
    values = [_evaluate(a, env) for a in extra]  # type: ignore[attr-defined]
    return _FILTERS[str(filter_name)](_evaluate(target, env), *values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Part:
    text: str | None
    node: _Node | None


@lru_cache(maxsize=1024)
def compile_template(source: str) -> tuple[_Part, ...]:
    """The template as literal text and expression parts; :class:`TemplateSyntaxError` if unsupported."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateSyntaxError(f"template of {len(source)} characters is over {MAX_TEMPLATE_CHARS}")
    if "{%" in source or "{#" in source:
        raise TemplateSyntaxError("statements ({% … %}) are not supported, only {{ expressions }}")
    parts: list[_Part] = []
    rest = source
    while rest:
        start = rest.find("{{")
        if start < 0:
            parts.append(_Part(rest, None))
            break
        if start:
            parts.append(_Part(rest[:start], None))
        end = rest.find("}}", start)
        if end < 0:
            raise TemplateSyntaxError("'{{' without '}}'")
        parser = _Parser(_tokenize(rest[start + 2 : end]))
        node = parser.expression()
        if parser.peek() is not None:
            raise TemplateSyntaxError(f"unexpected {parser.peek()!r}")
        parts.append(_Part(None, node))
        rest = rest[end + 2 :]
    return tuple(parts)


def render_value_template(source: str, payload: bytes) -> Reading | None:
    """The reading a template makes of a payload; ``None`` when it names something the payload lacks."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        parts = compile_template(source)
    except TemplateSyntaxError as exc:
        raise PayloadError(f"value template not supported: {exc}") from None
    text = payload.decode("utf-8", "replace")
    env: dict[str, object] = {"value": text.strip()}
    with contextlib.suppress(ValueError, RecursionError):  # not JSON: only ``value`` is known
        env["value_json"] = json.loads(text)
    values = [part.text if part.node is None else _evaluate(part.node, env) for part in parts]
    if any(v is _UNDEFINED for v in values):
        return None
    if len(values) == 1:
        return scalar(values[0])
    joined = "".join("" if v is None else str(v) for v in values).strip()
    return scalar(parse_scalar(joined))
