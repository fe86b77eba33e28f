"""The audit trail: every entry complete, nobody can edit it, one changed byte or a truncated tail is found."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from inspector.events import BatchContext, BatchResult
from inspector.records import Recorder, audit
from inspector.records.audit import SYSTEM_ACTOR
from inspector.records.store import RecordConstraintError
from inspector.records.users import set_setting
from tests.gxp.conftest import Station

COLUMNS = ("at_utc", "username", "role", "action", "object_type", "object_id", "old_value", "new_value", "reason",
           "prev_hash", "hash")  # fmt: skip


def _fill(station: Station, n: int = 12) -> None:
    admin = station.actor("admin1")
    for i in range(n):
        set_setting(station.store, admin, "idle_logout_s", 300 + i, reason=f"SOP revision {i}")


def _flip(column: str, value: str | None) -> str:
    """One byte changed, staying valid for the column's own checks (JSON stays JSON)."""
    if column in ("old_value", "new_value"):
        return "0" if value is None else value + " "
    assert value
    return ("1" if value[0] != "1" else "2") + value[1:]


def test_each_entry_holds_who_when_what_and_why(station: Station) -> None:
    _fill(station, 1)
    e = audit.entries(station.store, action="setting.change")[-1]
    assert (e.username, e.role, e.object_type, e.object_id) == ("admin1", "admin", "setting", "idle_logout_s")
    assert e.at_utc.endswith("+00:00") and e.old_value == 900 and e.new_value == 300 and e.reason == "SOP revision 0"
    assert e.seq == max(x.seq for x in audit.entries(station.store)) and len(e.hash) == 64
    with pytest.raises(RecordConstraintError, match="reason is required"):
        audit.append(station.store, SYSTEM_ACTOR, "recipe.edit", object_type="recipe", object_id="vial", new=1)


def test_nobody_can_edit_delete_or_skip_an_entry(station: Station) -> None:
    _fill(station, 2)
    with sqlite3.connect(station.db) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
            raw.execute("UPDATE audit_trail SET reason = 'nothing happened' WHERE seq = 2")
        with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
            raw.execute("DELETE FROM audit_trail WHERE seq = 2")
        (top,) = raw.execute("SELECT max(seq) FROM audit_trail").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="next sequence number"):
            raw.execute(
                "INSERT INTO audit_trail VALUES (?, '2026-01-01T00:00:00+00:00', 'x', 'x', 'x', 'x', 'x', NULL, NULL,"
                " '', ?, ?)",
                (top + 1, "0" * 64, "1" * 64),
            )
    assert audit.verify(station.store).ok


def test_one_changed_byte_in_any_column_of_any_sampled_entry_is_found(station: Station) -> None:
    """The attacker has the file: triggers dropped, one column of one entry changed, one case at a time."""
    _fill(station)
    base = audit.verify(station.store)
    assert base.ok and base.entries > 12
    sample = sorted({1, 2, base.entries // 2, base.entries - 1, base.entries})
    undetected = []
    with sqlite3.connect(station.db, isolation_level=None) as raw:
        raw.execute("DROP TRIGGER audit_no_update")
        for seq in sample:
            for column in COLUMNS:
                (old,) = raw.execute(f"SELECT {column} FROM audit_trail WHERE seq = ?", (seq,)).fetchone()
                changed = _flip(column, old)
                raw.execute(f"UPDATE audit_trail SET {column} = ? WHERE seq = ?", (changed, seq))
                result = audit.verify(station.store)
                if result.ok or result.first_bad_seq not in (seq, seq + 1):
                    undetected.append((seq, column))
                raw.execute(f"UPDATE audit_trail SET {column} = ? WHERE seq = ?", (old, seq))
    assert undetected == []
    assert audit.verify(station.store).ok, "every change was put back"


def test_a_removed_entry_is_found(station: Station) -> None:
    _fill(station)
    with sqlite3.connect(station.db, isolation_level=None) as raw:
        raw.execute("DROP TRIGGER audit_no_delete")
        raw.execute("DELETE FROM audit_trail WHERE seq = 5")
    result = audit.verify(station.store)
    assert not result.ok and result.first_bad_seq == 6 and "missing" in result.problem


def test_a_truncated_tail_is_found_through_the_head_kept_by_a_batch(station: Station) -> None:
    recorder = Recorder(station.db)
    try:
        ctx = BatchContext("B-1", "vial", "vial-std", "1.0.0", "a" * 64, "m", "1.0.0", "b" * 64, "SIM-0", {})
        recorder.open_batch(ctx)
        recorder.close_batch(_empty_result("B-1"))
    finally:
        recorder.close()
    _fill(station, 3)
    head_seq = station.store.execute("SELECT audit_head_seq FROM batches WHERE batch_id = 'B-1'").fetchone()[0]
    with sqlite3.connect(station.db, isolation_level=None) as raw:
        raw.execute("DROP TRIGGER audit_no_delete")
        raw.execute("DELETE FROM audit_trail WHERE seq >= ?", (head_seq,))  # the tail, up to the batch's end
    result = audit.verify(station.store)
    assert not result.ok and "B-1" in result.problem and "truncated" in result.problem


def test_exports_equal_the_database(station: Station) -> None:
    _fill(station, 4)
    with sqlite3.connect(station.db) as raw:
        rows = raw.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM audit_trail ORDER BY seq").fetchall()
    doc = json.loads(audit.export(station.store, "json"))
    assert doc["verification"]["ok"] is True and doc["verification"]["entries"] == len(rows)
    assert len(doc["entries"]) == len(rows)
    for e, r in zip(doc["entries"], rows, strict=True):
        assert e["seq"] == r[0] and e["hash"] == r[-1] and e["reason"] == r[9]
        assert e["new_value"] == (None if r[8] is None else json.loads(r[8]))
    lines = list(csv.reader(io.StringIO(audit.export(station.store, "csv"))))
    header, body = lines[1], lines[2:]
    assert header == ["seq", *COLUMNS] and len(body) == len(rows)
    for line, r in zip(body, rows, strict=True):
        assert line == ["" if v is None else str(v) for v in r]
    with pytest.raises(ValueError, match="csv or json"):
        audit.export(station.store, "xml")


def _empty_result(batch_id: str) -> BatchResult:
    return BatchResult(batch_id, 0, 0, 0, {}, 0, {}, 0, None, None, None, None, None, None, None, None, 0)
