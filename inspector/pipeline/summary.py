"""Counters and latency statistics of a run, with scoring against simulator ground truth."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import numpy as np

from inspector.events import BatchResult, ItemDecision, NotInspected
from inspector.taxonomy import OK, Criticality, Product, RejectReason, defect


def percentile(values: list[float] | np.ndarray, q: float) -> float | None:
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


class RunSummary:
    """Thread-safe tally of decisions. Reconciliation: items == accepted + rejected."""

    def __init__(self, product: Product, accept_minor: frozenset[str] = frozenset()) -> None:
        self.product = product
        self.accept_minor = accept_minor
        self._lock = threading.Lock()
        self.items = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.not_inspected_by_cause: Counter[str] = Counter()
        self.escapes = 0
        self.false_rejects = 0
        self.false_rejects_not_inspected = 0
        self.scored = 0
        self.latencies_ms: list[float] = []
        self.deadline_misses = 0
        self.escape_items: list[int] = []
        self.escapes_by_class: Counter[str] = Counter()
        self.critical_escapes = 0

    def must_reject(self, label: str) -> bool:
        if label == OK:
            return False
        d = defect(self.product, label)
        return d.must_reject or label not in self.accept_minor

    def add(self, d: ItemDecision) -> None:
        with self._lock:
            self.items += 1
            if d.accept:
                self.accepted += 1
            else:
                self.rejected[d.reason] += 1
                if d.not_inspected is not None:
                    self.not_inspected_by_cause[d.not_inspected.value] += 1
            total = d.times.total_ms
            if total is not None and d.times.t_inferred is not None:
                self.latencies_ms.append(total)
            if not d.deadline_met and d.not_inspected is NotInspected.LATE:
                self.deadline_misses += 1
            if d.truth is not None:
                self.scored += 1
                bad = self.must_reject(d.truth.label)
                if bad and d.accept:
                    self.escapes += 1
                    self.escape_items.append(d.item_id)
                    self.escapes_by_class[d.truth.label] += 1
                    if defect(self.product, d.truth.label).criticality is Criticality.CRITICAL:
                        self.critical_escapes += 1
                if not bad and not d.accept:
                    if d.reason == RejectReason.NOT_INSPECTED:
                        self.false_rejects_not_inspected += 1
                    else:
                        self.false_rejects += 1

    @property
    def not_inspected(self) -> int:
        return self.rejected.get(RejectReason.NOT_INSPECTED.value, 0)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            lat = list(self.latencies_ms)
            rejected_total = sum(self.rejected.values())
            return {
                "items": self.items,
                "accepted": self.accepted,
                "rejected": rejected_total,
                "rejected_by_reason": dict(sorted(self.rejected.items())),
                "not_inspected": self.rejected.get(RejectReason.NOT_INSPECTED.value, 0),
                "not_inspected_by_cause": dict(sorted(self.not_inspected_by_cause.items())),
                "reconciled": self.items == self.accepted + rejected_total,
                "scored": self.scored,
                "escapes": self.escapes if self.scored else None,
                "escapes_by_class": dict(sorted(self.escapes_by_class.items())) if self.scored else None,
                "critical_escapes": self.critical_escapes if self.scored else None,
                "false_rejects": self.false_rejects if self.scored else None,
                "false_rejects_not_inspected": self.false_rejects_not_inspected if self.scored else None,
                "latency_ms_p50": _r(percentile(lat, 50)),
                "latency_ms_p99": _r(percentile(lat, 99)),
                "latency_ms_max": _r(max(lat) if lat else None),
                "inspected_in_time": len(lat) - self.deadline_misses,
            }

    def result(
        self,
        batch_id: str | None,
        *,
        camera_stats: dict[str, int] | None = None,
        input_monitor: dict[str, Any] | None = None,
        threads_not_stopped: tuple[str, ...] = (),
        trending: dict[str, Any] | None = None,
    ) -> BatchResult:
        """The typed result of the batch so far (what :meth:`Station.stop` returns)."""
        d = self.as_dict()
        return BatchResult(
            batch_id=batch_id,
            items=d["items"],
            accepted=d["accepted"],
            rejected=d["rejected"],
            rejected_by_reason=d["rejected_by_reason"],
            not_inspected=d["not_inspected"],
            not_inspected_by_cause=d["not_inspected_by_cause"],
            scored=d["scored"],
            escapes=d["escapes"],
            escapes_by_class=d["escapes_by_class"],
            critical_escapes=d["critical_escapes"],
            false_rejects=d["false_rejects"],
            false_rejects_not_inspected=d["false_rejects_not_inspected"],
            latency_ms_p50=d["latency_ms_p50"],
            latency_ms_p99=d["latency_ms_p99"],
            latency_ms_max=d["latency_ms_max"],
            inspected_in_time=d["inspected_in_time"],
            camera_stats=dict(camera_stats or {}),
            input_monitor=input_monitor,
            threads_not_stopped=threads_not_stopped,
            trending=trending,
        )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
