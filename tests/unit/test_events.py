"""The station's events are typed, frozen and survive a trip through JSON (a process boundary)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from inspector.events import (
    Alarm,
    AlarmAcknowledged,
    AlarmRaised,
    AlarmSeverity,
    BatchContext,
    BatchEnded,
    BatchInProgress,
    BatchResult,
    BatchStarted,
    GroundTruth,
    ItemDecided,
    ItemDecision,
    NotInspected,
    PlcAcked,
    PlcFigures,
    StageTimes,
    StateChanged,
    StationEvent,
    StationState,
    event_from_dict,
    event_to_dict,
)
from inspector.taxonomy import OK, DefectCode, RejectReason

TIMES = StageTimes(1.0, 1.001, 1.002, 1.006, 1.0061)


def _decision(**kw: object) -> ItemDecision:
    base: dict[str, object] = {
        "item_id": 7,
        "frame_id": 7,
        "accept": False,
        "reason": DefectCode.EMPTY_POCKET,
        "times": TIMES,
        "deadline_met": True,
        "camera_serial": "SIM-0",
        "label": "empty_pocket",
        "pocket_index": 3,
        "confidence": 0.97,
        "anomaly": 0.5,
        "scores": {"ok": 0.03, "empty_pocket": 0.97},
        "unit_reasons": (OK, OK, OK, DefectCode.EMPTY_POCKET),
        "truth": GroundTruth("empty_pocket", ("ok", "ok", "ok", "empty_pocket"), "seed 1"),
    }
    base.update(kw)
    return ItemDecision(**base)  # type: ignore[arg-type]


def _result() -> BatchResult:
    plc = PlcFigures("modbus://127.0.0.1:5020", 10, 9, 0, 1, 0, 8, 8, 0.2, 0.5, 0.6, 0, None, "positive release")
    return BatchResult(
        batch_id="B-1",
        items=10,
        accepted=8,
        rejected=2,
        rejected_by_reason={"empty_pocket": 1, "not_inspected": 1},
        not_inspected=1,
        not_inspected_by_cause={"late": 1},
        scored=10,
        escapes=0,
        escapes_by_class={},
        critical_escapes=0,
        false_rejects=0,
        false_rejects_not_inspected=1,
        latency_ms_p50=4.0,
        latency_ms_p99=6.5,
        latency_ms_max=7.0,
        inspected_in_time=9,
        camera_stats={"frames": 10, "gaps": 0},
        input_monitor={"window": 200, "frames": 10, "drifting": False, "means": None},
        plc=plc,
    )


EVENTS: list[StationEvent] = [
    StateChanged(StationState.RUNNING, StationState.STARTING),
    BatchStarted(BatchContext("B-1", "blister", "blister-std", "1.0.0", "a" * 64, "m", "1.7.0", "b" * 64, "SIM-0", {})),
    ItemDecided(_decision(), "B-1"),
    ItemDecided(
        _decision(
            reason=RejectReason.NOT_INSPECTED,
            not_inspected=NotInspected.LATE,
            deadline_met=False,
            unit_reasons=None,
            truth=None,
        ),
        "B-1",
    ),
    AlarmRaised(
        Alarm("PLC_FAULT", "link lost", "plc", AlarmSeverity.FAULT, detail={"detect_ms": 42.0}, batch_id="B-1")
    ),
    AlarmAcknowledged("abc123", "Operator", "2026-12-06T03:00:00.000000+00:00"),
    PlcAcked("B-1", 7, "acked", "acked rtt_ms=0.200", True, 0.2),
    BatchEnded(_result()),
    BatchInProgress("B-1", 12, 10, {"crack": 1, "not_inspected": 1}, (_decision(),)),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: StationEvent) -> None:
    text = json.dumps(event_to_dict(event))
    back = event_from_dict(json.loads(text))
    assert back == event
    assert type(back) is type(event)


def test_a_decision_image_stays_in_process() -> None:
    event = ItemDecided(_decision(image=np.zeros((4, 4), np.uint8)), "B-1")
    data = event_to_dict(event)
    assert "image" not in data["decision"]
    back = event_from_dict(json.loads(json.dumps(data)))
    assert isinstance(back, ItemDecided) and back.decision.image is None and back == event  # image not compared


def test_events_are_frozen() -> None:
    for event in EVENTS:
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.__setattr__(dataclasses.fields(event)[0].name, None)


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown station event type"):
        event_from_dict({"type": "Teleported"})


def test_a_decision_reason_is_typed() -> None:
    with pytest.raises(ValueError, match="not a decision reason"):
        _decision(reason="smudge")
    with pytest.raises(ValueError, match="category"):
        _decision(reason=RejectReason.DEFECT)
    with pytest.raises(ValueError, match="accept needs reason ok"):
        _decision(accept=True)
    with pytest.raises(ValueError, match="not-inspected cause"):
        _decision(not_inspected=NotInspected.LATE)
    assert _decision().category is RejectReason.DEFECT
    assert _decision(reason=RejectReason.ANOMALY).category is RejectReason.ANOMALY
    assert _decision(accept=True, reason=OK).category is None


def test_the_batch_result_keeps_the_flat_summary_keys() -> None:
    d = _result().as_dict()
    assert d["items"] == d["accepted"] + d["rejected"] and d["reconciled"] is True
    assert d["plc_acked"] == 9 and d["accepted_not_acked"] == 0 and d["line_rejected"] == 2
    assert d["plc_unresolved"] == 0
    json.dumps(d)
