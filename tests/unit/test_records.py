"""Record store and writer: schema rules, round trips, reject images and error reporting."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.records import (
    IMAGE_NOT_SAVED,
    SCHEMA_VERSION,
    DuplicateItemError,
    ItemRecord,
    RecordConstraintError,
    RecordQueueFull,
    RecordStore,
    RecordWriter,
    RecordWriterError,
    SchemaVersionError,
    StoreClosedError,
    UnknownAlarmError,
    UnknownBatchError,
    UnknownItemError,
)
from inspector.taxonomy import RejectReason

BATCH = "B2025-001"


def start(store: RecordStore, batch_id: str = BATCH, **over: Any) -> None:
    kw: dict[str, Any] = {
        "product": "vial",
        "recipe_id": "vial-10ml",
        "recipe_version": "3",
        "recipe_sha256": "a" * 64,
        "model_id": "vial-cls",
        "model_version": "1.2.0",
        "model_sha256": "b" * 64,
        "camera_serial": "SIM-0001",
        "camera_settings": {"exposure_us": 800, "gain_db": 1.5, "pixel_format": "Mono8"},
        "plc": "modbus://plc.test:502",
    }
    kw.update(over)
    store.start_batch(batch_id, **kw)


def item(i: int, batch_id: str = BATCH, **over: Any) -> ItemRecord:
    reject = i % 3 == 0
    rec = ItemRecord(
        batch_id=batch_id,
        item_id=i,
        frame_id=1000 + i,
        t_frame=12.5 + i / 10,
        created_utc=f"2025-03-01T08:00:{i % 60:02d}.123456+00:00",
        decision="reject" if reject else "accept",
        reason=RejectReason.DEFECT.value if reject else "ok",
        deadline_met=True,
        label="particle" if reject else "ok",
        confidence=0.5 + (i % 50) / 100,
        class_scores={"ok": 0.25, "particle": 0.75, "glass_crack": 1e-7},
        anomaly_score=0.125 * i,
        latency={"queue_ms": 0.2, "infer_ms": 4.75, "decide_ms": 0.05, "total_ms": 5.0},
        truth_label="particle" if reject else "ok",
    )
    return replace(rec, **over)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    s = RecordStore(tmp_path / "station.db")
    start(s)
    yield s
    s.close()


# -- store --------------------------------------------------------------------------------


def test_connection_settings_wal_full_foreign_keys_and_schema_version(store: RecordStore) -> None:
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL
    assert store.pragma("foreign_keys") == 1
    assert store.schema_version == SCHEMA_VERSION
    assert store.integrity_check() == "ok"


def test_round_trip_batch_items_and_alarms(store: RecordStore) -> None:
    records = [item(i) for i in range(10)]
    store.insert_items(records)
    assert store.items(BATCH) == records
    assert store.item(BATCH, 3) == records[3]

    alarm_id = store.add_alarm("pipeline", "queue_full", "record queue full", batch_id=BATCH)
    store.add_alarm("plc", "link_lost", "no heartbeat for 500 ms")
    assert [a.code for a in store.alarms(unacknowledged_only=True)] == ["queue_full", "link_lost"]
    store.ack_alarm(alarm_id, "operator1")
    (acked,) = store.alarms(BATCH)
    assert acked.acknowledged_by == "operator1" and acked.acknowledged_utc is not None
    assert acked.acknowledged_utc.endswith("+00:00")
    assert [a.code for a in store.alarms(unacknowledged_only=True)] == ["link_lost"]

    store.set_plc_ack(BATCH, 4, "acked", at_utc="2025-03-01T08:00:05+00:00")
    assert store.item(BATCH, 4).plc_ack == "acked"
    assert store.item(BATCH, 4).plc_ack_utc == "2025-03-01T08:00:05+00:00"

    counts = store.counts(BATCH)
    assert counts == {
        "inspected": 10,
        "accepted": 6,
        "rejected": 4,
        "by_reason": {"defect": 4},
        "by_label": {"particle": 4},
    }
    store.end_batch(BATCH, {"inspected": 10, "accepted": 6, "rejected": 4})
    b = store.batch(BATCH)
    assert b["state"] == "ended" and b["ended_utc"] is not None
    assert b["summary"] == {"inspected": 10, "accepted": 6, "rejected": 4}
    assert b["model_sha256"] == "b" * 64 and b["camera_serial"] == "SIM-0001"
    assert b["operator"] is None


def test_json_fields_round_trip_exactly(tmp_path: Path) -> None:
    settings = {"exposure_us": 812.5, "roi": [0, 0, 256, 384], "name": "Kamera µ-1", "nested": {"a": None, "b": True}}
    path = tmp_path / "s.db"
    with RecordStore(path) as s:
        start(s, camera_settings=settings)
        scores = {"ok": 0.1 + 0.2, "particle": 1 / 3, "fill_low": 5e-324}
        s.insert_items([item(1, class_scores=scores, latency={"total_ms": 7.000000001})])
        s.end_batch(BATCH, {"by_reason": {"defect": 1}, "rate": 0.25})
    with RecordStore(path) as s:  # a fresh connection reads what was written
        got = s.item(BATCH, 1)
        assert got.class_scores == scores and got.latency == {"total_ms": 7.000000001}
        assert s.batch(BATCH)["camera_settings"] == settings
        assert s.batch(BATCH)["summary"] == {"by_reason": {"defect": 1}, "rate": 0.25}


def test_non_finite_scores_are_refused_not_stored_as_null(store: RecordStore) -> None:
    with pytest.raises(RecordConstraintError, match="finite"):
        store.insert_items([item(1, anomaly_score=float("nan"))])
    with pytest.raises(RecordConstraintError, match="JSON"):
        store.insert_items([item(2, class_scores={"ok": float("inf")})])
    assert store.items(BATCH) == []


@pytest.mark.parametrize(
    "over",
    [
        {"decision": "accept", "reason": "defect"},  # accept without 'ok'
        {"decision": "accept", "reason": "ok", "deadline_met": False},  # late accept
        {"decision": "reject", "reason": "ok"},  # reject without a reason
        {"decision": "maybe", "reason": "ok"},
        {"created_utc": "2025-03-01T08:00:00"},  # no offset
    ],
)
def test_schema_refuses_unsafe_records(store: RecordStore, over: dict[str, Any]) -> None:
    with pytest.raises(RecordConstraintError, match="CHECK constraint failed"):
        store.insert_items([item(1), item(2, **over)])
    assert store.items(BATCH) == [], "the whole transaction is rolled back"


def test_accept_check_holds_even_for_raw_sql(tmp_path: Path) -> None:
    # The fail-safe lives in the schema, so it also stops code that bypasses RecordStore.
    with RecordStore(tmp_path / "s.db") as s:
        start(s)
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="accept_requires_ok_in_time"):
            conn.execute(
                "INSERT INTO items (batch_id, item_id, frame_id, t_frame, created_utc, decision, reason, deadline_met,"
                " class_scores, latency) VALUES (?, 1, 1, 0.0, ?, 'accept', 'not_inspected', 1, '{}', '{}')",
                (BATCH, "2025-03-01T08:00:00+00:00"),
            )
    finally:
        conn.close()


def test_duplicate_item_is_a_clear_error_and_nothing_of_the_group_is_stored(store: RecordStore) -> None:
    store.insert_items([item(1)])
    with pytest.raises(DuplicateItemError, match=r"item 1 of batch 'B2025-001'.*already recorded"):
        store.insert_items([item(2), item(1, decision="reject", reason="anomaly")])
    assert [r.item_id for r in store.items(BATCH)] == [1]
    assert store.item(BATCH, 1) == item(1), "the original record is untouched"


def test_unknown_batch_item_alarm_and_closed_store(store: RecordStore) -> None:
    with pytest.raises(UnknownBatchError, match="NOPE"):
        store.insert_items([item(1, batch_id="NOPE")])
    with pytest.raises(UnknownBatchError):
        store.batch("NOPE")
    with pytest.raises(UnknownBatchError):
        store.end_batch("NOPE", {})
    with pytest.raises(UnknownItemError, match="item 99"):
        store.item(BATCH, 99)
    with pytest.raises(UnknownItemError):
        store.set_plc_ack(BATCH, 99, "acked")
    with pytest.raises(UnknownAlarmError):
        store.ack_alarm(12345, "operator1")
    with pytest.raises(RecordConstraintError, match="must match"):
        start(store, "../escape")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosedError, match="closed"):
        store.items(BATCH)


def test_records_are_write_once(store: RecordStore) -> None:
    store.insert_items([item(1), item(3)])
    store.set_plc_ack(BATCH, 1, "late")
    with pytest.raises(RecordConstraintError, match="write-once"):
        store.set_plc_ack(BATCH, 1, "acked")
    alarm_id = store.add_alarm("plc", "late_ack", "ack after deadline")
    store.ack_alarm(alarm_id, "operator1")
    with pytest.raises(RecordConstraintError, match="once"):
        store.ack_alarm(alarm_id, "operator2")
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="write-once"):
            # Turning a recorded reject into an accept is exactly what must be impossible.
            conn.execute("UPDATE items SET decision = 'accept', reason = 'ok' WHERE item_id = 3")
        with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
            conn.execute("DELETE FROM items")
    finally:
        conn.close()
    store.end_batch(BATCH, {})
    with pytest.raises(RecordConstraintError, match="not running"):
        store.insert_items([item(4)])
    with pytest.raises(RecordConstraintError, match="once"):
        store.end_batch(BATCH, {"again": True})


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    RecordStore(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        RecordStore(tmp_path / "s.db")


# -- writer -------------------------------------------------------------------------------


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(48, 32, 3), dtype=np.uint8)


def test_writer_commits_everything_and_saves_reject_pngs(tmp_path: Path) -> None:
    db, images = tmp_path / "station.db", tmp_path / "images"
    with RecordStore(db) as s:
        start(s)
    commits: list[int] = []
    n = 600
    with RecordWriter(db, images, on_commit=commits.append) as w:
        for i in range(n):
            rec = item(i)
            img = _image(i) if rec.decision == "reject" else None
            w.submit(rec, img)
            if img is not None:
                img[:] = 0  # the camera reuses its buffer: the writer must have copied the frame
        w.submit_alarm("pipeline", "test", "an alarm", batch_id=BATCH)
        w.update_plc_ack(BATCH, 5, "acked")
        w.flush(timeout=20)
        assert w.committed == n and w.pending == 0
    assert commits and commits[-1] == n and commits == sorted(commits)

    with RecordStore(db) as s:
        got = s.items(BATCH)
        assert len(got) == n and s.counts(BATCH)["inspected"] == n
        for rec in got:
            expected = item(rec.item_id)
            if rec.decision == "reject":
                path = Path(str(rec.image_path))
                assert path == (images / BATCH / f"{rec.item_id}.png").resolve()
                assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.image_sha256
                assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), _image(rec.item_id))
                rec = replace(rec, image_path=None, image_sha256=None)
            else:
                assert rec.image_path is None and rec.image_sha256 is None
            if rec.item_id == 5:
                assert rec.plc_ack == "acked" and rec.plc_ack_utc is not None
                rec = replace(rec, plc_ack=None, plc_ack_utc=None)
            assert rec == expected
        assert [a.code for a in s.alarms(BATCH)] == ["test"]
    assert not list((images / BATCH).glob(".*.tmp")), "no temporary files left"


def test_writer_errors_surface_on_flush_and_good_rows_still_commit(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    with RecordStore(db) as s:
        start(s)
    seen: list[BaseException] = []
    w = RecordWriter(db, tmp_path / "images", on_error=seen.append, group_window_s=0.2)
    try:
        w.submit(item(1))
        w.submit(item(2, decision="accept", reason="not_inspected"))  # refused by the schema
        w.submit(item(1))  # duplicate
        w.submit(item(3))
        w.update_plc_ack(BATCH, 777, "acked")  # unknown item
        with pytest.raises(RecordWriterError, match="3 record") as info:
            w.flush(timeout=10)
        causes = [e.errors[0] for e in info.value.errors if isinstance(e, RecordWriterError)]
        assert [type(c) for c in causes] == [RecordConstraintError, DuplicateItemError, UnknownItemError]
        assert len(seen) == 3 and all(isinstance(e, RecordWriterError) for e in seen)
        assert w.committed == 2
        w.flush(timeout=10)  # errors are reported once
    finally:
        w.close()
    with RecordStore(db) as s:
        assert [r.item_id for r in s.items(BATCH)] == [1, 3]


def test_unsaveable_image_keeps_the_record_with_an_alarm(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    with RecordStore(db) as s:
        start(s)
    with RecordWriter(db, tmp_path / "images") as w:
        w.submit(item(3), np.zeros((4, 4, 7), dtype=np.uint8))  # 7 channels cannot be a PNG
        with pytest.raises(RecordWriterError, match="image not saved"):
            w.flush(timeout=10)
    with RecordStore(db) as s:
        rec = s.item(BATCH, 3)
        assert rec.alarm == IMAGE_NOT_SAVED and rec.image_path is None and rec.image_sha256 is None


def test_full_queue_raises_instead_of_dropping(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    with RecordStore(db) as s:
        start(s)
    blocked, release = threading.Event(), threading.Event()

    def stall(_committed: int) -> None:
        blocked.set()
        release.wait(10)

    w = RecordWriter(db, tmp_path / "images", max_queue=5, on_commit=stall)
    try:
        w.submit(item(0))
        assert blocked.wait(10), "the writer thread is now stuck in on_commit"
        accepted = 1
        with pytest.raises(RecordQueueFull, match="item 6 of batch 'B2025-001' was not queued"):
            for i in range(1, 100):
                w.submit(item(i))
                accepted += 1
        assert accepted == 6
        release.set()
        w.flush(timeout=10)
        assert w.committed == accepted
    finally:
        release.set()
        w.close()


def test_close_joins_the_thread_and_refuses_more_work(tmp_path: Path) -> None:
    db = tmp_path / "station.db"
    with RecordStore(db) as s:
        start(s)
    before = threading.active_count()
    w = RecordWriter(db, tmp_path / "images")
    assert w.alive and threading.active_count() == before + 1
    w.submit(item(1))
    w.close()
    assert not w.alive and threading.active_count() == before
    w.close()  # idempotent
    with pytest.raises(StoreClosedError):
        w.submit(item(2))
    with RecordStore(db) as s:
        assert [r.item_id for r in s.items(BATCH)] == [1], "close stored what was queued"


def test_writer_that_cannot_open_its_store_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "is_a_dir.db").mkdir()
    with pytest.raises(sqlite3.OperationalError):
        RecordWriter(tmp_path / "is_a_dir.db", tmp_path / "images")


def test_image_left_by_a_crash_is_set_aside_but_a_recorded_image_is_never_overwritten(tmp_path: Path) -> None:
    db, images = tmp_path / "station.db", tmp_path / "images"
    with RecordStore(db) as s:
        start(s)
    (images / BATCH).mkdir(parents=True)
    (images / BATCH / "3.png").write_bytes(b"half-written by a killed process")
    with RecordWriter(db, images, group_window_s=0.2) as w:
        w.submit(item(3), _image(3))
        w.submit(item(6), _image(6))
        w.submit(item(6), _image(60))  # duplicate in the same group: must not replace item 6's image
        with pytest.raises(RecordWriterError):
            w.flush(timeout=10)
        w.submit(item(3), _image(33))  # duplicate of a committed item
        with pytest.raises(RecordWriterError, match="already exists"):
            w.flush(timeout=10)
    with RecordStore(db) as s:
        for i in (3, 6):
            rec = s.item(BATCH, i)
            data = Path(str(rec.image_path)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == rec.image_sha256
            assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), _image(i))
    (orphan,) = (images / BATCH).glob("3.png.orphan-*")
    assert orphan.read_bytes() == b"half-written by a killed process"


# -- schema 3: aborted batches, PLC acknowledgements only with a PLC, alarms stored open ----------


def _raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _schema_2_database(path: Path) -> None:
    """A record database as schema 2 left it: one ended batch with PLC acknowledgements, one without."""
    from inspector.records.store import _MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for step in range(2):
            conn.executescript(f"BEGIN;\n{_MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
        for bid in ("OLD-PLC", "OLD-NOPLC"):
            conn.execute(
                "INSERT INTO batches (batch_id, product, recipe_id, recipe_version, recipe_sha256, model_id,"
                " model_version, model_sha256, camera_serial, camera_settings, started_utc)"
                " VALUES (?, 'vial', 'r', '1', ?, 'm', '1.0.0', ?, 'SIM-0', '{}', '2025-03-01T08:00:00+00:00')",
                (bid, "a" * 64, "b" * 64),
            )
            for i in (1, 2):
                rec = item(i, batch_id=bid)
                conn.execute(
                    "INSERT INTO items (batch_id, item_id, frame_id, t_frame, created_utc, decision, reason,"
                    " deadline_met, class_scores, latency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', '{}')",
                    (bid, i, rec.frame_id, rec.t_frame, rec.created_utc, rec.decision, rec.reason, 1),
                )
        conn.execute("UPDATE items SET plc_ack = 'acked' WHERE batch_id = 'OLD-PLC' AND item_id = 1")
        conn.execute(
            "INSERT INTO alarms (batch_id, created_utc, source, code, message, uid) VALUES"
            " ('OLD-PLC', '2025-03-01T08:00:01+00:00', 'plc', 'PLC_FAULT', 'lost', 'u1')"
        )
        conn.execute(
            "UPDATE batches SET state = 'ended', ended_utc = '2025-03-01T09:00:00+00:00', summary = '{}'"
            " WHERE batch_id = 'OLD-PLC'"
        )
    finally:
        conn.close()


def test_schema_2_database_migrates_keeping_every_record(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_2_database(path)
    with RecordStore(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 7
        assert all(i.pose is None and i.identity is None for i in s.items("OLD-PLC"))
        assert s.batch("OLD-PLC")["release_status"] == "NOT RELEASED - DEMO", "the GxP step ran before"
        assert s.integrity_check() == "ok" and s.pragma("foreign_keys") == 1
        old = s.batch("OLD-PLC")
        assert (old["state"], old["summary"], old["ended_utc"]) == ("ended", {}, "2025-03-01T09:00:00+00:00")
        assert old["plc"] is not None, "a batch whose items hold an acknowledgement had a PLC"
        assert s.batch("OLD-NOPLC")["plc"] is None and s.batch("OLD-NOPLC")["state"] == "running"
        assert [(i.item_id, i.plc_ack) for i in s.items("OLD-PLC")] == [(1, "acked"), (2, None)]
        assert [a.uid for a in s.alarms("OLD-PLC")] == ["u1"]
        assert s.running_batch_ids() == ["OLD-NOPLC"]
        with pytest.raises(RecordConstraintError, match="without a PLC"):
            s.set_plc_ack("OLD-NOPLC", 1, "acked")
        s.abort_batch("OLD-NOPLC", {"aborted": "test"})
    with _raw(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        (n,) = conn.execute("SELECT count(*) FROM item_trace").fetchone()
        assert n == 4, "the trace view joins every item to its batch again"


def test_an_aborted_batch_takes_no_item_no_end_and_no_new_summary(store: RecordStore) -> None:
    """Issue 34, case 6: a batch left running after a crash could be filled and ended with made-up records."""
    store.insert_items([item(1), item(2)])
    store.abort_batch(BATCH, {"aborted": "station crashed", "reconciliation": {"reconciled": False}})
    b = store.batch(BATCH)
    assert b["state"] == "aborted" and b["ended_utc"] is not None and b["summary"]["aborted"] == "station crashed"
    assert store.running_batch_ids() == []
    with pytest.raises(RecordConstraintError, match="not running"):
        store.insert_items([item(3)])
    with pytest.raises(RecordConstraintError, match="once"):
        store.end_batch(BATCH, {"accepted": 1000})
    with pytest.raises(RecordConstraintError, match="once"):
        store.abort_batch(BATCH, {"aborted": "again"})
    with _raw(store.path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="not running"):
            conn.execute(
                "INSERT INTO items (batch_id, item_id, frame_id, t_frame, created_utc, decision, reason, deadline_met,"
                " class_scores, latency) VALUES (?, 99, 99, 0.0, '2025-03-01T08:00:00+00:00', 'accept', 'ok', 1,"
                " '{}', '{}')",
                (BATCH,),
            )
        with pytest.raises(sqlite3.IntegrityError, match="once"):
            conn.execute(
                "UPDATE batches SET state = 'ended', summary = '{\"accepted\": 1000}' WHERE batch_id = ?", (BATCH,)
            )
        with pytest.raises(sqlite3.IntegrityError, match="starts running"):
            conn.execute(
                "INSERT INTO batches (batch_id, product, recipe_id, recipe_version, recipe_sha256, model_id,"
                " model_version, model_sha256, camera_serial, camera_settings, started_utc, ended_utc, state, summary)"
                " VALUES ('FAKE', 'vial', 'r', '1', 'a', 'm', '1', 'b', 'S', '{}', '2025-03-01T08:00:00+00:00',"
                " '2025-03-01T09:00:00+00:00', 'ended', '{}')"
            )
    assert [i.item_id for i in store.items(BATCH)] == [1, 2]


def test_no_plc_acknowledgement_on_a_batch_run_without_a_plc(tmp_path: Path) -> None:
    """Issue 34, case 6: on a batch without a PLC, anyone with the file could set every item's plc_ack."""
    with RecordStore(tmp_path / "s.db") as s:
        start(s, plc=None)
        s.insert_items([item(1), item(2)])
        with pytest.raises(RecordConstraintError, match="without a PLC"):
            s.set_plc_ack(BATCH, 1, "acked rtt_ms=0.100")
        assert s.batch(BATCH)["plc"] is None
    with _raw(tmp_path / "s.db") as conn:
        with pytest.raises(sqlite3.IntegrityError, match="without a PLC"):
            conn.execute("UPDATE items SET plc_ack = 'acked', plc_ack_utc = '2025-03-01T08:00:00+00:00'")
        with pytest.raises(sqlite3.IntegrityError, match="without a PLC"):
            conn.execute(
                "INSERT INTO items (batch_id, item_id, frame_id, t_frame, created_utc, decision, reason, deadline_met,"
                " class_scores, latency, plc_ack) VALUES (?, 3, 3, 0.0, '2025-03-01T08:00:00+00:00', 'reject',"
                " 'anomaly', 1, '{}', '{}', 'acked')",
                (BATCH,),
            )
        (acked,) = conn.execute("SELECT count(*) FROM items WHERE plc_ack IS NOT NULL").fetchone()
    assert acked == 0


