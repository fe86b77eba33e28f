"""End-of-batch reconciliation: every count agrees and nothing is unaccounted (DOMAIN §7, trending).

Checks the station's own tally against the committed records: inspected = accepted + rejected;
the records hold the same counts; item ids 1..N with N rows (no item lost between the pipeline
and the disk); and, for a finite source that delivered everything, every item was decided.
The HMI adds its own counters as one more check. The result is stored with the batch record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from inspector.events import BatchResult
from inspector.records import Recorder


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Reconciliation:
    batch_id: str
    result: BatchResult
    records: dict[str, Any] | None
    highest_item_id: int | None
    expected_items: int | None
    checks: tuple[Check, ...]
    error: str | None = None
    hmi: dict[str, int] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    @property
    def summary(self) -> dict[str, Any]:
        """The batch result as the flat summary dict (for display)."""
        return self.result.as_dict()

    def with_check(self, check: Check, **changes: Any) -> Reconciliation:
        return replace(self, checks=(*self.checks, check), **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reconciled": self.reconciled,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "records": self.records,
            "highest_item_id": self.highest_item_id,
            "expected_items": self.expected_items,
            "error": self.error,
        }


def reconcile(
    result: BatchResult, recorder: Recorder | None, *, expected_items: int | None, source_complete: bool
) -> Reconciliation:
    """Compare the result with the records (committed first: call after ``recorder.flush()``).

    ``source_complete``: a finite source delivered all its items, so all of them must be decided.
    """
    bid = str(result.batch_id)
    items, acc, rej = result.items, result.accepted, result.rejected
    checks = [Check("inspected = accepted + rejected", items == acc + rej, f"{items} = {acc} + {rej}")]
    records: dict[str, Any] | None = None
    highest: int | None = None
    error = None
    if recorder is not None:
        try:
            records = recorder.counts(bid)
            highest = recorder.highest_item_id(bid)
        except Exception as exc:
            error = f"records could not be read: {exc}"
    if records is not None:
        same = (records["inspected"], records["accepted"], records["rejected"]) == (items, acc, rej)
        detail = f"records {records['inspected']} / {records['accepted']} / {records['rejected']}"
        checks.append(Check("records = station", same, detail))
        n = records["inspected"]
        checks.append(Check("nothing unaccounted", (highest or 0) == n, f"item ids 1..{highest or 0}, {n} recorded"))
    if expected_items is not None and source_complete:
        checks.append(Check("every item of the batch decided", items == expected_items, f"{items} of {expected_items}"))
    elif expected_items is not None:
        checks.append(Check("stopped by the operator", True, f"after {items} of {expected_items} items"))
    return Reconciliation(
        batch_id=bid,
        result=result,
        records=records,
        highest_item_id=highest,
        expected_items=expected_items,
        checks=tuple(checks),
        error=error,
    )
