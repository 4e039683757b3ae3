"""Home Assistant style value templates, as data: a small Jinja subset, never code.

Discovery configs carry Jinja templates such as ``{{ value_json.temperature }}``
or ``{{ (value_json.ENERGY.Power | float) * 0.001 }}``. Running them with a
template engine would run whatever a device (or anyone who can publish a
discovery config) wrote. Instead this module parses the subset devices use
into a tree and evaluates it:

- names ``value`` and ``value_json``; member and index access (``a.b``,
  ``a['b']``, ``a[0]``), which only ever looks inside decoded JSON, never at
  Python attributes (and ``.member`` may not start with ``_``);
- numbers, strings, ``true``/``false``/``none``; ``+ - * / // %``, ``~``
  (joining text), comparisons, ``in``, ``and``/``or``/``not``,
  ``a if c else b``;
- a fixed set of filters (``| float``, ``| round(1)``, ``| default(0)``…) and
  tests (``is defined``, ``is not none``, ``is number``…);
- ``{% if %}…{% elif %}…{% else %}…{% endif %}`` blocks, and ``{# comments #}``.

There are no loops, calls, assignments or power operator. A template is at
most :data:`MAX_TEMPLATE_CHARS` long, nests at most ``_MAX_DEPTH`` deep, and
evaluation touches each node at most once, so its cost is bounded by its
length and the payload's size. Anything else is refused with a
:class:`TemplateSyntaxError` when the config is read, not when a message
arrives.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from hub.core.codecs import MAX_PAYLOAD_BYTES, MAX_TEXT_READING, PayloadError, Reading, parse_scalar, scalar

MAX_TEMPLATE_CHARS = 1024
_MAX_DEPTH = 32


class TemplateSyntaxError(ValueError):
    """A template outside the supported subset; the message says where."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'[^'\\]*'|\"[^\"\\]*\")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|//|[-+*/%~().\[\]|,<>]))"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Members are JSON keys; none starting with ``_`` (``__class__``), so nothing even looks like an escape.
