"""A real station (sim camera, ONNX model, records) with its PLC link to the line simulator (Modbus TCP).

Checks the station side of the PLC link: decisions reach the PLC without blocking
inspection, acknowledgements land in the item records, the run summary carries the PLC
figures under positive release, and a lost PLC is a station fault that clears itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from inspector.events import StateChanged, StationEvent, StationState
from inspector.records import RecordStore
from inspector.station import open_station
from inspector.station.plc import POSITIVE_RELEASE
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.plc.conftest import StartSim
from tests.support.onnx_models import make_package
from tests.support.stations import station_config

RATE = 1200
GATE_MS = 300
pytestmark = pytest.mark.slow


def _project(tmp: Path) -> Path:
    product = Product.TABLET
    record = make_package(tmp / "models" / "tablet" / "0.0.1", product, dark_below=5)
    spec = IMAGE_SPECS[product]
    recipe = {
        "schema_version": 1,
        "recipe_id": "tablet-plc-test",
        "version": "1.0.0",
        "product": product.value,
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 200,
        "line_rate_per_min": RATE,
    }
    (tmp / "recipes").mkdir()
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _acks(db: Path, batch_id: str) -> dict[int, str | None]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT item_id, plc_ack FROM items WHERE batch_id = ?", (batch_id,)).fetchall()
    return {int(i): a for i, a in rows}


def test_station_decisions_acknowledged_recorded_and_released(start_sim: StartSim, tmp_path: Path) -> None:
    root = _project(tmp_path)
    sim_json = tmp_path / "sim.json"
    sim = start_sim("modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS), "--json", str(sim_json))
    n = 40
    config = station_config(
        "tablet", items=n, line_rate=RATE, defect_rate=0.3, db="var/db.sqlite", plc=f"modbus://127.0.0.1:{sim.port}"
    )
    session = open_station(config, root=root)
    try:
        summary = session.run(duration_s=30).as_dict()
    finally:
        session.close()
    time.sleep(GATE_MS / 1e3 + 0.2)
    line = sim.stop()

    assert summary["items"] == n
    assert summary["plc_decisions"] == n and summary["plc_acked"] == n
    assert summary["plc_late"] == summary["plc_missing"] == summary["plc_refused"] == 0
    assert summary["accepted_acked"] == summary["accepted"] == summary["line_accepted"]
    assert summary["accepted_not_acked"] == 0 and summary["line_rejected"] == n - summary["accepted"]
    assert summary["plc_release"] == POSITIVE_RELEASE
    assert summary["plc_rtt_ms_p50"] is not None
    # The line simulator's gate agrees item by item: every item decided before its gate.
    assert line["all_decided_before_gate"] and line["items"] == n
    assert line["accepted"] == summary["accepted_acked"]
    acks = _acks(root / "var" / "db.sqlite", summary["batch_id"])
    assert len(acks) == n and all(a is not None and a.startswith("acked rtt_ms=") for a in acks.values())
    outcomes = json.loads(sim_json.read_text())["outcomes"]
    assert set(outcomes) == {str(i) for i in range(1, n + 1)}


def test_lost_plc_is_a_station_fault_and_nothing_unacknowledged_is_accepted(
    start_sim: StartSim, tmp_path: Path
) -> None:
    root = _project(tmp_path)
    sim = start_sim("modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS))
    port = sim.port
    states: list[StationState] = []
    faults: list[tuple[float, StationState]] = []

    def on_event(event: StationEvent) -> None:
        if isinstance(event, StateChanged):
            states.append(event.state)
            faults.append((time.monotonic(), event.state))

    n = 70
    config = station_config("tablet", items=n, line_rate=RATE, db="var/db.sqlite", plc=f"modbus://127.0.0.1:{port}")
    session = open_station(config, root=root, on_event=on_event)
    try:
        bid = session.start_batch()
        time.sleep(1.0)
        sim.kill()
        time.sleep(0.5)
        assert session.station.state is StationState.FAULT
        sim2 = start_sim("modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS), port=port)
        deadline = time.monotonic() + 5
        while session.station.state is not StationState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert session.station.state is StationState.RUNNING, "the fault clears when the PLC is back"
        assert session.station.wait_finished(30)
        summary = session.end_batch().as_dict()
    finally:
        session.close()
    sim2.stop()

    codes = [a.code for a in session.station.alarms]
    assert "PLC_FAULT" in codes and "PLC_RECOVERED" in codes
    assert StationState.FAULT in states
    assert summary["plc_link_losses"] == 1 and summary["plc_loss_detect_ms_max"] < 100
    assert summary["plc_missing"] > 0, "decisions during the outage were never acknowledged"
    assert summary["line_accepted"] == summary["accepted_acked"] <= summary["accepted"]
    assert summary["plc_acked"] + summary["plc_missing"] + summary["plc_late"] + summary["plc_refused"] == n
    acks = _acks(root / "var" / "db.sqlite", bid)
    assert len(acks) == n and all(a is not None for a in acks.values())
    assert sum(1 for a in acks.values() if a == "missing") == summary["plc_missing"]
    _assert_no_accept_while_in_fault(root / "var" / "db.sqlite", bid, faults)


def _assert_no_accept_while_in_fault(db: Path, batch_id: str, states: list[tuple[float, StationState]]) -> None:
    """Issue 34, case 6: items decided during a PLC outage were stored accept/ok (docs: not_inspected)."""
    t_fault = next(t for t, s in states if s is StationState.FAULT)
    t_back = next(t for t, s in states if s is StationState.RUNNING and t > t_fault)
    with RecordStore(db) as store:
        items = store.items(batch_id)
    # The record's t_frame is the monotonic exposure time; a decision follows it within the 200 ms budget.
    during = [r for r in items if r.t_frame is not None and t_fault + 0.01 <= r.t_frame and r.t_frame + 0.2 < t_back]
    assert during, "items were decided during the outage"
    assert all(r.decision == "reject" for r in during), [(r.item_id, r.decision, r.reason) for r in during]
    held = [r for r in during if r.alarm == "plc_fault"]
    assert held and all(r.reason == "not_inspected" and r.label == "ok" and r.class_scores for r in held), held[:1]


def test_each_plc_alarm_is_stored_once_and_acknowledged_once(start_sim: StartSim, tmp_path: Path) -> None:
    """The line simulator answers item 5 with another item and item 9 with a bad status word.

    Before one recorder wrote every record, the PLC sink stored each PLC alarm and the station's
    alarm listener stored it again: two rows per alarm, and acknowledging on the HMI closed one.
    """
    root = _project(tmp_path)
    sim = start_sim(
        "modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS), "--inject", "wrong_item@5,bad_status@9"
    )
    db = root / "var" / "db.sqlite"
    config = station_config("tablet", items=20, line_rate=RATE, db=db, plc=f"modbus://127.0.0.1:{sim.port}")
    session = open_station(config, root=root)
    try:
        result = session.run(duration_s=30)
        raised = list(session.station.alarms)
        with RecordStore(db) as store:
            stored = store.alarms(result.batch_id)
        plc_codes = sorted(a.code for a in raised if a.source == "plc")
        assert {"PLC_ITEM_MISMATCH", "PLC_VALUE_REFUSED"} <= set(plc_codes), plc_codes
        assert sorted(a.code for a in stored if a.source == "plc") == plc_codes, "each alarm stored exactly once"
        assert sorted(r.uid for r in stored) == sorted(a.alarm_id for a in raised), "the rows are the alarms raised"
        open_ids = [a.alarm_id for a in raised if a.needs_ack]
        acks = session.acknowledge_alarms(open_ids, "Test Operator")
        assert sorted(a.alarm_id for a in acks) == sorted(open_ids)
        again = session.acknowledge_alarms(open_ids, "Someone Else")
        assert again == [], "an acknowledged alarm is not acknowledged twice"
    finally:
        session.close()
        sim.stop()
    with RecordStore(db) as store:
        assert store.alarms(result.batch_id, unacknowledged_only=True) == [
            a for a in store.alarms(result.batch_id) if a.severity == "info"
        ], "no warning or fault left open in the record"
        assert all(a.acknowledged_by == "Test Operator" for a in store.alarms(result.batch_id) if a.severity != "info")


def test_a_frozen_plc_heartbeat_is_one_fault_reported_with_its_measured_detection_time(
    start_sim: StartSim, tmp_path: Path
) -> None:
    """Issue 34, case 4: the station flapped 6-7 times per freeze and the summary said plc_loss_detect_ms_max 0.0."""
    root = _project(tmp_path)
    sim = start_sim(
        "modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS), "--inject", "freeze_heartbeat@20:700"
    )
    n = 60
    config = station_config("tablet", items=n, line_rate=RATE, db="var/db.sqlite", plc=f"modbus://127.0.0.1:{sim.port}")
    states: list[tuple[float, StationState]] = []

    def on_event(event: StationEvent) -> None:
        if isinstance(event, StateChanged):
            states.append((time.monotonic(), event.state))

    session = open_station(config, root=root, on_event=on_event)
    try:
        result = session.run(duration_s=30)
        summary = result.as_dict()
        codes = [a.code for a in session.station.alarms if a.source == "plc"]
        (fault,) = [a for a in session.station.alarms if a.code == "PLC_FAULT"]
    finally:
        session.close()
    sim.stop()
    _assert_no_accept_while_in_fault(root / "var" / "db.sqlite", str(result.batch_id), states)
    assert summary["not_inspected_by_cause"].get("plc_fault", 0) > 0

    assert codes.count("PLC_FAULT") == 1 and codes.count("PLC_RECOVERED") == 1, codes
    assert summary["plc_link_losses"] == 1
    assert 80 <= summary["plc_loss_detect_ms_max"] < 200, summary["plc_loss_detect_ms_max"]
    assert fault.detail["detect_ms"] == summary["plc_loss_detect_ms_max"]
    assert summary["plc_unresolved"] == 0


def test_an_accept_whose_record_is_not_durable_by_its_deadline_goes_to_the_plc_as_a_reject(
    start_sim: StartSim, tmp_path: Path
) -> None:
    """Issue 34, case 3: an accept waits for its durable record, and never past its deadline.

    The test holds the database's write lock for 0.6 s (three budgets): the recorder's commits
    wait, the accepts decided meanwhile are sent to the PLC as rejects at their deadline, and
    the line rejects them; their records, committed afterwards, say so.
    """
    root = _project(tmp_path)
    sim_json = tmp_path / "sim.json"
    sim = start_sim("modbus", "--line-rate", str(RATE), "--gate-delay-ms", str(GATE_MS), "--json", str(sim_json))
    db = root / "var" / "db.sqlite"
    config = station_config("tablet", items=60, line_rate=RATE, db=db, plc=f"modbus://127.0.0.1:{sim.port}")
    session = open_station(config, root=root)
    try:
        bid = session.start_batch()
        assert session.plc is not None
        deadline = time.monotonic() + 10
        while session.plc.figures().acked < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the writer's next commit waits for this lock
            time.sleep(0.6)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert session.station.wait_finished(30)
        summary = session.end_batch().as_dict()
    finally:
        session.close()
    time.sleep(GATE_MS / 1e3 + 0.2)
    sim.stop()

    assert summary["plc_durable_before_release"] is True
    assert summary["plc_withheld_accepts"] >= 5, summary["plc_withheld_accepts"]
    (alarm,) = [a for a in session.station.alarms if a.code == "ACCEPT_WITHHELD"]  # the first, then once a minute
    assert alarm.batch_id == bid and "record not durable before the deadline" in alarm.message
    with RecordStore(db) as store:
        items = store.items(bid)
    withheld = {r.item_id for r in items if r.plc_ack is not None and "sent=reject" in r.plc_ack}
    assert len(withheld) == summary["plc_withheld_accepts"]
    assert all(r.decision == "accept" for r in items if r.item_id in withheld), "the station's verdict stays"
    outcomes = {int(k): v for k, v in json.loads(sim_json.read_text())["outcomes"].items()}
    assert all(outcomes[i] == "rejected" for i in withheld if i in outcomes), "the line rejected them"
    assert {i for i, o in outcomes.items() if o == "accepted"} == {
        r.item_id
        for r in items
        if r.plc_ack is not None
        and r.plc_ack.startswith("acked")
        and r.decision == "accept"
        and "sent=reject" not in r.plc_ack
    }
    assert summary["accepted_not_acked"] >= summary["plc_withheld_accepts"], "withheld accepts never count as released"
    assert summary["plc_hold_ms_p50"] is not None and summary["plc_release_ms_p99"] is not None
