"""The station client the HMI talks through, served in-process from the one assembly point."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import yaml

from inspector.events import AlarmAcknowledged, AlarmRaised, BatchEnded, ItemDecided, StationEvent, StationState
from inspector.station.client import InProcessClient, open_in_process
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package
from tests.support.stations import station_config


def _project(tmp: Path) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    recipe = {
        "schema_version": 1,
        "recipe_id": "tablet-client-test",
        "version": "1.0.0",
        "product": "tablet",
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300,
        "line_rate_per_min": 1200,
    }
    (tmp / "recipes").mkdir()
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def test_a_batch_through_the_client(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = station_config("tablet", items=25, line_rate=1200, defect_rate=0.3, db=root / "var" / "db.sqlite")
    client = open_in_process(config, root)
    events: list[StationEvent] = []
    lock = threading.Lock()

    def listener(event: StationEvent) -> None:
        with lock:
            events.append(event)

    try:
        info = client.info
        assert isinstance(client, InProcessClient)
        assert (info.product, info.recipe_id, info.expected_items, info.plc_endpoint) == (
            Product.TABLET,
            "tablet-client-test",
            25,
            None,
        )
        assert info.line_period_s == 0.05 and info.rois is None and info.review_folder is not None
        assert client.status().state is StationState.IDLE and client.latest() is None
        subscription = client.subscribe(listener)
        bid = client.start_batch("LOT-1", "Test Operator")
        assert bid == "LOT-1"
        assert client.wait_finished(30)
        assert client.status().source_finished
        latest = client.latest()
        assert latest is not None and latest.decision is not None and latest.item_id == 25
        report = client.stop_batch()
        assert report.reconciled, report.checks
        assert report.result.items == 25 and report.records is not None and report.records["inspected"] == 25
        with lock:
            decided = [e for e in events if isinstance(e, ItemDecided)]
            ended = [e for e in events if isinstance(e, BatchEnded)]
        # Each item once; keyed, not ordered (a frame gap is decided beside an earlier item's inference).
        assert sorted(e.decision.item_id for e in decided) == list(range(1, 26))
        assert len(ended) == 1 and ended[0].result == report.result
        # Every event the client delivered can cross a process boundary.
        from inspector.events import event_from_dict, event_to_dict

        with lock:
            for event in events:
                assert event_from_dict(json.loads(json.dumps(event_to_dict(event)))) == event

        client.session.station.raise_alarm("TEST_ALARM", "raised by the test", "test")
        with lock:
            (raised,) = [e.alarm for e in events if isinstance(e, AlarmRaised)]
        (ack,) = client.acknowledge_alarms([raised.alarm_id], "Test Operator")
        with lock:
            acked = [e for e in events if isinstance(e, AlarmAcknowledged)]
        assert acked == [AlarmAcknowledged(raised.alarm_id, "Test Operator", ack.at_utc)]
        subscription.cancel()
        client.session.station.raise_alarm("TEST_ALARM", "after cancel", "test")
        time.sleep(0.05)
        with lock:
            assert not any(isinstance(e, AlarmRaised) and e.alarm.message == "after cancel" for e in events)
    finally:
        client.close()


def test_a_refused_record_ends_the_batch_not_reconciled(tmp_path: Path) -> None:
    """A record the database refuses never keeps a batch open: it ends, NOT reconciled, saying why."""
    from inspector.events import Alarm
    from inspector.records import RecordStore
    from inspector.station import open_station

    root = _project(tmp_path)
    db = root / "var" / "db.sqlite"
    session = open_station(station_config("tablet", items=5, line_rate=1200, db=db), root=root)
    try:
        bid = session.start_batch()
        alarm = Alarm("TEST_ALARM", "delivered twice", "test", batch_id=bid)
        session.station.publish(AlarmRaised(alarm))
        session.station.publish(AlarmRaised(alarm))  # the same alarm again: the records refuse a second row
        assert session.station.wait_finished(20)
        result = session.end_batch()
    finally:
        session.close()
    report = session.last_reconciliation
    assert report is not None and not report.reconciled
    assert report.error is not None and "not every record was stored" in report.error
    with RecordStore(db) as store:
        batch = store.batch(bid)
        assert batch["state"] == "ended" and batch["summary"]["reconciliation"]["reconciled"] is False
        assert [a.uid for a in store.alarms(bid)] == [alarm.alarm_id]
    assert result.items == 5
