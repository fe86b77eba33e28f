"""Reject-rate trending: each class's share of rejects, rolling over the last N items and per batch.

The station feeds every decision's reason in after the decision is out (it never delays one).
A class whose rolling rate rises above its alert or action limit, or falls back below, is a
level change the station turns into an alarm; at the end of a batch the batch's own rate of
each class is judged against the same limits for the batch report.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from inspector.config.trending import TrendLimits

NORMAL, ALERT, ACTION = "normal", "alert", "action"


@dataclass(frozen=True)
class TrendChange:
    """A class's rolling reject rate moved to another level."""

    reason: str
    level: str  # normal, alert or action
    previous: str
    rate: float
    count: int
    window: int
    limit: float | None  # the limit crossed (None: back to normal)

    def describe(self) -> str:
        pct = f"{100 * self.rate:.2f} %"
        share = f"{self.count} of the last {self.window} items"
        if self.level == NORMAL:
            return f"{self.reason}: reject rate back within limits, {pct} ({share})"
        return (
            f"{self.reason}: reject rate {pct} ({share}) above the {self.level} limit {100 * (self.limit or 0):.2f} %"
        )


def level_of(rate: float, alert: float, action: float) -> str:
    return ACTION if rate > action else ALERT if rate > alert else NORMAL


class RejectTrend:
    """The rolling and batch reject rates of the classes a recipe sets limits for."""

    def __init__(self, limits: TrendLimits) -> None:
        self.limits = limits
        self._window: deque[str] = deque(maxlen=limits.window)
        self._rolling: Counter[str] = Counter()
        self._batch: Counter[str] = Counter()
        self.items = 0
        self._level = dict.fromkeys(limits.limits, NORMAL)
        self._max_rate = dict.fromkeys(limits.limits, 0.0)
        self._alarms: Counter[str] = Counter()

    def add(self, reason: str) -> list[TrendChange]:
        """Count one decided item; the classes whose rolling level changed (only once the window is full)."""
        if len(self._window) == self._window.maxlen:
            self._rolling[self._window[0]] -= 1
        self._window.append(reason)
        self._rolling[reason] += 1
        self._batch[reason] += 1
        self.items += 1
        n = len(self._window)
        if n < self.limits.window:
            return []
        changes = []
        for cls, lim in self.limits.limits.items():
            count = self._rolling[cls]
            rate = count / n
            self._max_rate[cls] = max(self._max_rate[cls], rate)
            level = level_of(rate, lim.alert, lim.action)
            if level != self._level[cls]:
                limit = None if level == NORMAL else lim.action if level == ACTION else lim.alert
                changes.append(TrendChange(cls, level, self._level[cls], rate, count, n, limit))
                self._level[cls] = level
                if level != NORMAL:
                    self._alarms[cls] += 1
        return changes

    def as_dict(self) -> dict[str, Any]:
        """The batch's trend for the record: per class the batch rate, its level, the worst rolling rate."""
        per_class = {}
        for cls, lim in self.limits.limits.items():
            rate = self._batch[cls] / self.items if self.items else 0.0
            per_class[cls] = {
                "alert": lim.alert,
                "action": lim.action,
                "batch_count": self._batch[cls],
                "batch_rate": round(rate, 6),
                "batch_level": level_of(rate, lim.alert, lim.action) if self.items else NORMAL,
                "max_rolling_rate": round(self._max_rate[cls], 6) if self.items >= self.limits.window else None,
                "rolling_alarms": self._alarms[cls],
            }
        return {"window": self.limits.window, "items": self.items, "classes": per_class}
