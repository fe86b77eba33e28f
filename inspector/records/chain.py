"""Verify a batch's item records: every row hash-linked to the one before, the head kept at batch end.

``inspector records verify --batch ID`` runs :func:`verify_batch`: it recomputes each row's hash
from the stored values and the previous row's hash (the first links to the batch record's
anchor), each PLC acknowledgement's hash, the head stored with the ended batch, and the batch's
end entry in the audit trail (which names the head and the summary's hash). A changed byte in
any column of any row, a removed or inserted row, or a changed batch record fails, naming the
first item that does not verify.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from inspector.records.hashing import ITEM_FIELDS, ack_hash, row_hash
from inspector.records.store import RecordStore, UnknownBatchError


@dataclass(frozen=True)
class ItemVerification:
    ok: bool
    batch_id: str
    items: int
    head: str
    first_bad_item: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary_sha256(summary_text: str | None) -> str | None:
    return None if summary_text is None else hashlib.sha256(summary_text.encode("utf-8")).hexdigest()


def verify_batch(store: RecordStore, batch_id: str) -> ItemVerification:
    row = store.execute("SELECT state, items_head, summary FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None:
        raise UnknownBatchError(f"batch {batch_id!r} does not exist")
    state, stored_head, summary = row
    prev = store.batch_anchor(batch_id)
    cols = ", ".join((*ITEM_FIELDS, "prev_hash", "row_hash", "plc_ack", "plc_ack_utc", "ack_hash"))
    n = 0
    for r in store.execute(f"SELECT {cols} FROM items WHERE batch_id = ? ORDER BY id", (batch_id,)):
        values = list(r[: len(ITEM_FIELDS)])
        item_id = int(values[1])
        p, h, ack, ack_utc, ah = r[len(ITEM_FIELDS) :]
        problem = ""
        if p != prev:
            problem = "its link to the row before does not match (a row was removed, inserted or changed)"
        elif row_hash(prev, values) != h:
            problem = "its content does not match its hash (changed after it was written)"
        elif ack is not None and (ack_utc is None or ah != ack_hash(h, ack, ack_utc)):
            problem = "its PLC acknowledgement does not match its hash"
        elif ack is None and (ack_utc is not None or ah is not None):
            problem = "it holds an acknowledgement hash without an acknowledgement"
        if problem:
            return ItemVerification(False, batch_id, n, prev, item_id, f"item {item_id}: {problem}")
        prev, n = h, n + 1
    if state != "running":
        if stored_head != prev:
            return ItemVerification(
                False, batch_id, n, prev, None,
                "the head stored at batch end differs from the last row (rows removed or added after the end)",
            )  # fmt: skip
        end = store.execute(
            "SELECT new_value FROM audit_trail WHERE action IN ('batch.end', 'batch.abort') AND object_type = 'batch'"
            " AND object_id = ?"
            " ORDER BY seq DESC LIMIT 1",
            (batch_id,),
        ).fetchone()
        if end is not None:
            recorded = json.loads(end[0])
            if recorded.get("items_head") != prev or recorded.get("summary_sha256") != summary_sha256(summary):
                return ItemVerification(
                    False, batch_id, n, prev, None,
                    "the batch record (head or summary) differs from its end entry in the audit trail",
                )  # fmt: skip
    return ItemVerification(True, batch_id, n, prev)