_MEMBER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})


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
    """Recursive descent with Jinja's precedence: or < and < not < comparison < ~ < + - < * / < filters."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise TemplateSyntaxError(f"expected {expected or 'more'}, found {token or 'the end'}")
        self.pos += 1
        return token

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise TemplateSyntaxError("template nested too deeply")

    def expression(self) -> _Node:
        self._enter()
        node = self.or_expr()
        if self.peek() == "if":
            self.take()
            condition = self.or_expr()
            otherwise = _Node("lit", (_UNDEFINED,))
            if self.peek() == "else":
                self.take()
                otherwise = self.expression()
            node = _Node("if", (condition, node, otherwise))
        self.depth -= 1
        return node

    def _left(self, operators: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        """One precedence level of left-associative binary operators: ``a op b op c`` is ``(a op b) op c``."""
        node = operand()
        while self.peek() in operators:
            op = self.take()
            node = _Node("bin", (op, node, operand()))
        return node

    def or_expr(self) -> _Node:
        return self._left(("or",), self.and_expr)

    def and_expr(self) -> _Node:
        return self._left(("and",), self.not_expr)

    def not_expr(self) -> _Node:
        if self.peek() == "not":
            self.take()
            self._enter()
            node = _Node("not", (self.not_expr(),))
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> _Node:
        node = self.concat()
        while True:
            token = self.peek()
            if token in ("==", "!=", "<", ">", "<=", ">=", "in"):
                op = self.take()
            elif token == "not" and self.peek(1) == "in":
                self.take(), self.take()
                op = "not in"
            else:
                return node
            node = _Node("bin", (op, node, self.concat()))

    def concat(self) -> _Node:
        return self._left(("~",), self.additive)

    def additive(self) -> _Node:
        return self._left(("+", "-"), self.term)

    def term(self) -> _Node:
        return self._left(("*", "/", "//", "%"), self.filtered)

    def filtered(self) -> _Node:
        node = self.unary()
        while self.peek() in ("|", "is"):
            if self.take() == "|":
                name = self.take()
                if name not in _FILTERS:
                    raise TemplateSyntaxError(f"filter {name!r} is not supported; known: {', '.join(sorted(_FILTERS))}")
                node = _Node("filter", (name, node, self.arguments()))
            else:
                negate = self.peek() == "not"
                if negate:
                    self.take()
                name = self.take()
                if name not in _TESTS:
                    raise TemplateSyntaxError(f"test {name!r} is not supported; known: {', '.join(sorted(_TESTS))}")
                node = _Node("test", (name, node, negate))
        return node

    def arguments(self) -> tuple[_Node, ...]:
        args: list[_Node] = []
        if self.peek() == "(":
            self.take()
            while self.peek() != ")":
                args.append(self.expression())
                if self.peek() == ",":
                    self.take()
                elif self.peek() != ")":
                    raise TemplateSyntaxError(f"expected ',' or ')', found {self.peek() or 'the end'}")
                if len(args) > 4:
                    raise TemplateSyntaxError("too many filter arguments")
            self.take(")")
        return tuple(args)

    def unary(self) -> _Node:
        if self.peek() in ("-", "+"):
            sign = self.take()
            self._enter()
            node = self.unary()
            self.depth -= 1
            return _Node("neg", (node,)) if sign == "-" else _Node("pos", (node,))
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while self.peek() in (".", "["):
            if self.take() == ".":
                name = self.take()
                if not _MEMBER.fullmatch(name) and not name.isdigit():
                    raise TemplateSyntaxError(f"member name {name!r} is not allowed")
                key: object = int(name) if name.isdigit() else name
                node = _Node("get", (node, _Node("lit", (key,))))
            else:
                key_node = self.expression()
                self.take("]")
                node = _Node("get", (node, key_node))
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
        if token in _KEYWORDS or not _NAME.fullmatch(token):
            raise TemplateSyntaxError(f"unexpected {token!r}")
        raise TemplateSyntaxError(f"unknown name {token!r}: only value and value_json are known")


class _Undefined:
    """A member that is not there: filters like ``default`` replace it, output turns it into no reading."""

    def __repr__(self) -> str:
        return "Undefined"


_UNDEFINED = _Undefined()


def _number(value: object) -> float | None:
    try:
        if isinstance(value, bool | int | float):
            return float(value)
        if isinstance(value, str) and len(value) <= 64:
            return float(value.strip())
    except (ValueError, OverflowError):  # not a number, or an integer past float's range
        return None
    return None


def _finite(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


def _f_float(value: object, default: object = _UNDEFINED) -> object:
    number = _finite(value)
    return number if number is not None else default


def _f_int(value: object, default: object = _UNDEFINED) -> object:
    number = _finite(value)
    return int(number) if number is not None else default


def _f_round(value: object, digits: object = 0, method: object = "common") -> object:
    number = _finite(value)
    if number is None:
        return value
    places = int(digits) if isinstance(digits, int | float) and not isinstance(digits, bool) else 0
    places = max(0, min(places, 9))
    if method == "floor":
        return math.floor(number * 10**places) / 10**places
    if method == "ceil":
        return math.ceil(number * 10**places) / 10**places
    return round(number, places)


def _f_default(value: object, fallback: object = "", boolean: object = False) -> object:
    if value is _UNDEFINED or value is None or (boolean is True and not value):
        return fallback
    return value


def _f_multiply(value: object, factor: object = 1) -> object:
    a, b = _finite(value), _finite(factor)
    return a * b if a is not None and b is not None else _UNDEFINED


def _f_length(value: object) -> object:
    return len(value) if isinstance(value, str | list | dict) else _UNDEFINED


def _f_string(value: object) -> object:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)[:MAX_PAYLOAD_BYTES]
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


_FILTERS: dict[str, Callable[..., object]] = {
    "float": _f_float,
    "int": _f_int,
    "round": _f_round,
    "default": _f_default,
    "d": _f_default,
    "multiply": _f_multiply,
    "lower": lambda v: v.lower() if isinstance(v, str) else v,
    "upper": lambda v: v.upper() if isinstance(v, str) else v,
    "trim": lambda v: v.strip() if isinstance(v, str) else v,
    "string": _f_string,
    "length": _f_length,
    "count": _f_length,
    "abs": lambda v: abs(n) if (n := _number(v)) is not None else v,
    "bool": lambda v: v if isinstance(v, bool) else str(v).strip().lower() in ("true", "on", "yes", "1"),
    # Home Assistant's ``is_defined`` passes a defined value through and fails otherwise: no reading.
    "is_defined": lambda v: v,
    "is_number": lambda v: _finite(v) is not None and not isinstance(v, bool),
}

_TESTS: dict[str, Callable[[object], bool]] = {
    "defined": lambda v: v is not _UNDEFINED,
    "undefined": lambda v: v is _UNDEFINED,
    "none": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "mapping": lambda v: isinstance(v, dict),
    "true": lambda v: v is True,
    "false": lambda v: v is False,
}


def _contains(container: object, item: object) -> bool:
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    if isinstance(container, list):
        return any(item == element for element in container)
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    return False


def _binary(op: str, left: object, right: object) -> object:
    if op == "and":
        return right if _truthy(left) else left
    if op == "or":
        return left if _truthy(left) else right
    if left is _UNDEFINED or right is _UNDEFINED:
        return op == "!=" if op in ("==", "!=") else _UNDEFINED
    if op in ("==", "!="):
        same = left == right
        return same if op == "==" else not same
    if op in ("in", "not in"):
        found = _contains(right, left)
        return found if op == "in" else not found
    if op == "~":
        return (_f_string(left) + _f_string(right))[:MAX_TEMPLATE_CHARS]  # type: ignore[operator]
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return (left + right)[:MAX_TEMPLATE_CHARS]
    if _small_int(left) and _small_int(right) and op in ("+", "-", "*", "//", "%"):
        return _whole(op, int(left), int(right))  # type: ignore[call-overload]
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
        case "//":
            return math.floor(a / b) if b and math.isfinite(a / b) else _UNDEFINED
        case "%":
            return math.fmod(a, b) if b and math.isfinite(a) else _UNDEFINED
        case "<":
            return a < b
        case ">":
            return a > b
        case "<=":
            return a <= b
        case _:
            return a >= b


def _small_int(value: object) -> bool:
    """Whole numbers stay whole (``7 // 2`` is 3) while small; past 2**53 arithmetic goes to floats."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53


def _whole(op: str, a: int, b: int) -> object:
    match op:
        case "+":
            return a + b
        case "-":
            return a - b
        case "*":
            return a * b
        case "//":
            return a // b if b else _UNDEFINED
        case _:
            return a % b if b else _UNDEFINED


def _truthy(value: object) -> bool:
    return value is not _UNDEFINED and bool(value)


def _evaluate(node: _Node, env: dict[str, object]) -> object:
    kind, args = node.kind, node.args
    if kind == "lit":
        return args[0]
    if kind == "var":
        return env.get(str(args[0]), _UNDEFINED)
    if kind == "get":
        base = _evaluate(args[0], env)  # type: ignore[arg-type]
        key = _evaluate(args[1], env)  # type: ignore[arg-type]
        if isinstance(base, dict) and isinstance(key, str):
            return base.get(key, _UNDEFINED)
        if isinstance(base, list) and isinstance(key, int) and not isinstance(key, bool):
            return base[key] if -len(base) <= key < len(base) else _UNDEFINED
        return _UNDEFINED
    if kind in ("neg", "pos"):
        number = _number(_evaluate(args[0], env))  # type: ignore[arg-type]
        if number is None:
            return _UNDEFINED
        return -number if kind == "neg" else number
    if kind == "not":
        return not _truthy(_evaluate(args[0], env))  # type: ignore[arg-type]
    if kind == "bin":
        op = str(args[0])
        left = _evaluate(args[1], env)  # type: ignore[arg-type]
        if op == "and" and not _truthy(left):  # short-circuit, as Jinja does
            return left
        if op == "or" and _truthy(left):
            return left
        return _binary(op, left, _evaluate(args[2], env))  # type: ignore[arg-type]
    if kind == "if":
        condition, then, otherwise = args
        chosen = then if _truthy(_evaluate(condition, env)) else otherwise  # type: ignore[arg-type]
        return _evaluate(chosen, env)  # type: ignore[arg-type]
    if kind == "test":
        name, target, negate = args
        result = _TESTS[str(name)](_evaluate(target, env))  # type: ignore[arg-type]
        return not result if negate else result
    filter_name, target, extra = args
    values = [_evaluate(a, env) for a in extra]  # type: ignore[attr-defined]
    value = _evaluate(target, env)  # type: ignore[arg-type]
    if value is _UNDEFINED and filter_name not in ("default", "d"):
        return _UNDEFINED
    return _FILTERS[str(filter_name)](value, *values)


# ------------------------------------------------------------------ text with {{ }} and {% if %} blocks


@dataclass(frozen=True, slots=True)
class _Part:
    """Literal ``text``, one expression ``node``, or an ``{% if %}`` block: (condition, parts) branches."""

    text: str | None = None
    node: _Node | None = None
    branches: tuple[tuple[_Node | None, tuple[_Part, ...]], ...] = ()


_OPENERS = ("{{", "{%", "{#")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


def _segments(source: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pieces: ``text``, ``{{`` (an expression) or ``{%`` (a statement); comments dropped."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        starts = [(found, opener) for opener in _OPENERS if (found := source.find(opener, pos)) >= 0]
        if not starts:
            pieces.append(("text", source[pos:]))
            break
        start, opener = min(starts)
        if start > pos:
            pieces.append(("text", source[pos:start]))
        end = source.find(_CLOSERS[opener], start + 2)
        if end < 0:
            raise TemplateSyntaxError(f"{opener!r} without {_CLOSERS[opener]!r}")
        inner = source[start + 2 : end]
        if inner.startswith("-"):  # whitespace control: trim the text before
            inner = inner[1:]
            if pieces and pieces[-1][0] == "text":
                pieces[-1] = ("text", pieces[-1][1].rstrip())
        trim_after = inner.endswith("-")
        if trim_after:
            inner = inner[:-1]
        if opener != "{#":
            pieces.append((opener, inner))
        pos = end + 2
        if trim_after:
            while pos < len(source) and source[pos].isspace():
                pos += 1
    return pieces


def _expression(text: str) -> _Node:
    parser = _Parser(_tokenize(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise TemplateSyntaxError(f"unexpected {parser.peek()!r}")
    return node


@lru_cache(maxsize=1024)
def compile_template(source: str) -> tuple[_Part, ...]:
    """The template as text, expression and if-block parts; :class:`TemplateSyntaxError` if unsupported."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateSyntaxError(f"template of {len(source)} characters is over {MAX_TEMPLATE_CHARS}")
    return _nest(_segments(source))


def _nest(pieces: list[tuple[str, str]]) -> tuple[_Part, ...]:
    root: list[_Part] = []
    stack: list[tuple[list[tuple[_Node | None, tuple[_Part, ...]]], _Node | None, list[_Part], list[_Part], bool]] = []
    current = root
    for kind, text in pieces:
        if kind == "text":
            current.append(_Part(text=text))
            continue
        if kind == "{{":
            current.append(_Part(node=_expression(text)))
            continue
        words = text.split(None, 1)
        word = words[0] if words else ""
        rest = words[1].strip() if len(words) > 1 else ""
        if word == "if":
            if len(stack) >= _MAX_DEPTH:
                raise TemplateSyntaxError("template nested too deeply")
            body: list[_Part] = []
            stack.append(([], _expression(rest), body, current, False))
            current = body
        elif word in ("elif", "else", "endif"):
            if not stack:
                raise TemplateSyntaxError(f"{{% {word} %}} without {{% if %}}")
            branches, condition, body, outer, seen_else = stack.pop()
            if seen_else and word != "endif":
                raise TemplateSyntaxError(f"{{% {word} %}} after {{% else %}}")
            if word != "elif" and rest:
                raise TemplateSyntaxError(f"{{% {word} %}} takes nothing after it")
            branches.append((condition, tuple(body)))
            if word == "endif":
                outer.append(_Part(branches=tuple(branches)))
                current = outer
            else:
                body = []
                stack.append((branches, _expression(rest) if word == "elif" else None, body, outer, word == "else"))
                current = body
        else:
            raise TemplateSyntaxError(f"statement {word!r} is not supported, only if/elif/else/endif")
    if stack:
        raise TemplateSyntaxError("{% if %} without {% endif %}")
    return tuple(root)


def _render(parts: tuple[_Part, ...], env: dict[str, object], out: list[tuple[bool, object]]) -> None:
    """Append ``(is_value, piece)``: literal text, or what an expression gave."""
    for part in parts:
        if part.text is not None:
            out.append((False, part.text))
        elif part.node is not None:
            out.append((True, _evaluate(part.node, env)))
        else:
            for condition, body in part.branches:
                if condition is None or _truthy(_evaluate(condition, env)):
                    _render(body, env, out)
                    break


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
    pieces: list[tuple[bool, object]] = []
    _render(parts, env, pieces)
    if any(v is _UNDEFINED for _, v in pieces):
        return None
    values = [v for is_value, v in pieces if is_value]
    if len(values) == 1 and all(is_value or not str(v).strip() for is_value, v in pieces):
        return scalar(values[0])  # one expression: its value as it is (JSON "48" stays text)
    joined = ""
    for _, value in pieces:
        joined += _f_string(value)  # type: ignore[operator]
        if len(joined) > MAX_TEXT_READING + 64:  # too long to be a reading whatever follows
            return None
    joined = joined.strip()
    return scalar(parse_scalar(joined)) if joined else None
