"""Rate-limited refusals: a stranger who floods a device JID gets a few polite answers, not one per message.

Anyone on the federated XMPP network can write to a device. Each message from
someone not on the operator list is refused and nothing is done, but an
answer per message would turn the hub into an amplifier (and its log into a
flood). :class:`RefusalLimiter` allows one refusal per sender (the hub uses
the pair of stranger and addressed JID) per ``interval`` seconds and, across
all senders, at most ``burst`` refusals per ``interval``; it remembers at most
``max_senders`` senders (the least recently refused are forgotten first), so
its memory is bounded whatever the flood.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from hub.core.intents import Intent, Log


@dataclass(slots=True)
class _Sender:
    refused_at: float
    suppressed: int = 0


class RefusalLimiter:
    def __init__(self, interval: float = 60.0, burst: int = 30, max_senders: int = 1024) -> None:
        if interval <= 0 or burst < 1 or max_senders < 1:
            raise ValueError("interval, burst and max_senders must be positive")
        self.interval = interval
        self.burst = burst
        self.max_senders = max_senders
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._tokens = float(burst)
        self._refilled_at: float | None = None
        #: Refusals not sent since start: a metric.
        self.suppressed_total = 0

    def __len__(self) -> int:
        return len(self._senders)

    def _take_token(self, now: float) -> bool:
        if self._refilled_at is not None and now > self._refilled_at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._refilled_at) * self.burst / self.interval)
        self._refilled_at = now if self._refilled_at is None else max(now, self._refilled_at)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def allow(self, sender: str, now: float) -> int | None:
        """``None`` when this refusal must be dropped; else how many were dropped for ``sender`` before it."""
        known = self._senders.get(sender)
        if known is not None and now - known.refused_at < self.interval:
            known.suppressed += 1
            self.suppressed_total += 1
            return None
        if not self._take_token(now):
            if known is not None:
                known.suppressed += 1
            self.suppressed_total += 1
            return None
        suppressed = known.suppressed if known is not None else 0
        self._senders[sender] = _Sender(now)
        self._senders.move_to_end(sender)
        while len(self._senders) > self.max_senders:
            self._senders.popitem(last=False)
        return suppressed

    def gate(self, sender: str, now: float, refusal: Sequence[Intent]) -> list[Intent]:
        """``refusal`` (its log lines told how many were dropped before), or nothing when rate-limited."""
        suppressed = self.allow(sender, now)
        if suppressed is None:
            return []
        if not suppressed:
            return list(refusal)
        return [
            Log(intent.level, intent.event, {**intent.fields, "suppressed": suppressed})
            if isinstance(intent, Log)
            else intent
            for intent in refusal
        ]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    filled_at: float


class CommandLimiter:
    """At most ``per_minute`` commands per operator: a token bucket each, holding a minute's worth.

    An operator (or a script with an operator's account) typing ``on`` in a loop
    would otherwise publish to the device as fast as the XMPP server relays it.
    A burst up to ``per_minute`` goes through at once; after that one command
    per ``60 / per_minute`` seconds. At most ``max_operators`` buckets are kept
    (the least recently used are forgotten first, which only makes them full again).
    """

    def __init__(self, per_minute: int, max_operators: int = 1024) -> None:
        if per_minute < 1 or max_operators < 1:
            raise ValueError("per_minute and max_operators must be positive")
        self.per_minute = per_minute
        self.max_operators = max_operators
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: Commands refused since start: a metric.
        self.limited_total = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, operator: str, now: float) -> _Bucket:
        bucket = self._buckets.get(operator)
        if bucket is None:
            bucket = self._buckets[operator] = _Bucket(float(self.per_minute), now)
            while len(self._buckets) > self.max_operators:
                self._buckets.popitem(last=False)
        elif now > bucket.filled_at:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.filled_at) * self.per_minute / 60)
            bucket.filled_at = now
        self._buckets.move_to_end(operator)
        return bucket

    def allow(self, operator: str, now: float) -> float | None:
        """``None`` when the command may go; else the seconds until the next one may."""
        bucket = self._bucket(operator, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        self.limited_total += 1
        return (1.0 - bucket.tokens) * 60 / self.per_minute
