"""Threshold alerts: raise once, repeat at a bounded rate while active, clear once.

State per (device, rule) lives here as plain values; the hub turns the
returned notices into chat messages for the device's subscribers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from hub.core.codecs import Reading

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
MIN_REPEAT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    field: str
    op: str  # one of > >= < <=
    threshold: float
    #: Which devices: ``None`` for all, else device ids or ``group:<name>``.
    devices: frozenset[str] | None = None
    #: The value must come back this far past the threshold to clear (no flapping).
    hysteresis: float = 0.0
    #: Repeat an active alert this often (never more often than once a minute).
    repeat_every: float = 900.0

    def applies_to(self, device_id: str, group: str | None) -> bool:
        if self.devices is None:
            return True
        return device_id in self.devices or (group is not None and f"group:{group}" in self.devices)

    def breached(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)

    def cleared(self, value: float) -> bool:
        margin = self.hysteresis if self.op in (">", ">=") else -self.hysteresis
        return not _OPERATORS[self.op](value, self.threshold - margin)

    @property
    def repeat_interval(self) -> float:
        return max(self.repeat_every, MIN_REPEAT_SECONDS)


class Notice(Enum):
    RAISED = "raised"
    REPEATED = "repeated"
    CLEARED = "cleared"


@dataclass(slots=True)
class AlertState:
    rule: AlertRule
    since: float
    last_sent: float
    value: float
    #: The reading as the device sent it, for display (``26`` stays ``26``).
    reading: Reading = 0


def numeric(value: Reading | None) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def evaluate(
    rule: AlertRule, state: AlertState | None, value: Reading | None, now: float
) -> tuple[AlertState | None, Notice | None]:
    """New state and what to tell people, after a fresh ``value`` of the rule's field."""
    number = numeric(value)
    if number is None or value is None:
        return state, None
    if state is None:
        if rule.breached(number):
            return AlertState(rule, since=now, last_sent=now, value=number, reading=value), Notice.RAISED
        return None, None
    state.value, state.reading = number, value
    if rule.cleared(number):
        return None, Notice.CLEARED
    return state, None


def due_repeat(state: AlertState, now: float) -> bool:
    """Whether an active alert should be said again (at most once per interval)."""
    if now - state.last_sent >= state.rule.repeat_interval:
        state.last_sent = now
        return True
    return False