def test_an_alarm_is_stored_unacknowledged(store: RecordStore) -> None:
    """Issue 34, case 6: an alarm could be inserted already acknowledged."""
    with _raw(store.path) as conn, pytest.raises(sqlite3.IntegrityError, match="unacknowledged"):
        conn.execute(
            "INSERT INTO alarms (batch_id, created_utc, source, code, message, acknowledged_utc, acknowledged_by)"
            " VALUES (?, '2025-03-01T08:00:00+00:00', 'plc', 'PLC_FAULT', 'lost', '2025-03-01T08:00:01+00:00', 'x')",
            (BATCH,),
        )
    assert store.alarms(BATCH) == []


def test_a_batch_records_its_plc_and_thresholds(tmp_path: Path) -> None:
    th = {"confidence": 0.5, "anomaly": 2.0, "validated": {"confidence": 0.9, "anomaly": 1.0}, "looser": ["anomaly"]}
    with RecordStore(tmp_path / "s.db") as s:
        start(s, thresholds=th, thresholds_validated=False)
        s.insert_items([item(1)])
        b = s.batch(BATCH)
        assert (b["plc"], b["thresholds"], b["thresholds_validated"]) == ("modbus://plc.test:502", th, 0)
    with _raw(tmp_path / "s.db") as conn:
        (validated, plc) = conn.execute("SELECT thresholds_validated, batch_plc FROM item_trace").fetchone()
    assert validated == 0 and plc == "modbus://plc.test:502", "every item's trace carries the marking"


