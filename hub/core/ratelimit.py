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
