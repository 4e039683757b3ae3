"""Threshold alerts (hub.core.alerts): raise once, bounded repeats, clear with hysteresis."""

from __future__ import annotations

import pytest

from hub.core.alerts import MIN_REPEAT_SECONDS, AlertRule, AlertState, Notice, due_repeat, evaluate, numeric

HOT = AlertRule("hot", "temperature", ">", 30.0, hysteresis=1.0, repeat_every=300.0)


def _raised(rule: AlertRule = HOT, value: float = 31.2, now: float = 1000.0) -> AlertState:
    state, notice = evaluate(rule, None, value, now)
    assert notice is Notice.RAISED
    assert state is not None
    return state


def test_below_threshold_nothing_happens() -> None:
    assert evaluate(HOT, None, 30.0, 0.0) == (None, None)  # '>' is strict
    assert evaluate(HOT, None, 12, 0.0) == (None, None)


def test_raise_records_when_and_what() -> None:
    state = _raised(value=31.2, now=1000.0)
    assert (state.rule, state.since, state.last_sent, state.value, state.reading) == (HOT, 1000.0, 1000.0, 31.2, 31.2)


def test_integer_reading_is_kept_for_display() -> None:
    state = _raised(value=31, now=0.0)
    assert state.value == 31.0
    assert state.reading == 31
    assert type(state.reading) is int


def test_still_breached_is_no_new_notice() -> None:
    state = _raised()
    again, notice = evaluate(HOT, state, 32.5, 1010.0)
    assert notice is None
    assert again is state
    assert state.value == 32.5
    assert state.since == 1000.0


def test_no_repeat_before_the_interval() -> None:
    state = _raised(now=1000.0)
    assert not due_repeat(state, 1000.0)
    assert not due_repeat(state, 1299.9)
    assert state.last_sent == 1000.0


def test_repeat_at_most_once_per_interval() -> None:
    state = _raised(now=1000.0)
    assert due_repeat(state, 1300.0)
    assert state.last_sent == 1300.0
    assert not due_repeat(state, 1300.0)
    assert not due_repeat(state, 1599.0)
    assert due_repeat(state, 1650.0)
    assert not due_repeat(state, 1700.0)
    repeats = [now for now in range(1650, 3000, 10) if due_repeat(state, float(now))]
    assert repeats == [1950, 2250, 2550, 2850]


@pytest.mark.parametrize("configured", [0.0, 1.0, 59.0])
def test_repeat_interval_is_at_least_a_minute(configured: float) -> None:
    rule = AlertRule("hot", "temperature", ">", 30.0, repeat_every=configured)
    assert rule.repeat_interval == MIN_REPEAT_SECONDS == 60.0
    state = _raised(rule, now=0.0)
    assert [now for now in range(0, 200) if due_repeat(state, float(now))] == [60, 120, 180]


def test_hysteresis_above() -> None:
    state = _raised(value=31.0)
    assert evaluate(HOT, state, 30.0, 1001.0) == (state, None)  # not above 30, but not 1 below either
    assert evaluate(HOT, state, 29.5, 1002.0) == (state, None)
    assert evaluate(HOT, state, 29.0, 1003.0) == (None, Notice.CLEARED)


def test_hysteresis_below() -> None:
    cold = AlertRule("cold", "temperature", "<", 5.0, hysteresis=2.0)
    state = _raised(cold, value=4.0)
    assert evaluate(cold, state, 6.9, 1.0) == (state, None)
    assert evaluate(cold, state, 7.0, 2.0) == (None, Notice.CLEARED)


@pytest.mark.parametrize(
    ("op", "value", "breached"),
    [(">", 30.0, False), (">=", 30.0, True), ("<", 30.0, False), ("<=", 30.0, True), ("<", 29.9, True)],
)
def test_operators(op: str, value: float, breached: bool) -> None:
    rule = AlertRule("r", "t", op, 30.0)
    assert rule.breached(value) is breached


def test_without_hysteresis_clears_as_soon_as_not_breached() -> None:
    rule = AlertRule("r", "t", ">=", 30.0)
    state = _raised(rule, value=30.0)
    assert evaluate(rule, state, 29.99, 1.0) == (None, Notice.CLEARED)


@pytest.mark.parametrize("value", ["hot", True, False, None, "31.2"])
def test_non_numeric_values_are_ignored(value: object) -> None:
    assert evaluate(HOT, None, value, 0.0) == (None, None)  # type: ignore[arg-type]
    state = _raised()
    assert evaluate(HOT, state, value, 1.0) == (state, None)  # type: ignore[arg-type]
    assert state.value == 31.2


def test_numeric() -> None:
    assert numeric(3) == 3.0
    assert numeric(2.5) == 2.5
    assert numeric(True) is None
    assert numeric("3") is None
    assert numeric(None) is None


def test_applies_to() -> None:
    everywhere = AlertRule("r", "t", ">", 1.0)
    assert everywhere.applies_to("k1", None)
    some = AlertRule("r", "t", ">", 1.0, devices=frozenset({"k1", "group:kitchen"}))
    assert some.applies_to("k1", None)
    assert some.applies_to("k2", "kitchen")
    assert not some.applies_to("k2", "garage")
    assert not some.applies_to("k2", None)
