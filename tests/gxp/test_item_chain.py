"""Item records are tamper-evident: a changed byte in any column of any row, or a removed row, is found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from inspector.events import BatchContext, BatchResult, ItemDecided, ItemDecision, PlcAcked, StageTimes
from inspector.records import Recorder, RecordStore
from inspector.records.chain import verify_batch
from inspector.records.hashing import ITEM_FIELDS
from inspector.taxonomy import OK, DefectCode

BATCH = "B-CHAIN"


def _decision(item: int) -> ItemDecision:
    accept = item % 4 != 0
    return ItemDecision(
        item_id=item,
        frame_id=item,
        accept=accept,
        reason=OK if accept else DefectCode.CHIP,
        times=StageTimes(1.0, 1.0, 1.001, 1.004 + item * 1e-6, 1.0041 + item * 1e-6),
        deadline_met=True,
        camera_serial="SIM-0",
        label="ok" if accept else "chip",
        confidence=0.9 + item * 1e-4,
        anomaly=0.1,
        scores={"ok": 0.9, "chip": 0.1},
        image=np.full((8, 8, 3), item % 255, np.uint8),
    )


def _result(n: int) -> BatchResult:
    acc = sum(1 for i in range(1, n + 1) if i % 4)
    return BatchResult(BATCH, n, acc, n - acc, {"chip": n - acc}, 0, {}, 0, None, None, None, None, None,
                       4.0, 5.0, 5.0, n)  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "items.sqlite"
    r = Recorder(path)
    r.expect_plc_acks = True
    try:
        r.open_batch(BatchContext(BATCH, "tablet", "t", "1.0.0", "a" * 64, "m", "0.0.1", "b" * 64, "SIM-0", {},
                                  plc="modbus://127.0.0.1:5020"))  # fmt: skip
        for i in range(1, 21):
            r(ItemDecided(_decision(i), BATCH))
            r(PlcAcked(BATCH, i, "acked", f"acked rtt_ms=0.{i:03d}", i % 4 != 0, 0.1))
        r.close_batch(_result(20), reconciliation={"reconciled": True})
    finally:
        r.close()
    return path


def _verify(path: Path) -> tuple[bool, int | None, str]:
    with RecordStore(path) as store:
        v = verify_batch(store, BATCH)
    return v.ok, v.first_bad_item, v.problem


def _changed(value: object) -> object:
    if isinstance(value, bool | int):
        return int(value) + 1
    if isinstance(value, float):
        return value + 1e-9
    if value is None:
        return "x"
    text = str(value)
    return text + " " if text.startswith(("{", "[")) else ("1" if text[0] != "1" else "2") + text[1:]


def test_an_intact_batch_verifies(db: Path) -> None:
    assert _verify(db) == (True, None, "")
    with RecordStore(db) as store:
        assert store.batch(BATCH)["items_head"] == verify_batch(store, BATCH).head
        assert verify_batch(store, BATCH).items == 20


def test_one_changed_byte_in_any_column_of_sampled_rows_is_found(db: Path) -> None:
    columns = (*ITEM_FIELDS, "prev_hash", "row_hash", "plc_ack", "plc_ack_utc", "ack_hash")
    undetected = []
    with sqlite3.connect(db, isolation_level=None) as raw:
        raw.execute("DROP TRIGGER items_write_once")
        for item in (1, 4, 11, 20):
            (rowid,) = raw.execute("SELECT id FROM items WHERE batch_id = ? AND item_id = ?", (BATCH, item)).fetchone()
            for column in columns:
                if column == "batch_id":
                    continue  # moving a row to another batch is a removed row: below
                (old,) = raw.execute(f"SELECT {column} FROM items WHERE id = ?", (rowid,)).fetchone()
                try:
                    raw.execute(f"UPDATE items SET {column} = ? WHERE id = ?", (_changed(old), rowid))
                except sqlite3.IntegrityError:
                    continue  # the schema itself refuses that value (a CHECK constraint)
                ok, bad, _ = _verify(db)
                if ok or bad not in (item, item + 1, _changed(item), None):
                    undetected.append((item, column))
                raw.execute(f"UPDATE items SET {column} = ? WHERE id = ?", (old, rowid))
    assert undetected == []
    assert _verify(db)[0]


def test_a_removed_row_a_changed_batch_or_summary_is_found(db: Path) -> None:
    with sqlite3.connect(db, isolation_level=None) as raw:
        raw.execute("DROP TRIGGER items_no_delete")
        raw.execute("DROP TRIGGER batches_end_once")
        raw.execute("UPDATE batches SET recipe_sha256 = ? WHERE batch_id = ?", ("c" * 64, BATCH))
        ok, bad, problem = _verify(db)
        assert not ok and bad == 1, problem
        raw.execute("UPDATE batches SET recipe_sha256 = ? WHERE batch_id = ?", ("a" * 64, BATCH))
        (summary,) = raw.execute("SELECT summary FROM batches WHERE batch_id = ?", (BATCH,)).fetchone()
        raw.execute("UPDATE batches SET summary = ? WHERE batch_id = ?", (summary.replace("20", "21", 1), BATCH))
        ok, _, problem = _verify(db)
        assert not ok and "summary" in problem
        raw.execute("UPDATE batches SET summary = ? WHERE batch_id = ?", (summary, BATCH))
        assert _verify(db)[0]
        raw.execute("DELETE FROM items WHERE batch_id = ? AND item_id = 20", (BATCH,))  # the last row
        ok, _, problem = _verify(db)
        assert not ok and "head" in problem