def test_writer_reports_which_item_rows_each_commit_made_durable(tmp_path: Path) -> None:
    """What the PLC sink waits for before it releases an accept (durable before release)."""
    db = tmp_path / "station.db"
    with RecordStore(db) as s:
        start(s)
    seen: list[tuple[list[tuple[str, int]], list[tuple[str, int]]]] = []
    w = RecordWriter(
        db, tmp_path / "images", group_window_s=0.0, on_items=lambda ok, bad: seen.append((list(ok), list(bad)))
    )
    try:
        w.submit(item(1))
        w.submit(item(1, decision="reject", reason="anomaly"))  # a second row for item 1: refused
        w.submit(item(2))
        with pytest.raises(RecordWriterError, match="already recorded"):
            w.flush()
    finally:
        w.close()
    durable = [k for ok, _ in seen for k in ok]
    refused = [k for _, bad in seen for k in bad]
    assert durable == [(BATCH, 1), (BATCH, 2)] and refused == [(BATCH, 1)]
    assert w.commits >= 2
    with RecordStore(db) as s:
        assert [i.item_id for i in s.items(BATCH)] == [1, 2] and s.item(BATCH, 1).decision == "accept"


def test_the_pose_is_kept_with_its_item_write_once_and_hashed(store: RecordStore) -> None:
    """Schema 5: registration's pose is part of the item's record, and of its hash once set."""
    from inspector.records.chain import verify_batch
    from inspector.records.hashing import ITEM_FIELDS, row_hash

    pose = {"dx": 3.25, "dy": -1.5, "angle_deg": 2.125, "score": 0.985}
    store.insert_items([item(1), item(2, pose=pose)])
    got = {i.item_id: i.pose for i in store.items(BATCH)}
    assert got == {1: None, 2: pose}
    # An item without a pose hashes as it did before schema 5: chains written before stay valid.
    before = ITEM_FIELDS[: ITEM_FIELDS.index("pose")]
    row = store.execute(f"SELECT prev_hash, row_hash, {', '.join(before)} FROM items WHERE item_id = 1").fetchone()
    assert row[1] == row_hash(row[0], list(row[2:]))
    assert verify_batch(store, BATCH).ok
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="write-once"):
            conn.execute("UPDATE items SET pose = '{\"dx\": 0}' WHERE item_id = 2")
        conn.execute("DROP TRIGGER items_write_once")  # what someone with the file and a SQL tool can do
        conn.execute("UPDATE items SET pose = json_set(pose, '$.dx', 0.0) WHERE item_id = 2")
        conn.commit()
    finally:
        conn.close()
    check = verify_batch(store, BATCH)
    assert not check.ok and check.first_bad_item == 2


def test_the_identity_measurement_is_kept_with_its_item_write_once_and_hashed(store: RecordStore) -> None:
    """Schema 6: each tablet's identity measurement and broken tolerances are part of the hashed record."""
    from inspector.records.chain import verify_batch

    measured = [{"found": True, "area_px": 2510.0, "lab": [70.1, 12.0, 38.2], "failures": []},
                {"found": True, "area_px": 1804.0, "lab": [61.0, -20.5, 11.0],
                 "failures": ["chroma 37.3 (nominal 0, tolerance 19.1)"]}]  # fmt: skip
    store.insert_items([item(1), item(2, pose={"dx": 1.0}, identity=measured)])
    assert {i.item_id: i.identity for i in store.items(BATCH)} == {1: None, 2: measured}
    assert verify_batch(store, BATCH).ok
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="write-once"):
            conn.execute("UPDATE items SET identity = '[]' WHERE item_id = 2")
        conn.execute("DROP TRIGGER items_write_once")
        conn.execute("UPDATE items SET identity = json_set(identity, '$[1].failures', json('[]')) WHERE item_id = 2")
        conn.commit()
    finally:
        conn.close()
    check = verify_batch(store, BATCH)
    assert not check.ok and check.first_bad_item == 2
