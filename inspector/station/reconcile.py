"""End-of-batch reconciliation: every count agrees and nothing is unaccounted (DOMAIN §7, trending).

Checks the station's own tally against the committed records: inspected = accepted + rejected;
the records hold the same counts; item ids 1..N with N rows (no item lost between the pipeline
and the disk); and, for a finite source that delivered everything, every item was decided.
The HMI adds its own counters as one more check. The result is stored with the batch record.

A batch its station never ended (a crash, a kill) is reconciled from its rows alone when the
next station starts on the same records (:func:`close_aborted_batches`) and closed as
``aborted``: never reconciled, and the checks say what its rows hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from inspector.events import BatchResult
from inspector.records import Recorder

log = logging.getLogger(__name__)

ABORTED = "the station stopped without ending the batch (crash, kill or power loss); closed at the next start"


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


@dataclass(frozen=True)
class AbortedBatch:
    """A batch left running by a station that stopped without ending it, closed as ``aborted``."""

    batch_id: str
    reconciliation: dict[str, Any]

    def describe(self) -> str:
        r = self.reconciliation["records"]
        failed = [c["detail"] for c in self.reconciliation["checks"][1:] if not c["ok"]]
        extra = f"; {'; '.join(failed)}" if failed else ""
        rows = f"{r['inspected']} item records ({r['accepted']} accepted, {r['rejected']} rejected)"
        return f"batch {self.batch_id} was never ended (station crash or kill): closed as aborted with {rows}{extra}"


def reconcile_rows(recorder: Recorder, batch_id: str) -> dict[str, Any]:
    """The reconciliation of a batch from its committed rows alone (no station result exists)."""
    records = recorder.counts(batch_id)
    highest = recorder.highest_item_id(batch_id) or 0
    n = records["inspected"]
    checks = [
        Check("ended by its station", False, ABORTED),
        Check(
            "inspected = accepted + rejected",
            n == records["accepted"] + records["rejected"],
            f"{n} = {records['accepted']} + {records['rejected']}",
        ),
        Check("nothing unaccounted", highest == n, f"item ids 1..{highest}, {n} recorded"),
    ]
    if recorder.batch(batch_id)["plc"] is not None:
        missing = recorder.missing_plc_acks(batch_id)
        checks.append(
            Check(
                "every PLC acknowledgement stored",
                missing == 0,
                f"{missing} of {n} items without a PLC acknowledgement",
            )
        )
    return {
        "reconciled": False,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "records": records,
        "highest_item_id": highest or None,
        "expected_items": None,
        "error": None,
    }


def close_aborted_batches(recorder: Recorder) -> list[AbortedBatch]:
    """At a station's start: close every batch the records still show running as ``aborted``."""
    closed: list[AbortedBatch] = []
    for batch_id in recorder.running_batch_ids():
        report = reconcile_rows(recorder, batch_id)
        recorder.abort_batch(batch_id, {"aborted": ABORTED, "reconciliation": report})
        log.warning("batch %s was left running: closed as aborted", batch_id)
        closed.append(AbortedBatch(batch_id, report))
    return closed
