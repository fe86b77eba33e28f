"""Issue 34: fault paths an outside probe broke, each proved on the real station (no PLC here; see tests/plc).

- a batch a crashed station left running is closed as aborted at the next start (case 6);
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.records import ItemRecord, RecordConstraintError, RecordStore
from inspector.station import open_station
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package
from tests.support.stations import station_config

RATE = 1200


def _project(tmp: Path, *, thresholds: dict[str, float] | None = None) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    recipe: dict[str, object] = {
        "schema_version": 1,
        "recipe_id": "tablet-faults",
        "version": "1.0.0",
        "product": "tablet",
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300,
        "line_rate_per_min": RATE,
    }
    if thresholds is not None:
        recipe["thresholds"] = thresholds
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _item(batch_id: str, i: int, *, accept: bool, plc_ack: str | None = None) -> ItemRecord:
    return ItemRecord(
        batch_id=batch_id,
        item_id=i,
        frame_id=i,
        t_frame=float(i),
        created_utc="2025-03-01T08:00:00.000000+00:00",
        decision="accept" if accept else "reject",
        reason="ok" if accept else "anomaly",
        deadline_met=True,
        plc_ack=plc_ack,
    )


# -- case 6: crash recovery -------------------------------------------------------------------


def test_a_batch_left_running_by_a_crash_is_closed_aborted_at_the_next_start(tmp_path: Path) -> None:
    """Issue 34, case 6: after a crash the batch stayed `running` forever, with no warning at the next start."""
    root = _project(tmp_path)
    db = root / "var" / "db.sqlite"
    with RecordStore(db) as store:  # what a station killed mid-batch leaves: a running batch, some rows
        store.start_batch(
            "CRASHED-1",
            product="tablet",
            recipe_id="tablet-faults",
            recipe_version="1.0.0",
            recipe_sha256="a" * 64,
            model_id="m",
            model_version="0.0.1",
            model_sha256="b" * 64,
            camera_serial="SIM-0",
            camera_settings={},
            plc="modbus://127.0.0.1:502",
        )
        store.insert_items([_item("CRASHED-1", i, accept=i % 3 != 0) for i in (1, 2, 3, 4, 6)])
        for i in (1, 2, 3):
            store.set_plc_ack("CRASHED-1", i, "acked rtt_ms=0.300")
    session = open_station(station_config("tablet", items=5, line_rate=RATE, db=db), root=root)
    try:
        (aborted,) = session.aborted_batches
        (alarm,) = session.startup_alarms
        assert aborted.batch_id == "CRASHED-1"
        assert (alarm.code, alarm.batch_id, alarm.severity.value) == ("BATCH_ABORTED", "CRASHED-1", "warning")
        result = session.run(duration_s=30)  # the station works on
        assert result.items == 5
    finally:
        session.close()
    with RecordStore(db) as store:
        batch = store.batch("CRASHED-1")
        stored = [a for a in store.alarms("CRASHED-1") if a.code == "BATCH_ABORTED"]
        assert store.batch(str(result.batch_id))["state"] == "ended"
        with pytest.raises(RecordConstraintError, match="not running"):
            store.insert_items([_item("CRASHED-1", 7, accept=True)])
    assert batch["state"] == "aborted" and batch["ended_utc"] is not None
    report = batch["summary"]["reconciliation"]
    assert report["reconciled"] is False
    assert report["records"]["inspected"] == 5 and report["records"]["accepted"] == 3
    checks = {c["name"]: (c["ok"], c["detail"]) for c in report["checks"]}
    assert checks["ended by its station"][0] is False
    assert checks["nothing unaccounted"] == (False, "item ids 1..6, 5 recorded")
    assert checks["every PLC acknowledgement stored"] == (False, "2 of 5 items without a PLC acknowledgement")
    assert len(stored) == 1 and stored[0].uid == alarm.alarm_id and stored[0].acknowledged_utc is None
