"""The Recorder: the only writer of a station's records, fed by the station's events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.events import (
    Alarm,
    AlarmRaised,
    AlarmSeverity,
    BatchContext,
    BatchResult,
    ItemDecided,
    ItemDecision,
    PlcAcked,
    StageTimes,
)
from inspector.records import DuplicateBatchError, Recorder, RecordStore, RecordWriterError
from inspector.taxonomy import OK, DefectCode

BATCH = "B-REC"


def _context(batch_id: str = BATCH, plc: str | None = None) -> BatchContext:
    return BatchContext(
        batch_id, "tablet", "tablet-test", "1.0.0", "a" * 64, "m", "0.0.1", "b" * 64, "SIM-0", {}, plc=plc
    )


def _decision(item: int, accept: bool = True) -> ItemDecision:
    return ItemDecision(
        item_id=item,
        frame_id=item,
        accept=accept,
        reason=OK if accept else DefectCode.CHIP,
        times=StageTimes(1.0, 1.0, 1.001, 1.004, 1.0041),
        deadline_met=True,
        camera_serial="SIM-0",
        image=np.full((8, 8, 3), 40, np.uint8),
    )


def _result(items: int, accepted: int) -> BatchResult:
    return BatchResult(
        batch_id=BATCH,
        items=items,
        accepted=accepted,
        rejected=items - accepted,
        rejected_by_reason={"chip": items - accepted},
        not_inspected=0,
        not_inspected_by_cause={},
        scored=0,
        escapes=None,
        escapes_by_class=None,
        critical_escapes=None,
        false_rejects=None,
        false_rejects_not_inspected=None,
        latency_ms_p50=4.1,
        latency_ms_p99=4.1,
        latency_ms_max=4.1,
        inspected_in_time=items,
    )


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    r = Recorder(tmp_path / "db.sqlite")
    yield r  # type: ignore[misc]
    r.close()


def test_decisions_alarms_and_batch_are_stored(recorder: Recorder, tmp_path: Path) -> None:
    recorder.open_batch(_context())
    for i in range(1, 6):
        recorder(ItemDecided(_decision(i, accept=i != 3), BATCH))
    alarm = Alarm("QUEUE_OVERFLOW", "queue full", "pipeline", AlarmSeverity.WARNING, batch_id=BATCH, detail={"n": 1})
    recorder(AlarmRaised(alarm))
    recorder.close_batch(_result(5, 4), reconciliation={"reconciled": True})
    with RecordStore(tmp_path / "db.sqlite") as store:
        items = store.items(BATCH)
        (row,) = store.alarms(BATCH)
        batch = store.batch(BATCH)
    assert [i.item_id for i in items] == [1, 2, 3, 4, 5]
    assert [i.image_path is not None for i in items] == [False, False, True, False, False], "rejects keep their image"
    assert (row.uid, row.code, row.severity, row.detail) == (alarm.alarm_id, "QUEUE_OVERFLOW", "warning", {"n": 1})
    assert row.created_utc == alarm.t_utc, "stored with the time it was raised"
    assert batch["state"] == "ended" and batch["summary"]["items"] == 5
    assert batch["summary"]["reconciliation"] == {"reconciled": True}


def test_a_refused_batch_id_stops_before_anything_is_written(recorder: Recorder) -> None:
    recorder.open_batch(_context())
    with pytest.raises(DuplicateBatchError):
        recorder.open_batch(_context())


def test_an_alarm_is_stored_once_even_if_delivered_twice(recorder: Recorder, tmp_path: Path) -> None:
    recorder.open_batch(_context())
    event = AlarmRaised(Alarm("CAMERA_FAULT", "lost", "camera", AlarmSeverity.FAULT, batch_id=BATCH))
    recorder(event)
    recorder(event)
    with pytest.raises(RecordWriterError, match="stored once"):
        recorder.flush()
    assert len(recorder.alarms(BATCH)) == 1


def test_a_plc_acknowledgement_that_beats_its_decision_is_stored_after_it(recorder: Recorder) -> None:
    recorder.expect_plc_acks = True
    recorder.open_batch(_context(plc="modbus://plc.test:502"))
    recorder(PlcAcked(BATCH, 1, "acked", "acked rtt_ms=0.100", True, 0.1))  # the PLC answered first
    recorder(ItemDecided(_decision(1), BATCH))
    recorder(ItemDecided(_decision(2), BATCH))
    recorder(PlcAcked(BATCH, 2, "missing", "missing", False))
    recorder.flush()
    with RecordStore(recorder.database) as store:
        acks = {i.item_id: i.plc_ack for i in store.items(BATCH)}
    assert acks == {1: "acked rtt_ms=0.100", 2: "missing"}


def test_alarms_are_acknowledged_by_id_once(recorder: Recorder) -> None:
    recorder.open_batch(_context())
    a, b = (Alarm("FRAME_GAP", "same text", "camera", batch_id=BATCH) for _ in range(2))
    recorder(AlarmRaised(a))
    recorder(AlarmRaised(b))  # identical text: only the id tells them apart
    (ack,) = recorder.acknowledge_alarms([a.alarm_id], "Operator One")
    assert ack.alarm_id == a.alarm_id and ack.by == "Operator One"
    assert recorder.acknowledge_alarms([a.alarm_id], "Operator Two") == [], "acknowledged once"
    (still_open,) = recorder.alarms(BATCH, unacknowledged_only=True)
    assert still_open.uid == b.alarm_id
    assert recorder.acknowledge_alarms(["no-such-alarm"], "Operator One") == []
    with pytest.raises(ValueError, match="who"):
        recorder.acknowledge_alarms([b.alarm_id], "  ")


def test_a_record_that_cannot_be_queued_is_reported(tmp_path: Path) -> None:
    failures: list[str] = []
    r = Recorder(tmp_path / "db.sqlite", on_failure=failures.append)
    r.close()
    r(ItemDecided(_decision(1), BATCH))
    assert failures and "item 1" in failures[0]


def test_one_station_writes_one_database(tmp_path: Path) -> None:
    """A second station on the same records is refused, so a running batch is never taken for a crashed one."""
    from inspector.records import DatabaseInUseError

    first = Recorder(tmp_path / "db.sqlite")
    try:
        with pytest.raises(DatabaseInUseError, match="another station"):
            Recorder(tmp_path / "db.sqlite")
    finally:
        first.close()
    Recorder(tmp_path / "db.sqlite").close()  # released with the first
