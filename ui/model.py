"""Qt-free state the HMI keeps: live counters, the recent-reject buffer and the alarm book.

All of it is fed in the GUI thread (from :class:`ui.bridge.StationBridge` signals), so
nothing here needs a lock. Counters are counted from the decision events themselves:
polling ``Station.summary.as_dict()`` would take the summary lock (and a percentile over
the whole batch) that the inference thread needs for every item.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from inspector.events import Alarm, ItemDecision
from inspector.station.client import Review
from inspector.taxonomy import RejectReason

LATENCY_WINDOW = 600
REJECTS_KEPT = 48
THUMB_HEIGHT = 120


@dataclass
class TallySnapshot:
    batch_id: str | None
    inspected: int
    accepted: int
    rejected: int
    not_inspected: int
    by_reason: dict[str, int]
    yield_pct: float | None
    p50_ms: float | None
    p99_ms: float | None
    latencies_ms: list[float]
    items_per_s: float | None


def _rank(ranked: list[float], q: float) -> float | None:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    if not ranked:
        return None
    pos = q * (len(ranked) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ranked) - 1)
    return ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo)


class LiveTally:
    """Counters of the running batch and a rolling latency window (the last items only)."""

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, batch_id: str | None) -> None:
        self.batch_id = batch_id
        self.inspected = 0
        self.accepted = 0
        self.by_reason: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._rate: deque[tuple[float, int]] = deque(maxlen=64)

    def resume(self, batch_id: str, inspected: int, accepted: int, by_reason: dict[str, int]) -> None:
        """Counters of a batch that ran before this HMI attached (its latency window refills from
        the decisions that follow)."""
        self.reset(batch_id)
        self.inspected = inspected
        self.accepted = accepted
        self.by_reason.update(by_reason)

    def add(self, d: ItemDecision) -> None:
        self.inspected += 1
        if d.accept:
            self.accepted += 1
        else:
            self.by_reason[d.reason] += 1
        total = d.times.total_ms
        if total is not None and d.times.t_inferred is not None:
            self.latencies.append(total)

    @property
    def rejected(self) -> int:
        return sum(self.by_reason.values())

    @property
    def not_inspected(self) -> int:
        return self.by_reason.get(RejectReason.NOT_INSPECTED.value, 0)

    def snapshot(self, now: float | None = None) -> TallySnapshot:
        now = time.monotonic() if now is None else now
        self._rate.append((now, self.inspected))
        rate = None
        old = [s for s in self._rate if now - s[0] <= 3.0]
        if len(old) >= 2 and old[-1][0] > old[0][0]:
            rate = (old[-1][1] - old[0][1]) / (old[-1][0] - old[0][0])
        lat = list(self.latencies)
        ranked = sorted(lat)  # plain sort: np.percentile lazily imports modules on first use (~60 ms)
        p50 = _rank(ranked, 0.50)
        p99 = _rank(ranked, 0.99)
        return TallySnapshot(
            batch_id=self.batch_id,
            inspected=self.inspected,
            accepted=self.accepted,
            rejected=self.rejected,
            not_inspected=self.not_inspected,
            by_reason=dict(self.by_reason.most_common()),
            yield_pct=100.0 * self.accepted / self.inspected if self.inspected else None,
            p50_ms=p50,
            p99_ms=p99,
            latencies_ms=lat,
            items_per_s=rate,
        )


@dataclass
class RejectEntry:
    """A recent reject kept for the gallery: the decision (with its image) and a thumbnail."""

    batch_id: str
    decision: ItemDecision
    thumbnail: np.ndarray
    heatmap: np.ndarray | None = None  # full-frame float map in 0..1, when the model provides one
    review: Review | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.batch_id, self.decision.item_id

    @property
    def image(self) -> np.ndarray:
        assert self.decision.image is not None
        return self.decision.image


def thumbnail(image: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class RejectBuffer:
    """The most recent reviewable rejects (frame of the recipe's shape), newest first."""

    def __init__(self, frame_shape: tuple[int, ...], maxlen: int = REJECTS_KEPT) -> None:
        self.frame_shape = frame_shape
        self._entries: deque[RejectEntry] = deque(maxlen=maxlen)

    def offer(self, batch_id: str, d: ItemDecision) -> RejectEntry | None:
        """Keep a reject if it has a usable image; returns the new entry."""
        if d.accept or d.image is None or d.image.shape != self.frame_shape:
            return None
        entry = RejectEntry(batch_id=batch_id, decision=d, thumbnail=thumbnail(d.image))
        self._entries.appendleft(entry)
        return entry

    def __iter__(self) -> Any:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def maxlen(self) -> int:
        return self._entries.maxlen or REJECTS_KEPT

    def find(self, key: tuple[str, int]) -> RejectEntry | None:
        return next((e for e in self._entries if e.key == key), None)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class AlarmEntry:
    """An alarm as the HMI shows it, with its acknowledgement once given (stored by the station)."""

    alarm: Alarm
    acknowledged_utc: str | None = None
    acknowledged_by: str | None = None
    db_id: int | None = None  # the record's row, once the acknowledgement is stored

    @property
    def batch_id(self) -> str | None:
        return self.alarm.batch_id

    @property
    def needs_ack(self) -> bool:
        return self.alarm.needs_ack and self.acknowledged_utc is None


@dataclass
class AlarmBook:
    """Alarms of this HMI session, newest last; only warnings and faults need acknowledging."""

    entries: list[AlarmEntry] = field(default_factory=list)
    maxlen: int = 2000

    def add(self, entry: AlarmEntry) -> None:
        self.entries.append(entry)
        if len(self.entries) > self.maxlen:
            # Drop the oldest acknowledged ones first: an open alarm must never vanish.
            drop = next((i for i, e in enumerate(self.entries) if not e.needs_ack), 0)
            del self.entries[drop]

    def unacknowledged(self) -> list[AlarmEntry]:
        return [e for e in self.entries if e.needs_ack]

    def acknowledged(self, alarm_id: str, by: str, at_utc: str, *, row_id: int | None = None) -> bool:
        """Mark the alarm with this id acknowledged; ``False`` if it is not in the book."""
        entry = next((e for e in self.entries if e.alarm.alarm_id == alarm_id), None)
        if entry is None:
            return False
        if entry.acknowledged_utc is None:
            entry.acknowledged_utc, entry.acknowledged_by = at_utc, by
        if row_id is not None and row_id >= 0:
            entry.db_id = row_id
        return True
